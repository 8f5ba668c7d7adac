"""Package version ordering as the package managers define it.

dpkg: ``[epoch:]upstream[-revision]``; epochs compare as numbers, then upstream and revision
with dpkg's ``verrevcmp`` (deb-version(7)): alternating non-digit and digit runs, where in the
non-digit runs letters sort before non-letters, ``~`` sorts before everything, even the end of
the string, and digit runs compare as numbers. A missing revision equals ``0``.
"""

from __future__ import annotations

import functools

_DIGITS = frozenset("0123456789")


def _order(c: str) -> int:
    if c in _DIGITS:
        return 0
    if c == "~":
        return -1
    if c.isascii() and c.isalpha():
        return ord(c)
    return ord(c) + 256


def _verrevcmp(a: str, b: str) -> int:
    i = j = 0
    while i < len(a) or j < len(b):
        while (i < len(a) and a[i] not in _DIGITS) or (j < len(b) and b[j] not in _DIGITS):
            ac = _order(a[i]) if i < len(a) else 0
            bc = _order(b[j]) if j < len(b) else 0
            if ac != bc:
                return ac - bc
            i += 1
            j += 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        first_diff = 0
        while i < len(a) and a[i] in _DIGITS and j < len(b) and b[j] in _DIGITS:
            if not first_diff:
                first_diff = ord(a[i]) - ord(b[j])
            i += 1
            j += 1
        if i < len(a) and a[i] in _DIGITS:
            return 1
        if j < len(b) and b[j] in _DIGITS:
            return -1
        if first_diff:
            return first_diff
    return 0


@functools.lru_cache(maxsize=65536)
def parse_dpkg(version: str) -> tuple[int, str, str]:
    """(epoch, upstream, revision); ValueError for an epoch that is not a number."""
    v = version.strip()
    epoch = 0
    if ":" in v:
        head, v = v.split(":", 1)
        if not head.isdigit():
            raise ValueError(f"version {version!r}: the epoch {head!r} is not a number")
        epoch = int(head)
    upstream, sep, revision = v.rpartition("-")
    if not sep:
        upstream, revision = v, ""
    return epoch, upstream, revision


def dpkg_compare(a: str, b: str) -> int:
    """<0, 0 or >0 as ``dpkg --compare-versions a lt|eq|gt b``."""
    ea, ua, ra = parse_dpkg(a)
    eb, ub, rb = parse_dpkg(b)
    if ea != eb:
        return -1 if ea < eb else 1
    return _verrevcmp(ua, ub) or _verrevcmp(ra, rb)
