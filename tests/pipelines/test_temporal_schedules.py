"""Pipelines as Temporal Schedules on the real Temporal dev server (the time-skipping test
server has no Schedules API): the schedule fires when the expression says, in its time zone
(Temporal's own next action times against our parser's), follows the pipeline through
CreateImagePipeline, UpdateImagePipeline (in place), DISABLED/ENABLED and DeleteImagePipeline,
is made by reconciliation when Temporal was unreachable at create time, and a real tick runs
the pipeline, whose failure auto-disables it and pauses the schedule."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, Schedule, ScheduleActionStartWorkflow, ScheduleState
from temporalio.service import RPCError

from engine.builds.control import control_worker
from engine.pipelines.schedule_expr import next_fire_times, parse
from engine.pipelines.schedules import reconcile, schedule_id
from engine.pipelines.temporal_spec import to_spec
from engine.store import Store
from tests.api.conftest import ACCOUNT, Server, start_server, stop_server
from tests.builds.conftest import Temporal
from workers.blobstore import BlobStore

ARN = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}"
GATE = """name: gate
schemaVersion: 1.0
steps:
  - name: Approval
    action: WaitForAction
    timeoutSeconds: 3600
"""


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def connect(temporal: Temporal) -> Client:
    return await Client.connect(temporal.address)


async def describe(temporal: Temporal, sid: str) -> Any:
    return await (await connect(temporal)).get_schedule_handle(sid).describe()


@pytest.mark.parametrize(
    ("expression", "zone", "start"),
    [
        ("cron(0 9 ? * MON-FRI *)", "America/Los_Angeles", datetime(2030, 3, 1, tzinfo=UTC)),  # across DST
        ("cron(30 22 ? * tue#2 *)", "UTC", datetime(2027, 1, 1, tzinfo=UTC)),
        ("cron(0/15 * L * ? 2027-2030)", "UTC", datetime(2028, 2, 28, 23, tzinfo=UTC)),  # leap February
        ("cron(0 12 LW * ? *)", "Asia/Tokyo", datetime(2027, 1, 1, tzinfo=UTC)),
        ("cron(0 9 15W * ? *)", "Europe/Berlin", datetime(2027, 1, 1, tzinfo=UTC)),
        ("cron(0 9 1W * ? *)", "UTC", datetime(2027, 1, 1, tzinfo=UTC)),
        ("cron(0 9 31W * ? *)", "UTC", datetime(2027, 1, 1, tzinfo=UTC)),
        ("cron(0 6 ? * 6L *)", "Australia/Sydney", datetime(2027, 1, 1, tzinfo=UTC)),
        ("cron(0 6 ? * L *)", "UTC", datetime(2027, 1, 1, tzinfo=UTC)),
        ("cron(30 2 * * ? *)", "America/New_York", datetime(2030, 3, 5, tzinfo=UTC)),  # 02:30 skipped once
        ("cron(5,35 */6 ? JAN-MAR,NOV SUN#1,FRI#5 *)", "UTC", datetime(2027, 1, 1, tzinfo=UTC)),
        ("cron(0 0 L 2 ? *)", "UTC", datetime(2095, 1, 1, tzinfo=UTC)),  # 2100 is no leap year
        ("rate(7 hours)", "UTC", datetime(2027, 1, 1, 3, 20, tzinfo=UTC)),
    ],
)
def test_temporal_fires_when_the_expression_says(
    temporal: Temporal, expression: str, zone: str, start: datetime
) -> None:
    """Temporal's next action times for the translated spec are the times our parser computes."""
    parsed = parse(expression)
    anchor = start - timedelta(minutes=1)  # a rate set a minute before the window starts
    spec = dataclasses.replace(to_spec(parsed, zone, anchor=anchor), start_at=start)
    sid = f"spec-check/{abs(hash((expression, zone)))}"

    async def check() -> tuple[list[datetime], list[datetime]]:
        client = await connect(temporal)
        action = ScheduleActionStartWorkflow("Nothing", id="nothing", task_queue="nowhere")
        handle = await client.create_schedule(sid, Schedule(action=action, spec=spec, state=ScheduleState(paused=True)))
        try:
            theirs = list((await handle.describe()).info.next_action_times)
        finally:
            await handle.delete()
        return theirs, next_fire_times(parsed, start, zone, anchor=anchor, count=len(theirs))

    theirs, ours = run(check())
    assert len(theirs) >= 5 and theirs == ours


