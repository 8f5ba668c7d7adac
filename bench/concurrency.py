"""N concurrent builds through the API on one stack: throughput, build times, orchestration.

    .venv/bin/python bench/concurrency.py [--n 1,2,4,8] [--noop-runs 5] [--vm] [--vm-n 1,2]

Starts its own stack (Temporal dev server, API server, one worker with the control role and the
docker executor, as `imagebuilder up` runs them: engine/up.py) on a temporary data directory,
with the worker's room (max_concurrent, capacity_vcpus) set to two instances per build of the
largest N (a build holds its build and its test instance at once), so no build waits for room.

For each N, N CreateImage calls go out at once (one thread each) on the end-to-end test's
container recipe (tests/builds/test_container_build.py: build, test in a container of the
result, push; package inventory off); each build's time is from its CreateImage call to the first
GetImage that shows it ended (one poller, every 0.1 s). Reported per N: failures, throughput
(builds / wall time from the first call to the last end, per minute), p50 and p95 build time,
and the orchestration overhead per step under that load.

Orchestration overhead per step comes from the builds' Temporal histories (the approach of
bench/container_build.py, whose functions this imports): per step activity, the workflow's
turnaround since the previous step completed (workflow task, records) plus the dispatch to the
executor worker (scheduled -> started). It is measured first on builds whose steps do nothing
(a component whose only step is `true`, no test stage), run one at a time; the table gives the
p50 and p95 over all their steps. Target: under 50 ms per step at p50.

--vm adds N concurrent machine-image builds (libvirt/QEMU, the managed offline Debian 12 disk, a
one-step component, no test stage) for N in --vm-n (1,2 by default). The stack's worker then also
runs the libvirt executor; under TCG (no KVM, as here) each VM build takes minutes.

Everything the builds made is removed by the builds themselves; the stack's processes and data
directory are removed at the end, also after Ctrl-C. Pushed tags stay in the registry.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.container_build import STEP_ACTIONS, _ms, histories
from engine import settings
from engine.up import Stack
from tests.api.conftest import Server, free_port, provision_keys
from tests.builds.test_container_build import COMPONENT, setup_build

REGISTRY = "127.0.0.1:5000"
NOOP = """name: noop
schemaVersion: 1.0
parameters:
  - Greeting:
      type: string
      default: unused
phases:
  - name: build
    steps:
      - name: Nothing
        action: ExecuteBash
        inputs:
          commands: ["true"]
