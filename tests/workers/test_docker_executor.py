"""The Docker executor driven directly (no Temporal): real engine, real registry on 127.0.0.1:5000.

Each test builds with its own image ARN, so the leak check can ask the engine for anything still
carrying that ARN's label. Builds use the offline base image (imagebuilder/debian:12).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import docker
import pytest
from temporalio.exceptions import CancelledError

from tests.support.containers import BASE_IMAGE
from workers.blobstore import BlobStore
from workers.contracts import (
    Artifact,
    BuildContext,
    CleanupRequest,
    ComponentRef,
    StepRequest,
    StepResult,
    host_queue,
)
from workers.errors import NotSupported, StepFailed
from workers.executors.base import ExecutorSettings, StepRuntime
from workers.executors.docker import DockerExecutor
from workers.executors.docker_build import commit_changes, render_dockerfile, simple_stage1
from workers.executors.docker_workspace import IMAGE_ARN_LABEL

pytestmark = pytest.mark.docker

REGISTRY = "127.0.0.1:5000"
REGION = "us-west-2"

CANONICAL = """FROM {{{ imagebuilder:parentImage }}}
{{{ imagebuilder:environments }}}
{{{ imagebuilder:components }}}
"""

HELLO = """name: hello
schemaVersion: 1.0
parameters:
  - greeting:
      type: string
      default: hi
phases:
  - name: build
    steps:
      - name: WriteGreeting
        action: ExecuteBash
        inputs:
          commands:
            - mkdir -p /opt/app && echo "{{ greeting }}" > /opt/app/greeting
            - pwd > /opt/app/cwd
  - name: validate
    steps:
      - name: CheckGreeting
        action: ExecuteBash
        inputs:
          commands:
            - grep -qx "{{ greeting }}" /opt/app/greeting
  - name: test
    steps:
      - name: TestGreeting
        action: ExecuteBash
        inputs:
          commands:
            - test "$(cat /opt/app/greeting)" = "{{ greeting }}"
"""

FAILING = """name: broken
schemaVersion: 1.0
phases:
  - name: build
    steps:
      - name: Fine
        action: ExecuteBash
        inputs:
          commands: [echo fine]
      - name: InstallMissing
        action: ExecuteBash
        inputs:
          commands:
            - echo "no such package" >&2
            - exit 7
"""

SLOW = """name: slow
schemaVersion: 1.0
phases:
  - name: build
    steps:
      - name: Sleep
        action: ExecuteBash
        inputs:
          commands:
            - touch /tmp/started
            - sleep 120
