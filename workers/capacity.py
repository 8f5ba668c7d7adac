"""Placement on one executor host: what it has room for, and what its instances hold.

A worker takes a LaunchInstance only when the instance fits: its vCPUs, memory and disk on top
of what the host's instances already hold, and no more instances than ``max_concurrent``. A
launch that does not fit fails at once with NoCapacity (retryable): the build waits and sends
the launch again to the pool queue, where any worker of that kind may take it. Demand is only
known once the task is in hand (the instance type is in the request), which is why a full
worker still polls: the pool queue also carries work that needs no room (distribution,
imports), and holding back its pollers would hold that up too.

The reservations (the ledger) are on disk in the worker's state directory, written before the
launch starts, so a worker that comes back after a crash still counts what it holds. A sweep
beside the worker gives back what is no longer held: instances removed by other paths, and the
instances of builds that ended, or that moved to another host after this one stopped answering
(which the worker then removes).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from workers.activities import StepActivities
from workers.contracts import BuildContext, CleanupRequest, CleanupResult, StepRequest, StepResult
from workers.errors import NoCapacity
from workers.executors.base import ACTION_METHODS, StepRuntime

log = logging.getLogger(__name__)

#: An instance a build still holds after its launch returned this long ago, but that its build
#: no longer lists, was given up (its host stopped answering): the sweep removes it. The margin
#: covers the time the launch's result takes to reach the workflow.
ORPHAN_AFTER_SECONDS = 120.0
SWEEP_SECONDS = 60.0
#: This worker process, in its reservations.
PROCESS = uuid.uuid4().hex


@dataclass(frozen=True)
class Demand:
    """What one instance holds on its host while it lives."""

    vcpus: int
    memory_mib: int
    disk_gib: int

    def __str__(self) -> str:
        return f"{self.vcpus} vCPU, {self.memory_mib} MiB, {self.disk_gib} GiB"


#: A container is not sized by an instance type (the engine does not limit it): each build
#: instance counts as this much, so a host's vCPUs and memory bound how many run at once.
CONTAINER_DEMAND = Demand(vcpus=1, memory_mib=1024, disk_gib=2)
#: A guest's disk when the recipe names no volume size: EC2's usual root volume. The overlay
#: grows up to the parent's size, and the capture writes a copy of it.
VM_DISK_GIB = 8


@dataclass(frozen=True)
class Capacity:
    """How much one worker may hand out. Zero in a setting means the host's own figure."""

    builds: int
    vcpus: int
    memory_mib: int
    disk_gib: int

    @classmethod
    def of_host(cls, state_dir: Path, builds: int, vcpus: int = 0, memory_mib: int = 0, disk_gib: int = 0) -> Capacity:
        """Defaults: every CPU, all the memory, and the disk free under state_dir now."""
        state_dir.mkdir(parents=True, exist_ok=True)
        return cls(
            builds=max(builds, 1),
            vcpus=vcpus or os.cpu_count() or 1,
            memory_mib=memory_mib or _host_memory_mib(),
            disk_gib=disk_gib or shutil.disk_usage(state_dir).free // 2**30,
        )

    def __str__(self) -> str:
        return f"{self.builds} builds, {self.vcpus} vCPU, {self.memory_mib} MiB, {self.disk_gib} GiB"


def _host_memory_mib() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return 4096


def demand_of(request: StepRequest) -> Demand:
    """A guest is sized by the infrastructure configuration's instance type, as the libvirt
    executor sizes it; a container build counts as CONTAINER_DEMAND."""
    ctx = request.context
    if ctx.executor != "libvirt":
        return CONTAINER_DEMAND
    from workers.executors.libvirt_domain import size_for  # needs libvirt: only on libvirt hosts

    size, _ = size_for(ctx.infrastructure)
    return Demand(size.vcpus, size.memory_mib, _volume_gib(ctx.recipe) or VM_DISK_GIB)


def _volume_gib(recipe: dict[str, Any]) -> int:
    sizes = [
        int(m["ebs"]["volumeSize"])
        for m in recipe.get("blockDeviceMappings") or []
        if isinstance(m, dict) and isinstance(m.get("ebs"), dict) and str(m["ebs"].get("volumeSize", "")).isdigit()
    ]
    return max(sizes, default=0)


