"""Scans of the real Debian base image's inventory against a vulnerability file made here, run by
the scan service on the API server's store, then read through boto3: ListImageScanFindings with
each filter and paging, ListImageScanFindingAggregations by account, image, pipeline and
vulnerability, GetImage's scanState, and a rescan that drops a fixed finding."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import docker
import pytest

from engine.scanning.jobs import ScanService, request_scan
from engine.scanning.scanners import OfflineDatabaseScanner
from engine.store import Store
from tests.api.conftest import ACCOUNT, Server, check_output, error_code
from tests.api.test_images import fails, image_record, put_records, store_of
from workers.executors.docker_inventory import inventory_of

ARN = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}"
PIPELINE_A, PIPELINE_B = f"{ARN}:image-pipeline/golden-a", f"{ARN}:image-pipeline/golden-b"
IMAGE_A, IMAGE_B = f"{ARN}:image/scan-a/1.0.0/1", f"{ARN}:image/scan-b/1.0.0/1"
CRITICAL = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"


@pytest.fixture(scope="module")
def packages() -> list[dict[str, str]]:
    client = docker.from_env()
    container = client.containers.create("imagebuilder/debian:12", entrypoint=["/nonexistent"], command=[])
    try:
        return inventory_of(client, container).packages
    finally:
        container.remove(force=True)


def source_version(packages: list[dict[str, str]], source: str) -> str:
    return next(p["sourceVersion"] for p in packages if p["sourceName"] == source)


def osv(ident: str, source: str, events: list[dict[str, str]], **extra: Any) -> dict[str, Any]:
    affected = {
        "package": {"ecosystem": "Debian:12", "name": source},
        "ranges": [{"type": "ECOSYSTEM", "events": events}],
    }
    return {"id": ident, "modified": "2024-05-01T00:00:00Z", "affected": [affected], **extra}


def database(packages: list[dict[str, str]], with_apt: bool = True) -> list[dict[str, Any]]:
    glibc = source_version(packages, "glibc")
    records = [
        osv("CVE-2099-1001", "glibc", [{"introduced": "0"}, {"fixed": glibc + "+fix1"}],
            severity=[{"type": "CVSS_V3", "score": CRITICAL}], summary="glibc: heap overflow"),
        osv("CVE-2099-1002", "bash", [{"introduced": "0"}, {"fixed": "1.0-1"}]),  # fixed long ago
        osv("CVE-2099-1004", "zlib", [{"introduced": "0"}], database_specific={"severity": "MODERATE"}),
    ]  # fmt: skip
    if with_apt:
        records.append(osv("CVE-2099-1003", "apt", [{"introduced": "0"}], database_specific={"severity": "HIGH"}))
    return records


def scan(server: Server, db_file: Path, images: list[str]) -> None:
    store: Store = store_of(server)
    try:
        with store.transaction(write=True) as tx:
            for arn in images:
                rec = tx.get(arn, "image")
                assert rec is not None
                request_scan(tx, rec)
        service = ScanService(store, lambda: [OfflineDatabaseScanner(db_file)])
        while service.run_once():
            pass
    finally:
        store.dispose()


@pytest.fixture(scope="module")
def scanned(server: Server, packages: list[dict[str, str]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    db_file = tmp_path_factory.mktemp("vulndb") / "osv.json"
    db_file.write_text(json.dumps(database(packages)))
    # As the build leaves them: the collected packages and the OS text (no _os: the text is parsed).
    common: dict[str, Any] = {
        "image_type": "DOCKER",
        "osVersion": "Debian GNU/Linux 12 (bookworm)",
        "_packages": packages,
        "imageScanningConfiguration": {"imageScanningEnabled": True},
    }
    put_records(
        server,
        [
            image_record("scan-a", "1.0.0", 1, "AVAILABLE", sourcePipelineArn=PIPELINE_A, **common),
            image_record("scan-b", "1.0.0", 1, "AVAILABLE", sourcePipelineArn=PIPELINE_B, **common),
        ],
    )
    scan(server, db_file, [IMAGE_A, IMAGE_B])
    return db_file


def test_findings_and_their_filters(ib: Any, scanned: Path, packages: list[dict[str, str]]) -> None:
    everything = ib.list_image_scan_findings()
    check_output("ListImageScanFindings", everything)
    assert len(everything["findings"]) == 6  # three per image

    mine = ib.list_image_scan_findings(filters=[{"name": "imageBuildVersionArn", "values": [IMAGE_A]}])["findings"]
    by_id = {f["packageVulnerabilityDetails"]["vulnerabilityId"]: f for f in mine}
    assert sorted(by_id) == ["CVE-2099-1001", "CVE-2099-1003", "CVE-2099-1004"]
    glibc = by_id["CVE-2099-1001"]
    assert glibc["severity"] == "CRITICAL" and glibc["inspectorScore"] == 9.8 and glibc["fixAvailable"] == "YES"
    assert glibc["imagePipelineArn"] == PIPELINE_A and glibc["awsAccountId"] == ACCOUNT
    assert glibc["type"] == "PACKAGE_VULNERABILITY" and glibc["title"].startswith("CVE-2099-1001 - ")
    fixed = source_version(packages, "glibc") + "+fix1"
    vulnerable = glibc["packageVulnerabilityDetails"]["vulnerablePackages"]
    binaries = sorted(p["packageName"] for p in packages if p["sourceName"] == "glibc")
    assert sorted(p["name"] for p in vulnerable) == binaries and {p["fixedInVersion"] for p in vulnerable} == {fixed}
    assert by_id["CVE-2099-1003"]["severity"] == "HIGH" and by_id["CVE-2099-1003"]["fixAvailable"] == "NO"
    assert by_id["CVE-2099-1004"]["severity"] == "MEDIUM"

    def ids(filters: list[dict[str, Any]]) -> list[tuple[str, str]]:
        found = ib.list_image_scan_findings(filters=filters)["findings"]
        return sorted((f["imageBuildVersionArn"], f["packageVulnerabilityDetails"]["vulnerabilityId"]) for f in found)

    assert ids([{"name": "imagePipelineArn", "values": [PIPELINE_B]}]) == [
        (IMAGE_B, "CVE-2099-1001"), (IMAGE_B, "CVE-2099-1003"), (IMAGE_B, "CVE-2099-1004"),
    ]  # fmt: skip
    assert ids([{"name": "severity", "values": ["CRITICAL"]}]) == [
        (IMAGE_A, "CVE-2099-1001"),
        (IMAGE_B, "CVE-2099-1001"),
    ]
    # The model allows one filter with one value per request.
    assert ids([{"name": "vulnerabilityId", "values": ["CVE-2099-1004"]}]) == [
        (IMAGE_A, "CVE-2099-1004"),
        (IMAGE_B, "CVE-2099-1004"),
    ]
    assert ids([{"name": "vulnerabilityId", "values": ["CVE-2099-1002"]}]) == []

    first = ib.list_image_scan_findings(maxResults=4)
    second = ib.list_image_scan_findings(maxResults=4, nextToken=first["nextToken"])
    assert len(first["findings"]) == 4 and len(second["findings"]) == 2 and "nextToken" not in second

    err = fails(ib.list_image_scan_findings, filters=[{"name": "colour", "values": ["red"]}])
    assert error_code(err) == "InvalidRequestException"


def test_aggregations(ib: Any, scanned: Path) -> None:
    account = ib.list_image_scan_finding_aggregations()
    check_output("ListImageScanFindingAggregations", account)
    counts = {"all": 6, "critical": 2, "high": 2, "medium": 2}
    assert account["aggregationType"] == "accountId"
    assert account["responses"] == [{"accountAggregation": {"accountId": ACCOUNT, "severityCounts": counts}}]
    by_account = ib.list_image_scan_finding_aggregations(filter={"name": "accountId", "values": [ACCOUNT]})
    assert by_account["responses"] == account["responses"]

    per_image = ib.list_image_scan_finding_aggregations(filter={"name": "imageBuildVersionArn", "values": [IMAGE_B]})
    assert per_image["aggregationType"] == "imageBuildVersionArn"
    one = {"all": 3, "critical": 1, "high": 1, "medium": 1}
    assert per_image["responses"] == [{"imageAggregation": {"imageBuildVersionArn": IMAGE_B, "severityCounts": one}}]

    per_pipeline = ib.list_image_scan_finding_aggregations(filter={"name": "imagePipelineArn", "values": [PIPELINE_A]})
    assert per_pipeline["aggregationType"] == "imagePipelineArn"
    assert per_pipeline["responses"] == [
        {"imagePipelineAggregation": {"imagePipelineArn": PIPELINE_A, "severityCounts": one}}
    ]
    per_cve = ib.list_image_scan_finding_aggregations(filter={"name": "vulnerabilityId", "values": ["CVE-2099-1001"]})
    two = {"all": 2, "critical": 2, "high": 0, "medium": 0}
    assert per_cve["responses"] == [
        {"vulnerabilityIdAggregation": {"vulnerabilityId": "CVE-2099-1001", "severityCounts": two}}
    ]


def test_scan_state_and_rescan(ib: Any, server: Server, scanned: Path, packages: list[dict[str, str]]) -> None:
    image = ib.get_image(imageBuildVersionArn=IMAGE_A)["image"]
    assert image["scanState"]["status"] == "COMPLETED" and "3 findings from offline" in image["scanState"]["reason"]
    before = {
        f["packageVulnerabilityDetails"]["vulnerabilityId"]: f["firstObservedAt"]
        for f in ib.list_image_scan_findings(filters=[{"name": "imageBuildVersionArn", "values": [IMAGE_A]}])[
            "findings"
        ]
    }
    # apt's issue is fixed upstream and gone from the new database file: a rescan drops it.
    fresh = scanned.parent / "osv-2.json"
    fresh.write_text(json.dumps(database(packages, with_apt=False)))
    scan(server, fresh, [IMAGE_A])
    after = ib.list_image_scan_findings(filters=[{"name": "imageBuildVersionArn", "values": [IMAGE_A]}])["findings"]
    kept = {f["packageVulnerabilityDetails"]["vulnerabilityId"]: f for f in after}
    assert sorted(kept) == ["CVE-2099-1001", "CVE-2099-1004"]
    assert all(kept[k]["firstObservedAt"] == before[k] for k in kept)
    assert all(kept[k]["updatedAt"] >= before[k] for k in kept)
