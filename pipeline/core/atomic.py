"""Atomic file and folder writes, and content hashes.

A reader never sees a half-written output: files are written to a temporary name in the same
folder, fsynced and renamed; folders are built under a temporary name and swapped in. Executor
tasks write through :func:`replacing`, so a task that dies, or runs twice on a cluster that
retried it, never leaves a torn file at its output's name.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import xxhash

#: the end of the name of a file an attempt at a task is writing (see :func:`replacing`)
ATTEMPT = ".attempt"


def sha256_file(path: str | Path, block: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes: the checksum published with the bundle and its inputs."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return h.hexdigest()


def file_stamp(path: str | Path) -> list[int]:
    """Size, modification and change times (ns) and inode of a file: a write changes at least
    one of them (the change time cannot be set back), so an equal stamp means the same bytes."""
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def file_digest(path: str | Path, block: int = 1 << 22) -> str:
    """``xxh3:`` and the hex XXH3-128 of a file's bytes: how the runner knows an artifact again.
    It tells edited and torn files from intact ones (128 bits: no accidental match), not a
    forgery from the real thing, which only the published sha256 sums are for; at 6 GB/s it
    costs a 20 M-point run a fraction of a second where sha256 took two."""
    h = xxhash.xxh3_128()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return "xxh3:" + h.hexdigest()


def tree_hashes(folder: str | Path, digest: Callable[[Path], str] = sha256_file) -> dict[str, str]:
    """``digest`` (default sha256) of every file under ``folder``, keyed by POSIX path relative
    to it, sorted.

    Files are hashed on a few threads: both hashes release the GIL on large blocks, and a
    stage's outputs run to gigabytes for a city cloud.
    """
    folder = Path(folder)
    files = [p for p in sorted(folder.rglob("*")) if p.is_file()]
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        digests = list(pool.map(digest, files))
    return {p.relative_to(folder).as_posix(): d for p, d in zip(files, digests, strict=True)}


def digest_of(hashes: dict[str, str]) -> str:
    """One sha256 summarising a {path: sha256} mapping."""
    return hashlib.sha256(json.dumps(hashes, sort_keys=True).encode()).hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` durably: through :func:`replacing`, fsynced before the rename."""
    with replacing(path, durable=True) as f:
        f.write(data)


@contextmanager
def replacing(path: str | Path, *, durable: bool = False) -> Iterator[IO[bytes]]:
    """A binary file of this attempt's own beside ``path``, renamed over ``path`` when the block
    ends without error and removed when it fails (a full disk leaves no half-written file).
    Two attempts at one task (a cluster retrying a task whose worker it thought dead) each write
    their own file and the last rename wins whole. A task's output is not fsynced (it is made
    durable once, when the runner swaps the stage's folder in); a ``durable`` one is, with its
    folder, and that folder is made first."""
    path = Path(path)
    if durable:
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}{ATTEMPT}")
    try:
        with open(tmp, "wb") as f:
            yield f
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    if durable:
        _fsync_dir(path.parent)


def sweep_attempts(folder: str | Path) -> int:
    """Remove the files of attempts that died while writing (:func:`replacing`) under ``folder``;
    returns how many there were."""
    stale = [p for p in Path(folder).rglob(f".*{ATTEMPT}") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON, atomically."""
    write_bytes_atomic(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def fsync_tree(folder: str | Path) -> None:
    """fsync every file and folder under ``folder`` so a rename publishes durable content."""
    folder = Path(folder)
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    for d in sorted({p.parent for p in folder.rglob("*")} | {folder}):
        _fsync_dir(d)


#: renameat2 flag: swap two paths in one step (Linux 3.15+)
RENAME_EXCHANGE = 2
AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths atomically; False where the system cannot (then the caller renames)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    if renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):  # a file system without exchange
        return False
    raise OSError(err, os.strerror(err), str(b))


def replace_dir(tmp: str | Path, final: str | Path, *, durable: bool = True) -> None:
    """Swap the finished folder ``tmp`` in as ``final``, replacing any previous version.

    The two are exchanged in one step where the system can (Linux's renameat2), so ``final``
    always exists and is whole: a hub reading the bundle never finds it missing. Elsewhere, if
    interrupted between two renames, ``final`` is missing (never half-written) and the runner
    redoes the stage. ``durable`` fsyncs every file first, so the content survives a power cut;
    without it a power cut can leave torn files, which is only acceptable where a reader checks
    content hashes before trusting the folder.
    """
    tmp, final = Path(tmp), Path(final)
    if durable:
        fsync_tree(tmp)
    old = final.with_name(f".old-{final.name}")
    if old.exists():
        shutil.rmtree(old)
    if final.exists() and _exchange(tmp, final):
        _fsync_dir(final.parent)
        shutil.rmtree(tmp)  # now the previous version
        return
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    _fsync_dir(final.parent)
    if old.exists():
        shutil.rmtree(old)


def mirror_dir(src: str | Path, dst: str | Path) -> None:
    """Make ``dst`` a folder of hard links to the files of ``src`` (no data copied), swapped in
    as one step by :func:`replace_dir`: a reader of ``dst`` finds the previous content or the
    new, whole. A real folder rather than a symbolic link, because tools that list a folder
    (3d-tiles-tools, web servers with link checks) do not follow a linked one."""
    src, dst = Path(src), Path(dst)
    tmp = dst.with_name(f".tmp-{dst.name}")
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(src, tmp, copy_function=os.link)
    if dst.is_symlink():
        dst.unlink()
    replace_dir(tmp, dst)