"""


@dataclass
class Harness:
    executor: DockerExecutor
    blobs: BlobStore
    client: docker.DockerClient
    tmp: Path
    arn: str
    repository: str

    def context(
        self, template: str, *components: ComponentRef, distribution: dict[str, Any] | None = None
    ) -> BuildContext:
        return BuildContext(
            image_arn=self.arn,
            image_name="docker-executor-test",
            version="1.0.0",
            build_number=1,
            image_type="DOCKER",
            platform="Linux",
            executor="docker",
            recipe={
                "name": "docker-executor-test",
                "containerType": "DOCKER",
                "dockerfileTemplateData": template,
                "targetRepository": {"service": "ECR", "repositoryName": self.repository},
            },
            infrastructure={},
            distribution=distribution,
            components=components,
            parent_image=BASE_IMAGE,
            log_prefix="logs/test",
            registry=REGISTRY,
        )

    def component(self, text: str, name: str, **parameters: list[str]) -> ComponentRef:
        ref = self.blobs.put_document(text)
        return ComponentRef(
            arn=f"arn:aws:imagebuilder:{REGION}:123456789012:component/{name}/1.0.0/1",
            name=name,
            document=ref,
            parameters=dict(parameters),
        )

    def runtime(self, name: str, cancel: threading.Event | None = None) -> StepRuntime:
        beats: list[Any] = []
        return StepRuntime(cancel=cancel or threading.Event(), log_dir=self.tmp / "logs" / name, heartbeat=beats.append)

    def step(
        self,
        ctx: BuildContext,
        stage: str,
        action: str,
        inputs: dict[str, Any] | None = None,
        artifact: Artifact | None = None,
        runtime: StepRuntime | None = None,
    ) -> StepResult:
        request = StepRequest(
            context=ctx,
            workflow_type=stage,
            workflow_execution_id="wf-test",
            step_execution_id=f"step-{uuid.uuid4()}",
            step_name=action,
            action=action,
            inputs=inputs or {},
            artifact=artifact,
        )
        return self.executor.run(action, request, runtime or self.runtime(f"{stage}-{action}"))

    def build(self, ctx: BuildContext) -> tuple[str, StepResult]:
        """LaunchInstance, Bootstrap, ExecuteComponents of the build stage; returns (instance, result)."""
        launched = self.step(ctx, "BUILD", "LaunchInstance")
        instance = launched.outputs["instanceId"]
        self.step(ctx, "BUILD", "BootstrapInstanceForContainer", {"instanceId": instance})
        return instance, self.step(ctx, "BUILD", "ExecuteComponents", {"instanceId": instance})

    def leftovers(self) -> tuple[list[str], list[str]]:
        label = {"label": f"{IMAGE_ARN_LABEL}={self.arn}"}
        containers = [c.id for c in self.client.containers.list(all=True, filters=label)]
        images = [i["Id"] for i in self.client.api.images(all=True, filters=label)]
        return containers, images


@pytest.fixture
def harness(docker_client: docker.DockerClient, debian_image: str, tmp_path: Path) -> Iterator[Harness]:
    blobs = BlobStore(tmp_path / "blobs")
    executor = DockerExecutor(ExecutorSettings(host_id="test-host", state_dir=tmp_path / "state", blobs=blobs))
    run = uuid.uuid4().hex[:10]
    h = Harness(
        executor=executor,
        blobs=blobs,
        client=docker_client,
        tmp=tmp_path,
        arn=f"arn:aws:imagebuilder:{REGION}:123456789012:image/docker-executor-test-{run}/1.0.0/1",
        repository=f"imagebuilder-test/app-{run}",
    )
    yield h
    # The leak check: a full cleanup (what a failed or cancelled build gets) leaves nothing labelled.
    executor.cleanup(
        CleanupRequest(
            context=h.context(CANONICAL), instance_ids=tuple(executor.workspaces.ids()), remove_artifacts=True
        )
    )
    for ref in docker_client.api.images(name=f"{REGISTRY}/{h.repository}"):
        docker_client.api.remove_image(ref["Id"], force=True)
    assert h.leftovers() == ([], [])
    assert executor.workspaces.ids() == []


def assert_build_layers_gone(client: docker.DockerClient, build_log: Path) -> None:
    """The engine's builder makes unlabelled layer images; the build log names them."""
    layers, step = [], ""
    for line in build_log.read_text().splitlines():
        if line.startswith("Step "):
            step = line.split(" : ", 1)[1].split()[0].upper()
        elif line.startswith(" ---> ") and step != "FROM" and not line.startswith(" ---> Running"):
            layers.append(line.split()[-1])
    assert layers, "the build log names no layers"
    for layer in layers:
        with pytest.raises(docker.errors.ImageNotFound):
            client.images.get(layer)


def registry_tags(repository: str) -> list[str]:
    with urllib.request.urlopen(f"http://{REGISTRY}/v2/{repository}/tags/list", timeout=10) as resp:
        tags: list[str] = json.load(resp)["tags"]
    return sorted(tags)


# --- template rendering -------------------------------------------------------------------------


