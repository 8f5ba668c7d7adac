"""Pipeline runs on the Temporal test server with time skipping: the real control worker, the
API's dispatcher (no HTTP needed) and a real store.

The test server has no Schedules API (CreateSchedule is unimplemented there), so each tick is
started exactly as the pipeline's schedule would start it: the workflow, argument, id prefix and
task queue of the schedule action that engine/pipelines/schedules.py writes. The schedule itself
(that Temporal fires on the cron, pause, update, trigger) is tested against the dev server in
test_temporal_schedules.py.

Builds are machine-image builds whose attached BUILD and DISTRIBUTION workflows are one
WaitForAction step each, so no executor is involved: two RESUMEs make the image AVAILABLE, and a
wait nobody answers fails it after its timeout, which time skipping makes instant.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.client import Client, ScheduleActionStartWorkflow
from temporalio.testing import WorkflowEnvironment

from engine import settings
from engine.api.dispatch import Dispatcher
from engine.api.server import build_services
from engine.builds.control import control_worker
from engine.pipelines.model import PipelineRunResult
from engine.pipelines.schedules import desired

GATE = """name: gate
schemaVersion: 1.0
steps:
  - name: Approval
    action: WaitForAction
    timeoutSeconds: 3600
"""
TOOL = """name: tool
schemaVersion: 1.0
phases:
  - name: build
    steps:
      - name: Say
        action: ExecuteBash
        inputs:
          commands: ["echo {v}"]
"""
ROLE = "arn:aws:iam::123456789012:role/builder"


def call(d: Dispatcher, method: str, op: str, body: dict[str, Any], ok: bool = True) -> dict[str, Any]:
    resp = d.handle(method, f"/{op}", "", {}, json.dumps(body).encode())
    out: dict[str, Any] = json.loads(resp.body) if resp.body else {}
    if ok:
        assert resp.status == 200, (op, out)
    return out


def get(d: Dispatcher, op: str, query: str) -> dict[str, Any]:
    resp = d.handle("GET", f"/{op}", query, {}, b"")
    out: dict[str, Any] = json.loads(resp.body)
    assert resp.status == 200, (op, out)
    return out


def component(d: Dispatcher, version: str) -> None:
    call(d, "PUT", "CreateComponent", {
        "name": "tool", "semanticVersion": version, "platform": "Linux", "data": TOOL.format(v=version),
        "clientToken": f"tool-{version}",
    })  # fmt: skip


def pipeline(d: Dispatcher, name: str, condition: str, failures: int = 5) -> str:
    recipe = call(d, "PUT", "CreateImageRecipe", {
        "name": f"r-{name}", "semanticVersion": "1.0.0", "parentImage": "debian-12",
        "components": [{"componentArn": "arn:aws:imagebuilder:us-east-1:123456789012:component/tool/x.x.x"}],
        "clientToken": f"r-{name}",
    })["imageRecipeArn"]  # fmt: skip
    infra = call(d, "PUT", "CreateInfrastructureConfiguration", {
        "name": f"i-{name}", "instanceProfileName": "local", "clientToken": f"i-{name}",
    })["infrastructureConfigurationArn"]  # fmt: skip
    gates = [
        call(d, "PUT", "CreateWorkflow", {
            "name": f"gate-{name}-{wtype.lower()}", "semanticVersion": "1.0.0", "type": wtype, "data": GATE,
            "clientToken": f"w-{name}-{wtype}",
        })["workflowBuildVersionArn"]
        for wtype in ("BUILD", "DISTRIBUTION")
    ]  # fmt: skip
    arn: str = call(d, "PUT", "CreateImagePipeline", {
        "name": name, "imageRecipeArn": recipe, "infrastructureConfigurationArn": infra,
        "workflows": [{"workflowArn": g} for g in gates], "executionRole": ROLE,
        "imageTestsConfiguration": {"imageTestsEnabled": False}, "imageTags": {"from": "schedule"},
        "schedule": {
            "scheduleExpression": "cron(0 9 ? * MON-FRI *)", "timezone": "Europe/Berlin",
            "pipelineExecutionStartCondition": condition, "autoDisablePolicy": {"failureCount": failures},
        },
        "clientToken": f"p-{name}",
    })["imagePipelineArn"]  # fmt: skip
    return arn


def pipeline_body(d: Dispatcher, arn: str) -> dict[str, Any]:
    return get(d, "GetImagePipeline", f"imagePipelineArn={arn}")["imagePipeline"]


async def tick(client: Client, d: Dispatcher, arn: str, n: int) -> Any:
    """Start the pipeline's schedule action, as a firing of its schedule does."""
    services = d.services
    with services.store.transaction() as tx:
        rec = tx.get(arn, "image-pipeline")
    assert rec is not None
    schedule = desired(rec.body).schedule
    assert schedule is not None
    action = schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    return await client.start_workflow(
        action.workflow, *action.args, id=f"{action.id}-tick{n}", task_queue=action.task_queue,
        result_type=PipelineRunResult,
    )  # fmt: skip


