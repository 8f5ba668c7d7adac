"""Semantic versions (major.minor.patch, each a non-negative integer) and x wildcards."""

from __future__ import annotations

import re

from engine.api.errors import ApiError

_VERSION = re.compile(r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$")
_WILDCARD = re.compile(r"^([0-9]+|x)\.([0-9]+|x)\.([0-9]+|x)$")
MAX_PART = 2**30 - 1  # Image Builder's documented upper bound for each number


def check(version: str) -> tuple[int, int, int]:
    m = _VERSION.match(version)
    if not m or any(int(p) > MAX_PART for p in m.groups()):
        raise ApiError(
            "InvalidVersionNumberException",
            f"semantic version {version!r} must be <major>.<minor>.<patch>, each a non-negative integer "
            f"without leading zeros and at most {MAX_PART}",
        )
    return int(m[1]), int(m[2]), int(m[3])


def is_wildcard(version: str) -> bool:
    return "x" in version


def matches(pattern: str, version: str) -> bool:
    """Does a concrete version match a pattern like 1.x.x (x matches any number)?"""
    if not _WILDCARD.match(pattern):
        return False
    want = pattern.split(".")
    have = version.split(".")
    if len(have) != 3:
        return False
    # A wildcard may only be followed by wildcards (1.x.3 is not a valid selector).
    seen_x = False
    for w in want:
        if w == "x":
            seen_x = True
        elif seen_x:
            return False
    return all(w in ("x", h) for w, h in zip(want, have, strict=True))


def key(version: str) -> tuple[int, int, int]:
    parts = version.split(".")
    try:
        return int(parts[0]), int(parts[1]), int(parts[2])
    except (IndexError, ValueError):
        return (0, 0, 0)