def test_render_splits_at_components_placeholder() -> None:
    rendered = render_dockerfile(
        "ARG X\nFROM {{{imagebuilder:parentImage}}}\n{{{ imagebuilder:environments }}}\nENV A=1\n"
        '{{{ imagebuilder:components }}}\nCMD ["x"]\n',
        "base:1",
        "/work",
    )
    assert rendered.before == "ARG X\nFROM base:1\nWORKDIR /work\nENV A=1\n"
    assert rendered.after == '\nCMD ["x"]\n'
    assert render_dockerfile("FROM {{{ imagebuilder:parentImage }}}\n", "b", "/tmp").after is None
    with pytest.raises(StepFailed, match="unknown placeholders: nope"):
        render_dockerfile("FROM {{{ imagebuilder:nope }}}", "b", "/tmp")
    with pytest.raises(StepFailed, match="more than once"):
        render_dockerfile("{{{ imagebuilder:components }}}\n{{{ imagebuilder:components }}}", "b", "/tmp")


def test_build_shortcuts_only_for_what_a_commit_can_do() -> None:
    assert simple_stage1("FROM base:1\nWORKDIR /work\n") == ("base:1", "/work")
    assert simple_stage1("# a comment\nFROM base:1\n") == ("base:1", "")
    for before in (
        "ARG X\nFROM base:1\n",  # ARG: variables
        "FROM base:1\nWORKDIR work\n",  # relative
        "FROM base:1\nENV A=1\n",  # the components would need it too
        "FROM base:1 AS b\n",
        "# escape=`\nFROM base:1\n",
    ):
        assert simple_stage1(before) is None, before
    assert commit_changes('\nENV A=1\n# why\nCMD ["x"]\n') == ["ENV A=1", 'CMD ["x"]']
    assert commit_changes("") == []
    for after in ("RUN true\n", "WORKDIR /x\n", "ENV A=1 \\\n  B=2\n", "COPY a b\n"):
        assert commit_changes(after) is None, after


# --- the whole container pipeline ---------------------------------------------------------------


def test_build_test_push_terminate(harness: Harness) -> None:
    hello = harness.component(HELLO, "hello", greeting=["bonjour", "monde"])
    distribution = {
        "distributions": [
            {"region": "eu-west-1", "containerDistributionConfiguration": {"containerTags": ["elsewhere"]}},
            {"region": REGION, "containerDistributionConfiguration": {"containerTags": ["latest", "stable"]}},
        ]
    }
    ctx = harness.context(CANONICAL, hello, distribution=distribution)
    queue = host_queue("docker", "test-host")
    timings: dict[str, float] = {}

    t0 = time.monotonic()
    launched = harness.step(ctx, "BUILD", "LaunchInstance")
    assert launched.instance_queue == queue
    build_instance = launched.outputs["instanceId"]
    assert build_instance.startswith("i-") and len(build_instance) == 18
    assert harness.step(ctx, "BUILD", "BootstrapInstanceForContainer", {"instanceId": build_instance}).outputs == {
        "status": "Success"
    }
    built = harness.step(ctx, "BUILD", "ExecuteComponents", {"instanceId": build_instance})
    timings["build"] = time.monotonic() - t0
    assert built.artifact is not None and built.artifact.queue == queue
    image_id = built.outputs["imageId"]
    assert built.artifact.image_ref == image_id
    # Components ran in the working directory from the environments placeholder, with the
    # list parameter joined by commas; the image keeps the parent's command.
    out = harness.client.containers.run(image_id, ["cat", "/opt/app/greeting", "/opt/app/cwd"], remove=True)
    assert out.decode().split() == ["bonjour,monde", "/tmp"]
    config = harness.client.api.inspect_image(image_id)["Config"]
    assert config["Cmd"] == ["/bin/bash"] and not config["Entrypoint"]
    assert config["WorkingDir"] == "/tmp"
    assert not harness.client.containers.list(all=True, filters={"label": f"{IMAGE_ARN_LABEL}={harness.arn}"})

    t0 = time.monotonic()
    test_launch = harness.step(ctx, "TEST", "LaunchInstance", artifact=built.artifact)
    test_instance = test_launch.outputs["instanceId"]
    assert test_instance != build_instance and test_launch.instance_queue == queue
    harness.step(ctx, "TEST", "BootstrapInstanceForContainer", {"instanceId": test_instance})
    tested = harness.step(ctx, "TEST", "ExecuteComponents", {"instanceId": test_instance}, artifact=built.artifact)
    assert tested.outputs == {"status": "Success"}
    harness.step(ctx, "TEST", "TerminateInstance", {"instanceId": test_instance}, artifact=built.artifact)
    timings["test"] = time.monotonic() - t0

    t0 = time.monotonic()
    pushed = harness.step(
        ctx, "DISTRIBUTION", "DistributeContainerImage", {"instanceId": build_instance}, artifact=built.artifact
    )
    timings["push"] = time.monotonic() - t0
    uri = f"{REGISTRY}/{harness.repository}"
    assert pushed.outputs == {"status": "Success", "succeededRegions": [REGION], "failedRegions": []}
    assert pushed.output_resources == {
        "containers": [
            {
                "region": REGION,
                "imageUris": [
                    f"{uri}:1.0.0-1",
                    f"{uri}:docker-executor-test-1.0.0-1",
                    f"{uri}:latest",
                    f"{uri}:stable",
                ],
            }
        ]
    }
    assert registry_tags(harness.repository) == ["1.0.0-1", "docker-executor-test-1.0.0-1", "latest", "stable"]

    harness.step(ctx, "DISTRIBUTION", "TerminateInstance", {"instanceId": build_instance})
    assert build_instance not in harness.executor.live_instances()  # other builds may share the host
    # Once pushed, the registry holds the image and the build host keeps nothing of the build.
    containers, images = harness.leftovers()
    assert containers == [] and images == []

    # Prove the push: pull it back from the registry.
    harness.client.images.pull(uri, tag="1.0.0-1")
    out = harness.client.containers.run(f"{uri}:1.0.0-1", ["cat", "/opt/app/greeting"], remove=True)
    harness.client.api.remove_image(f"{uri}:1.0.0-1", force=True)  # the pulled copy is the test's
    assert out.decode().strip() == "bonjour,monde"
    print(f"timings: {timings}")


