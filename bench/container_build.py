"""Container build through the API vs the same work by hand, and where the API's extra time goes.

    .venv/bin/python bench/container_build.py [--runs 3] [--timeline]

Starts its own stack (Temporal dev server, API server, worker: engine/up.py) on a temporary data
directory and creates the recipe of the end-to-end test (tests/builds/test_container_build.py).
Each run measures:

(a) API: CreateImage -> GetImage AVAILABLE (build, test in a container of the result, push of the
    version tag and "stable"), timed from the CreateImage call to the first GetImage that shows
    AVAILABLE (polled every 50 ms, so polling adds at most that);
(b) by hand, with the docker SDK: `docker build --no-cache` of the equivalent Dockerfile (the
    component's build and validate commands as RUN lines), `docker run --rm` of the result running
    the test command, `docker tag` + `docker push` of both tags to another repository of the same
    registry.

Both builds run without the build cache (the executor never uses it), so each run pushes new
component layers while the parent image's layer already exists in the registry: one untimed
warm-up run of each makes that true from the first measured run on. The push outcome of every
layer is printed so this can be checked.

Orchestration overhead comes from ListWorkflowExecutions / ListWorkflowStepExecutions: the sum
of step durations against the total, and the gaps (time in Temporal and in recording the steps,
not in the executor); and from the builds' Temporal histories: per step, the dispatch to the
executor worker and the workflow's turnaround between steps (--timeline prints the last build's
history event by event). Metadata collection is off for the API build: the hand build takes no
package inventory. Everything it made (containers, hand-built images, the stack's processes,
the data directory) is removed at the end, also after Ctrl-C or a failure. Pushed tags stay in
the registry (it has no delete API enabled).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import signal
import statistics
import sys
import tarfile
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import docker
import docker.errors

from engine import settings
from engine.up import Stack
from tests.api.conftest import Server, free_port, provision_keys
from tests.builds.test_container_build import setup_build

REGISTRY = "127.0.0.1:5000"
PARENT = "imagebuilder/debian:12"
BENCH_LABEL = "imagebuilder.bench"
TARGET = 1.3
# The e2e test's recipe, written by hand: the component's build (CreateFile) and validate steps as
# RUN lines, the template's own ENV/CMD after them; WORKDIR is what {{{ environments }}} renders to.
HAND_DOCKERFILE = f"""FROM {PARENT}
WORKDIR /tmp
RUN printf '%s' 'hi from the factory' > /etc/motd
RUN grep -q factory /etc/motd
ENV BUILT_BY=imagebuilder
CMD ["cat", "/etc/motd"]
"""
HAND_TEST = ["sh", "-c", "grep -q 'hi from the factory' /etc/motd"]
#: Activities that are workflow steps (the rest write records or clean up).
STEP_ACTIONS = frozenset(
    {"LaunchInstance", "BootstrapInstanceForContainer", "ExecuteComponents", "DistributeContainerImage",
     "TerminateInstance", "CollectImageMetadata"}
)  # fmt: skip


@dataclass
class Step:
    stage: str
    name: str
    start: float
    end: float


@dataclass
class ApiRun:
    arn: str
    total: float
    created: float
    available: float
    steps: list[Step]
    pushes: Counter[str] = field(default_factory=Counter)


@dataclass
class HandRun:
    total: float
    build: float
    test: float
    push: float
    pushes: Counter[str] = field(default_factory=Counter)


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _push_status(line: dict[str, Any], seen: Counter[str]) -> None:
    """Count each layer's final push outcome: Pushed, Layer already exists, Mounted from ..."""
    status = str(line.get("status") or "")
    if line.get("id") and (status in ("Pushed", "Layer already exists") or status.startswith("Mounted from")):
        seen["Mounted" if status.startswith("Mounted") else status] += 1


# -- (a) the API ----------------------------------------------------------------------------------


