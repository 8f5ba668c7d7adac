"""One real container build through the whole stack (API server, Temporal, control worker with
the docker executor) with scanning on and an SNS topic mapped to two webhook receivers on
loopback, one of which fails its first requests: the build collects the image's packages, the
scan finds what the vulnerability file made here says about them, and both receivers get every
image state change, workflow and step change and the CVE event, in order."""

from __future__ import annotations

import itertools
import json
import os
import signal
import uuid
from collections.abc import Iterator

import docker
import pytest

from tests.api.conftest import start_server, stop_server
from tests.builds.conftest import Stack, Temporal
from tests.builds.test_container_build import TERMINAL, setup_build, wait_for
from tests.events.receiver import Receiver
from tests.events.receiver import wait_for as wait_until

TOPIC = "arn:aws:sns:us-east-1:123456789012:image-builds"
CRITICAL = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"


def base_image_sources() -> dict[str, str]:
    """Source package -> source version of the parent image, read with dpkg-query (not our code)."""
    out = docker.from_env().containers.run(
        "imagebuilder/debian:12",
        entrypoint=["dpkg-query"],
        command=["-W", "-f", "${source:Package}\t${source:Version}\n"],
        remove=True,
    )
    return dict(line.split("\t") for line in out.decode().splitlines() if line)


@pytest.fixture(scope="module")
def receivers() -> Iterator[tuple[Receiver, Receiver]]:
    flaky, steady = Receiver(fail_first=3), Receiver()
    yield flaky, steady
    flaky.stop()
    steady.stop()


@pytest.fixture(scope="module")
def stack(
    temporal: Temporal, tmp_path_factory: pytest.TempPathFactory, receivers: tuple[Receiver, Receiver]
) -> Iterator[Stack]:
    data = tmp_path_factory.mktemp("scanstack")
    sources = base_image_sources()
    db = data / "vulndb"
    db.mkdir()
    glibc_fix = sources["glibc"] + "+fix1"
    osv = [
        {
            "id": "DEBIAN-CVE-2099-2001",
            "upstream": ["CVE-2099-2001"],
            "summary": "glibc: overflow in a test",
            "modified": "2024-05-01T00:00:00Z",
            "severity": [{"type": "CVSS_V3", "score": CRITICAL}],
            "affected": [
                {
                    "package": {"ecosystem": "Debian:12", "name": "glibc"},
                    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": glibc_fix}]}],
                }
            ],
        },
        {
            "id": "CVE-2099-2002",
            "modified": "2024-05-01T00:00:00Z",
            "affected": [
                {
                    "package": {"ecosystem": "Debian:11", "name": "glibc"},
                    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}],
                }
            ],
        },
    ]
    (db / "osv.json").write_text(json.dumps(osv))
    issue = {"description": "apt: a test issue", "releases": {"bookworm": {"status": "open", "urgency": "medium"}}}
    tracker = {"apt": {"CVE-2099-2003": issue}}
    (db / "debian-tracker.json").write_text(json.dumps(tracker))
    flaky, steady = receivers
    endpoints = data / "endpoints.json"
    endpoints.write_text(json.dumps({TOPIC: [flaky.url, steady.url]}))
    env = {
        "IMAGEBUILDER_DATA_DIR": str(data),
        "IMAGEBUILDER_TEMPORAL_ADDRESS": temporal.address,
        "IMAGEBUILDER_REGISTRY": "127.0.0.1:5000",
        "IMAGEBUILDER_VULNERABILITY_DATABASE": str(db),
        "IMAGEBUILDER_EVENT_ENDPOINTS": str(endpoints),
    }
    api = start_server(data, env=env)
    s = Stack(api, None, data, temporal, env)  # type: ignore[arg-type]
    s.start_worker()
    yield s
    if s.worker.poll() is None:
        os.killpg(s.worker.pid, signal.SIGTERM)
        s.worker.wait(30)
    stop_server(api)