def test_dockerfile_instructions_after_components_reach_the_final_image(harness: Harness) -> None:
    template = (
        "FROM {{{ imagebuilder:parentImage }}}\n"
        "ENV BEFORE=1\n"
        "{{{ imagebuilder:environments }}}\n"
        "USER root\n"
        "{{{ imagebuilder:components }}}\n"
        "ENV APP_MODE=production\n"
        "EXPOSE 8080\n"
        "LABEL org.example.app=hello\n"
        'CMD ["cat", "/opt/app/greeting"]\n'
    )
    ctx = harness.context(template, harness.component(HELLO, "hello"))
    _instance, built = harness.build(ctx)
    image_id = built.outputs["imageId"]
    config = harness.client.api.inspect_image(image_id)["Config"]
    assert "APP_MODE=production" in config["Env"] and "BEFORE=1" in config["Env"]
    assert config["Cmd"] == ["cat", "/opt/app/greeting"]
    assert not config["Entrypoint"]
    assert "8080/tcp" in config["ExposedPorts"]
    assert config["Labels"]["org.example.app"] == "hello"
    assert harness.client.containers.run(image_id, remove=True).decode().strip() == "hi"


def test_entrypoint_before_components_is_restored(harness: Harness) -> None:
    template = 'FROM {{{ imagebuilder:parentImage }}}\nENTRYPOINT ["echo", "entry"]\n{{{ imagebuilder:components }}}\n'
    _instance, built = harness.build(harness.context(template, harness.component(HELLO, "hello")))
    config = harness.client.api.inspect_image(built.outputs["imageId"])["Config"]
    assert config["Entrypoint"] == ["echo", "entry"]
    assert harness.client.containers.run(built.outputs["imageId"], ["x"], remove=True).decode().strip() == "entry x"