def api_run(ib: Any, params: dict[str, Any], data_dir: Path) -> ApiRun:
    t0 = time.time()
    arn = ib.create_image(**params)["imageBuildVersionArn"]
    while True:
        state = ib.get_image(imageBuildVersionArn=arn)["image"]["state"]
        if state["status"] == "AVAILABLE":
            break
        if state["status"] in ("FAILED", "CANCELLED"):
            raise RuntimeError(f"the API build ended {state['status']}: {state.get('reason')}")
        time.sleep(0.05)
    t1 = time.time()
    steps = []
    for ex in ib.list_workflow_executions(imageBuildVersionArn=arn)["workflowExecutions"]:
        listed = ib.list_workflow_step_executions(workflowExecutionId=ex["workflowExecutionId"])["steps"]
        steps += [Step(ex["type"], s["name"], _ts(s["startTime"]), _ts(s["endTime"])) for s in listed]
    steps.sort(key=lambda s: s.start)
    pushes: Counter[str] = Counter()
    # The executor logs the registry's answers to push.log in the step's log folder.
    version, build = arn.rsplit("/", 2)[-2:]
    for log in (data_dir / "store" / "logs").rglob("push.log"):
        if f"/{version}/{build}/" in str(log):
            for raw in log.read_text().splitlines():
                with contextlib.suppress(ValueError, SyntaxError):
                    _push_status(_literal(raw), pushes)
    return ApiRun(arn, t1 - t0, t0, t1, steps, pushes)


def _literal(raw: str) -> dict[str, Any]:
    import ast

    value = ast.literal_eval(raw)  # the executor writes each decoded line as a Python dict
    return value if isinstance(value, dict) else {}


# -- (b) by hand ----------------------------------------------------------------------------------


def hand_run(client: docker.DockerClient, repository: str, number: int, label: str) -> HandRun:
    api = client.api
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        data = HAND_DOCKERFILE.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    t0 = time.monotonic()
    image = ""
    for line in api.build(
        fileobj=context, custom_context=True, nocache=True, rm=True, forcerm=True, decode=True,
        labels={BENCH_LABEL: label}, pull=False,
    ):  # fmt: skip
        if "error" in line:
            raise RuntimeError(f"hand build failed: {line['error']}")
        aux = line.get("aux")
        if isinstance(aux, dict) and "ID" in aux:
            image = aux["ID"]
    t1 = time.monotonic()
    client.containers.run(image, HAND_TEST, remove=True, labels={BENCH_LABEL: label})
    t2 = time.monotonic()
    pushes: Counter[str] = Counter()
    remote = f"{REGISTRY}/{repository}"
    for tag in (f"1.0.0-{number}", "stable"):
        api.tag(image, remote, tag)
        for line in api.push(remote, tag=tag, stream=True, decode=True):
            if "error" in line:
                raise RuntimeError(f"hand push failed: {line['error']}")
            _push_status(line, pushes)
    t3 = time.monotonic()
    return HandRun(t3 - t0, t1 - t0, t2 - t1, t3 - t2, pushes)


def remove_hand_images(client: docker.DockerClient, label: str, repository: str) -> None:
    for c in client.containers.list(all=True, filters={"label": f"{BENCH_LABEL}={label}"}):
        with contextlib.suppress(docker.errors.APIError):
            c.remove(force=True)
    for img in client.images.list(name=f"{REGISTRY}/{repository}"):
        for tag in img.tags:
            with contextlib.suppress(docker.errors.APIError):
                client.images.remove(tag)
    for img in client.images.list(filters={"label": f"{BENCH_LABEL}={label}"}):
        with contextlib.suppress(docker.errors.APIError):
            client.images.remove(img.id, force=True)


# -- reporting ------------------------------------------------------------------------------------


def _stats(values: list[float]) -> str:
    return f"{statistics.median(values):7.2f} {min(values):7.2f}"


def _pushes(counts: list[Counter[str]]) -> str:
    total: Counter[str] = Counter()
    for c in counts:
        total.update(c)
    per = len(counts) or 1
    return ", ".join(f"{v / per:g} {k}" for k, v in sorted(total.items())) or "none seen"


