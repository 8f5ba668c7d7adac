"""Container images end to end: API -> Temporal -> docker executor -> registry, on real parts.

Each test leaves nothing behind: no container or image labelled with its build, no
workspace on disk.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
import uuid
from typing import Any

import docker
import pytest
from temporalio.client import Client
from temporalio.worker import Replayer

from engine.builds.model import workflow_id
from engine.builds.workflow import ImageBuildWorkflow
from tests.builds.conftest import Stack

COMPONENT = """name: motd
schemaVersion: 1.0
parameters:
  - Greeting:
      type: string
      default: hello
phases:
  - name: build
    steps:
      - name: WriteMotd
        action: CreateFile
        inputs:
          - path: /etc/motd
            content: "{{ Greeting }} from the factory"
  - name: validate
    steps:
      - name: CheckMotd
        action: ExecuteBash
        inputs:
          commands: ["grep -q factory /etc/motd"]
  - name: test
    steps:
      - name: MotdInImage
        action: ExecuteBash
        inputs:
          commands: ["grep -q '{{ Greeting }} from the factory' /etc/motd"]
"""
FAILING = COMPONENT.replace("grep -q factory /etc/motd", "echo no-such-thing >&2; exit 3")
DOCKERFILE = (
    "FROM {{{ imagebuilder:parentImage }}}\n{{{ imagebuilder:environments }}}\n{{{ imagebuilder:components }}}\n"
    'ENV BUILT_BY=imagebuilder\nCMD ["cat", "/etc/motd"]\n'
)
TERMINAL = {"AVAILABLE", "FAILED", "CANCELLED"}


def wait_for(ib: Any, arn: str, states: set[str], timeout: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        image: dict[str, Any] = ib.get_image(imageBuildVersionArn=arn)["image"]
        if image["state"]["status"] in states:
            return image
        time.sleep(1)
    raise AssertionError(f"{arn} did not reach {states}: {image['state']}")


def setup_build(
    ib: Any, name: str, component: str = COMPONENT, tests: bool = True, parent: str = "imagebuilder/debian:12"
) -> dict[str, Any]:
    comp = ib.create_component(name=f"{name}-motd", semanticVersion="1.0.0", platform="Linux", data=component)
    recipe = ib.create_container_recipe(
        name=name,
        semanticVersion="1.0.0",
        containerType="DOCKER",
        parentImage=parent,
        targetRepository={"service": "ECR", "repositoryName": f"factory/{name}"},
        dockerfileTemplateData=DOCKERFILE,
        components=[
            {"componentArn": comp["componentBuildVersionArn"], "parameters": [{"name": "Greeting", "value": ["hi"]}]}
        ],
    )
    infra = ib.create_infrastructure_configuration(name=f"{name}-infra", instanceProfileName="local-docker")
    dist = ib.create_distribution_configuration(
        name=f"{name}-dist",
        distributions=[
            {
                "region": "us-east-1",
                "containerDistributionConfiguration": {
                    "containerTags": ["stable"],
                    "targetRepository": {"service": "ECR", "repositoryName": f"factory/{name}"},
                },
            }
        ],
    )
    return {
        "containerRecipeArn": recipe["containerRecipeArn"],
        "infrastructureConfigurationArn": infra["infrastructureConfigurationArn"],
        "distributionConfigurationArn": dist["distributionConfigurationArn"],
        "imageTestsConfiguration": {"imageTestsEnabled": tests},
    }


def leftovers(image_arn: str) -> list[str]:
    client = docker.from_env()
    found = [c.name for c in client.containers.list(all=True, filters={"label": f"imagebuilder.image-arn={image_arn}"})]
    found += [i.id for i in client.images.list(filters={"label": f"imagebuilder.image-arn={image_arn}"})]
    return found


def registry_tags(repo: str) -> list[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:5000/v2/{repo}/tags/list", timeout=10) as resp:
        tags: list[str] = json.load(resp).get("tags") or []
        return tags


def test_container_image_is_built_tested_and_pushed(stack: Stack) -> None:
    ib = stack.client()
    name = f"web-{uuid.uuid4().hex[:6]}"
    arn = ib.create_image(**setup_build(ib, name))["imageBuildVersionArn"]
    image = wait_for(ib, arn, TERMINAL)
    assert image["state"]["status"] == "AVAILABLE", image["state"]
    uris = image["outputResources"]["containers"][0]["imageUris"]
    # Both fixed tags Image Builder documents, then the distribution's containerTags.
    assert [u.rsplit(":", 1)[1] for u in uris] == ["1.0.0-1", f"{name}-1.0.0-1", "stable"]
    assert set(registry_tags(f"factory/{name}")) >= {"1.0.0-1", f"{name}-1.0.0-1", "stable"}
    # The pushed image really has the component's work and the template's own instructions.
    client = docker.from_env()
    container = client.containers.run(uris[0], detach=True)
    try:
        container.wait(timeout=60)
        assert container.logs().decode().strip() == "hi from the factory"
    finally:
        container.remove(force=True)
    config = client.images.get(uris[0]).attrs["Config"]
    assert "BUILT_BY=imagebuilder" in config["Env"]
    client.images.remove(uris[0], force=True)  # the copy this test pulled is the test's own
    # Every stage and step can be inspected through the API.
    executions = ib.list_workflow_executions(imageBuildVersionArn=arn)["workflowExecutions"]
    assert [e["type"] for e in executions] == ["BUILD", "TEST", "DISTRIBUTION"]
    assert all(e["status"] == "COMPLETED" for e in executions)
    steps = ib.list_workflow_step_executions(workflowExecutionId=executions[0]["workflowExecutionId"])["steps"]
    assert [s["name"] for s in steps][:3] == ["LaunchBuildInstance", "BootstrapBuildInstance", "ApplyBuildComponents"]
    assert leftovers(arn) == []
    asyncio.run(replay(stack.temporal.address, arn))


async def replay(address: str, image_arn: str) -> None:
    """The build's real history replays without a nondeterminism error: the workflow runs
    outside Temporal's sandbox, so this is what keeps it deterministic."""
    client = await Client.connect(address)
    history = await client.get_workflow_handle(workflow_id(image_arn)).fetch_history()
    await Replayer(workflows=[ImageBuildWorkflow]).replay_workflow(history)


