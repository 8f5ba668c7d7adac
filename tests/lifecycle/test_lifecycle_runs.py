"""Lifecycle policies run for real: boto3 against the API server, the LifecycleExecution workflow
on a real Temporal dev server and control worker, a real registry and Docker engine.

Machine images are seeded as records (with their AMI disks and an export as files in the image
store), backdated to various ages, since building VMs here would take far too long; container
images are built for real (two builds of one recipe) so that their registry tags exist.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
from botocore.exceptions import ClientError
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from engine.lifecycle.model import WORKFLOW_NAME, LifecycleRunRequest, LifecycleRunResult
from engine.lifecycle.schedules import schedule_id
from engine.store import Record, Store
from tests.builds.conftest import Stack
from tests.builds.test_container_build import registry_tags, setup_build, wait_for
from workers.contracts import CONTROL_QUEUE

ACCOUNT = "123456789012"
IMAGES = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image"
ROLE = "arn:aws:iam::123456789012:role/lifecycle"


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def store_of(stack: Stack) -> Store:
    return Store(f"sqlite:///{stack.data_dir.resolve() / 'imagebuilder.sqlite'}")


def temporal(stack: Stack, work: Any) -> Any:
    async def run() -> Any:
        client = await Client.connect(stack.temporal.address)
        return await work(client)

    return asyncio.run(run())


def seed_machine_images(stack: Stack, name: str, specs: list[dict[str, Any]], export_dir: Path) -> dict[int, Path]:
    """Image records of `name` 1.0.0 with the given ages, states and tags; each has two AMIs
    (us-east-1 and eu-west-1), their disks in the image store, and an export file. Returns each
    build's image folder."""
    store, now = store_of(stack), datetime.now(UTC)
    folders: dict[int, Path] = {}
    try:
        with store.transaction(write=True) as tx:
            for build, spec in enumerate(specs, start=1):
                folder_ref = f"images/{name}/1.0.0/{build}"
                folder = stack.data_dir / "store" / folder_ref
                amis, exports = [], []
                for region in ("us-east-1", "eu-west-1"):
                    ami_id = f"ami-{build:03d}{region[:2]}{uuid.uuid4().hex[:10]}"
                    disk = folder / "amis" / region / f"{ami_id}.qcow2"
                    disk.parent.mkdir(parents=True, exist_ok=True)
                    disk.write_bytes(b"QFI\xfb" + bytes(1024))
                    amis.append(
                        {"region": region, "image": ami_id, "name": f"{name} {build}", "accountId": ACCOUNT,
                         "state": {"status": "AVAILABLE"}, "_disk": f"{folder_ref}/amis/{region}/{ami_id}.qcow2"}
                    )  # fmt: skip
                (folder / "disk.qcow2").write_bytes(b"QFI\xfb" + bytes(1024))
                (folder / "manifest.json").write_text("{}")
                export = export_dir / "bucket" / f"{name}-{build}.vmdk"
                export.parent.mkdir(parents=True, exist_ok=True)
                export.write_bytes(b"KDMV")
                exports.append({"region": "us-east-1", "format": "VMDK", "uri": f"s3://bucket/{export.name}",
                                "location": str(export), "size": 4, "sha256": "x"})  # fmt: skip
                arn = f"{IMAGES}/{name}/1.0.0/{build}"
                created = iso(now - timedelta(days=spec["days"]))
                body = {
                    "arn": arn, "name": name, "type": "AMI", "version": f"1.0.0/{build}", "platform": "Linux",
                    "state": {"status": spec.get("status", "AVAILABLE")}, "tags": spec.get("tags", {}),
                    "dateCreated": created, "buildType": "USER_INITIATED", "imageSource": "CUSTOM",
                    "outputResources": {"amis": amis, "_exports": exports},
                }  # fmt: skip
                tx.insert(
                    Record(arn=arn, kind="image", account=ACCOUNT, name=name, version="1.0.0", build=build,
                           body=body, created=created)
                )  # fmt: skip
                folders[build] = folder
    finally:
        store.dispose()
    return folders