def report(api_runs: list[ApiRun], hand_runs: list[HandRun]) -> None:
    print(f"\n{'':<44}{'median':>7} {'min':>7}  (seconds, {len(api_runs)} runs)")
    print(f"{'(a) API: CreateImage -> AVAILABLE':<44}{_stats([r.total for r in api_runs])}")
    print(f"{'(b) by hand: build + run + tag/push x2':<44}{_stats([r.total for r in hand_runs])}")
    print(f"{'      docker build --no-cache':<44}{_stats([r.build for r in hand_runs])}")
    print(f"{'      docker run --rm (test)':<44}{_stats([r.test for r in hand_runs])}")
    print(f"{'      docker tag + push (2 tags)':<44}{_stats([r.push for r in hand_runs])}")
    ratio_med = statistics.median(r.total for r in api_runs) / statistics.median(r.total for r in hand_runs)
    ratio_min = min(r.total for r in api_runs) / min(r.total for r in hand_runs)
    verdict = "OK" if ratio_med <= TARGET else "ABOVE TARGET"
    print(f"ratio API / hand: median {ratio_med:.2f}x, min {ratio_min:.2f}x (target <= {TARGET}x: {verdict})")
    print(
        f"layer pushes per run: API {_pushes([r.pushes for r in api_runs])}; "
        f"hand {_pushes([r.pushes for r in hand_runs])}"
    )

    # Per step, median over runs; the gap is the time before it since the previous step ended
    # (for the first step: since CreateImage), i.e. Temporal scheduling plus the record writes.
    names: list[tuple[str, str]] = []
    for r in api_runs:
        for s in r.steps:
            if (s.stage, s.name) not in names:
                names.append((s.stage, s.name))
    rows: dict[tuple[str, str], tuple[list[float], list[float]]] = {n: ([], []) for n in names}
    sums, gaps, tails = [], [], []
    for r in api_runs:
        prev = r.created
        for s in r.steps:
            rows[(s.stage, s.name)][0].append(s.end - s.start)
            rows[(s.stage, s.name)][1].append(s.start - prev)
            prev = s.end
        sums.append(sum(s.end - s.start for s in r.steps))
        tails.append(r.available - prev)
        gaps.append(r.total - sums[-1])
    print(f"\n{'stage':<13}{'step':<27}{'step s':>8}{'gap before s':>14}   (medians)")
    for (stage, name), (durations, before) in rows.items():
        print(f"{stage:<13}{name:<27}{statistics.median(durations):>8.3f}{statistics.median(before):>14.3f}")
    print(f"{'':<13}{'after last step':<27}{'':>8}{statistics.median(tails):>14.3f}")
    total = statistics.median(r.total for r in api_runs)
    print(
        f"sum of steps {statistics.median(sums):.2f} s of {total:.2f} s total; "
        f"gaps (Temporal + records + GetImage polling <= 0.05 s) {statistics.median(gaps):.2f} s "
        f"({100 * statistics.median(gaps) / total:.0f}%)"
    )
    # startTime is taken before the RUNNING record and the activity's dispatch, so a step's time
    # holds some orchestration too: what a trivial step (Launch/Bootstrap/Terminate) takes.
    print("(a step's time includes its RUNNING record write and activity dispatch; see the trivial steps)")


# -- main -----------------------------------------------------------------------------------------


# -- Temporal's view: where the orchestration's time goes -----------------------------------------


def histories(address: str, image_arns: list[str]) -> list[Any]:
    """The builds' Temporal histories (event lists)."""
    import asyncio

    from temporalio.client import Client

    from engine.builds.model import workflow_id

    async def fetch() -> list[Any]:
        client = await Client.connect(address)
        return [(await client.get_workflow_handle(workflow_id(arn)).fetch_history()).events for arn in image_arns]

    return asyncio.run(fetch())


def _ms(event: Any) -> float:
    return 1000 * float(event.event_time.ToDatetime().timestamp())


def orchestration(events: list[Any]) -> dict[str, float]:
    """Per build, in ms: before the first step is dispatched, the steps' dispatch (scheduled to
    started on the executor worker), the workflow's turnaround (a step's completion to the next
    step's scheduling: workflow task, records) and after the last step (the final state)."""
    from temporalio.api.enums.v1 import EventType

    names: dict[int, tuple[str, float]] = {}
    out = {"steps": 0.0, "first": 0.0, "dispatch": 0.0, "turnaround": 0.0, "last": 0.0, "tasks": 0.0}
    done = None
    for e in events:
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            out["tasks"] += 1
        if e.HasField("activity_task_scheduled_event_attributes"):
            name = e.activity_task_scheduled_event_attributes.activity_type.name
            names[e.event_id] = (name, _ms(e))
            if name in STEP_ACTIONS:
                out["steps"] += 1
                if done is None:
                    out["first"] = _ms(e) - _ms(events[0])
                else:
                    out["turnaround"] += _ms(e) - done
        elif e.HasField("activity_task_started_event_attributes"):
            name, scheduled = names[e.activity_task_started_event_attributes.scheduled_event_id]
            if name in STEP_ACTIONS:
                out["dispatch"] += _ms(e) - scheduled
        elif e.HasField("activity_task_completed_event_attributes"):
            completed = names[e.activity_task_completed_event_attributes.scheduled_event_id][0]
            done = _ms(e) if completed in STEP_ACTIONS else done
    out["last"] = _ms(events[-1]) - (done or _ms(events[0]))
    return out


