"""The vulnerability data every source is read into, and OSV's rule for "is this version affected".

An Advisory is one vulnerability; each Affected entry names one package of one distribution
release and the versions of it that are affected, as OSV ranges (ordered introduced / fixed /
last_affected / limit events) and/or an explicit version list.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

from engine.scanning.versions import dpkg_compare

Compare = Callable[[str, str], int]

#: Distributions whose package versions we can order, by os-release ID.
COMPARATORS: dict[str, Compare] = {"debian": dpkg_compare, "ubuntu": dpkg_compare}


@dataclass(frozen=True)
class Affected:
    distro: str  # os-release ID: debian, ubuntu
    release: str  # VERSION_ID ("12", "22.04") or codename ("bookworm"); "" = every release
    package: str  # as the source names it: a source package for Debian and Ubuntu
    events: tuple[tuple[str, str], ...] = ()  # ("introduced", "0"), ("fixed", "1.2-3"), ...
    versions: tuple[str, ...] = ()
    severity: str = ""  # a per-package severity when the source has one (Debian urgency)


@dataclass(frozen=True)
class Advisory:
    id: str
    title: str
    description: str
    severity: str  # one of cvss.SEVERITIES
    source: str  # e.g. DEBIAN_CVE, OSV
    source_url: str = ""
    score: float | None = None
    vector: str = ""
    cvss_version: str = ""
    related: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    published: str = ""
    modified: str = ""
    affected: tuple[Affected, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Verdict:
    affected: bool
    fixed_in: str = ""  # the first fixed version above the installed one, if any


def evaluate(affected: Affected, version: str, compare: Compare) -> Verdict:
    """OSV's evaluation: events in version order (introduced "0" first); the last event at or
    below the version decides; an explicit versions list also counts."""
    key = functools.cmp_to_key(compare)

    def order(event: tuple[str, str]) -> tuple[int, object]:
        kind, value = event
        return (0, "") if kind == "introduced" and value == "0" else (1, key(value))

    try:
        events = sorted(affected.events, key=order)
        vulnerable = False
        fixed_in = ""
        limits = [v for k, v in events if k == "limit"]
        for kind, value in events:
            if kind == "limit":
                continue
            at_or_below = value == "0" if kind == "introduced" and value == "0" else compare(value, version) <= 0
            if kind == "introduced" and at_or_below:
                vulnerable, fixed_in = True, ""
            elif kind == "fixed":
                if at_or_below:
                    vulnerable = False
                elif vulnerable and not fixed_in:
                    fixed_in = value
            elif kind == "last_affected" and compare(value, version) < 0:
                vulnerable = False
        if vulnerable and limits and not any(compare(version, limit) < 0 for limit in limits):
            vulnerable = False
        if not vulnerable and affected.versions:
            vulnerable = any(compare(version, v) == 0 for v in affected.versions)
    except ValueError:
        return Verdict(False)  # a version this distribution's rules cannot order
    return Verdict(vulnerable, fixed_in if vulnerable else "")