def wait_execution(ib: Any, execution_id: str, states: set[str], timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        execution: dict[str, Any] = ib.get_lifecycle_execution(lifecycleExecutionId=execution_id)["lifecycleExecution"]
        if execution["state"]["status"] in states or time.monotonic() > deadline:
            assert execution["state"]["status"] in states, execution
            return execution
        time.sleep(0.3)


def run_by_schedule(stack: Stack, ib: Any, policy_arn: str, timeout: float = 60) -> dict[str, Any]:
    """Fire the policy's daily schedule now and wait for the execution it starts to finish."""
    before = {
        e["lifecycleExecutionId"] for e in ib.list_lifecycle_executions(resourceArn=policy_arn)["lifecycleExecutions"]
    }
    temporal(stack, lambda client: client.get_schedule_handle(schedule_id(policy_arn)).trigger())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = [
            e
            for e in ib.list_lifecycle_executions(resourceArn=policy_arn)["lifecycleExecutions"]
            if e["lifecycleExecutionId"] not in before
        ]
        if new and new[0]["state"]["status"] not in ("IN_PROGRESS", "PENDING"):
            return new[0]
        time.sleep(0.3)
    raise AssertionError(f"no finished execution of {policy_arn} within {timeout} s")


def status(ib: Any, arn: str) -> str:
    return str(ib.get_image(imageBuildVersionArn=arn)["image"]["state"]["status"])


def resources(ib: Any, execution_id: str, parent: str | None = None) -> dict[str, dict[str, Any]]:
    kwargs = {"parentResourceId": parent} if parent else {}
    listed = ib.list_lifecycle_execution_resources(lifecycleExecutionId=execution_id, **kwargs)["resources"]
    return {r["resourceId"]: r for r in listed}


def test_machine_image_policy_dry_run_then_for_real(stack: Stack, tmp_path: Path) -> None:
    ib = stack.client()
    specs = [
        {"days": 1},  # 1: young
        {"days": 10},  # 2: deprecate
        {"days": 40},  # 3: disable
        {"days": 100},  # 4: delete
        {"days": 200},  # 5: delete
        {"days": 120, "tags": {"keep": "yes"}},  # 6: excluded by tag from every rule
        {"days": 100, "status": "FAILED"},  # 7: delete, never retained
        {"days": 400, "status": "DISABLED"},  # 8: delete
    ]
    folders = seed_machine_images(stack, "golden", specs, tmp_path / "exports")
    keep = {"tagMap": {"keep": "yes"}}
    policy_arn = ib.create_lifecycle_policy(
        name="golden-retire",
        executionRole=ROLE,
        resourceType="AMI_IMAGE",
        policyDetails=[
            {
                "action": {"type": "DEPRECATE", "includeResources": {"amis": True}},
                "filter": {"type": "AGE", "value": 1, "unit": "WEEKS"},
                "exclusionRules": keep,
            },
            {
                "action": {"type": "DISABLE"},
                "filter": {"type": "AGE", "value": 30, "unit": "DAYS"},
                "exclusionRules": keep,
            },
            {
                "action": {"type": "DELETE", "includeResources": {"amis": True, "snapshots": True}},
                "filter": {"type": "AGE", "value": 3, "unit": "MONTHS", "retainAtLeast": 1},
                "exclusionRules": {**keep, "amis": {"regions": ["eu-west-1"]}},
            },
        ],
        resourceSelection={"recipes": [{"name": "golden", "semanticVersion": "1.x.x"}]},
    )["lifecyclePolicyArn"]
    arn = {b: f"{IMAGES}/golden/1.0.0/{b}" for b in range(1, len(specs) + 1)}

    # The daily schedule exists, at a fixed time of day, skipping overlapping runs.
    described = temporal(stack, lambda c: c.get_schedule_handle(schedule_id(policy_arn)).describe())
    assert described.schedule.spec.intervals[0].every == timedelta(days=1)

    # Dry run: the plan, and nothing written or changed.
    async def dry(client: Client) -> LifecycleRunResult:
        request = LifecycleRunRequest(account=ACCOUNT, policy_arn=policy_arn, dry_run=True)
        result: LifecycleRunResult = await client.execute_workflow(
            WORKFLOW_NAME, request, id=f"dry-{uuid.uuid4()}", task_queue=CONTROL_QUEUE, result_type=LifecycleRunResult
        )
        return result

    plan = temporal(stack, dry)
    assert plan.status == "DRY_RUN"
    planned = {a.image_arn: a.action for a in plan.actions}
    expected = {arn[2]: "DEPRECATE", arn[3]: "DISABLE", arn[4]: "DELETE", arn[5]: "DELETE", arn[7]: "DELETE",
                arn[8]: "DELETE"}  # fmt: skip
    assert planned == expected
    assert [status(ib, arn[b]) for b in range(1, 9)] == [s.get("status", "AVAILABLE") for s in specs]
    assert ib.list_lifecycle_executions(resourceArn=policy_arn)["lifecycleExecutions"] == []
    assert all(f.is_dir() for f in folders.values())

    # For real, as the schedule runs it.
    execution = run_by_schedule(stack, ib, policy_arn)
    assert execution["state"]["status"] == "SUCCESS", execution
    assert execution["lifecyclePolicyArn"] == policy_arn
    assert execution["resourcesImpactedSummary"]["hasImpactedResources"] is True
    got = {b: status(ib, arn[b]) for b in range(1, 9)}
    assert got == {1: "AVAILABLE", 2: "DEPRECATED", 3: "DISABLED", 4: "DELETED", 5: "DELETED", 6: "AVAILABLE",
                   7: "DELETED", 8: "DELETED"}  # fmt: skip
    assert (
        ib.get_image(imageBuildVersionArn=arn[2])["image"]["lifecycleExecutionId"] == execution["lifecycleExecutionId"]
    )
    assert ib.get_lifecycle_policy(lifecyclePolicyArn=policy_arn)["lifecyclePolicy"]["dateLastRun"]

    top = resources(ib, execution["lifecycleExecutionId"])
    assert {r: (v["action"]["name"], v["state"]["status"]) for r, v in top.items()} == {
        a: (act, "SUCCESS") for a, act in expected.items()
    }
    # The deleted images' AMIs: us-east-1 deregistered (disk gone), eu-west-1 kept by the exclusion rule.
    for build in (4, 5, 7, 8):
        amis = resources(ib, execution["lifecycleExecutionId"], parent=arn[build])
        by_region = {v["region"]: v for v in amis.values()}
        assert by_region["us-east-1"]["state"]["status"] == "SUCCESS"
        assert by_region["eu-west-1"]["state"] == {
            "status": "SKIPPED",
            "reason": "the AMI is in excluded region eu-west-1",
        }
        assert not list((folders[build] / "amis" / "us-east-1").iterdir())
        assert len(list((folders[build] / "amis" / "eu-west-1").iterdir())) == 1
        assert not (tmp_path / "exports" / "bucket" / f"golden-{build}.vmdk").exists()
    for build in (1, 2, 3, 6):
        assert (tmp_path / "exports" / "bucket" / f"golden-{build}.vmdk").exists()
        assert len(list(folders[build].rglob("*.qcow2"))) == 3
    # DEPRECATE included the AMIs: their state follows.
    deprecated = ib.get_image(imageBuildVersionArn=arn[2])["image"]
    assert {a["state"]["status"] for a in deprecated["outputResources"]["amis"]} == {"DEPRECATED"}
    assert deprecated["deprecationTime"]

    # A second run finds nothing new to do except moving the deprecated image on once it is old enough.
    again = run_by_schedule(stack, ib, policy_arn)
    assert again["state"]["status"] == "SUCCESS"
    assert resources(ib, again["lifecycleExecutionId"]) == {}
    assert again["resourcesImpactedSummary"]["hasImpactedResources"] is False

    # DISABLED: no schedule; deleted: none either, and its executions stay listable.
    ib.update_lifecycle_policy(
        lifecyclePolicyArn=policy_arn,
        executionRole=ROLE,
        resourceType="AMI_IMAGE",
        status="DISABLED",
        policyDetails=[{"action": {"type": "DELETE"}, "filter": {"type": "COUNT", "value": 5}}],
        resourceSelection={"recipes": [{"name": "golden", "semanticVersion": "1.x.x"}]},
    )

    async def schedule_gone(client: Client) -> bool:
        try:
            await client.get_schedule_handle(schedule_id(policy_arn)).describe()
        except RPCError as exc:
            return exc.status == RPCStatusCode.NOT_FOUND
        return False

    assert temporal(stack, schedule_gone)
    ib.delete_lifecycle_policy(lifecyclePolicyArn=policy_arn)
    assert len(ib.list_lifecycle_executions(resourceArn=policy_arn)["lifecycleExecutions"]) == 2


def test_state_updates_by_hand_and_cancel(stack: Stack, tmp_path: Path) -> None:
    ib = stack.client()
    seed_machine_images(stack, "manual", [{"days": 5}, {"days": 1}], tmp_path)
    newest, older = f"{IMAGES}/manual/1.0.0/2", f"{IMAGES}/manual/1.0.0/1"
    wildcard = f"{IMAGES}/manual/x.x.x"
    assert ib.get_image(imageBuildVersionArn=wildcard)["image"]["arn"] == newest

    started = ib.start_resource_state_update(resourceArn=newest, state={"status": "DISABLED"})
    assert started["resourceArn"] == newest and started["lifecycleExecutionId"].startswith("lce-")
    done = wait_execution(ib, started["lifecycleExecutionId"], {"SUCCESS", "FAILED"})
    assert done["state"]["status"] == "SUCCESS", done
    assert status(ib, newest) == "DISABLED"
    # Wildcards skip a disabled image.
    assert ib.get_image(imageBuildVersionArn=wildcard)["image"]["arn"] == older
    listed = ib.list_lifecycle_executions(resourceArn=newest)["lifecycleExecutions"]
    assert [e["lifecycleExecutionId"] for e in listed] == [started["lifecycleExecutionId"]]
    top = resources(ib, started["lifecycleExecutionId"])
    assert top[newest]["action"]["name"] == "DISABLE" and top[newest]["state"]["status"] == "SUCCESS"

    back = ib.start_resource_state_update(resourceArn=newest, state={"status": "AVAILABLE"})
    wait_execution(ib, back["lifecycleExecutionId"], {"SUCCESS"})
    assert status(ib, newest) == "AVAILABLE"
    assert ib.get_image(imageBuildVersionArn=wildcard)["image"]["arn"] == newest

    # Deprecation an hour from now waits (PENDING) on a durable timer; cancelled, nothing changes.
    later = ib.start_resource_state_update(
        resourceArn=newest, state={"status": "DEPRECATED"}, updateAt=datetime.now(UTC) + timedelta(hours=1)
    )
    assert wait_execution(ib, later["lifecycleExecutionId"], {"PENDING"})["state"]["status"] == "PENDING"
    cancelled = ib.cancel_lifecycle_execution(lifecycleExecutionId=later["lifecycleExecutionId"])
    assert cancelled["lifecycleExecutionId"] == later["lifecycleExecutionId"]
    assert wait_execution(ib, later["lifecycleExecutionId"], {"CANCELLED"})["endTime"]
    assert status(ib, newest) == "AVAILABLE"

    with pytest.raises(ClientError) as err:
        ib.start_resource_state_update(
            resourceArn=newest, state={"status": "DEPRECATED"}, updateAt=datetime.now(UTC) - timedelta(hours=1)
        )
    assert err.value.response["Error"]["Code"] == "InvalidRequestException" and "future" in str(err.value)


def registry_has(uri: str) -> bool:
    host_repo, _, tag = uri.rpartition(":")
    repo = host_repo.split("/", 1)[1]
    return tag in registry_tags(repo)


def test_container_policy_deletes_registry_tags(stack: Stack) -> None:
    ib = stack.client()
    name = f"lc-{uuid.uuid4().hex[:6]}"
    request = setup_build(ib, name, tests=False)
    first = ib.create_image(**request)["imageBuildVersionArn"]
    assert wait_for(ib, first, {"AVAILABLE", "FAILED"}, timeout=300)["state"]["status"] == "AVAILABLE"
    second = ib.create_image(**request)["imageBuildVersionArn"]
    assert wait_for(ib, second, {"AVAILABLE", "FAILED"}, timeout=300)["state"]["status"] == "AVAILABLE"
    uris = {a: ib.get_image(imageBuildVersionArn=a)["image"]["outputResources"]["containers"][0]["imageUris"]
            for a in (first, second)}  # fmt: skip
    assert all(registry_has(u) for u in uris[first] + uris[second])
    stable = next(u for u in uris[first] if u.endswith(":stable"))
    own = [u for u in uris[first] if u != stable]
    local = docker.from_env()
    local.images.pull(own[0].rsplit(":", 1)[0], tag=own[0].rsplit(":", 1)[1])  # the build host's copy of the tag

    policy_arn = ib.create_lifecycle_policy(
        name=f"{name}-keep-one",
        executionRole=ROLE,
        resourceType="CONTAINER_IMAGE",
        policyDetails=[
            {
                "action": {"type": "DELETE", "includeResources": {"containers": True}},
                "filter": {"type": "COUNT", "value": 1},
            }
        ],
        resourceSelection={"recipes": [{"name": name, "semanticVersion": "1.0.0"}]},
    )["lifecyclePolicyArn"]
    execution = run_by_schedule(stack, ib, policy_arn)
    assert execution["state"]["status"] == "SUCCESS", execution
    assert status(ib, first) == "DELETED" and status(ib, second) == "AVAILABLE"
    # The first build's own tags are gone from the registry and from the local engine...
    assert not any(registry_has(u) for u in own)
    with pytest.raises(docker.errors.ImageNotFound):
        local.images.get(own[0])
    # ...while "stable", which now names the second build's manifest, and the second build stay.
    assert all(registry_has(u) for u in uris[second])
    children = resources(ib, execution["lifecycleExecutionId"], parent=first)
    assert children[stable]["state"]["status"] == "SKIPPED" and "live image" in children[stable]["state"]["reason"]
    assert all(children[u]["state"]["status"] == "SUCCESS" and children[u]["imageUris"] == [u] for u in own)
