"""Placement across hosts, on one machine: two docker executor workers with their own host ids,
state directories and capacity (one container build each, by vCPUs), one shared blob store, a
control worker and the API server, all separate processes on a real Temporal dev server.

Builds spread over both hosts and no host ever holds more than its capacity; a host killed
(SIGKILL) in the middle of a build has that build's stage run again on the other host; when
the killed worker comes back, its sweep removes the instance it still held. Nothing is left
behind. The ledger itself is checked first, on its own.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import Server, start_server, stop_server
from tests.builds.conftest import Temporal
from tests.builds.test_container_build import TERMINAL, leftovers, setup_build, wait_for
from tests.builds.test_crash import SLOW
from workers.capacity import CONTAINER_DEMAND, Capacity, Demand, Ledger
from workers.contracts import BuildContext
from workers.errors import NoCapacity

HOSTS = ("host-a", "host-b")


# -- the ledger -------------------------------------------------------------------------------


def context(arn: str) -> BuildContext:
    return BuildContext(arn, "n", "1.0.0", 1, "DOCKER", "Linux", "docker", {}, {}, None, (), "", "")


def test_the_ledger_refuses_what_does_not_fit_and_remembers_across_restarts(tmp_path: Path) -> None:
    capacity = Capacity(builds=3, vcpus=2, memory_mib=2048, disk_gib=100)
    ledger = Ledger(tmp_path, capacity, "host-a")
    ledger.reserve("wf-1/1", CONTAINER_DEMAND, "wf-1", context("arn:1"))
    ledger.reserve("wf-1/1", CONTAINER_DEMAND, "wf-1", context("arn:1"))  # a retried launch replaces its own
    ledger.bind("wf-1/1", "i-1")
    assert ledger.in_use() == CONTAINER_DEMAND
    with pytest.raises(NoCapacity) as refused:
        ledger.reserve("wf-2/1", Demand(2, 512, 1), "wf-2", context("arn:2"))
    assert "no capacity on docker host host-a (vCPUs): the instance needs 2 vCPU, 512 MiB, 1 GiB" in str(refused.value)
    with pytest.raises(NoCapacity) as never:
        ledger.reserve("wf-3/1", Demand(1, 4096, 1), "wf-3", context("arn:3"))
    assert "(memory)" in str(never.value) and "more than this host has at all" in str(never.value)
    ledger.reserve("wf-4/1", CONTAINER_DEMAND, "wf-4", context("arn:4"))
    ledger.bind("wf-4/1", "i-4")

    # A restarted worker knows what it holds: the second container build no longer fits (memory).
    again = Ledger(tmp_path, capacity, "host-a")
    assert sorted(e.instance_id for e in again.entries()) == ["i-1", "i-4"]
    with pytest.raises(NoCapacity):
        again.reserve("wf-5/1", CONTAINER_DEMAND, "wf-5", context("arn:5"))
    # Room comes back when an instance ends, or is found gone from the host.
    assert [e.instance_id for e in again.release_instances({"i-1"})] == ["i-1"]
    listed_at = time.time()
    again.reserve("wf-6/1", Demand(0, 0, 0), "wf-6", context("arn:6"))
    again.bind("wf-6/1", "i-6")  # launched after the host's instances were listed: not gone
    assert [e.instance_id for e in again.release_gone({"i-9"}, listed_at)] == ["i-4"]
    again.release("wf-6/1")
    assert again.in_use() == Demand(0, 0, 0)
    assert json.loads((tmp_path / "capacity.json").read_text())["reservations"] == []


def test_a_builds_second_instance_uses_the_room_it_holds(tmp_path: Path) -> None:
    """Two container builds on a 2-vCPU host each hold their build instance while they test: the
    test instance rides on the build's own room, or both would wait for each other forever."""
    ledger = Ledger(tmp_path, Capacity(builds=2, vcpus=2, memory_mib=4096, disk_gib=100), "host-a")
    for wf in ("wf-1", "wf-2"):
        ledger.reserve(f"{wf}/build", CONTAINER_DEMAND, wf, context(f"arn:{wf}"))
    for wf in ("wf-1", "wf-2"):
        ledger.reserve(f"{wf}/test", CONTAINER_DEMAND, wf, context(f"arn:{wf}"))  # no NoCapacity
    assert ledger.in_use() == Demand(2 * CONTAINER_DEMAND.vcpus, 2 * CONTAINER_DEMAND.memory_mib,
                                     2 * CONTAINER_DEMAND.disk_gib)  # fmt: skip
    # A third build is still a build too many, and a bigger second instance pays the difference.
    with pytest.raises(NoCapacity, match="builds"):
        ledger.reserve("wf-3/build", Demand(0, 0, 0), "wf-3", context("arn:wf-3"))
    with pytest.raises(NoCapacity, match="vCPUs"):
        ledger.reserve("wf-1/big", Demand(CONTAINER_DEMAND.vcpus + 1, 0, 0), "wf-1", context("arn:wf-1"))


