"""Text files as people here write them: UTF-8 with or without a byte-order mark (spreadsheet
programs add one), or CP949, which Korean Windows programs and survey software still write."""

from __future__ import annotations

from datetime import date

#: tried in order; CP949 is a superset of EUC-KR
ENCODINGS = ("utf-8-sig", "cp949")


#: characters that are markup anywhere in a line of Markdown (emphasis, code, links, tables,
#: strikethrough), or in the HTML a Markdown renderer passes through; with brackets escaped no link
#: or image can form, so parentheses stay as they are
_MARKDOWN = {c: f"\\{c}" for c in "\\`*_[]|~"} | {"<": "&lt;", ">": "&gt;", "&": "&amp;"}


def markdown_literal(text: str) -> str:
    """``text`` (a name from a config or an input) as literal Markdown on one line: no markup,
    links or HTML of its own survive (hubs and viewers render the bundle's README)."""
    return "".join(_MARKDOWN.get(c, c) for c in " ".join(text.split()))


class NotText(ValueError):
    """The bytes are not text in any of :data:`ENCODINGS` (or hold NUL bytes)."""


def decode_text(data: bytes) -> str:
    """``data`` decoded by the first encoding that reads it whole; NotText saying where it fails."""
    if b"\0" in data:
        raise NotText("it is not a text file (it holds NUL bytes)")
    failures = []
    for encoding in ENCODINGS:
        try:
            return data.decode(encoding)
        except UnicodeDecodeError as exc:
            failures.append(exc.start)
    bad = failures[0]  # where it stops being UTF-8
    raise NotText(f"it is neither UTF-8 nor CP949 text (byte 0x{data[bad]:02x} at offset {bad})")


def ymd_date(value: object) -> str | None:
    """YYYY-MM-DD of a date written YYYYMMDD, YYYY-MM-DD or YYYY.MM.DD (as Korean registers and
    layers write them); None for an empty, zero or impossible date."""
    digits = "".join(ch for ch in str(value if value is not None else "") if ch.isdigit())
    if len(digits) != 8:
        return None
    y, m, d = int(digits[:4]), int(digits[4:6]), int(digits[6:])
    try:
        return date(y, m, d).isoformat()
    except ValueError:
        return None