@dataclass
class Reservation:
    #: The launch that made it: "<workflow id>/<activity id>" (the same across the launch's retries).
    key: str
    workflow_id: str
    image_arn: str
    executor: str
    demand: Demand
    #: Set once the launch returned; empty while it runs (or if its worker died during it).
    instance_id: str = ""
    bound_at: float = 0.0
    #: The worker process that made it: an unbound reservation of another process is a launch
    #: that died with its worker. A random id, not the pid: in a container the pid is the same
    #: after every restart.
    process: str = ""
    #: A failed build kept the instance for debugging (terminateInstanceOnFailure: false).
    kept: bool = False


class Ledger:
    """The reservations of one worker, in state_dir/capacity.json (rewritten atomically)."""

    def __init__(self, state_dir: Path, capacity: Capacity, host: str) -> None:
        self.path = state_dir / "capacity.json"
        self.capacity = capacity
        self.host = host
        self._lock = threading.Lock()
        self._entries: dict[str, Reservation] = {}
        if self.path.exists():
            for raw in json.loads(self.path.read_text()).get("reservations", []):
                raw["demand"] = Demand(**raw["demand"])
                entry = Reservation(**raw)
                self._entries[entry.key] = entry

    def entries(self) -> list[Reservation]:
        with self._lock:
            return [dataclasses.replace(e) for e in self._entries.values()]

    def in_use(self) -> Demand:
        with self._lock:
            return self._sum(self._entries.values())

    def usage(self) -> str:
        with self._lock:
            used = self._sum(self._entries.values())
            builds = len({e.workflow_id for e in self._entries.values()})
            return (
                f"in use on {self.host}: {builds}/{self.capacity.builds} builds, "
                f"{used.vcpus}/{self.capacity.vcpus} vCPU, {used.memory_mib}/{self.capacity.memory_mib} MiB, "
                f"{used.disk_gib}/{self.capacity.disk_gib} GiB"
            )

    def reserve(self, key: str, demand: Demand, workflow_id: str, context: BuildContext) -> None:
        """Hold room for one instance, or raise NoCapacity saying what is short."""
        with self._lock:
            others = [e for k, e in self._entries.items() if k != key]  # a retried launch replaces its own
            used = self._sum(others)
            c = self.capacity
            # A build's second instance here (a container build's test instance, while its build
            # instance waits for distribution) is charged only what exceeds the room the build
            # already holds: charging it in full let two builds each hold half the host and wait
            # for each other's room forever.
            held = self._sum(e for e in others if e.workflow_id == workflow_id)
            demand = Demand(
                max(0, demand.vcpus - held.vcpus),
                max(0, demand.memory_mib - held.memory_mib),
                max(0, demand.disk_gib - held.disk_gib),
            )
            builds = {e.workflow_id for e in others}
            short = [
                what
                for what, need, free in (
                    ("builds", 0 if workflow_id in builds else 1, c.builds - len(builds)),
                    ("vCPUs", demand.vcpus, c.vcpus - used.vcpus),
                    ("memory", demand.memory_mib, c.memory_mib - used.memory_mib),
                    ("disk", demand.disk_gib, c.disk_gib - used.disk_gib),
                )
                if need > free
            ]
            if short:
                never = demand.vcpus > c.vcpus or demand.memory_mib > c.memory_mib or demand.disk_gib > c.disk_gib
                raise NoCapacity(
                    f"no capacity on {context.executor} host {self.host} ({', '.join(short)}): the instance needs "
                    f"{demand}; {len(others)} instances hold {used} of {c}"
                    + (" -- more than this host has at all" if never else "")
                )
            self._entries[key] = Reservation(
                key, workflow_id, context.image_arn, context.executor, demand, process=PROCESS
            )
            self._save()

    def bind(self, key: str, instance_id: str) -> None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                entry.instance_id, entry.bound_at = instance_id, time.time()
                self._save()

    def release(self, key: str) -> None:
        with self._lock:
            if self._entries.pop(key, None) is not None:
                self._save()

    def release_instances(self, instance_ids: set[str]) -> list[Reservation]:
        with self._lock:
            gone = [e for e in self._entries.values() if e.instance_id and e.instance_id in instance_ids]
            for entry in gone:
                del self._entries[entry.key]
            if gone:
                self._save()
            return gone

    def keep(self, instance_ids: set[str]) -> None:
        with self._lock:
            for entry in self._entries.values():
                if entry.instance_id in instance_ids:
                    entry.kept = True
            self._save()

    def release_gone(self, live: set[str], listed_at: float) -> list[Reservation]:
        """Give back the room of instances that no longer exist on the host: `live` was listed
        at `listed_at`, so an instance launched since (not in the list yet) keeps its room."""
        with self._lock:
            bound = {e.instance_id for e in self._entries.values() if e.instance_id and e.bound_at < listed_at}
        return self.release_instances(bound - live)

    def _sum(self, entries: Any) -> Demand:
        items = list(entries)
        return Demand(
            sum(e.demand.vcpus for e in items),
            sum(e.demand.memory_mib for e in items),
            sum(e.demand.disk_gib for e in items),
        )

    def _save(self) -> None:
        body = {"host": self.host, "reservations": [dataclasses.asdict(e) for e in self._entries.values()]}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(body, indent=1))
        tmp.replace(self.path)