def test_capacity_defaults_come_from_the_host(tmp_path: Path) -> None:
    capacity = Capacity.of_host(tmp_path, builds=2, vcpus=3)
    assert capacity.builds == 2 and capacity.vcpus == 3  # set
    assert capacity.memory_mib > 256 and capacity.disk_gib >= 1  # the host's


# -- two hosts on one machine -------------------------------------------------------------------


@dataclass
class Fleet:
    api: Server
    data: Path
    env: dict[str, str]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def host_dir(self, host: str) -> Path:
        return self.data.parent / f"{self.data.name}-{host}"

    def start(self, name: str) -> None:
        """The control worker ("control") or a docker executor host (its own data directory and
        host id, the shared store, room for one container build)."""
        env = {**os.environ, **self.env}
        args = ["--control"]
        if name != "control":
            folder = self.host_dir(name)
            (folder / "executor").mkdir(parents=True, exist_ok=True)
            (folder / "executor" / "host-id").write_text(f"{name}\n")
            env |= {
                "IMAGEBUILDER_DATA_DIR": str(folder),
                "IMAGEBUILDER_STORE_URL": str(self.data / "store"),
                "IMAGEBUILDER_MAX_CONCURRENT": "2",
                "IMAGEBUILDER_CAPACITY_VCPUS": str(CONTAINER_DEMAND.vcpus),  # one build at a time
            }
            args = ["--executors", "docker"]
        log = (self.data / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "engine.cli", "worker", *args],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs[name]
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
        proc.wait(30)


