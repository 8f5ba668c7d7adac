"""Every process of the stack restarted during real container builds: nothing is lost.

The stack runs as `imagebuilder up` would on a fleet: the Temporal dev server (state in its
database file), the API server, a control worker (`--control`) and a docker executor worker
(`--executors docker`), each its own process. Each test kills or stops one (or two) of them in a
known place of a build, starts it again, and asserts every image ends AVAILABLE, or FAILED with a
reason, never stuck; and that the build left nothing behind. At the end of the module the stack
is stopped and what is left is counted (docker containers and images labelled with any of the
module's builds, instance workspaces, processes of the stack) and printed for the closing note.

Builds are trivial (the end-to-end test's recipe); a step that must be "in the middle" when a
process dies sleeps a few seconds. One test runs on PostgreSQL as the control-plane store.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from temporalio.client import Client

from engine.builds.model import workflow_id
from tests.builds.conftest import Stack, Temporal, open_stack, start_temporal
from tests.builds.test_container_build import COMPONENT, TERMINAL, setup_build, wait_for
from tests.support.postgres import throwaway_database

CONTROL = ("--control",)
EXECUTOR = ("--executors", "docker", "--max-concurrent", "4")
#: The component's validate step (build stage) or test phase (test stage) sleeps: a process
#: killed during it dies mid-step.
SLOW_BUILD = COMPONENT.replace("grep -q factory /etc/motd", "sleep 8; grep -q factory /etc/motd")
SLOW_TEST = COMPONENT.replace("commands: [\"grep -q '{{ Greeting }}", "commands: [\"sleep 8; grep -q '{{ Greeting }}")
assert SLOW_TEST != COMPONENT

#: Every image a test of this module made, for the leftovers count at the end, and its CreateImage input.
MADE: dict[Path, list[str]] = {}  # by the stack's data directory
PARAMS: dict[str, dict[str, Any]] = {}


def start_split_workers(s: Stack) -> None:
    s.start_worker("control", CONTROL)
    s.start_worker("docker", EXECUTOR)


def stack_processes(data: Path) -> list[int]:
    """Live processes started with this stack's data directory (API, workers and their children)."""
    mark = f"IMAGEBUILDER_DATA_DIR={data}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if mark in (entry / "environ").read_bytes().split(b"\0") and (entry / "stat").read_text().split()[2] != "Z":
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def labelled(arns: list[str]) -> list[str]:
    """Docker containers and images carrying the label of any of these builds."""
    client = docker.from_env()
    found = []
    for arn in arns:
        label = f"imagebuilder.image-arn={arn}"
        found += [f"container {c.name}" for c in client.containers.list(all=True, filters={"label": label})]
        found += [f"image {i.id}" for i in client.images.list(all=True, filters={"label": label})]
    return found


def workspaces(data: Path) -> list[Path]:
    root = data / "executor" / "instances"
    return sorted(root.iterdir()) if root.exists() else []


def leftover_counts(data: Path, arns: list[str]) -> dict[str, int]:
    return {
        "docker objects": len(labelled(arns)),
        "workspaces": len(workspaces(data)),
        "processes": len(stack_processes(data)),
    }


