"""dpkg version ordering, checked against dpkg itself on this Debian host."""

from __future__ import annotations

import random
import subprocess

import pytest

from engine.scanning.versions import dpkg_compare

# Cases from deb-version(7) and dpkg's own test suite style: epochs, tildes, revisions, letters
# against punctuation, leading zeros, binNMU suffixes and Debian security revisions.
CASES = [
    ("1.0", "1.0", 0),
    ("1.0", "1.0-0", 0),
    ("1.0~rc1", "1.0", -1),
    ("1.0~~", "1.0~", -1),
    ("1.0~rc1-1", "1.0-1", -1),
    ("1:0.1", "9.9", 1),
    ("0:1.0", "1.0", 0),
    ("1.0a", "1.0+", -1),
    ("1.0+", "1.0.", -1),
    ("1.001", "1.1", 0),
    ("1.10", "1.9", 1),
    ("2.36-9+deb12u3", "2.36-9+deb12u4", -1),
    ("2.36-9+deb12u10", "2.36-9+deb12u9", 1),
    ("5.2.15-2+b13", "5.2.15-2", 1),
    ("3.0.11-1~deb12u2", "3.0.11-1", -1),
    ("1.2.3-1ubuntu0.1", "1.2.3-1", 1),
    ("7.88.1-10+deb12u5", "7.88.1-10+deb12u12", -1),
    ("1.0-1", "1.0-1.1", -1),
]


@pytest.mark.parametrize(("a", "b", "expected"), CASES)
def test_documented_orderings(a: str, b: str, expected: int) -> None:
    result = dpkg_compare(a, b)
    assert (result > 0) - (result < 0) == expected
    back = dpkg_compare(b, a)
    assert (back > 0) - (back < 0) == -expected


def _dpkg_says(a: str, b: str) -> int:
    for op, sign in (("lt", -1), ("eq", 0)):
        if subprocess.run(["dpkg", "--compare-versions", a, op, b], check=False).returncode == 0:
            return sign
    return 1


def test_agrees_with_dpkg_on_random_versions() -> None:
    rng = random.Random(20240607)
    pieces = ["0", "1", "01", "2", "10", "9", "a", "b", "z", "A", "~", "+", ".", "~~", "rc", "deb12u", "+b"]

    def version() -> str:
        upstream = rng.choice(["1", "2", "10", "0"]) + "".join(rng.choice(pieces) for _ in range(rng.randint(0, 4)))
        revision = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 3)))
        epoch = rng.choice(["", "", "", "1:", "0:", "2:"])
        return epoch + upstream + (f"-{revision}" if revision and revision[0] not in "~" else "")

    pairs = [(version(), version()) for _ in range(300)]
    mismatches = []
    for a, b in pairs:
        ours = dpkg_compare(a, b)
        if (ours > 0) - (ours < 0) != _dpkg_says(a, b):
            mismatches.append((a, b))
    assert mismatches == []


def test_epoch_must_be_a_number() -> None:
    with pytest.raises(ValueError, match="epoch"):
        dpkg_compare("x:1.0", "1.0")
