"""A worker killed with SIGKILL in the middle of ExecuteComponents: once it is back, the step
runs again on the same host and the build finishes AVAILABLE with nothing left behind."""

from __future__ import annotations

import signal
import time
import uuid

from tests.builds.conftest import Stack
from tests.builds.test_container_build import COMPONENT, TERMINAL, leftovers, setup_build, wait_for

SLOW = COMPONENT.replace("grep -q factory /etc/motd", "sleep 12; grep -q factory /etc/motd")


def test_worker_killed_mid_step_build_still_finishes(stack: Stack) -> None:
    ib = stack.client()
    arn = ib.create_image(**setup_build(ib, f"crash-{uuid.uuid4().hex[:6]}", component=SLOW, tests=False))[
        "imageBuildVersionArn"
    ]
    deadline = time.monotonic() + 120
    running = False
    while time.monotonic() < deadline and not running:
        executions = ib.list_workflow_executions(imageBuildVersionArn=arn)["workflowExecutions"]
        if executions:
            steps = ib.list_workflow_step_executions(workflowExecutionId=executions[0]["workflowExecutionId"])
            running = any(s["name"] == "ApplyBuildComponents" and s["status"] == "RUNNING" for s in steps["steps"])
        time.sleep(0.5)
    assert running, "the build never reached ApplyBuildComponents"
    time.sleep(4)  # inside the sleeping validate step
    stack.kill_worker(signal.SIGKILL)
    time.sleep(2)
    stack.start_worker()
    image = wait_for(ib, arn, TERMINAL, timeout=300)
    assert image["state"]["status"] == "AVAILABLE", image["state"]
    workspaces = stack.data_dir / "executor" / "instances"
    assert not workspaces.exists() or list(workspaces.iterdir()) == []
    assert leftovers(arn) == []