def report_orchestration(runs: list[dict[str, float]]) -> None:
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    steps = med["steps"] or 1
    per_step = (med["dispatch"] + med["turnaround"]) / steps
    print(
        f"\norchestration (Temporal histories, medians): {med['steps']:.0f} step activities, "
        f"{med['tasks']:.0f} workflow tasks; per step {per_step:.0f} ms "
        f"(dispatch {med['dispatch'] / steps:.0f} + workflow turnaround {med['turnaround'] / steps:.0f}); "
        f"before the first step {med['first']:.0f} ms, after the last {med['last']:.0f} ms"
    )


def timeline(events: list[Any]) -> None:
    """One build's history, one line per event (ms since the workflow started)."""
    from temporalio.api.enums.v1 import EventType

    names: dict[int, str] = {}
    print(f"\nTemporal history of the last API run ({len(events)} events)")
    for e in events:
        kind = EventType.Name(e.event_type).removeprefix("EVENT_TYPE_")
        what = ""
        if e.HasField("activity_task_scheduled_event_attributes"):
            names[e.event_id] = what = e.activity_task_scheduled_event_attributes.activity_type.name
        for attr in ("activity_task_started_event_attributes", "activity_task_completed_event_attributes"):
            if e.HasField(attr):
                what = names.get(getattr(e, attr).scheduled_event_id, "")
        if e.HasField("marker_recorded_event_attributes"):
            what = e.marker_recorded_event_attributes.marker_name
        print(f"{_ms(e) - _ms(events[0]):8.1f} ms  {kind:<28} {what}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the data directory (logs) for a look")
    parser.add_argument("--timeline", action="store_true", help="print the last API run's Temporal history")
    args = parser.parse_args()
    # SIGTERM takes the same cleanup path as Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    data_dir = Path(tempfile.mkdtemp(prefix="ib-bench-build-"))
    port = free_port()
    config = settings.load(
        argparse.Namespace(data_dir=str(data_dir), port=str(port), registry=REGISTRY, log_level="info")
    )
    stack = Stack(config, ["docker"], free_port(), free_port())
    client = docker.from_env(timeout=600)
    tag = uuid.uuid4().hex[:6]
    label, hand_repo = f"bench-{tag}", f"bench/hand-{tag}"
    try:
        client.images.get(PARENT)
        provision_keys(data_dir)  # the test accounts' access keys, which Server.client signs with
        stack.start()
        api_proc = next(p for name, p in stack.procs if name == "api")
        ib = Server(f"http://127.0.0.1:{port}", data_dir, api_proc, stack.logs / "api.log").client()
        params = setup_build(ib, f"bench-{tag}")
        # The hand build takes no package inventory, so the API build does not either: the same
        # work on both sides (metadata collection is a step of its own, InventoryCollection).
        params["enhancedImageMetadataEnabled"] = False
        print(f"data {data_dir}; API repository factory/bench-{tag}, hand repository {hand_repo}", flush=True)
        api_runs, hand_runs = [], []
        for i in range(args.runs + 1):
            # Interleaved, so a busy docker engine slows both the same way; run 0 is the warm-up.
            a = api_run(ib, params, data_dir)
            h = hand_run(client, hand_repo, i + 1, label)
            what = "warm-up" if i == 0 else f"run {i}"
            print(f"{what:<8} API {a.total:6.2f} s   hand {h.total:6.2f} s", flush=True)
            if i:
                api_runs.append(a)
                hand_runs.append(h)
        report(api_runs, hand_runs)
        events = histories(f"127.0.0.1:{stack.temporal_port}", [r.arn for r in api_runs])
        report_orchestration([orchestration(e) for e in events])
        if args.timeline:
            timeline(events[-1])
        return 0
    except KeyboardInterrupt:
        print("interrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        remove_hand_images(client, label, hand_repo)
        stack.stop()
        if args.keep:
            print(f"kept {data_dir}", file=sys.stderr)
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