async def answer_gates(d: Dispatcher, image_arn: str) -> None:
    answered: set[str] = set()
    for stage in ("BUILD", "DISTRIBUTION"):
        answered.add(await answer_gate(d, image_arn, "RESUME", stage, answered))


async def answer_gate(d: Dispatcher, image_arn: str, action: str, stage: str, answered: set[str]) -> str:
    for _ in range(400):
        waiting = call(d, "POST", "ListWaitingWorkflowSteps", {})["steps"]
        step = next(
            (s for s in waiting if s["imageBuildVersionArn"] == image_arn and s["stepExecutionId"] not in answered),
            None,
        )
        if step:
            call(d, "PUT", "SendWorkflowStepAction", {
                "stepExecutionId": step["stepExecutionId"], "imageBuildVersionArn": image_arn,
                "action": action, "clientToken": f"{action}-{stage}-{image_arn.split('/', 1)[1]}"[:64],
            })  # fmt: skip
            return str(step["stepExecutionId"])
        await asyncio.sleep(0.05)
    raise AssertionError(f"{image_arn} never waited")


async def pending_image(d: Dispatcher, arn: str, count: int) -> str:
    """The newest image of the pipeline once it has `count` images."""
    for _ in range(400):
        images = call(d, "POST", "ListImagePipelineImages", {"imagePipelineArn": arn})["imageSummaryList"]
        if len(images) >= count:
            newest: str = max(images, key=lambda i: i["dateCreated"])["arn"]
            return newest
        await asyncio.sleep(0.05)
    raise AssertionError("no image appeared")


