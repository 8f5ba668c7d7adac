"""An image's package inventory as the scanners read it: the OS release and the packages, with
the source package each binary was built from (what Debian and OSV advisories name)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    source: str
    source_version: str


@dataclass(frozen=True)
class Inventory:
    distro: str  # os-release ID: debian, ubuntu, ...
    version_id: str
    codename: str
    os_version: str
    packages: tuple[Package, ...]

    @classmethod
    def from_image(cls, body: dict[str, Any]) -> Inventory:
        """From an image record: ``_packages`` (ImagePackage entries, with source fields when the
        collector knew them) and the OS from ``_os`` or, failing that, the ``osVersion`` text."""
        return cls.from_parts(body.get("_packages") or [], body.get("_os") or {}, str(body.get("osVersion") or ""))

    @classmethod
    def from_parts(cls, packages: list[dict[str, Any]], os_info: dict[str, Any], os_version: str) -> Inventory:
        distro, version_id, codename = (
            str(os_info.get("id") or ""),
            str(os_info.get("versionId") or ""),
            str(os_info.get("codename") or ""),
        )
        if not distro:
            distro, version_id, codename = parse_os_version(os_version)
        pkgs = tuple(
            Package(
                name=str(p["packageName"]),
                version=str(p["packageVersion"]),
                source=str(p.get("sourceName") or p["packageName"]),
                source_version=str(p.get("sourceVersion") or p["packageVersion"]),
            )
            for p in packages
            if p.get("packageName") and p.get("packageVersion")
        )
        return cls(distro, version_id, codename, os_version, pkgs)


_DEBIAN = re.compile(r"^Debian GNU/Linux (?:(\d+)\s*)?(?:\(?([a-z]+)(?:/sid)?\)?)?")
_UBUNTU = re.compile(r"^Ubuntu (\d+\.\d+)")


def parse_os_version(text: str) -> tuple[str, str, str]:
    """(id, version id, codename) from a PRETTY_NAME such as 'Debian GNU/Linux 12 (bookworm)'
    or 'Ubuntu 22.04.4 LTS'; empty strings where it does not say."""
    if m := _DEBIAN.match(text):
        return "debian", m.group(1) or "", m.group(2) or ""
    if m := _UBUNTU.match(text):
        return "ubuntu", m.group(1), ""
    return "", "", ""
