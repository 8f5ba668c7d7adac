"""Readers for the offline vulnerability data formats: OSV (https://ossf.github.io/osv-schema/)
and the Debian security tracker's JSON export (security-tracker.debian.org/tracker/data/json).

A database path is a JSON file (one OSV record, a list of them, or the tracker export), a zip of
OSV records (as OSV publishes each ecosystem: ``Debian/all.zip``) or a folder of either.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.scanning import cvss
from engine.scanning.advisories import Advisory, Affected


class DatabaseError(ValueError):
    """The file is not vulnerability data we can read; the message says why, naming it."""


def read_path(path: Path) -> Iterator[Advisory]:
    if path.is_dir():
        for child in sorted(path.rglob("*")):
            if child.suffix in (".json", ".zip") and child.is_file():
                yield from read_path(child)
        return
    if not path.is_file():
        raise DatabaseError(f"vulnerability database {path} does not exist")
    if path.suffix == ".zip":
        try:
            with zipfile.ZipFile(path) as archive:
                for name in sorted(archive.namelist()):
                    if name.endswith(".json"):
                        yield from read_document(_load(archive.read(name), f"{path}:{name}"), f"{path}:{name}")
        except zipfile.BadZipFile as exc:
            raise DatabaseError(f"vulnerability database {path} is not a readable zip: {exc}") from exc
        return
    yield from read_document(_load(path.read_bytes(), str(path)), str(path))


def _load(data: bytes, where: str) -> Any:
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatabaseError(f"vulnerability database {where} is not JSON: {exc}") from exc


def read_document(doc: Any, where: str) -> Iterator[Advisory]:
    if isinstance(doc, list):
        for item in doc:
            yield from read_document(item, where)
    elif isinstance(doc, dict) and "id" in doc and ("affected" in doc or "modified" in doc):
        yield from osv_record(doc)
    elif isinstance(doc, dict) and _looks_like_tracker(doc):
        yield from debian_tracker(doc)
    else:
        raise DatabaseError(
            f"{where}: neither an OSV record (with 'id' and 'affected') nor the Debian security tracker JSON "
            "(source package -> CVE -> releases)"
        )


# -- OSV ---------------------------------------------------------------------------------------


def _ecosystem(name: str) -> tuple[str, str] | None:
    """'Debian:12' -> ('debian', '12'); 'Ubuntu:22.04:LTS' -> ('ubuntu', '22.04'); None for
    ecosystems whose versions we cannot order (and Ubuntu Pro, whose fixes need a subscription)."""
    parts = name.split(":")
    distro = parts[0].lower()
    if distro not in ("debian", "ubuntu") or "Pro" in parts[1:]:
        return None
    return distro, parts[1] if len(parts) > 1 else ""


def _vulnerability_id(record: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
    """Inspector names findings by CVE: the record's id if it is one, else its only CVE alias."""
    own = str(record["id"])
    others = [str(a) for a in [*(record.get("upstream") or []), *(record.get("aliases") or [])]]
    cves = list(dict.fromkeys(a for a in others if a.startswith("CVE-")))
    chosen = own if own.startswith("CVE-") else (cves[0] if len(cves) == 1 else own)
    related = tuple(dict.fromkeys(i for i in [own, *others] if i != chosen))
    return chosen, related