def test_template_without_components_placeholder_builds_without_components(harness: Harness) -> None:
    template = "FROM {{{ imagebuilder:parentImage }}}\nRUN echo plain > /plain\n"
    _instance, built = harness.build(harness.context(template, harness.component(HELLO, "hello")))
    assert "components were not run" in built.message
    out = harness.client.containers.run(built.outputs["imageId"], ["cat", "/plain"], remove=True)
    assert out.decode().strip() == "plain"


def test_failing_component_names_its_step(harness: Harness) -> None:
    ctx = harness.context(CANONICAL, harness.component(HELLO, "hello"), harness.component(FAILING, "broken"))
    launched = harness.step(ctx, "BUILD", "LaunchInstance")
    instance = launched.outputs["instanceId"]
    with pytest.raises(StepFailed) as failure:
        harness.step(ctx, "BUILD", "ExecuteComponents", {"instanceId": instance})
    assert "component broken failed at step InstallMissing (phase build)" in str(failure.value)
    assert failure.value.non_retryable
    # The failed step removed its container and images; the workspace stays for TerminateInstance.
    assert harness.leftovers() == ([], [])
    harness.step(ctx, "BUILD", "TerminateInstance", {"instanceId": instance})
    assert instance not in harness.executor.live_instances()  # other builds may share the host


def test_failing_dockerfile_is_a_step_failure(harness: Harness) -> None:
    template = (
        "FROM {{{ imagebuilder:parentImage }}}\nRUN echo one > /one\nRUN exit 3\n{{{ imagebuilder:components }}}\n"
    )
    ctx = harness.context(template)
    launched = harness.step(ctx, "BUILD", "LaunchInstance")
    runtime = harness.runtime("f")
    with pytest.raises(StepFailed, match=r"docker build \(stage 1\) failed: .*returned a non-zero code: 3"):
        harness.step(ctx, "BUILD", "ExecuteComponents", {"instanceId": launched.outputs["instanceId"]}, runtime=runtime)
    assert_build_layers_gone(harness.client, runtime.log_dir / "docker-build.log")
    harness.step(ctx, "BUILD", "TerminateInstance", {"instanceId": launched.outputs["instanceId"]})


def _cancel_when(condition: Callable[[], bool], cancel: threading.Event) -> threading.Thread:
    def watch() -> None:
        deadline = time.monotonic() + 120
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.2)
        cancel.set()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_cancel_during_components_leaves_no_container(harness: Harness) -> None:
    ctx = harness.context(CANONICAL, harness.component(SLOW, "slow"))
    instance = harness.step(ctx, "BUILD", "LaunchInstance").outputs["instanceId"]
    label = {"label": f"{IMAGE_ARN_LABEL}={harness.arn}"}

    def sleeping() -> bool:
        for c in harness.client.containers.list(filters=label):
            if c.exec_run(["test", "-e", "/tmp/started"]).exit_code == 0:
                return True
        return False

    cancel = threading.Event()
    watcher = _cancel_when(sleeping, cancel)
    t0 = time.monotonic()
    with pytest.raises(CancelledError):
        harness.step(ctx, "BUILD", "ExecuteComponents", {"instanceId": instance}, runtime=harness.runtime("c", cancel))
    watcher.join()
    assert time.monotonic() - t0 < 60
    assert harness.leftovers() == ([], [])
    harness.step(ctx, "BUILD", "TerminateInstance", {"instanceId": instance})