@pytest.fixture(scope="module")
def api(temporal: Temporal, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("pipelines-api")
    server = start_server(data, env={"IMAGEBUILDER_TEMPORAL_ADDRESS": temporal.address})
    yield server
    stop_server(server)


def setup(ib: Any, name: str) -> dict[str, Any]:
    recipe = ib.create_image_recipe(name=f"r-{name}", semanticVersion="1.0.0", parentImage="debian-12")
    infra = ib.create_infrastructure_configuration(name=f"i-{name}", instanceProfileName="local")
    gates = [
        ib.create_workflow(name=f"gate-{name}-{t.lower()}", semanticVersion="1.0.0", type=t, data=GATE)[
            "workflowBuildVersionArn"
        ]
        for t in ("BUILD", "DISTRIBUTION")
    ]
    return {
        "imageRecipeArn": recipe["imageRecipeArn"],
        "infrastructureConfigurationArn": infra["infrastructureConfigurationArn"],
        "workflows": [{"workflowArn": g} for g in gates],
        "executionRole": "arn:aws:iam::123456789012:role/builder",
        "imageTestsConfiguration": {"imageTestsEnabled": False},
    }


def upcoming(expression: str, zone: str, count: int) -> list[datetime]:
    return next_fire_times(parse(expression), datetime.now(UTC), zone, count=count)


def test_the_api_keeps_the_schedule(api: Server, temporal: Temporal) -> None:
    ib = api.client()
    base = setup(ib, "kept")
    weekday = {"scheduleExpression": "cron(0 9 ? * MON-FRI *)", "timezone": "America/Los_Angeles"}
    arn = ib.create_image_pipeline(name="kept", schedule=weekday, **base)["imagePipelineArn"]
    sid = schedule_id(arn)
    assert sid == "image-pipeline/kept"
    d = run(describe(temporal, sid))
    assert not d.schedule.state.paused
    assert list(d.info.next_action_times[:5]) == upcoming("cron(0 9 ? * MON-FRI *)", "America/Los_Angeles", 5)
    got = ib.get_image_pipeline(imagePipelineArn=arn)["imagePipeline"]
    assert got["dateNextRun"] == d.info.next_action_times[0].strftime("%Y-%m-%dT%H:%M:%S.000Z")

    # Update in place: same schedule, new expression and time zone.
    last_day = {"scheduleExpression": "cron(30 6 L * ? *)", "timezone": "Asia/Tokyo"}
    ib.update_image_pipeline(imagePipelineArn=arn, schedule=last_day, **base)
    d = run(describe(temporal, sid))
    assert list(d.info.next_action_times[:5]) == upcoming("cron(30 6 L * ? *)", "Asia/Tokyo", 5)

    # DISABLED pauses it; ENABLED resumes it.
    ib.update_image_pipeline(imagePipelineArn=arn, schedule=last_day, status="DISABLED", **base)
    d = run(describe(temporal, sid))
    assert d.schedule.state.paused and "dateNextRun" not in ib.get_image_pipeline(imagePipelineArn=arn)["imagePipeline"]
    ib.update_image_pipeline(imagePipelineArn=arn, schedule=last_day, status="ENABLED", **base)
    assert not run(describe(temporal, sid)).schedule.state.paused

    # No schedule expression: no schedule (manual runs only). Deleted pipeline: none either.
    ib.update_image_pipeline(imagePipelineArn=arn, **base)
    with pytest.raises(RPCError):
        run(describe(temporal, sid))
    ib.update_image_pipeline(imagePipelineArn=arn, schedule=weekday, **base)
    assert run(describe(temporal, sid)).schedule.spec.time_zone_name == "America/Los_Angeles"
    ib.delete_image_pipeline(imagePipelineArn=arn)
    with pytest.raises(RPCError):
        run(describe(temporal, sid))


def test_a_pipeline_made_while_temporal_was_away_gets_its_schedule(temporal: Temporal, tmp_path: Path) -> None:
    away = start_server(tmp_path, env={"IMAGEBUILDER_TEMPORAL_ADDRESS": "127.0.0.1:9"})  # nothing listens
    try:
        ib = away.client()
        started = time.monotonic()
        arn = ib.create_image_pipeline(
            name="offline", schedule={"scheduleExpression": "rate(12 hours)"}, **setup(ib, "offline")
        )["imagePipelineArn"]
        assert time.monotonic() - started < 5  # answered, not stuck on Temporal
        assert ib.get_image_pipeline(imagePipelineArn=arn)["imagePipeline"]["dateNextRun"]
    finally:
        stop_server(away)
    with pytest.raises(RPCError):
        run(describe(temporal, schedule_id(arn)))

    # What the control worker does at start and every few minutes, against the store it shares.
    store = Store(f"sqlite:///{tmp_path.resolve() / 'imagebuilder.sqlite'}")

    async def reconcile_now() -> dict[str, str]:
        client = await connect(temporal)
        done = await reconcile(client, store)
        again = await reconcile(client, store)
        return {**{f"again:{k}": v for k, v in again.items()}, **done}

    done = run(reconcile_now())
    store.dispose()
    assert done["image-pipeline/offline"] == "created" and done["again:image-pipeline/offline"] == "unchanged"
    d = run(describe(temporal, "image-pipeline/offline"))
    every = d.schedule.spec.intervals[0]
    assert every.every.total_seconds() == 12 * 3600
    run(_delete(temporal, "image-pipeline/offline"))


async def _delete(temporal: Temporal, sid: str) -> None:
    await (await connect(temporal)).get_schedule_handle(sid).delete()


class ControlWorker:
    """The real control worker, in a thread of this process, on the API server's store."""

    def __init__(self, temporal: Temporal, data_dir: Path) -> None:
        self.temporal, self.data_dir = temporal, data_dir
        self.stop = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        client = await connect(self.temporal)
        store = Store(f"sqlite:///{self.data_dir.resolve() / 'imagebuilder.sqlite'}")
        worker = control_worker(client, store, BlobStore(self.data_dir / "store"), "us-east-1", ACCOUNT, "")
        async with worker:
            while not self.stop.is_set():
                await asyncio.sleep(0.1)
        store.dispose()

    def __enter__(self) -> ControlWorker:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)


