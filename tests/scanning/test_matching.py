"""OSV and Debian security tracker data matched against inventories (OSV range semantics,
release and source-package matching, severities) and read from files, zips and folders."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from engine.scanning.database import VulnerabilityDatabase
from engine.scanning.findings import finding
from engine.scanning.inventory import Inventory, parse_os_version
from engine.scanning.sources import DatabaseError, read_path

CRITICAL_VECTOR = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"  # 9.8


def pkg(name: str, version: str, source: str = "", source_version: str = "") -> dict[str, str]:
    out = {"packageName": name, "packageVersion": version}
    if source:
        out |= {"sourceName": source, "sourceVersion": source_version or version}
    return out


BOOKWORM = Inventory.from_parts(
    [
        pkg("libc6", "2.36-9+deb12u4", "glibc"),
        pkg("libc-bin", "2.36-9+deb12u4", "glibc"),
        pkg("bash", "5.2.15-2+b7", "bash", "5.2.15-2"),
        pkg("bsdutils", "1:2.38.1-5+deb12u1", "util-linux", "2.38.1-5+deb12u1"),
        pkg("zlib1g", "1:1.2.13.dfsg-1"),
    ],
    {"id": "debian", "versionId": "12", "codename": "bookworm"},
    "Debian GNU/Linux 12 (bookworm)",
)


def osv(
    ident: str, package: str, events: list[dict[str, str]], ecosystem: str = "Debian:12", **extra: Any
) -> dict[str, Any]:
    affected = {
        "package": {"ecosystem": ecosystem, "name": package},
        "ranges": [{"type": "ECOSYSTEM", "events": events}],
    }
    return {"id": ident, "modified": "2024-01-01T00:00:00Z", "affected": [affected], **extra}


def match(records: list[dict[str, Any]], inventory: Inventory = BOOKWORM) -> dict[str, Any]:
    db = VulnerabilityDatabase([a for r in records for a in read_path_doc(r)])
    return {m.advisory.id: m for m in db.match(inventory)}


def read_path_doc(doc: Any) -> list[Any]:
    from engine.scanning.sources import read_document

    return list(read_document(doc, "test"))


def test_fixed_above_installed_is_a_finding_with_its_fix_for_every_binary_of_the_source() -> None:
    found = match([osv("CVE-2024-0001", "glibc", [{"introduced": "0"}, {"fixed": "2.36-9+deb12u7"}])])
    m = found["CVE-2024-0001"]
    assert [(p.name, p.fixed_in) for p in m.packages] == [("libc-bin", "2.36-9+deb12u7"), ("libc6", "2.36-9+deb12u7")]


def test_fixed_at_or_below_installed_is_not() -> None:
    assert match([osv("CVE-2024-0002", "glibc", [{"introduced": "0"}, {"fixed": "2.36-9+deb12u4"}])]) == {}
    # Debian ordering, not string ordering: deb12u10 is above deb12u4.
    assert "CVE-2024-0003" in match(
        [osv("CVE-2024-0003", "glibc", [{"introduced": "0"}, {"fixed": "2.36-9+deb12u10"}])]
    )


def test_source_version_is_compared_not_the_binary_one() -> None:
    # bash's binary carries a binNMU suffix (+b7); the advisory speaks of the source version.
    assert match([osv("CVE-2024-0004", "bash", [{"introduced": "0"}, {"fixed": "5.2.15-2"}])]) == {}
    assert "CVE-2024-0005" in match([osv("CVE-2024-0005", "bash", [{"introduced": "0"}, {"fixed": "5.2.15-3"}])])


def test_binary_names_match_when_no_source_is_known() -> None:
    found = match([osv("CVE-2024-0006", "zlib1g", [{"introduced": "0"}, {"fixed": "1:1.2.13.dfsg-2"}])])
    assert found["CVE-2024-0006"].packages[0].fixed_in == "1:1.2.13.dfsg-2"


def test_other_releases_and_distributions_do_not_match() -> None:
    events = [{"introduced": "0"}, {"fixed": "9.9"}]
    assert match([osv("CVE-2024-0007", "glibc", events, ecosystem="Debian:11")]) == {}
    assert match([osv("CVE-2024-0008", "glibc", events, ecosystem="Ubuntu:22.04:LTS")]) == {}
    assert "CVE-2024-0009" in match([osv("CVE-2024-0009", "glibc", events, ecosystem="Debian")])


def test_introduced_last_affected_limit_and_versions() -> None:
    later = [{"introduced": "2.37-1"}, {"fixed": "2.38-1"}]
    assert match([osv("CVE-2024-0010", "glibc", later)]) == {}
    last = [{"introduced": "0"}, {"last_affected": "2.36-9+deb12u3"}]
    assert match([osv("CVE-2024-0011", "glibc", last)]) == {}
    last_hit = [{"introduced": "0"}, {"last_affected": "2.36-9+deb12u4"}]
    assert match([osv("CVE-2024-0012", "glibc", last_hit)])["CVE-2024-0012"].packages[0].fixed_in == ""
    limited = [{"introduced": "0"}, {"limit": "2.36-1"}]
    assert match([osv("CVE-2024-0013", "glibc", limited)]) == {}
    listed = osv("CVE-2024-0014", "glibc", [])
    listed["affected"][0]["versions"] = ["2.36-9+deb12u4"]
    assert "CVE-2024-0014" in match([listed])


def test_severity_from_label_then_cvss_then_debian_urgency() -> None:
    events = [{"introduced": "0"}, {"fixed": "9"}]
    labelled = osv("GHSA-xxxx", "glibc", events, database_specific={"severity": "MODERATE"})
    scored = osv("CVE-2024-0021", "glibc", events, severity=[{"type": "CVSS_V3", "score": CRITICAL_VECTOR}])
    urgent = osv("CVE-2024-0022", "glibc", events)
    urgent["affected"][0]["ecosystem_specific"] = {"urgency": "high"}
    plain = osv("CVE-2024-0023", "glibc", events)
    found = match([labelled, scored, urgent, plain])
    assert found["GHSA-xxxx"].severity == "MEDIUM"
    assert (found["CVE-2024-0021"].severity, found["CVE-2024-0021"].advisory.score) == ("CRITICAL", 9.8)
    assert found["CVE-2024-0022"].severity == "HIGH"
    assert found["CVE-2024-0023"].severity == "UNTRIAGED"


def test_a_record_named_by_an_advisory_id_is_reported_by_its_cve() -> None:
    record = osv("DSA-5000-1", "glibc", [{"introduced": "0"}, {"fixed": "9"}], aliases=["CVE-2024-0031"])
    m = match([record])["CVE-2024-0031"]
    assert m.advisory.related == ("DSA-5000-1",)
    # The same CVE from a second record is one finding.
    again = osv("CVE-2024-0031", "util-linux", [{"introduced": "0"}, {"fixed": "9"}])
    assert [p.name for p in match([record, again])["CVE-2024-0031"].packages] == ["bsdutils", "libc-bin", "libc6"]


def test_debian_tracker_json() -> None:
    def issue(codename: str, status: str, urgency: str, fixed: str = "", description: str = "") -> dict[str, Any]:
        release = {"status": status, "urgency": urgency, **({"fixed_version": fixed} if fixed else {})}
        return {"description": description, "releases": {codename: release}}

    tracker = {
        "glibc": {
            "CVE-2024-0041": issue("bookworm", "open", "high", description="glibc overflow"),
            "CVE-2024-0042": issue("bookworm", "resolved", "medium", "2.36-9+deb12u9"),
            "CVE-2024-0043": issue("bookworm", "resolved", "low", "0"),
            "CVE-2024-0044": issue("bookworm", "open", "unimportant"),
            "CVE-2024-0045": issue("bullseye", "open", "high"),
            "CVE-2024-0046": issue("bookworm", "resolved", "low", "2.36-9+deb12u1"),
        }
    }
    found = match([tracker])
    assert sorted(found) == ["CVE-2024-0041", "CVE-2024-0042"]
    assert found["CVE-2024-0041"].severity == "HIGH" and found["CVE-2024-0041"].packages[0].fixed_in == ""
    assert found["CVE-2024-0042"].severity == "MEDIUM"
    assert found["CVE-2024-0042"].advisory.source_url == "https://security-tracker.debian.org/tracker/CVE-2024-0042"


def test_files_zips_and_folders(tmp_path: Path) -> None:
    events = [{"introduced": "0"}, {"fixed": "9"}]
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "one.json").write_text(json.dumps(osv("CVE-2024-0051", "glibc", events)))
    (tmp_path / "db" / "list.json").write_text(json.dumps([osv("CVE-2024-0052", "bash", events)]))
    with zipfile.ZipFile(tmp_path / "db" / "all.zip", "w") as z:
        z.writestr("CVE-2024-0053.json", json.dumps(osv("CVE-2024-0053", "util-linux", events)))
    ids = sorted(m.advisory.id for m in VulnerabilityDatabase.load(tmp_path / "db").match(BOOKWORM))
    assert ids == ["CVE-2024-0051", "CVE-2024-0052", "CVE-2024-0053"]


def test_unreadable_databases_say_why(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError, match="does not exist"):
        list(read_path(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DatabaseError, match=r"bad\.json is not JSON"):
        list(read_path(tmp_path / "bad.json"))
    (tmp_path / "other.json").write_text(json.dumps({"hello": "world"}))
    with pytest.raises(DatabaseError, match="neither an OSV record"):
        list(read_path(tmp_path / "other.json"))


def test_finding_shape() -> None:
    record = osv("CVE-2024-0061", "util-linux", [{"introduced": "0"}, {"fixed": "2.38.1-5+deb12u2"}],
                 severity=[{"type": "CVSS_V3", "score": CRITICAL_VECTOR}], summary="util-linux flaw")  # fmt: skip
    [m] = match([record]).values()
    body = finding(
        m,
        "123456789012",
        "arn:aws:imagebuilder:us-east-1:123456789012:image/x/1.0.0/1",
        None,
        "2024-01-01T00:00:00.000Z",
    )
    assert body["title"] == "CVE-2024-0061 - bsdutils"
    assert body["severity"] == "CRITICAL" and body["inspectorScore"] == 9.8 and body["fixAvailable"] == "YES"
    assert "imagePipelineArn" not in body
    [pkg] = body["packageVulnerabilityDetails"]["vulnerablePackages"]
    assert pkg == {
        "name": "bsdutils", "epoch": 1, "version": "2.38.1", "release": "5+deb12u1", "packageManager": "OS",
        "fixedInVersion": "2.38.1-5+deb12u2", "remediation": "Upgrade bsdutils to 2.38.1-5+deb12u2",
    }  # fmt: skip
    assert body["remediation"]["recommendation"]["text"] == "Upgrade bsdutils to 2.38.1-5+deb12u2"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Debian GNU/Linux 12 (bookworm)", ("debian", "12", "bookworm")),
        ("Debian GNU/Linux trixie/sid", ("debian", "", "trixie")),
        ("Ubuntu 22.04.4 LTS", ("ubuntu", "22.04", "")),
        ("Amazon Linux 2023", ("", "", "")),
    ],
)
def test_os_version_text(text: str, expected: tuple[str, str, str]) -> None:
    assert parse_os_version(text) == expected