def test_cancel_during_docker_build_leaves_nothing(harness: Harness) -> None:
    template = (
        "FROM {{{ imagebuilder:parentImage }}}\nRUN echo one > /one\nRUN sleep 120\n{{{ imagebuilder:components }}}\n"
    )
    ctx = harness.context(template)
    instance = harness.step(ctx, "BUILD", "LaunchInstance").outputs["instanceId"]
    log = harness.tmp / "logs" / "b" / "docker-build.log"
    cancel = threading.Event()
    watcher = _cancel_when(lambda: log.exists() and "Step 3/" in log.read_text(), cancel)
    t0 = time.monotonic()
    with pytest.raises(CancelledError):
        harness.step(ctx, "BUILD", "ExecuteComponents", {"instanceId": instance}, runtime=harness.runtime("b", cancel))
    watcher.join()
    assert time.monotonic() - t0 < 60
    # The build's RUN container is the engine's (no labels): look for any running `sleep 120`.
    deadline = time.monotonic() + 15
    while any("sleep 120" in " ".join(c.attrs["Config"]["Cmd"] or []) for c in harness.client.containers.list()):
        assert time.monotonic() < deadline, "the build's RUN container is still running"
        time.sleep(0.5)
    assert_build_layers_gone(harness.client, log)
    assert harness.leftovers() == ([], [])
    harness.step(ctx, "BUILD", "TerminateInstance", {"instanceId": instance})


def test_cleanup_finds_everything_by_label_without_state(harness: Harness) -> None:
    ctx = harness.context(CANONICAL, harness.component(HELLO, "hello"))
    instance, built = harness.build(ctx)
    test_instance = harness.step(ctx, "TEST", "LaunchInstance", artifact=built.artifact).outputs["instanceId"]
    # A worker that lost its state folder (a disk replaced, a wiped state_dir) still cleans up.
    for iid in (instance, test_instance):
        harness.executor.workspaces.remove(iid)
    harness.client.containers.create(built.outputs["imageId"], labels={IMAGE_ARN_LABEL: harness.arn})
    result = harness.executor.cleanup(
        CleanupRequest(
            context=ctx, instance_ids=(instance, test_instance), remove_artifacts=True, artifact=built.artifact
        )
    )
    assert result.removed
    assert harness.leftovers() == ([], [])
    # Idempotent.
    harness.executor.cleanup(CleanupRequest(context=ctx, instance_ids=(instance,), remove_artifacts=True))


def test_test_stage_failure_and_unknown_instance(harness: Harness) -> None:
    failing_test = HELLO.replace('test "$(cat /opt/app/greeting)" = "{{ greeting }}"', "exit 9")
    ctx = harness.context(CANONICAL, harness.component(failing_test, "hello"))
    instance, built = harness.build(ctx)
    test_instance = harness.step(ctx, "TEST", "LaunchInstance", artifact=built.artifact).outputs["instanceId"]
    with pytest.raises(StepFailed, match="component hello failed at step TestGreeting"):
        harness.step(ctx, "TEST", "ExecuteComponents", {"instanceId": test_instance}, artifact=built.artifact)
    containers, _ = harness.leftovers()
    assert containers == []
    with pytest.raises(StepFailed, match="does not exist"):
        harness.step(ctx, "BUILD", "ExecuteComponents", {"instanceId": "i-0000000000000000"})
    with pytest.raises(NotSupported):
        harness.step(ctx, "BUILD", "CreateImage", {"instanceId": instance})
    with pytest.raises(NotSupported):
        harness.step(replace(ctx, image_type="AMI"), "BUILD", "ExecuteComponents", {"instanceId": instance})
    for iid in (instance, test_instance):
        harness.step(ctx, "BUILD", "TerminateInstance", {"instanceId": iid})


def test_parent_image_cli_reimports_the_cached_rootfs(docker_client: docker.DockerClient) -> None:
    from engine.cli import main
    from workers.parent_images import rootfs_tarball

    assert rootfs_tarball().is_file(), "no cached rootfs tarball: run deploy/host-setup.sh (it makes one)"
    tag = f"imagebuilder/debian:cli-test-{uuid.uuid4().hex[:8]}"
    try:
        assert main(["parent-image", "bootstrap", "--tag", tag]) == 0
        out = docker_client.containers.run(tag, ["cat", "/etc/debian_version"], remove=True)
        assert out.decode().startswith("12.")
        assert docker_client.images.get(tag).attrs["Config"]["Cmd"] == ["/bin/bash"]
    finally:
        docker_client.api.remove_image(tag, force=True)