def test_a_tick_runs_the_pipeline_and_failures_disable_it(api: Server, temporal: Temporal) -> None:
    ib = api.client()
    schedule = {
        "scheduleExpression": "cron(* * ? * * *)",  # every minute: the test waits for a real tick
        "timezone": "Europe/Berlin",
        "pipelineExecutionStartCondition": "EXPRESSION_MATCH_ONLY",
        "autoDisablePolicy": {"failureCount": 1},
    }
    with ControlWorker(temporal, api.data_dir):
        arn = ib.create_image_pipeline(name="ticking", schedule=schedule, **setup(ib, "ticking"))["imagePipelineArn"]
        image_arn = None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and image_arn is None:
            images = ib.list_image_pipeline_images(imagePipelineArn=arn)["imageSummaryList"]
            image_arn = images[0]["arn"] if images else None
            time.sleep(0.5)
        assert image_arn, "the schedule never ran the pipeline"
        image = ib.get_image(imageBuildVersionArn=image_arn)["image"]
        assert image["buildType"] == "SCHEDULED"
        # Stop the build at its gate: the scheduled run fails, and one failure disables.
        step = None
        while time.monotonic() < deadline and step is None:
            waiting = ib.list_waiting_workflow_steps()["steps"]
            step = next((s for s in waiting if s["imageBuildVersionArn"] == image_arn), None)
            time.sleep(0.2)
        assert step is not None
        ib.send_workflow_step_action(
            stepExecutionId=step["stepExecutionId"], imageBuildVersionArn=image_arn, action="STOP", reason="test"
        )
        pipeline: dict[str, Any] = {}
        while time.monotonic() < deadline + 30:
            pipeline = ib.get_image_pipeline(imagePipelineArn=arn)["imagePipeline"]
            if pipeline["status"] == "DISABLED":
                break
            time.sleep(0.3)
        assert pipeline["status"] == "DISABLED" and pipeline["consecutiveFailures"] == 1
        assert pipeline["lastRunStatus"] == "FAILED"
        d = run(describe(temporal, schedule_id(arn)))
        assert d.schedule.state.paused and "1 consecutive failed scheduled runs" in (d.schedule.state.note or "")
        ib.delete_image_pipeline(imagePipelineArn=arn)
