"""The text encodings file actions accept, mapped to Python codec names.

awstoe names them case-insensitively; bare utf16/utf32 mean little-endian, and none of them
writes a byte-order mark.
"""

from __future__ import annotations

from components.actions.base import ActionFailed

_CODECS = {
    "utf8": "utf-8",
    "utf16": "utf-16-le",
    "utf16le": "utf-16-le",
    "utf16be": "utf-16-be",
    "utf32": "utf-32-le",
    "utf32le": "utf-32-le",
    "utf32be": "utf-32-be",
}

_BOMS = [
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
]


def codec(name: str | None) -> str:
    if name is None:
        return "utf-8"
    key = name.lower().replace("-", "")
    if key not in _CODECS:
        raise ActionFailed(f"unsupported encoding {name!r}")
    return _CODECS[key]


def decode_any(data: bytes) -> str:
    """Decode a file whose encoding is unknown: a byte-order mark decides, else UTF-8."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            return data[len(bom) :].decode(name)
    return data.decode("utf-8", "replace")