async def scenario(env: WorkflowEnvironment, d: Dispatcher) -> None:
    client = env.client
    component(d, "1.0.0")

    # --- dependency updates: build, skip when nothing changed, build on a new component version
    deps = pipeline(d, "deps", "EXPRESSION_MATCH_AND_DEPENDENCY_UPDATES_AVAILABLE")
    first = await tick(client, d, deps, 1)
    image1 = await pending_image(d, deps, 1)
    await answer_gates(d, image1)
    r1: PipelineRunResult = await first.result()
    assert (r1.status, r1.image_arn) == ("AVAILABLE", image1), r1
    got = get(d, "GetImage", f"imageBuildVersionArn={image1}")["image"]
    assert got["buildType"] == "SCHEDULED" and got["tags"] == {"from": "schedule"}
    assert got["sourcePipelineArn"] == deps
    p = pipeline_body(d, deps)
    assert p["lastRunStatus"] == "AVAILABLE" and p["consecutiveFailures"] == 0 and p["dateLastRun"]

    r2: PipelineRunResult = await (await tick(client, d, deps, 2)).result()
    assert r2.status == "SKIPPED" and f"no dependency updates since {image1}" in r2.reason, r2
    assert len(call(d, "POST", "ListImagePipelineImages", {"imagePipelineArn": deps})["imageSummaryList"]) == 1

    component(d, "1.0.1")  # the recipe's tool/x.x.x now resolves to 1.0.1
    third = await tick(client, d, deps, 3)
    image2 = await pending_image(d, deps, 2)
    await answer_gates(d, image2)
    r3: PipelineRunResult = await third.result()
    assert (r3.status, r3.image_arn) == ("AVAILABLE", image2) and image2 != image1
    with d.services.store.transaction() as tx:
        built = tx.get(image2, "image")
    assert built is not None
    assert built.body["_resolved"]["arn:aws:imagebuilder:us-east-1:123456789012:component/tool/x.x.x"].endswith(
        "component/tool/1.0.1/1"
    )

    # --- disabled: a tick does nothing; a manual start still builds (USER_INITIATED)
    call(d, "PUT", "UpdateImagePipeline", {**_update_body(d, deps), "status": "DISABLED", "clientToken": "off"})
    component(d, "1.0.2")
    r4: PipelineRunResult = await (await tick(client, d, deps, 4)).result()
    assert r4.status == "SKIPPED" and "DISABLED" in r4.reason
    manual = call(d, "PUT", "StartImagePipelineExecution", {"imagePipelineArn": deps, "clientToken": "now"})
    manual_arn = manual["imageBuildVersionArn"]
    await answer_gates(d, manual_arn)
    for _ in range(400):
        if get(d, "GetImage", f"imageBuildVersionArn={manual_arn}")["image"]["state"]["status"] == "AVAILABLE":
            break
        await asyncio.sleep(0.05)
    image = get(d, "GetImage", f"imageBuildVersionArn={manual_arn}")["image"]
    assert image["state"]["status"] == "AVAILABLE" and image["buildType"] == "USER_INITIATED"

    # --- match only: builds on every tick; failures count, and the second one disables
    every = pipeline(d, "every", "EXPRESSION_MATCH_ONLY", failures=2)
    for n in (1, 2):
        run = await tick(client, d, every, 10 + n)
        # Nobody answers: the wait times out after 3600 s, which time skipping makes instant.
        result: PipelineRunResult = await run.result()
        assert result.status == "FAILED" and "no action was sent within 3600 s" in result.reason, result
        p = pipeline_body(d, every)
        assert p["consecutiveFailures"] == n and p["lastRunStatus"] == "FAILED"
        assert p["status"] == ("DISABLED" if n == 2 else "ENABLED")
        assert result.disabled == (n == 2)
    r5: PipelineRunResult = await (await tick(client, d, every, 13)).result()
    assert r5.status == "SKIPPED"
    # Re-enabling (an update) starts the count afresh.
    call(d, "PUT", "UpdateImagePipeline", {**_update_body(d, every), "status": "ENABLED", "clientToken": "on"})
    assert pipeline_body(d, every)["consecutiveFailures"] == 0


def _update_body(d: Dispatcher, arn: str) -> dict[str, Any]:
    p = pipeline_body(d, arn)
    keys = ("imageRecipeArn", "infrastructureConfigurationArn", "workflows", "executionRole", "schedule")
    return {"imagePipelineArn": arn, **{k: p[k] for k in keys}, "imageTestsConfiguration": {"imageTestsEnabled": False}}


async def run_all(tmp: Path) -> None:
    server_exe = str(Path(sys.executable).parent / "temporal-test-server")
    async with await WorkflowEnvironment.start_time_skipping(test_server_existing_path=server_exe) as env:
        target = env.client.service_client.config.target_host
        os.environ.update({"IMAGEBUILDER_DATA_DIR": str(tmp), "IMAGEBUILDER_TEMPORAL_ADDRESS": target})
        config = settings.load()
        services = build_services(config)
        d = Dispatcher(services, acting_as=config.account_id)  # in-process: acts as the account, unsigned
        worker = control_worker(env.client, services.store, services.blobs, config.region, config.account_id, "")
        async with worker:
            await scenario(env, d)
        services.store.dispose()


def test_pipeline_runs_with_time_skipping(tmp_path: Path) -> None:
    saved = dict(os.environ)
    try:
        asyncio.run(asyncio.wait_for(run_all(tmp_path), timeout=timedelta(minutes=1.5).total_seconds()))
    finally:
        os.environ.clear()
        os.environ.update(saved)
