"""Machine image builds that do not go to plan: a failure that keeps its instance for debugging,
a cancellation mid-component, and the worker killed (SIGKILL) mid-component. Each boots one
guest (TCG), so the test stage is off; nothing may be left behind except what was asked for.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from typing import Any

import pytest

from tests.vm.conftest import VmStack, ib_domains

pytestmark = [pytest.mark.vm, pytest.mark.timeout(1800)]

PARENT = "arn:aws:imagebuilder:us-east-1:aws:image/debian-12/x.x.x"


def component(body: str) -> str:
    return f"""name: c
schemaVersion: 1.0
phases:
  - name: build
    steps:
{body}"""


FAILING = component("""      - name: Prepare
        action: ExecuteBash
        inputs:
          commands: [echo preparing > /root/prepared]
      - name: Breaks
        action: ExecuteBash
        inputs:
          commands: [echo "the build broke" >&2, exit 3]
""")

SLOW = component("""      - name: Slow
        action: ExecuteBash
        inputs:
          commands: [sleep 45, echo done > /root/slow-done]
""")


def start_build(stack: VmStack, document: str, terminate_on_failure: bool = True) -> str:
    ib = stack.client()
    suffix = uuid.uuid4().hex[:6]
    comp = ib.create_component(
        name=f"c-{suffix}", semanticVersion="1.0.0", platform="Linux", data=document, clientToken=str(uuid.uuid4())
    )["componentBuildVersionArn"]
    recipe = ib.create_image_recipe(
        name=f"r-{suffix}", semanticVersion="1.0.0", parentImage=PARENT, components=[{"componentArn": comp}],
        clientToken=str(uuid.uuid4()),
    )["imageRecipeArn"]  # fmt: skip
    infra = ib.create_infrastructure_configuration(
        name=f"i-{suffix}", instanceProfileName="default", instanceTypes=["t3.micro"],
        terminateInstanceOnFailure=terminate_on_failure, clientToken=str(uuid.uuid4()),
    )["infrastructureConfigurationArn"]  # fmt: skip
    arn: str = ib.create_image(
        imageRecipeArn=recipe,
        infrastructureConfigurationArn=infra,
        imageTestsConfiguration={"imageTestsEnabled": False},
        clientToken=str(uuid.uuid4()),
    )["imageBuildVersionArn"]
    return arn


def wait_step(stack: VmStack, arn: str, name: str, status: str = "RUNNING", timeout: float = 900) -> None:
    ib = stack.client()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for run in ib.list_workflow_executions(imageBuildVersionArn=arn)["workflowExecutions"]:
            steps = ib.list_workflow_step_executions(workflowExecutionId=run["workflowExecutionId"])["steps"]
            if any(s["name"] == name and s["status"] == status for s in steps):
                return
        time.sleep(2)
    raise AssertionError(f"step {name} of {arn} never became {status}")


def instances_cli(stack: VmStack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", "instances", *args],
        env={**os.environ, **stack.env}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_a_failed_build_keeps_its_instance_when_asked(vm_stack: VmStack) -> None:
    arn = start_build(vm_stack, FAILING, terminate_on_failure=False)
    try:
        image: dict[str, Any] = vm_stack.wait_image(arn, {"AVAILABLE", "FAILED", "CANCELLED"})
        assert image["state"]["status"] == "FAILED"
        reason = image["state"]["reason"]
        assert "the build broke" in reason or "Breaks" in reason
        kept = [d.removeprefix("ib-") for d in ib_domains()]
        assert len(kept) == 1 and kept[0] in reason, reason
        assert "imagebuilder instances" in reason and "ssh -i" in reason
        listed = instances_cli(vm_stack)
        assert kept[0] in listed.stdout and arn in listed.stdout, listed
        # The kept guest is reachable, and shows what the failed build did before it broke.
        key = vm_stack.instances / kept[0] / "id_ed25519"
        port = reason.split(" -p ")[1].split()[0]
        out = subprocess.run(
            ["ssh", "-i", str(key), "-p", port, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
             "-o", "BatchMode=yes", "root@127.0.0.1", "cat /root/prepared"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert out.stdout.strip() == "preparing", out
    finally:
        # The documented way to end a kept instance; the worker's capacity sweep gives its room back.
        removed = instances_cli(vm_stack, "remove", "--image", arn)
    assert removed.returncode == 0 and kept[0] in removed.stdout, removed
    assert vm_stack.leftovers() == []


def test_a_cancelled_build_leaves_nothing(vm_stack: VmStack) -> None:
    arn = start_build(vm_stack, SLOW)
    wait_step(vm_stack, arn, "ApplyBuildComponents")
    time.sleep(3)
    vm_stack.client().cancel_image_creation(imageBuildVersionArn=arn, clientToken=str(uuid.uuid4()))
    image = vm_stack.wait_image(arn, {"AVAILABLE", "FAILED", "CANCELLED"}, timeout=300)
    assert image["state"]["status"] == "CANCELLED"
    assert vm_stack.leftovers() == []
    assert not list((vm_stack.data_dir / "store" / "images").glob(f"{image['name']}/**/disk.qcow2"))


def test_a_build_survives_its_worker_killed_mid_component(vm_stack: VmStack) -> None:
    arn = start_build(vm_stack, SLOW)
    wait_step(vm_stack, arn, "ApplyBuildComponents")
    time.sleep(5)
    vm_stack.kill_worker()
    assert len(ib_domains()) == 1, "the guest outlives the worker: libvirtd holds it"
    vm_stack.start_worker()
    image = vm_stack.wait_image(arn, {"AVAILABLE", "FAILED", "CANCELLED"})
    assert image["state"]["status"] == "AVAILABLE", image["state"]
    assert vm_stack.leftovers() == []