def test_managed_parent_image_by_arn(stack: Stack) -> None:
    """The offline Debian base is a managed image (owner Amazon) a recipe can name by ARN."""
    ib = stack.client()
    amazon = ib.list_images(owner="Amazon")["imageVersionList"]
    parent = next(i for i in amazon if i["name"] == "debian-12-container")
    assert parent["type"] == "DOCKER" and parent["owner"] == "Amazon"
    wildcard = "arn:aws:imagebuilder:us-east-1:aws:image/debian-12-container/x.x.x"
    name = f"managed-{uuid.uuid4().hex[:6]}"
    arn = ib.create_image(**setup_build(ib, name, tests=False, parent=wildcard))["imageBuildVersionArn"]
    image = wait_for(ib, arn, TERMINAL)
    assert image["state"]["status"] == "AVAILABLE", image["state"]
    assert image["containerRecipe"]["parentImage"] == wildcard
    assert "1.0.0-1" in registry_tags(f"factory/{name}")
    assert leftovers(arn) == []


def test_failing_component_fails_the_image_with_the_step_message(stack: Stack) -> None:
    ib = stack.client()
    arn = ib.create_image(**setup_build(ib, f"bad-{uuid.uuid4().hex[:6]}", component=FAILING))["imageBuildVersionArn"]
    image = wait_for(ib, arn, TERMINAL)
    assert image["state"]["status"] == "FAILED"
    assert "ApplyBuildComponents" in image["state"]["reason"]
    assert "CheckMotd" in image["state"]["reason"] or "exit" in image["state"]["reason"]
    assert leftovers(arn) == []