class Placement:
    """The step activities with the ledger around LaunchInstance, TerminateInstance and CleanupBuild."""

    def __init__(self, ledger: Ledger, steps: StepActivities) -> None:
        self.ledger = ledger
        self.steps = steps

    def activities(self) -> list[Callable[..., Any]]:
        acts: dict[str, Callable[..., Any]] = {action: self.steps.step(action) for action in ACTION_METHODS}
        acts["LaunchInstance"] = self._launch(acts["LaunchInstance"])
        acts["TerminateInstance"] = self._terminate(acts["TerminateInstance"])
        return [*acts.values(), self._cleanup(self.steps.cleanup())]

    def _launch(self, launch: Callable[[StepRequest], Any]) -> Callable[[StepRequest], Any]:
        @activity.defn(name="LaunchInstance")
        async def placed_launch(request: StepRequest) -> StepResult:
            info = activity.info()
            workflow_id = info.workflow_id or ""
            key = f"{workflow_id}/{info.activity_id}"
            demand = demand_of(request)
            try:
                self.ledger.reserve(key, demand, workflow_id, request.context)
            except NoCapacity:
                # Room held by instances that are gone by now (removed by another path) first.
                await asyncio.to_thread(self.release_gone, request.context.executor)
                try:
                    self.ledger.reserve(key, demand, workflow_id, request.context)
                except NoCapacity as exc:
                    log.info("%s", exc)
                    raise
            try:
                result: StepResult = await launch(request)
            except BaseException:
                self.ledger.release(key)
                raise
            instance_id = result.outputs.get("instanceId")
            if not isinstance(instance_id, str) or not instance_id:
                self.ledger.release(key)
                return result
            self.ledger.bind(key, instance_id)
            usage = self.ledger.usage()
            log.info("instance %s of %s holds %s; %s", instance_id, request.context.image_arn, demand, usage)
            return dataclasses.replace(result, message=f"{result.message}; holds {demand} ({usage})")

        return placed_launch

    def _terminate(self, terminate: Callable[[StepRequest], Any]) -> Callable[[StepRequest], Any]:
        @activity.defn(name="TerminateInstance")
        async def placed_terminate(request: StepRequest) -> StepResult:
            result: StepResult = await terminate(request)
            self.ledger.release_instances({str(request.inputs.get("instanceId") or "")})
            return result

        return placed_terminate

    def _cleanup(self, cleanup: Callable[[CleanupRequest], Any]) -> Callable[[CleanupRequest], Any]:
        @activity.defn(name="CleanupBuild")
        async def placed_cleanup(request: CleanupRequest) -> CleanupResult:
            result: CleanupResult = await cleanup(request)
            if request.keep_instances:
                self.ledger.keep(set(request.instance_ids))
            else:
                self.ledger.release_instances(set(request.instance_ids))
            await asyncio.to_thread(self.release_gone, request.context.executor)
            return result

        return placed_cleanup

    def release_gone(self, kind: str) -> None:
        executor = self.steps.executors.get(kind)
        if executor is None:
            return
        listed_at = time.time()
        try:
            live = set(executor.live_instances())
        except Exception as exc:  # the engine is down: nothing is given back until it answers
            log.warning("could not list the %s instances of this host: %s", kind, exc)
            return
        for entry in self.ledger.release_gone(live, listed_at):
            log.info("gave back the room of %s (no longer on this host)", entry.instance_id)

    # -- the sweep ----------------------------------------------------------------------------

    async def sweep_forever(self, client: Client) -> None:
        """Beside the worker: at start, then every SWEEP_SECONDS."""
        while True:
            try:
                await self.sweep(client)
            except Exception:  # a sweep that failed is tried again at the next round
                log.exception("the capacity sweep failed")
            await asyncio.sleep(SWEEP_SECONDS)

    async def sweep(self, client: Client) -> list[str]:
        """Remove the instances this host holds for builds that no longer want them; returns their ids."""
        for kind in self.steps.executors:
            await asyncio.to_thread(self.release_gone, kind)
        removed: list[str] = []
        for entry in self.ledger.entries():
            if entry.kept or (not entry.instance_id and entry.process == PROCESS):
                continue  # kept for debugging, or a launch running now
            handle = client.get_workflow_handle(entry.workflow_id)
            try:
                running = (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
            except RPCError as exc:
                if "not found" not in str(exc).lower():
                    raise
                running = False
            if running:
                # Still building: an instance it no longer lists was given up with this host.
                if not entry.instance_id or time.time() - entry.bound_at < ORPHAN_AFTER_SECONDS:
                    continue
                try:
                    held = await handle.query("held_instances", result_type=list[str])
                except Exception as exc:  # no control worker now, or an older build: ask again later
                    log.info("could not ask %s which instances it holds: %s", entry.workflow_id, exc)
                    continue
                if entry.instance_id in held:
                    continue
            await asyncio.to_thread(self._remove, entry, running)
            removed.append(entry.instance_id or entry.key)
        return removed

    def _remove(self, entry: Reservation, running: bool) -> None:
        executor = self.steps.executors.get(entry.executor)
        if executor is None:
            return
        context = _context_of(entry)
        if entry.instance_id:
            # One instance only, even of a build that ended: the host may share its engine.
            with tempfile.TemporaryDirectory() as logs:
                executor.run("TerminateInstance", _terminate_request(context, entry.instance_id), _runtime(logs))
        elif not running:
            # A launch that died with its worker: whatever it made carries the build's labels.
            executor.cleanup(CleanupRequest(context=context, instance_ids=()))
        else:
            return  # its build may still end here (a retry on this host): kept until it ends
        self.ledger.release(entry.key)
        log.info(
            "removed %s of %s (%s)",
            entry.instance_id or "what a dead launch left",
            entry.image_arn,
            "its build moved to another host" if running else "its build ended",
        )


def _context_of(entry: Reservation) -> BuildContext:
    """Enough of a build context to remove what a build left: the executors need its ARN only."""
    return BuildContext(
        image_arn=entry.image_arn,
        image_name="",
        version="",
        build_number=0,
        image_type="",
        platform="",
        executor=entry.executor,
        recipe={},
        infrastructure={},
        distribution=None,
        components=(),
        parent_image="",
        log_prefix="",
    )


def _terminate_request(context: BuildContext, instance_id: str) -> StepRequest:
    return StepRequest(
        context=context,
        workflow_type="BUILD",
        workflow_execution_id="",
        step_execution_id="",
        step_name="sweep",
        action="TerminateInstance",
        inputs={"instanceId": instance_id},
    )


def _runtime(log_dir: str) -> StepRuntime:
    return StepRuntime(cancel=threading.Event(), log_dir=Path(log_dir), heartbeat=lambda _detail: None)