def osv_record(record: dict[str, Any]) -> Iterator[Advisory]:
    affected: list[Affected] = []
    for entry in record.get("affected") or []:
        package = entry.get("package") or {}
        eco = _ecosystem(str(package.get("ecosystem") or ""))
        if eco is None or not package.get("name"):
            continue
        events: list[tuple[str, str]] = []
        for rng in entry.get("ranges") or []:
            if rng.get("type") == "ECOSYSTEM":
                for event in rng.get("events") or []:
                    events += [(str(k), str(v)) for k, v in event.items()]
        urgency = str((entry.get("ecosystem_specific") or {}).get("urgency") or "")
        affected.append(
            Affected(
                distro=eco[0],
                release=eco[1],
                package=str(package["name"]),
                events=tuple(events),
                versions=tuple(str(v) for v in entry.get("versions") or []),
                severity=cvss.severity_of_label(urgency) if urgency else "",
            )
        )
    if not affected:
        return
    vuln_id, related = _vulnerability_id(record)
    score, vector, version = None, "", ""
    for sev in record.get("severity") or []:
        if str(sev.get("type", "")).startswith("CVSS_V3"):
            score = cvss.base_score(str(sev.get("score") or ""))
            if score is not None:
                vector, version = str(sev["score"]), str(sev["score"]).split("/")[0].removeprefix("CVSS:")
                break
    label = str((record.get("database_specific") or {}).get("severity") or "")
    if label:
        severity = cvss.severity_of_label(label)
    elif score is not None:
        severity = cvss.severity_of_score(score)
    else:
        severity = "UNTRIAGED"
    references = tuple(str(r["url"]) for r in record.get("references") or [] if r.get("url"))
    advisory_urls = [str(r["url"]) for r in record.get("references") or [] if r.get("type") == "ADVISORY"]
    details = str(record.get("details") or "")
    yield Advisory(
        id=vuln_id,
        title=str(record.get("summary") or "") or _first_line(details) or vuln_id,
        description=details or str(record.get("summary") or "") or vuln_id,
        severity=severity,
        source=f"{affected[0].distro.upper()}_CVE",
        source_url=advisory_urls[0] if advisory_urls else f"https://osv.dev/vulnerability/{record['id']}",
        score=score,
        vector=vector,
        cvss_version=version,
        related=related,
        references=references,
        published=str(record.get("published") or ""),
        modified=str(record.get("modified") or ""),
        affected=tuple(affected),
    )


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:200] if text.strip() else ""


# -- Debian security tracker ---------------------------------------------------------------------


def _looks_like_tracker(doc: dict[str, Any]) -> bool:
    for issues in list(doc.values())[:20]:
        if isinstance(issues, dict):
            for issue in list(issues.values())[:5]:
                if isinstance(issue, dict) and "releases" in issue:
                    return True
    return False


#: Urgencies Debian does not count as affecting its packages (or releases no longer supported).
_NOT_REPORTED = {"unimportant", "end-of-life"}


def debian_tracker(doc: dict[str, Any]) -> Iterator[Advisory]:
    """One advisory per (CVE, source package): open issues affect every version, resolved ones
    the versions below fixed_version ("0" means the release was never affected)."""
    for source, issues in doc.items():
        if not isinstance(issues, dict):
            continue
        for cve, issue in issues.items():
            if not isinstance(issue, dict):
                continue
            affected = []
            for codename, rel in (issue.get("releases") or {}).items():
                urgency = str(rel.get("urgency") or "").rstrip("*")
                status = rel.get("status")
                if urgency in _NOT_REPORTED:
                    continue
                if status == "resolved":
                    fixed = str(rel.get("fixed_version") or "")
                    if not fixed or fixed == "0":
                        continue
                    events: tuple[tuple[str, str], ...] = (("introduced", "0"), ("fixed", fixed))
                elif status == "open":
                    events = (("introduced", "0"),)
                else:
                    continue  # undetermined: no version information to match
                severity = "UNTRIAGED" if urgency in ("", "not yet assigned") else cvss.severity_of_label(urgency)
                affected.append(Affected("debian", str(codename), str(source), events, (), severity))
            if not affected:
                continue
            description = str(issue.get("description") or "") or str(cve)
            yield Advisory(
                id=str(cve),
                title=_first_line(description) or str(cve),
                description=description,
                severity="UNTRIAGED",
                source="DEBIAN_CVE",
                source_url=f"https://security-tracker.debian.org/tracker/{cve}",
                affected=tuple(affected),
            )
