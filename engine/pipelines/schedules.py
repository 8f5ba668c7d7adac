"""Image pipelines as Temporal Schedules: one schedule per pipeline with a schedule expression,
whose action starts an ImagePipelineRun workflow on the control queue.

The pipeline record is the truth; the schedule follows it. The API applies a pipeline's
schedule after each create, update or delete commits, and the control worker reconciles every
pipeline with its schedule when it starts and every few minutes after, so a schedule Temporal
never got (it was down) or a stale one is put right. Each schedule carries the version of the
pipeline it was made from (``_scheduleVersion``, in the action's memo): an older writer never
overwrites a newer schedule.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.converter import DataConverter
from temporalio.service import RPCError, RPCStatusCode

from engine.pipelines.model import RUN_WORKFLOW, PipelineRunInput
from engine.pipelines.schedule_expr import parse
from engine.pipelines.temporal_spec import to_spec
from engine.store import Store
from workers.contracts import CONTROL_QUEUE

log = logging.getLogger(__name__)

KIND = "image-pipeline"
SCHEDULE_PREFIX = "image-pipeline/"
VERSION_MEMO = "pipelineScheduleVersion"
DEFAULT_CATCHUP = timedelta(days=1)


def new_version() -> int:
    """A pipeline schedule version: milliseconds since the epoch, so a pipeline deleted and
    made again under the same name still counts up."""
    return time.time_ns() // 1_000_000


def pipeline_name(pipeline_arn: str) -> str:
    return pipeline_arn.split(":image-pipeline/", 1)[1]


def schedule_id(pipeline_arn: str) -> str:
    """Readable and unique per pipeline: 'image-pipeline/nightly-web'."""
    return SCHEDULE_PREFIX + pipeline_name(pipeline_arn)


@dataclass(frozen=True)
class PipelineSchedule:
    """What a pipeline's Temporal schedule should be: None when it has no schedule expression
    (manual only) or one that never fires in the years Temporal knows."""

    id: str
    version: int
    schedule: Schedule | None


def desired(pipeline: dict[str, Any], catchup: timedelta = DEFAULT_CATCHUP) -> PipelineSchedule:
    arn = str(pipeline["arn"])
    version = int(pipeline.get("_scheduleVersion") or 0)
    sched = pipeline.get("schedule") or {}
    expression = sched.get("scheduleExpression")
    if not expression:
        return PipelineSchedule(schedule_id(arn), version, None)
    anchor = datetime.fromisoformat(str(pipeline.get("_scheduleAnchor") or pipeline["dateUpdated"]))
    spec = to_spec(parse(expression), sched.get("timezone") or "UTC", anchor)
    if not spec.calendars and not spec.intervals:
        return PipelineSchedule(schedule_id(arn), version, None)
    disabled = pipeline.get("status") == "DISABLED"
    note = str(pipeline.get("_disabledReason") or "disabled (UpdateImagePipeline)") if disabled else None
    action = ScheduleActionStartWorkflow(
        RUN_WORKFLOW,
        PipelineRunInput(arn),
        id="image-pipeline-run/" + pipeline_name(arn),  # Temporal appends the scheduled time
        task_queue=CONTROL_QUEUE,
        memo={VERSION_MEMO: version},
    )
    # SKIP: a tick while this pipeline's previous run still builds is dropped, never queued.
    # catchup_window: ticks missed while Temporal was down run (once, by SKIP) if no older.
    policy = SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=catchup)
    state = ScheduleState(paused=disabled, note=note)
    return PipelineSchedule(schedule_id(arn), version, Schedule(action=action, spec=spec, policy=policy, state=state))


def _version_of(description: Any) -> int:
    fields = description.raw_description.schedule.action.start_workflow.memo.fields
    if VERSION_MEMO not in fields:
        return -1
    value = DataConverter.default.payload_converter.from_payloads([fields[VERSION_MEMO]])[0]
    return int(value)


async def apply(client: Client, want: PipelineSchedule, deleted: bool = False) -> str:
    """Make the Temporal schedule match `want` (or remove it when the pipeline is deleted).
    Returns what was done: created, updated, deleted, unchanged or stale."""
    handle = client.get_schedule_handle(want.id)
    try:
        description = await handle.describe()
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        description = None
    if deleted or want.schedule is None:
        if description is None:
            return "unchanged"
        if not deleted and _version_of(description) > want.version:
            return "stale"
        await handle.delete()
        return "deleted"
    if description is None:
        try:
            await client.create_schedule(want.id, want.schedule)
            return "created"
        except ScheduleAlreadyRunningError:  # another writer was first: compare versions below
            description = await handle.describe()
    current = _version_of(description)
    if current > want.version:
        return "stale"
    if current == want.version and description.schedule.state.paused == want.schedule.state.paused:
        return "unchanged"
    schedule = want.schedule

    def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
        return ScheduleUpdate(schedule=schedule)

    await handle.update(replace)
    # An update carries the paused state, but the server keeps its own: set it explicitly.
    if schedule.state.paused and not description.schedule.state.paused:
        await handle.pause(note=schedule.state.note or "disabled")
    elif not schedule.state.paused and description.schedule.state.paused:
        await handle.unpause(note="enabled")
    return "updated"


async def reconcile(client: Client, store: Store, catchup: timedelta = DEFAULT_CATCHUP) -> dict[str, str]:
    """Every pipeline's schedule as its record says, and no schedule for a pipeline that is
    gone. Returns what happened per schedule id."""
    with store.transaction() as tx:
        pipelines = [r.body for r in tx.find(KIND)]
    wanted = {s.id: s for s in (desired(p, catchup) for p in pipelines)}
    done: dict[str, str] = {}
    for sid, want in wanted.items():
        try:
            done[sid] = await apply(client, want)
        except (RPCError, ValueError) as exc:
            log.warning("pipeline schedule %s not reconciled: %s", sid, exc)
            done[sid] = f"error: {exc}"
    async for listed in await client.list_schedules():
        if listed.id.startswith(SCHEDULE_PREFIX) and listed.id not in wanted:
            await client.get_schedule_handle(listed.id).delete()
            done[listed.id] = "deleted"
    return done