@pytest.fixture(scope="module")
def split(temporal: Temporal, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """API, control worker and docker executor worker as three processes."""
    data = tmp_path_factory.mktemp("restarts")
    with open_stack(temporal, data, worker=False) as s:
        start_split_workers(s)
        yield s
    report_leftovers("SQLite", data)


def report_leftovers(store: str, data: Path) -> None:
    deadline = time.monotonic() + 20  # killed process groups take a moment to be reaped
    while stack_processes(data) and time.monotonic() < deadline:
        time.sleep(0.5)
    made = MADE.get(data, [])
    counts = leftover_counts(data, made)
    print(f"\nrestart tests ({store} stack): {len(made)} images built; left behind: {counts}")
    assert counts == {"docker objects": 0, "workspaces": 0, "processes": 0}, (
        labelled(made),
        workspaces(data),
        stack_processes(data),
    )


def new_build(s: Stack, prefix: str, component: str = SLOW_BUILD, tests: bool = False, **extra: Any) -> str:
    ib = s.client()
    params = {**setup_build(ib, f"{prefix}-{uuid.uuid4().hex[:6]}", component, tests), **extra}
    arn: str = ib.create_image(**params)["imageBuildVersionArn"]
    MADE.setdefault(s.data_dir, []).append(arn)
    PARAMS[arn] = params
    return arn


def step_status(ib: Any, arn: str, step: str) -> str:
    for execution in ib.list_workflow_executions(imageBuildVersionArn=arn)["workflowExecutions"]:
        steps = ib.list_workflow_step_executions(workflowExecutionId=execution["workflowExecutionId"])["steps"]
        for s in steps:
            if s["name"] == step:
                return str(s["status"])
    return ""


def wait_step(s: Stack, arn: str, step: str, timeout: float = 180) -> None:
    """Until the build's step is RUNNING (its record is written as it is dispatched)."""
    ib = s.client()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = step_status(ib, arn, step)
        if status == "RUNNING":
            return
        assert status in ("", "PENDING"), f"{step} is {status} before the test could kill anything"
        time.sleep(0.3)
    raise AssertionError(f"{arn}: {step} never ran")


def ends_clean(s: Stack, arn: str, timeout: float = 300) -> dict[str, Any]:
    """The image ends AVAILABLE, or FAILED with a reason; and its build left nothing behind."""
    image = wait_for(s.client(), arn, TERMINAL, timeout=timeout)
    status = image["state"]["status"]
    assert status in ("AVAILABLE", "FAILED"), image["state"]
    if status == "FAILED":
        assert image["state"].get("reason"), image["state"]
    deadline = time.monotonic() + 60  # cleanup is the build's last activity, before the final state
    while labelled([arn]) and time.monotonic() < deadline:
        time.sleep(1)
    assert labelled([arn]) == []
    return image


def history_events(address: str, arn: str) -> list[Any]:
    async def fetch() -> list[Any]:
        client = await Client.connect(address)
        return list((await client.get_workflow_handle(workflow_id(arn)).fetch_history()).events)

    return asyncio.run(fetch())


def activity_started(address: str, arn: str, activity: str, timeout: float = 180) -> None:
    """Until the build's history shows the activity scheduled (the step is with its worker)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for e in history_events(address, arn):
            attrs = e.activity_task_scheduled_event_attributes
            if e.HasField("activity_task_scheduled_event_attributes") and attrs.activity_type.name == activity:
                return
        time.sleep(0.1)
    raise AssertionError(f"{arn}: {activity} was never scheduled")


def completed_activities(address: str, arn: str) -> list[str]:
    events = history_events(address, arn)
    names = {
        e.event_id: e.activity_task_scheduled_event_attributes.activity_type.name
        for e in events
        if e.HasField("activity_task_scheduled_event_attributes")
    }
    return [
        names[e.activity_task_completed_event_attributes.scheduled_event_id]
        for e in events
        if e.HasField("activity_task_completed_event_attributes")
    ]


def snapshot(ib: Any, arn: str) -> dict[str, Any]:
    """What must read the same through any API server: the image record less its progress."""
    image = dict(ib.get_image(imageBuildVersionArn=arn)["image"])
    for moving in ("state", "outputResources", "buildExecutionEnded", "imageScanState"):
        image.pop(moving, None)
    return image


# -- the API server ---------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_api_server_restarted_during_builds(split: Stack, sig: int) -> None:
    token = f"restart-{uuid.uuid4()}"
    first = new_build(split, "api", clientToken=token)
    second = new_build(split, "api")
    wait_step(split, first, "ApplyBuildComponents")
    before = {arn: snapshot(split.client(), arn) for arn in (first, second)}
    recipes = split.client().list_container_recipes()["containerRecipeSummaryList"]

    split.restart_api(sig)

    ib = split.client()
    assert {arn: snapshot(ib, arn) for arn in (first, second)} == before
    assert ib.list_container_recipes()["containerRecipeSummaryList"] == recipes
    # The same request with the same clientToken is answered with the same image, not a new one.
    assert ib.create_image(**PARAMS[first])["imageBuildVersionArn"] == first
    for arn in (first, second):
        assert ends_clean(split, arn)["state"]["status"] == "AVAILABLE"
    assert len(ib.list_image_build_versions(imageVersionArn=first.rsplit("/", 1)[0])["imageSummaryList"]) == 1


def test_create_image_cut_off_before_its_build_started(split: Stack) -> None:
    """The API server dies after CreateImage committed the image but before Temporal took its
    build (Temporal is frozen with SIGSTOP meanwhile, so the request waits in that window). The
    image must not stay PENDING: a restarted API server starts the builds nobody started, and a
    retry with the same clientToken answers the same image."""
    ib = split.client()
    params = setup_build(ib, f"cut-{uuid.uuid4().hex[:6]}", COMPONENT, tests=False)
    token = f"cut-{uuid.uuid4()}"
    answers: list[Any] = []

    def create() -> None:
        try:
            answers.append(ib.create_image(**params, clientToken=token))
        except Exception as exc:  # the connection drops when the server dies: that is the point
            answers.append(exc)

    os.killpg(split.temporal.process.pid, signal.SIGSTOP)
    try:
        call = threading.Thread(target=create)
        call.start()
        time.sleep(3)  # committed, and waiting for Temporal
        assert not answers, answers
        split.api.process.kill()
        split.api.process.wait(30)
        call.join(30)
    finally:
        os.killpg(split.temporal.process.pid, signal.SIGCONT)
    assert answers and isinstance(answers[0], Exception), answers
    split.restart_api(signal.SIGTERM)
    ib = split.client()
    arn = ib.create_image(**params, clientToken=token)["imageBuildVersionArn"]
    MADE.setdefault(split.data_dir, []).append(arn)
    assert ends_clean(split, arn, timeout=240)["state"]["status"] == "AVAILABLE"
    versions = ib.list_image_build_versions(imageVersionArn=arn.rsplit("/", 1)[0])["imageSummaryList"]
    assert [v["arn"] for v in versions] == [arn]


# -- the Temporal server ----------------------------------------------------------------------


def test_temporal_restarted_during_a_build(split: Stack) -> None:
    arn = new_build(split, "temporal")
    wait_step(split, arn, "ApplyBuildComponents")
    time.sleep(2)
    split.temporal.restart(signal.SIGKILL)
    image = ends_clean(split, arn)
    assert image["state"]["status"] == "AVAILABLE", image["state"]
    # The API's gateway and both workers reconnected: a build started now runs through.
    after = new_build(split, "after-temporal", COMPONENT)
    assert ends_clean(split, after)["state"]["status"] == "AVAILABLE"
    assert all(w.poll() is None for w in split.workers.values())


# -- the workers, in each stage ---------------------------------------------------------------


def kill_and_restart(s: Stack, names: tuple[str, ...], pause: float = 2) -> None:
    for name in names:
        s.kill_worker(signal.SIGKILL, name)
    time.sleep(pause)
    for name in names:
        s.start_worker(name, CONTROL if name == "control" else EXECUTOR)


def test_control_worker_killed_in_the_build_stage(split: Stack) -> None:
    arn = new_build(split, "control")
    wait_step(split, arn, "ApplyBuildComponents")
    time.sleep(2)
    kill_and_restart(split, ("control",))
    image = ends_clean(split, arn)
    assert image["state"]["status"] == "AVAILABLE", image["state"]


def test_executor_killed_in_the_test_stage(split: Stack) -> None:
    arn = new_build(split, "tests", SLOW_TEST, tests=True)
    wait_step(split, arn, "ApplyTestComponents")
    time.sleep(3)
    kill_and_restart(split, ("docker",))
    image = ends_clean(split, arn)
    assert image["state"]["status"] == "AVAILABLE", image["state"]
    executions = split.client().list_workflow_executions(imageBuildVersionArn=arn)["workflowExecutions"]
    assert [e["type"] for e in executions] == ["BUILD", "TEST", "DISTRIBUTION"]


def test_both_workers_killed_in_the_distribution_stage(split: Stack) -> None:
    arn = new_build(split, "dist", COMPONENT)
    activity_started(split.temporal.address, arn, "DistributeContainerImage")
    for name in ("control", "docker"):
        split.kill_worker(signal.SIGKILL, name)
    # Whether the push itself was cut off or had just finished: both must end the same way.
    finished = "DistributeContainerImage" in completed_activities(split.temporal.address, arn)
    print(f"\nkilled in the distribution stage, {'after' if finished else 'during'} DistributeContainerImage")
    time.sleep(2)
    split.start_worker("control", CONTROL)
    split.start_worker("docker", EXECUTOR)
    image = ends_clean(split, arn)
    assert image["state"]["status"] == "AVAILABLE", image["state"]
    assert image["outputResources"]["containers"][0]["imageUris"]


# -- PostgreSQL as the control-plane store ----------------------------------------------------


@pytest.fixture(scope="module")
def postgres_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """On its own Temporal dev server: the SQLite stack of this module is still running."""
    with throwaway_database("ib_restart") as url:
        data = tmp_path_factory.mktemp("restarts-pg")
        temporal = start_temporal(tmp_path_factory.mktemp("temporal-pg"))
        try:
            with open_stack(temporal, data, {"IMAGEBUILDER_DATABASE_URL": url}, worker=False) as s:
                start_split_workers(s)
                yield s
            report_leftovers("PostgreSQL", data)
        finally:
            temporal.stop()


def test_on_postgres_api_and_control_worker_killed_during_a_build(postgres_stack: Stack) -> None:
    s = postgres_stack
    assert not (s.data_dir / "imagebuilder.sqlite").exists()
    arn = new_build(s, "pg")
    wait_step(s, arn, "ApplyBuildComponents")
    before = snapshot(s.client(), arn)
    s.restart_api(signal.SIGKILL)
    kill_and_restart(s, ("control",))
    assert snapshot(s.client(), arn) == before
    image = ends_clean(s, arn)
    assert image["state"]["status"] == "AVAILABLE", image["state"]
    assert not (s.data_dir / "imagebuilder.sqlite").exists()
