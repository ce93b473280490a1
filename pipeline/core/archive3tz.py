"""A bundle as one file: the 3D Tiles archive format (3TZ), for hubs that take a single file.

A 3TZ is a ZIP whose files are stored uncompressed with ``tileset.json`` at its root, and whose
last entry, ``@3dtilesIndex1@``, indexes every file for random access: per file 16 bytes of the
MD5 of its path and the 8-byte little-endian offset of its local file header, sorted by the hash
read as two little-endian 64-bit integers (low half first). Python's zipfile writes the ZIP;
the index is written here because no Python library writes it (3d-tiles-tools, which reads it,
is Node). Tiles are already compressed, so storing costs little.
"""

from __future__ import annotations

import hashlib
import os
import struct
import zipfile
from pathlib import Path

INDEX = "@3dtilesIndex1@"


def _index(entries: list[tuple[str, int]]) -> bytes:
    """The index of (path, local header offset) pairs."""
    rows = [(hashlib.md5(name.encode("utf-8"), usedforsecurity=False).digest(), offset) for name, offset in entries]
    rows.sort(key=lambda r: (struct.unpack("<Q", r[0][:8])[0], struct.unpack("<Q", r[0][8:])[0]))
    return b"".join(h + struct.pack("<Q", off) for h, off in rows)


def write_3tz(bundle: str | Path, out: str | Path) -> int:
    """Pack every file of the bundle folder ``bundle`` into the 3TZ ``out`` (written to a
    temporary name and renamed); returns the number of files packed."""
    bundle, out = Path(bundle), Path(out)
    if not (bundle / "tileset.json").is_file():
        raise FileNotFoundError(f"{bundle}: no tileset.json at the bundle's root")
    files = sorted(p for p in bundle.rglob("*") if p.is_file())
    for p in files:
        if not p.relative_to(bundle).as_posix().isascii():
            # 3d-tiles-tools compares a header's byte length against the name's character count
            # and fails on such entries: refuse rather than write an archive its readers misread
            raise ValueError(f"{p}: a 3TZ path must be ASCII for 3d-tiles-tools to read it")
    # tileset.json first: readers that look for the root find it at once
    files.sort(key=lambda p: p.relative_to(bundle).as_posix() != "tileset.json")
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    entries: list[tuple[str, int]] = []
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as z:
        for p in files:
            name = p.relative_to(bundle).as_posix()
            z.write(p, name)
            entries.append((name, z.getinfo(name).header_offset))
        z.writestr(zipfile.ZipInfo(INDEX, date_time=(1980, 1, 1, 0, 0, 0)), _index(entries))
    os.replace(tmp, out)
    return len(files)


def read_index(path: str | Path) -> dict[bytes, int]:
    """The archive's index: MD5 of a path -> offset of its local file header."""
    with zipfile.ZipFile(path) as z:
        data = z.read(INDEX)
        if z.infolist()[-1].filename != INDEX:
            raise ValueError(f"{path}: {INDEX} is not the last entry")
    return {data[i:i + 16]: struct.unpack("<Q", data[i + 16:i + 24])[0] for i in range(0, len(data), 24)}