"""
VM_PARENT = "arn:aws:imagebuilder:us-east-1:aws:image/debian-12/x.x.x"
#: Where a --vm stack's data lives: QEMU must reach its disks (a mkdtemp folder is 0700).
VM_ROOT = Path("/var/lib/imagebuilder/bench")


#: Builds started and not seen ended: cancelled on the way out after Ctrl-C or an error, so they
#: remove what they made before the stack stops.
OUTSTANDING: set[str] = set()


@dataclass
class Build:
    arn: str
    start: float
    end: float = 0.0
    status: str = ""
    reason: str = ""


def percentile(values: list[float], p: float) -> float:
    """Nearest rank: with few samples, a value that was really measured."""
    ranked = sorted(values)
    return ranked[max(0, math.ceil(p / 100 * len(ranked)) - 1)]


def run_concurrent(ib: Any, params: dict[str, Any], n: int, timeout: float) -> list[Build]:
    """N CreateImage calls at once; returns when every build has ended (or timed out)."""
    builds: list[Build] = []
    lock = threading.Lock()
    gate = threading.Barrier(n)

    def create() -> None:
        gate.wait()
        t0 = time.time()
        arn = ib.create_image(**params, clientToken=str(uuid.uuid4()))["imageBuildVersionArn"]
        with lock:
            builds.append(Build(arn, t0))
            OUTSTANDING.add(arn)

    threads = [threading.Thread(target=create) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    deadline = time.monotonic() + timeout
    while any(not b.end for b in builds) and time.monotonic() < deadline:
        for b in builds:
            if b.end:
                continue
            state = ib.get_image(imageBuildVersionArn=b.arn)["image"]["state"]
            if state["status"] in ("AVAILABLE", "FAILED", "CANCELLED"):
                b.end, b.status, b.reason = time.time(), state["status"], state.get("reason", "")
                OUTSTANDING.discard(b.arn)
        time.sleep(0.1)
    for b in builds:
        if not b.end:
            b.end, b.status, b.reason = time.time(), "TIMED OUT", f"not ended after {timeout:.0f} s"
    return builds


def cancel_outstanding(ib: Any) -> None:
    for arn in list(OUTSTANDING):
        with contextlib.suppress(Exception):
            ib.cancel_image_creation(imageBuildVersionArn=arn, clientToken=str(uuid.uuid4()))
    deadline = time.monotonic() + 120
    while OUTSTANDING and time.monotonic() < deadline:
        for arn in list(OUTSTANDING):
            with contextlib.suppress(Exception):
                if ib.get_image(imageBuildVersionArn=arn)["image"]["state"]["status"] in ("FAILED", "CANCELLED"):
                    OUTSTANDING.discard(arn)
        time.sleep(1)


def step_overheads(events: list[Any]) -> list[float]:
    """Per step activity of one build, in ms: the turnaround since the previous step completed
    (for the first step: since the workflow started) plus its dispatch (scheduled -> started)."""
    scheduled: dict[int, tuple[str, float]] = {}
    out: list[float] = []
    previous_done = _ms(events[0])
    turnaround: dict[int, float] = {}
    for e in events:
        if e.HasField("activity_task_scheduled_event_attributes"):
            name = e.activity_task_scheduled_event_attributes.activity_type.name
            scheduled[e.event_id] = (name, _ms(e))
            if name in STEP_ACTIONS:
                turnaround[e.event_id] = _ms(e) - previous_done
        elif e.HasField("activity_task_started_event_attributes"):
            sid = e.activity_task_started_event_attributes.scheduled_event_id
            name, at = scheduled[sid]
            if name in STEP_ACTIONS and sid in turnaround:
                out.append(turnaround.pop(sid) + _ms(e) - at)
        elif e.HasField("activity_task_completed_event_attributes"):
            name, _ = scheduled[e.activity_task_completed_event_attributes.scheduled_event_id]
            if name in STEP_ACTIONS:
                previous_done = _ms(e)
    return out


def overhead_of(address: str, builds: list[Build]) -> list[float]:
    done = [b.arn for b in builds if b.status == "AVAILABLE"]
    return [ms for events in histories(address, done) for ms in step_overheads(events)] if done else []


def row(kind: str, n: int, builds: list[Build], steps: list[float]) -> str:
    times = [b.end - b.start for b in builds]
    wall = max(b.end for b in builds) - min(b.start for b in builds)
    failed = [b for b in builds if b.status != "AVAILABLE"]
    per_step = f"{statistics.median(steps):9.0f}" if steps else f"{'-':>9}"
    return (
        f"{kind:<10}{n:>3}{len(failed):>9}{60 * len(builds) / wall:>13.2f}"
        f"{percentile(times, 50):>9.1f}{percentile(times, 95):>9.1f}{wall:>9.1f}{per_step}"
    )


def accel() -> str:
    from workers.vm_accel import detect

    found = detect()
    return f"guests under {found.kind.upper()}: {found.reason}"


def rounds(
    kind: str, ib: Any, params: dict[str, Any], ns: list[int], timeout: float, address: str, rows: list[str]
) -> int:
    """One round of N concurrent builds per N: a table row each; returns how many did not succeed."""
    failed = 0
    for n in ns:
        builds = run_concurrent(ib, params, n, timeout)
        rows.append(row(kind, n, builds, overhead_of(address, builds)))
        print(rows[-1], flush=True)
        for b in builds:
            if b.status != "AVAILABLE":
                failed += 1
                print(f"  {b.arn}: {b.status} {b.reason}", flush=True)
    return failed


def container_params(ib: Any, name: str, component: str, tests: bool) -> dict[str, Any]:
    params = setup_build(ib, name, component=component, tests=tests)
    params["enhancedImageMetadataEnabled"] = False  # no package inventory: a trivial build
    return params


def vm_params(ib: Any, name: str) -> dict[str, Any]:
    comp = ib.create_component(name=f"{name}-noop", semanticVersion="1.0.0", platform="Linux", data=NOOP)
    recipe = ib.create_image_recipe(
        name=name, semanticVersion="1.0.0", parentImage=VM_PARENT,
        components=[{"componentArn": comp["componentBuildVersionArn"]}],
    )  # fmt: skip
    infra = ib.create_infrastructure_configuration(
        name=f"{name}-infra", instanceProfileName="default", instanceTypes=["t3.micro"]
    )
    return {
        "imageRecipeArn": recipe["imageRecipeArn"],
        "infrastructureConfigurationArn": infra["infrastructureConfigurationArn"],
        "imageTestsConfiguration": {"imageTestsEnabled": False},
        "enhancedImageMetadataEnabled": False,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", default="1,2,4,8", help="concurrent container builds, comma-separated")
    parser.add_argument("--noop-runs", type=int, default=5, help="do-nothing builds for the per-step overhead")
    parser.add_argument("--vm", action="store_true", help="also VM builds (libvirt/QEMU; ~20 s each alone under TCG)")
    parser.add_argument("--vm-n", default="1,2", help="concurrent VM builds, comma-separated")
    parser.add_argument("--timeout", type=float, default=900, help="seconds one round of builds may take")
    parser.add_argument("--keep", action="store_true", help="keep the data directory (logs) for a look")
    args = parser.parse_args()
    ns = [int(x) for x in args.n.split(",") if x]
    vm_ns = [int(x) for x in args.vm_n.split(",") if x] if args.vm else []
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    if args.vm:
        VM_ROOT.mkdir(parents=True, exist_ok=True)
        data_dir = Path(tempfile.mkdtemp(prefix="concurrency-", dir=VM_ROOT))
        for folder in (data_dir, *data_dir.parents):
            if folder != Path("/"):
                folder.chmod(folder.stat().st_mode | 0o755)
    else:
        data_dir = Path(tempfile.mkdtemp(prefix="ib-bench-concurrency-"))
    port = free_port()
    config = settings.load(
        argparse.Namespace(
            data_dir=str(data_dir), port=str(port), registry=REGISTRY, log_level="warning",
            # A container build holds two instances in its test stage (the build's and the test's),
            # each counted as 1 vCPU and 1 GiB: room for the largest N, so no build waits for room.
            max_concurrent=str(2 * max(ns + vm_ns + [1])), capacity_vcpus=str(2 * max(ns + vm_ns + [1])),
        )
    )  # fmt: skip
    if args.vm:
        from workers.vm_images import managed_parent

        os.environ["IMAGEBUILDER_LIBVIRT_INSTANCES"] = str(data_dir / "instances")  # the worker inherits it
        managed_parent("debian-12")  # made (or found in the cache) now, not inside the first build's time
    stack = Stack(config, ["docker", "libvirt"] if args.vm else ["docker"], free_port(), free_port())
    address = f"127.0.0.1:{stack.temporal_port}"
    failures = 0
    ib: Any = None
    try:
        provision_keys(data_dir)  # the test accounts' access keys, which Server.client signs with
        stack.start()
        api = next(p for name, p in stack.procs if name == "api")
        ib = Server(f"http://127.0.0.1:{port}", data_dir, api, stack.logs / "api.log").client()
        tag = uuid.uuid4().hex[:6]
        print(
            f"data {data_dir}; worker max_concurrent {config.max_concurrent} instances, "
            f"capacity_vcpus {config.capacity_vcpus} (this host has {os.cpu_count()} CPUs)",
            flush=True,
        )

        # Warm-up (untimed): the parent's layers reach the registry, the worker's caches fill.
        warm = run_concurrent(ib, container_params(ib, f"warm-{tag}", COMPONENT, True), 1, args.timeout)
        print(f"warm-up: {warm[0].status} in {warm[0].end - warm[0].start:.1f} s", flush=True)

        noop = container_params(ib, f"noop-{tag}", NOOP, tests=False)
        noop_builds = [b for _ in range(args.noop_runs) for b in run_concurrent(ib, noop, 1, args.timeout)]
        noop_steps = overhead_of(address, noop_builds)
        failures += sum(b.status != "AVAILABLE" for b in noop_builds)

        header = f"{'kind':<10}{'N':>3}{'failed':>9}{'builds/min':>13}{'p50 s':>9}{'p95 s':>9}{'wall s':>9}"
        rows = [header + f"{'orch/step p50 ms':>18}"]
        params = container_params(ib, f"conc-{tag}", COMPONENT, tests=True)
        failures += rounds("container", ib, params, ns, args.timeout, address, rows)
        if vm_ns:
            print(f"VM builds ({accel()})", flush=True)
            vparams = vm_params(ib, f"vm-{tag}")
            failures += rounds("vm", ib, vparams, vm_ns, max(args.timeout, 3600), address, rows)

        print("\nconcurrent builds through the API, time from CreateImage to AVAILABLE; container: build + test + "
              "push of a trivial image; vm: a one-step component on the Debian 12 disk, capture, no test stage, "
              f"{accel()}")  # fmt: skip
        print("\n".join(rows))
        if not vm_ns:
            print("VM builds: not run (add --vm)")
        if noop_steps:
            p50, p95 = statistics.median(noop_steps), percentile(noop_steps, 95)
            verdict = "OK" if p50 < 50 else "ABOVE TARGET"
            print(
                f"orchestration overhead per step, do-nothing builds ({len(noop_builds)} builds, "
                f"{len(noop_steps)} steps, one at a time): p50 {p50:.0f} ms, p95 {p95:.0f} ms "
                f"(target < 50 ms at p50: {verdict})"
            )
        eight = [r for r in rows[1:] if r.startswith("container") and r.split()[1] == "8"]
        if eight:
            print(f"8 concurrent container builds: {'no failure' if eight[0].split()[2] == '0' else 'FAILURES'}")
        print(f"failures: {failures}")
        return 1 if failures else 0
    except KeyboardInterrupt:
        print("interrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        if ib is not None and OUTSTANDING:
            cancel_outstanding(ib)
        stack.stop()
        if args.keep:
            print(f"kept {data_dir}", file=sys.stderr)
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
