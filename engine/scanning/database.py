"""An offline vulnerability database loaded from a file and indexed by (distribution, package),
and its matching against an inventory."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from engine.scanning.advisories import COMPARATORS, Advisory, Affected, evaluate
from engine.scanning.cvss import SEVERITIES
from engine.scanning.inventory import Inventory, Package
from engine.scanning.sources import read_path


@dataclass(frozen=True)
class VulnerablePackage:
    name: str
    version: str
    fixed_in: str
    source: str


@dataclass(frozen=True)
class Match:
    advisory: Advisory
    severity: str
    packages: tuple[VulnerablePackage, ...]


def _release_matches(affected: Affected, inventory: Inventory) -> bool:
    r = affected.release
    return not r or r in (inventory.version_id, inventory.codename) or inventory.version_id.startswith(r + ".")


class VulnerabilityDatabase:
    def __init__(self, advisories: list[Advisory]) -> None:
        self.advisories = advisories
        self.index: dict[tuple[str, str], list[tuple[Advisory, Affected]]] = {}
        for adv in advisories:
            for aff in adv.affected:
                self.index.setdefault((aff.distro, aff.package), []).append((adv, aff))

    @classmethod
    def load(cls, path: Path) -> VulnerabilityDatabase:
        return cls(list(read_path(path)))

    def match(self, inventory: Inventory) -> list[Match]:
        compare = COMPARATORS.get(inventory.distro)
        if compare is None:
            return []
        found: dict[str, tuple[Advisory, list[str], dict[str, VulnerablePackage]]] = {}
        for pkg in inventory.packages:
            for name, version in _names(pkg):
                for adv, aff in self.index.get((inventory.distro, name), []):
                    if not _release_matches(aff, inventory):
                        continue
                    verdict = evaluate(aff, version, compare)
                    if not verdict.affected:
                        continue
                    entry = found.setdefault(adv.id, (adv, [], {}))
                    if adv.score is not None and entry[0].score is None:
                        entry = found[adv.id] = (adv, entry[1], entry[2])  # the record with a CVSS score wins
                    entry[1].append(aff.severity)
                    entry[2].setdefault(pkg.name, VulnerablePackage(pkg.name, pkg.version, verdict.fixed_in, name))
        matches = []
        for adv, severities, packages in found.values():
            severity = adv.severity
            if severity == "UNTRIAGED":
                known = [s for s in severities if s and s != "UNTRIAGED"]
                severity = min(known, key=SEVERITIES.index) if known else "UNTRIAGED"
            matches.append(Match(adv, severity, tuple(packages[k] for k in sorted(packages))))
        return sorted(matches, key=lambda m: (SEVERITIES.index(m.severity), m.advisory.id))


def _names(pkg: Package) -> list[tuple[str, str]]:
    """Advisories name source packages; a few sources name binaries: try both, each with its version."""
    names = [(pkg.source, pkg.source_version)]
    if pkg.name != pkg.source:
        names.append((pkg.name, pkg.version))
    return names


class DatabaseCache:
    """The database of one path, reloaded when the file changes (users replace it to update)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[str, float, int] | None = None
        self._db: VulnerabilityDatabase | None = None

    def get(self, path: Path) -> VulnerabilityDatabase:
        stat = path.stat()
        key = (str(path), stat.st_mtime, stat.st_size)
        with self._lock:
            if self._db is None or self._key != key:
                self._db = VulnerabilityDatabase.load(path)
                self._key = key
            return self._db