def test_cancel_mid_build_cleans_up(stack: Stack) -> None:
    ib = stack.client()
    slow = COMPONENT.replace("grep -q factory /etc/motd", "sleep 120")
    arn = ib.create_image(**setup_build(ib, f"cancel-{uuid.uuid4().hex[:6]}", component=slow))["imageBuildVersionArn"]
    wait_for(ib, arn, {"BUILDING"})
    time.sleep(8)  # well inside the sleeping validate step
    ib.cancel_image_creation(imageBuildVersionArn=arn)
    image = wait_for(ib, arn, TERMINAL, timeout=120)
    assert image["state"]["status"] == "CANCELLED"
    deadline = time.monotonic() + 60
    while leftovers(arn) and time.monotonic() < deadline:
        time.sleep(1)
    assert leftovers(arn) == []


def test_retry_reruns_a_cancelled_build_in_place(stack: Stack) -> None:
    ib = stack.client()
    slow = COMPONENT.replace("grep -q factory /etc/motd", "sleep 15; grep -q factory /etc/motd")
    name = f"retry-{uuid.uuid4().hex[:6]}"
    arn = ib.create_image(**setup_build(ib, name, component=slow, tests=False))["imageBuildVersionArn"]
    wait_for(ib, arn, {"BUILDING"})
    time.sleep(5)  # inside the sleeping validate step
    ib.cancel_image_creation(imageBuildVersionArn=arn)
    assert wait_for(ib, arn, TERMINAL, timeout=120)["state"]["status"] == "CANCELLED"
    before = {
        e["workflowExecutionId"] for e in ib.list_workflow_executions(imageBuildVersionArn=arn)["workflowExecutions"]
    }
    assert before

    assert ib.retry_image(imageBuildVersionArn=arn)["imageBuildVersionArn"] == arn
    image = wait_for(ib, arn, TERMINAL)
    assert image["state"]["status"] == "AVAILABLE", image["state"]
    assert f"{name}-1.0.0-1" in registry_tags(f"factory/{name}")
    executions = ib.list_workflow_executions(imageBuildVersionArn=arn)["workflowExecutions"]
    old = [e for e in executions if e["workflowExecutionId"] in before]
    new = [e for e in executions if e["workflowExecutionId"] not in before]
    assert len(old) == len(before) and all(e["retried"] for e in old)
    assert [e["type"] for e in new] == ["BUILD", "DISTRIBUTION"]
    assert all(e["status"] == "COMPLETED" and not e.get("retried") for e in new)
    # Only a failed or cancelled image retries.
    with pytest.raises(ib.exceptions.ResourceInUseException):
        ib.retry_image(imageBuildVersionArn=arn)
    assert leftovers(arn) == []


@pytest.mark.parametrize("tests_enabled", [False])
def test_build_started_from_the_temporal_cli(stack: Stack, tests_enabled: bool) -> None:
    import subprocess

    from engine.up import temporal_binary

    ib = stack.client()
    params = setup_build(ib, f"cli-{uuid.uuid4().hex[:6]}", tests=tests_enabled)
    request = {
        "containerRecipeArn": params["containerRecipeArn"],
        "infrastructureConfigurationArn": params["infrastructureConfigurationArn"],
        "distributionConfigurationArn": params["distributionConfigurationArn"],
        "imageTestsEnabled": tests_enabled,
    }
    out = subprocess.run(
        [temporal_binary(), "workflow", "execute", "--address", stack.temporal.address,
         "--task-queue", "imagebuilder-control", "--type", "StartImageBuild",
         "--workflow-id", f"cli-{uuid.uuid4().hex[:8]}", "--input", json.dumps(request), "--output", "json"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr + out.stdout
    images = ib.list_image_build_versions(
        imageVersionArn=params["containerRecipeArn"].replace("container-recipe", "image")
    )["imageSummaryList"]
    assert images and images[-1]["state"]["status"] == "AVAILABLE"