def test_build_scan_and_events(stack: Stack, receivers: tuple[Receiver, Receiver]) -> None:
    ib = stack.client()
    name = f"scanned-{uuid.uuid4().hex[:6]}"
    params = setup_build(ib, name)
    infra = ib.create_infrastructure_configuration(
        name=f"{name}-notify", instanceProfileName="local-docker", snsTopicArn=TOPIC
    )
    params["infrastructureConfigurationArn"] = infra["infrastructureConfigurationArn"]
    arn = ib.create_image(**params, imageScanningConfiguration={"imageScanningEnabled": True})["imageBuildVersionArn"]
    image = wait_for(ib, arn, TERMINAL)
    assert image["state"]["status"] == "AVAILABLE", image["state"]

    # The inventory was collected by the managed build workflow's InventoryCollection step.
    [build_wf] = [
        w for w in ib.list_workflow_executions(imageBuildVersionArn=arn)["workflowExecutions"] if w["type"] == "BUILD"
    ]
    steps = ib.list_workflow_step_executions(workflowExecutionId=build_wf["workflowExecutionId"])["steps"]
    inventory = next(s for s in steps if s["name"] == "InventoryCollection")
    assert inventory["status"] == "COMPLETED" and "packages on Debian GNU/Linux 12 (bookworm)" in inventory["message"]

    def scanned() -> bool:
        state = ib.get_image(imageBuildVersionArn=arn)["image"].get("scanState", {})
        return state.get("status") in ("COMPLETED", "FAILED")

    wait_until(scanned, 120, "the scan")
    assert ib.get_image(imageBuildVersionArn=arn)["image"]["scanState"]["status"] == "COMPLETED"
    findings = ib.list_image_scan_findings(filters=[{"name": "imageBuildVersionArn", "values": [arn]}])["findings"]
    by_id = {f["packageVulnerabilityDetails"]["vulnerabilityId"]: f for f in findings}
    assert sorted(by_id) == ["CVE-2099-2001", "CVE-2099-2003"]  # 2002 is for Debian 11
    glibc = by_id["CVE-2099-2001"]
    assert glibc["severity"] == "CRITICAL" and glibc["fixAvailable"] == "YES"
    assert "libc6" in {p["name"] for p in glibc["packageVulnerabilityDetails"]["vulnerablePackages"]}
    assert glibc["packageVulnerabilityDetails"]["relatedVulnerabilities"] == ["DEBIAN-CVE-2099-2001"]
    apt = by_id["CVE-2099-2003"]
    assert apt["severity"] == "MEDIUM" and apt["fixAvailable"] == "NO"
    assert apt["packageVulnerabilityDetails"]["sourceUrl"].endswith("/tracker/CVE-2099-2003")
    counts = ib.list_image_scan_finding_aggregations(filter={"name": "imageBuildVersionArn", "values": [arn]})
    assert counts["responses"][0]["imageAggregation"]["severityCounts"] == {
        "all": 2, "critical": 1, "high": 0, "medium": 1,
    }  # fmt: skip

    flaky, steady = receivers

    def cve_event_in(r: Receiver) -> bool:
        return any(e["detail-type"] == "EC2 Image Builder CVE Detected" for e in r.events)

    wait_until(lambda: cve_event_in(steady) and cve_event_in(flaky), 120, "every event at both receivers")
    assert [e["id"] for e in flaky.events] == [e["id"] for e in steady.events]  # same events, same order
    assert flaky.requests > len(flaky.events)  # its failures were retried

    states = [e["detail"] for e in steady.events if e["detail-type"] == "EC2 Image Builder Image State Change"]
    chain = [(d["previous-state"]["status"], d["state"]["status"]) for d in states]
    assert chain[-1][1] == "AVAILABLE"
    assert all(prev == before[1] for before, (prev, _) in itertools.pairwise(chain))
    assert {"BUILDING", "TESTING", "DISTRIBUTING"} <= {s for _, s in chain}
    assert all(
        e["resources"] == [arn] and e["source"] == "aws.imagebuilder"
        for e in steady.events
        if "Image State" in e["detail-type"]
    )
    step_events = [
        e["detail"] for e in steady.events if e["detail-type"] == "EC2 Image Builder Workflow Step State Change"
    ]
    inventory_events = [d["state"]["status"] for d in step_events if d["workflow-step-name"] == "InventoryCollection"]
    assert inventory_events == ["RUNNING", "COMPLETED"]
    recorded = {s["stepExecutionId"] for s in steps}
    assert recorded <= {d["workflow-step-execution-id"] for d in step_events}
    cve = next(e for e in steady.events if e["detail-type"] == "EC2 Image Builder CVE Detected")
    assert cve["detail"]["finding-severity-counts"] == {"all": 2, "critical": 1, "high": 0, "medium": 1}
    # The CVE event comes after the image became AVAILABLE.
    kinds = [e["detail-type"] for e in steady.events]
    assert kinds.index("EC2 Image Builder CVE Detected") > max(
        i for i, e in enumerate(steady.events) if e["detail-type"] == "EC2 Image Builder Image State Change"
    )


def test_nothing_left_in_the_outbox(stack: Stack) -> None:
    from tests.api.test_images import store_of

    store = store_of(stack.api)
    try:
        with store.transaction() as tx:
            assert tx.find("event-outbox") == [] and tx.find("scan-job") == []
    finally:
        store.dispose()