@pytest.fixture(scope="module")
def fleet(temporal: Temporal, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    data = tmp_path_factory.mktemp("fleet")
    env = {
        "IMAGEBUILDER_DATA_DIR": str(data),
        "IMAGEBUILDER_TEMPORAL_ADDRESS": temporal.address,
        "IMAGEBUILDER_REGISTRY": "127.0.0.1:5000",
    }
    f = Fleet(start_server(data, env=env), data, env)
    try:
        for name in ("control", *HOSTS):
            f.start(name)
        yield f
    finally:
        for name in f.procs:
            f.kill(name, signal.SIGTERM)
        stop_server(f.api)


@dataclass
class Run:
    status: str
    message: str
    steps: dict[str, dict[str, Any]]

    @property
    def host(self) -> str:
        """The host its instance was launched on, from the launch's message."""
        found = re.search(r"workspace i-\w+ on docker host ([\w-]+)", self.steps["LaunchBuildInstance"]["message"])
        assert found, self.steps["LaunchBuildInstance"]
        return found.group(1)


def build_runs(ib: Any, arn: str, stage: str = "BUILD") -> list[Run]:
    """A stage's runs in order (more than one if a host was lost)."""
    execs = ib.list_workflow_executions(imageBuildVersionArn=arn)["workflowExecutions"]
    runs = []
    for e in sorted((e for e in execs if e["type"] == stage), key=lambda e: e["startTime"]):
        steps = ib.list_workflow_step_executions(workflowExecutionId=e["workflowExecutionId"])["steps"]
        runs.append(Run(e["status"], e.get("message") or "", {s["name"]: s for s in steps}))
    return runs


def test_builds_spread_over_both_hosts_within_their_capacity(fleet: Fleet) -> None:
    ib = fleet.api.client()
    tag = uuid.uuid4().hex[:6]
    params = [setup_build(ib, f"spread-{tag}-{i}", tests=False) for i in range(3)]
    with ThreadPoolExecutor(3) as pool:  # all three at once: two hosts, room for one build each
        arns = list(pool.map(lambda p: ib.create_image(**p)["imageBuildVersionArn"], params))
    images = [wait_for(ib, arn, TERMINAL, timeout=400) for arn in arns]
    assert [i["state"]["status"] for i in images] == ["AVAILABLE"] * 3, [i["state"] for i in images]

    held: dict[str, list[tuple[str, str]]] = {host: [] for host in HOSTS}
    for arn in arns:
        (run,) = build_runs(ib, arn)
        (distribution,) = build_runs(ib, arn, "DISTRIBUTION")  # the instance pushes, then ends
        launch, terminate = run.steps["LaunchBuildInstance"], distribution.steps["TerminateBuildInstance"]
        # The launch's worker said what it then held: never more than its one vCPU.
        assert f"in use on {run.host}: 1/2 builds, 1/1 vCPU" in launch["message"], launch["message"]
        # From the launch's end to the terminate's start the instance surely held its host's room.
        held[run.host].append((launch["endTime"], terminate["startTime"]))
        assert leftovers(arn) == []
    assert all(held.values()), f"a host ran no build: {held}"
    for host, spans in held.items():
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert end <= start, f"{host} held two builds at once: {spans}"


def test_a_host_killed_mid_build_has_its_stage_run_again_on_the_other(fleet: Fleet) -> None:
    ib = fleet.api.client()
    arn = ib.create_image(**setup_build(ib, f"moved-{uuid.uuid4().hex[:6]}", component=SLOW, tests=False))[
        "imageBuildVersionArn"
    ]
    deadline, runs = time.monotonic() + 120, []
    while time.monotonic() < deadline:
        runs = build_runs(ib, arn)
        if runs and runs[0].steps.get("ApplyBuildComponents", {}).get("status") == "RUNNING":
            break
        time.sleep(0.5)
    assert runs and "ApplyBuildComponents" in runs[0].steps, "the build never reached ApplyBuildComponents"
    dead = runs[0].host
    (alive,) = (h for h in HOSTS if h != dead)
    time.sleep(3)  # inside the sleeping validate step
    fleet.kill(dead)

    # 20 s of missing heartbeats, 60 s with nobody taking the retry from its queue, then a new run.
    image = wait_for(ib, arn, TERMINAL, timeout=400)
    assert image["state"]["status"] == "AVAILABLE", image["state"]
    first, second = build_runs(ib, arn)
    assert first.status == "FAILED" and second.status == "COMPLETED", (first, second)
    assert f"host {dead} stopped answering during step ApplyBuildComponents" in first.message, first.message
    assert first.steps["ApplyBuildComponents"]["status"] == "FAILED"
    assert second.host == alive
    # What is left is on the killed host only: the container its instance was building in.
    lost = re.search(r"workspace (i-\w+)", first.steps["LaunchBuildInstance"]["message"])
    assert lost and all(lost.group(1) in name for name in leftovers(arn)), leftovers(arn)

    # The killed worker comes back: its sweep removes the instance it still held, and the room.
    folder = fleet.host_dir(dead) / "executor"
    held = json.loads((folder / "capacity.json").read_text())["reservations"]
    assert [r["instance_id"] for r in held] == [lost.group(1)]
    fleet.start(dead)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and held:
        time.sleep(1)
        held = json.loads((folder / "capacity.json").read_text())["reservations"]
    assert held == []
    assert list((folder / "instances").iterdir()) == []
    assert leftovers(arn) == []
