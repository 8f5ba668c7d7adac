"""Scanner plugins. Each turns an inventory into matches:

- ``offline``: the vulnerability database file the operator supplies (OSV or Debian tracker JSON);
- ``trivy`` and ``grype``: the real scanners, when installed on the control worker's host. They
  are given a CycloneDX SBOM of the inventory (so machine images and containers scan alike, and
  no registry access is needed) and run with their own, already downloaded, databases: no update
  is attempted (offline hosts).

``auto`` (the default) uses the database when one is configured plus every scanner installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from engine.scanning import cvss
from engine.scanning.advisories import Advisory
from engine.scanning.database import DatabaseCache, Match, VulnerablePackage
from engine.scanning.inventory import Inventory

COMMAND_TIMEOUT = 900


class ScannerError(RuntimeError):
    """A scanner could not run; the message says which and why."""


class Scanner(Protocol):
    name: str

    def scan(self, inventory: Inventory) -> list[Match]: ...


class OfflineDatabaseScanner:
    name = "offline"

    def __init__(self, path: Path, cache: DatabaseCache | None = None) -> None:
        self.path = path
        self.cache = cache or DatabaseCache()

    def scan(self, inventory: Inventory) -> list[Match]:
        return self.cache.get(self.path).match(inventory)


def sbom(inventory: Inventory) -> dict[str, Any]:
    """A CycloneDX 1.5 SBOM with deb purls (``upstream`` names the source package)."""
    distro = f"{inventory.distro}-{inventory.version_id}" if inventory.version_id else inventory.distro
    components: list[dict[str, Any]] = [
        {"type": "operating-system", "name": inventory.distro, "version": inventory.version_id}
    ]
    for p in inventory.packages:
        epoch, _, version = p.version.rpartition(":") if ":" in p.version else ("", "", p.version)
        qualifiers = [f"distro={quote(distro)}"]
        if epoch:
            qualifiers.append(f"epoch={epoch}")
        if p.source != p.name:
            qualifiers.append(f"upstream={quote(p.source)}")
        purl = f"pkg:deb/{inventory.distro}/{quote(p.name)}@{quote(version, safe='')}?{'&'.join(qualifiers)}"
        components.append({"type": "library", "name": p.name, "version": p.version, "purl": purl})
    return {"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1, "components": components}


class CommandScanner:
    """A scanner binary fed the SBOM; subclasses give the command line and read its JSON."""

    name = ""
    binary = ""

    def __init__(self, executable: str | None = None) -> None:
        found = executable or shutil.which(self.binary)
        if not found:
            raise ScannerError(f"{self.binary} is not installed on this host (not on PATH)")
        self.executable = found

    def command(self, sbom_path: str) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return {}

    def parse(self, report: dict[str, Any]) -> list[Match]:
        raise NotImplementedError

    def scan(self, inventory: Inventory) -> list[Match]:
        with tempfile.TemporaryDirectory(prefix="ib-scan-") as folder:
            path = os.path.join(folder, "sbom.cdx.json")
            Path(path).write_text(json.dumps(sbom(inventory)))
            try:
                done = subprocess.run(
                    self.command(path),
                    capture_output=True,
                    timeout=COMMAND_TIMEOUT,
                    env={**os.environ, **self.environment()},
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                raise ScannerError(f"{self.name} did not finish within {COMMAND_TIMEOUT} s") from exc
            if done.returncode != 0:
                tail = done.stderr.decode(errors="replace").strip()[-500:]
                raise ScannerError(f"{self.name} failed (exit {done.returncode}): {tail}")
            try:
                report = json.loads(done.stdout)
            except json.JSONDecodeError as exc:
                raise ScannerError(f"{self.name} printed no JSON report: {exc}") from exc
        return self.parse(report)


def _group(rows: list[tuple[Advisory, str, VulnerablePackage]]) -> list[Match]:
    by_id: dict[str, tuple[Advisory, str, dict[str, VulnerablePackage]]] = {}
    for adv, severity, pkg in rows:
        entry = by_id.setdefault(adv.id, (adv, severity, {}))
        entry[2].setdefault(pkg.name, pkg)
    return [Match(adv, sev, tuple(pkgs[k] for k in sorted(pkgs))) for adv, sev, pkgs in by_id.values()]


class TrivyScanner(CommandScanner):
    name = "trivy"
    binary = "trivy"

    def command(self, sbom_path: str) -> list[str]:
        return [self.executable, "sbom", "--format", "json", "--quiet", "--skip-db-update", "--offline-scan", sbom_path]

    def parse(self, report: dict[str, Any]) -> list[Match]:
        rows = []
        for result in report.get("Results") or []:
            for v in result.get("Vulnerabilities") or []:
                score, vector = None, ""
                for source in (v.get("CVSS") or {}).values():
                    if source.get("V3Score") is not None:
                        score, vector = float(source["V3Score"]), str(source.get("V3Vector") or "")
                        break
                severity = cvss.severity_of_label(str(v.get("Severity") or ""))
                adv = Advisory(
                    id=str(v["VulnerabilityID"]),
                    title=str(v.get("Title") or v["VulnerabilityID"]),
                    description=str(v.get("Description") or v.get("Title") or v["VulnerabilityID"]),
                    severity=severity,
                    source=str(v.get("SeveritySource") or "trivy").upper(),
                    source_url=str(v.get("PrimaryURL") or ""),
                    score=score,
                    vector=vector,
                    cvss_version=vector.split("/")[0].removeprefix("CVSS:") if vector else "",
                    related=tuple(v.get("VendorIDs") or ()),
                    references=tuple(v.get("References") or ()),
                    published=str(v.get("PublishedDate") or ""),
                    modified=str(v.get("LastModifiedDate") or ""),
                )
                pkg = VulnerablePackage(
                    str(v.get("PkgName")), str(v.get("InstalledVersion")), str(v.get("FixedVersion") or ""), ""
                )
                rows.append((adv, severity, pkg))
        return _group(rows)


class GrypeScanner(CommandScanner):
    name = "grype"
    binary = "grype"

    def command(self, sbom_path: str) -> list[str]:
        return [self.executable, f"sbom:{sbom_path}", "-o", "json", "-q"]

    def environment(self) -> dict[str, str]:
        return {"GRYPE_DB_AUTO_UPDATE": "false", "GRYPE_CHECK_FOR_APP_UPDATE": "false"}

    def parse(self, report: dict[str, Any]) -> list[Match]:
        rows = []
        for m in report.get("matches") or []:
            v, artifact = m.get("vulnerability") or {}, m.get("artifact") or {}
            score, vector, version = None, "", ""
            for c in v.get("cvss") or []:
                if str(c.get("version", "")).startswith("3"):
                    score = (c.get("metrics") or {}).get("baseScore")
                    vector, version = str(c.get("vector") or ""), str(c.get("version"))
                    break
            severity = cvss.severity_of_label(str(v.get("severity") or ""))
            fix = v.get("fix") or {}
            adv = Advisory(
                id=str(v["id"]),
                title=str(v["id"]),
                description=str(v.get("description") or v["id"]),
                severity=severity,
                source=str(v.get("namespace") or "grype").upper(),
                source_url=str(v.get("dataSource") or ""),
                score=float(score) if score is not None else None,
                vector=vector,
                cvss_version=version,
                related=tuple(str(r.get("id")) for r in m.get("relatedVulnerabilities") or [] if r.get("id")),
                references=tuple(v.get("urls") or ()),
            )
            fixed = [str(x) for x in fix.get("versions") or []] if fix.get("state") == "fixed" else []
            pkg = VulnerablePackage(str(artifact.get("name")), str(artifact.get("version")), min(fixed, default=""), "")
            rows.append((adv, severity, pkg))
        return _group(rows)


COMMANDS: dict[str, type[CommandScanner]] = {"trivy": TrivyScanner, "grype": GrypeScanner}


def configured(names: str, database: str, cache: DatabaseCache | None = None) -> list[Scanner]:
    """The scanners a ``scanners`` setting names (comma-separated; ``auto``: the database when set,
    and every installed command scanner). Naming one that cannot run is an error, said at once."""
    wanted: Sequence[str] = [n.strip() for n in names.split(",") if n.strip()] or ["auto"]
    out: list[Scanner] = []
    for name in wanted:
        if name == "auto":
            if database:
                out.append(OfflineDatabaseScanner(Path(database), cache))
            out += [cls() for cls in COMMANDS.values() if shutil.which(cls.binary)]
        elif name == "offline":
            if not database:
                raise ScannerError("the offline scanner needs a vulnerability database file (vulnerability_database)")
            out.append(OfflineDatabaseScanner(Path(database), cache))
        elif name in COMMANDS:
            out.append(COMMANDS[name]())
        else:
            raise ScannerError(f"unknown scanner {name!r}: use auto, offline, trivy or grype")
    return out
