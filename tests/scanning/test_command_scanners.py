"""trivy and grype cannot be installed here (neither Debian nor PyPI ships them), so these tests
check what can be checked without them: the SBOM they are given, the command line, and the
reading of their JSON reports, through stand-in executables that record their arguments and
print a report in each tool's documented format."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from engine.scanning.inventory import Inventory
from engine.scanning.scanners import GrypeScanner, ScannerError, TrivyScanner, configured, sbom

INVENTORY = Inventory.from_parts(
    [
        {"packageName": "bsdutils", "packageVersion": "1:2.38.1-5+deb12u1", "sourceName": "util-linux"},
        {"packageName": "libc6", "packageVersion": "2.36-9+deb12u4", "sourceName": "glibc"},
    ],
    {"id": "debian", "versionId": "12", "codename": "bookworm"},
    "Debian GNU/Linux 12 (bookworm)",
)

TRIVY_REPORT = {
    "Results": [
        {
            "Target": "sbom",
            "Vulnerabilities": [
                {
                    "VulnerabilityID": "CVE-2024-1111",
                    "PkgName": "libc6",
                    "InstalledVersion": "2.36-9+deb12u4",
                    "FixedVersion": "2.36-9+deb12u7",
                    "Severity": "HIGH",
                    "SeveritySource": "debian",
                    "Title": "glibc: something",
                    "PrimaryURL": "https://avd.aquasec.com/nvd/cve-2024-1111",
                    "CVSS": {"nvd": {"V3Score": 7.5, "V3Vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}},
                }
            ],
        }
    ]
}
GRYPE_REPORT = {
    "matches": [
        {
            "vulnerability": {
                "id": "CVE-2024-2222",
                "severity": "Negligible",
                "namespace": "debian:distro:debian:12",
                "fix": {"versions": [], "state": "not-fixed"},
            },
            "artifact": {"name": "bsdutils", "version": "1:2.38.1-5+deb12u1"},
        }
    ]
}


def stand_in(folder: Path, name: str, report: dict[str, object], exit_code: int = 0) -> Path:
    path = folder / name
    path.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$@" > "{folder}/{name}.args"\n'
        f'for a in "$@"; do case "$a" in *.json) cp "${{a#sbom:}}" "{folder}/{name}.sbom";; esac; done\n'
        f"cat <<'EOF'\n{json.dumps(report)}\nEOF\n"
        f"exit {exit_code}\n"
    )
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def test_trivy_is_given_the_sbom_offline_and_its_report_is_read(tmp_path: Path) -> None:
    [m] = TrivyScanner(str(stand_in(tmp_path, "trivy", TRIVY_REPORT))).scan(INVENTORY)
    args = (tmp_path / "trivy.args").read_text().split()
    assert args[:2] == ["sbom", "--format"] and "--skip-db-update" in args and "--offline-scan" in args
    purls = [c.get("purl") for c in json.loads((tmp_path / "trivy.sbom").read_text())["components"]]
    assert "pkg:deb/debian/bsdutils@2.38.1-5%2Bdeb12u1?distro=debian-12&epoch=1&upstream=util-linux" in purls
    assert m.advisory.id == "CVE-2024-1111" and m.severity == "HIGH" and m.advisory.score == 7.5
    assert [(p.name, p.fixed_in) for p in m.packages] == [("libc6", "2.36-9+deb12u7")]


def test_grype_report(tmp_path: Path) -> None:
    [m] = GrypeScanner(str(stand_in(tmp_path, "grype", GRYPE_REPORT))).scan(INVENTORY)
    assert (tmp_path / "grype.args").read_text().split()[0].startswith("sbom:")
    assert m.severity == "INFORMATIONAL" and m.packages[0].fixed_in == ""


def test_a_failing_scanner_says_so(tmp_path: Path) -> None:
    with pytest.raises(ScannerError, match="trivy failed \\(exit 2\\)"):
        TrivyScanner(str(stand_in(tmp_path, "trivy", {}, exit_code=2))).scan(INVENTORY)


def test_configuration() -> None:
    assert configured("auto", "") == []  # neither installed here, no database
    with pytest.raises(ScannerError, match="not installed"):
        configured("trivy", "")
    with pytest.raises(ScannerError, match="needs a vulnerability database"):
        configured("offline", "")
    with pytest.raises(ScannerError, match="unknown scanner 'clamav'"):
        configured("clamav", "")
    assert [s.name for s in configured("auto", "/srv/osv.zip")] == ["offline"]
    assert sbom(INVENTORY)["components"][0] == {"type": "operating-system", "name": "debian", "version": "12"}
