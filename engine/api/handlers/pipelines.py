"""Image pipelines: create, get, list, update, delete, the images a pipeline produced, and
manual starts. Schedule expressions are read by engine/pipelines/schedule_expr.py; each
pipeline with one has a Temporal Schedule (engine/pipelines/schedules.py) that this module
writes after the transaction commits. If Temporal cannot be reached then, the pipeline is
still stored and answered; the control worker's reconciliation makes the schedule later."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from engine.api import errors
from engine.api.context import RequestContext
from engine.api.errors import ApiError
from engine.api.handlers.images import KIND as IMAGE_KIND
from engine.api.handlers.images import check_build_inputs, summary
from engine.api.registry import operation
from engine.pipelines.model import DEPENDENCY_UPDATES
from engine.pipelines.run import build_params
from engine.pipelines.schedule_expr import (
    Expression,
    ScheduleExpressionError,
    check_timezone,
    next_fire_times,
    parse,
)
from engine.pipelines.schedules import desired, new_version
from engine.resources import arns, filters, paging
from engine.resources.common import get_plain, public, resolve
from engine.store import Record
from engine.store.db import now_iso

KIND = "image-pipeline"
DEFAULT_START_CONDITION = DEPENDENCY_UPDATES
log = logging.getLogger(__name__)
DEFAULT_TEST_TIMEOUT = 720  # stored and returned when not given; the timeout itself is documented as inactive

# --- schedules ----------------------------------------------------------------------------------


def check_schedule_expression(expression: str) -> Expression:
    """The expression parsed, or InvalidRequestException saying what is wrong with it."""
    try:
        return parse(expression)
    except ScheduleExpressionError as exc:
        raise errors.invalid(f"schedule expression {expression!r}: {exc}") from None


def _schedule(schedule: dict[str, Any] | None) -> dict[str, Any] | None:
    if schedule is None:
        return None
    expression = schedule.get("scheduleExpression")
    if not expression:
        raise errors.invalid("schedule.scheduleExpression is required when a schedule is given")
    check_schedule_expression(expression)
    timezone = schedule.get("timezone") or "UTC"
    try:
        check_timezone(timezone)
    except ScheduleExpressionError as exc:
        raise errors.invalid(f"schedule.timezone: {exc}") from None
    result = {
        **schedule,
        "timezone": timezone,
        "pipelineExecutionStartCondition": schedule.get("pipelineExecutionStartCondition") or DEFAULT_START_CONDITION,
    }
    return result


# --- operations ---------------------------------------------------------------------------------

_FIELDS = (
    "description",
    "imageRecipeArn",
    "containerRecipeArn",
    "infrastructureConfigurationArn",
    "distributionConfigurationArn",
    "imageScanningConfiguration",
    "workflows",
    "executionRole",
    "loggingConfiguration",
    "imageTags",
)


def _settings(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """The validated, defaulted settings a create or update stores."""
    check_build_inputs(ctx, params)
    if params.get("imageRecipeArn"):
        platform = resolve(ctx, "image-recipe", params["imageRecipeArn"]).body.get("platform")
    else:
        platform = resolve(ctx, "container-recipe", params["containerRecipeArn"]).body.get("platform")
    tests = dict(params.get("imageTestsConfiguration") or {})
    tests.setdefault("imageTestsEnabled", True)
    tests.setdefault("timeoutMinutes", DEFAULT_TEST_TIMEOUT)
    metadata = params.get("enhancedImageMetadataEnabled")
    return {
        **{k: params.get(k) for k in _FIELDS},
        "platform": platform,
        "imageTestsConfiguration": tests,
        "enhancedImageMetadataEnabled": True if metadata is None else metadata,
        "schedule": _schedule(params.get("schedule")),
        "status": params.get("status") or "ENABLED",
    }


@operation("CreateImagePipeline")
def create_image_pipeline(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    name = params["name"]
    norm = arns.normalize_name(name)
    if ctx.tx.find(KIND, accounts=[ctx.account], name=norm):
        raise ApiError("ResourceAlreadyExistsException", f"an image pipeline named {name} already exists")
    settings = _settings(ctx, params)
    arn = arns.build(ctx.region, ctx.account, KIND, name)
    now = now_iso()
    body: dict[str, Any] = {
        "arn": arn,
        "name": name,
        **settings,
        "dateCreated": now,
        "dateUpdated": now,
        "consecutiveFailures": 0,
        "tags": params.get("tags") or {},
        "_scheduleVersion": new_version(),
        "_scheduleAnchor": now,
    }
    ctx.tx.insert(Record(arn=arn, kind=KIND, account=ctx.account, name=norm, body=body, created=now))
    _sync_after_commit(ctx, body)
    return {"clientToken": params["clientToken"], "imagePipelineArn": arn}


def _sync_after_commit(ctx: RequestContext, body: dict[str, Any], deleted: bool = False) -> None:
    """Apply the pipeline's Temporal schedule once the record is committed. A Temporal that
    cannot be reached does not fail the request: the record is the truth, and the control
    worker's reconciliation applies it when Temporal is back."""
    if ctx.dry_run:
        return
    services, want = ctx.services, desired(body, timedelta(minutes=ctx.config.pipeline_catchup_minutes))

    def sync() -> None:
        try:
            services.temporal.apply_pipeline_schedule(want, deleted=deleted)
        except ApiError as exc:
            log.warning("schedule of %s left to reconciliation: %s", body["arn"], exc.message)

    ctx.after_commit.append(sync)


def _shown(ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
    """A pipeline as Get and List show it: with its last run's image status and next run."""
    shown = public(body)
    last = body.get("_lastImageArn")
    if last:
        image = ctx.tx.get(str(last), IMAGE_KIND)
        if image is not None:
            shown["lastRunStatus"] = (image.body.get("state") or {}).get("status")
    schedule = body.get("schedule") or {}
    if schedule.get("scheduleExpression") and body.get("status") == "ENABLED":
        try:
            anchor = datetime.fromisoformat(str(body.get("_scheduleAnchor") or body["dateUpdated"]))
            expression = parse(schedule["scheduleExpression"])
            upcoming = next_fire_times(expression, datetime.now(UTC), schedule.get("timezone") or "UTC", anchor)
        except ScheduleExpressionError:
            upcoming = []
        if upcoming:
            shown["dateNextRun"] = upcoming[0].strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return shown


@operation("GetImagePipeline")
def get_image_pipeline(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    rec = get_plain(ctx, KIND, params["imagePipelineArn"])
    return {"imagePipeline": _shown(ctx, rec.body)}


_FILTERS: dict[str, filters.Getter] = {
    "description": lambda p: p.get("description"),
    "distributionConfigurationArn": lambda p: p.get("distributionConfigurationArn"),
    "imageRecipeArn": lambda p: p.get("imageRecipeArn"),
    "infrastructureConfigurationArn": lambda p: p.get("infrastructureConfigurationArn"),
    "name": lambda p: p.get("name"),
    "status": lambda p: p.get("status"),
}


@operation("ListImagePipelines")
def list_image_pipelines(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    bodies = [_shown(ctx, r.body) for r in ctx.tx.find(KIND, accounts=[ctx.account])]
    bodies = filters.apply(bodies, params.get("filters"), _FILTERS)
    chunk, token = paging.page(bodies, params)
    return {"imagePipelineList": chunk, "nextToken": token}


@operation("UpdateImagePipeline")
def update_image_pipeline(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    rec = get_plain(ctx, KIND, params["imagePipelineArn"])
    if rec.account != ctx.account:
        raise ApiError("ForbiddenException", f"{rec.arn} is not owned by this account")
    was_container = bool(rec.body.get("containerRecipeArn"))
    if was_container != bool(params.get("containerRecipeArn")) and (
        params.get("imageRecipeArn") or params.get("containerRecipeArn")
    ):
        kind = "a container recipe" if was_container else "an image recipe"
        raise errors.invalid(f"{rec.arn} builds from {kind}; an update must keep the same kind of recipe")
    settings = _settings(ctx, params)
    # An update replaces the pipeline's settings (members left out are cleared, as in AWS);
    # a changed pipeline starts its failure count afresh.
    now = now_iso()
    body = {**rec.body, **settings, "dateUpdated": now, "consecutiveFailures": 0, "_scheduleVersion": new_version()}
    body.pop("_disabledReason", None)
    # A rate counts from when it was set: a new expression starts a new count.
    old_expression = (rec.body.get("schedule") or {}).get("scheduleExpression")
    if (settings.get("schedule") or {}).get("scheduleExpression") != old_expression:
        body["_scheduleAnchor"] = now
    ctx.tx.update(rec.with_body(body))
    _sync_after_commit(ctx, body)
    return {"clientToken": params["clientToken"], "imagePipelineArn": rec.arn}


@operation("DeleteImagePipeline")
def delete_image_pipeline(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    rec = get_plain(ctx, KIND, params["imagePipelineArn"])
    if rec.account != ctx.account:
        raise ApiError("ForbiddenException", f"{rec.arn} is not owned by this account")
    # Images it built stay (they keep naming the pipeline as their source); running builds go on.
    ctx.tx.delete(rec.arn)
    _sync_after_commit(ctx, rec.body, deleted=True)
    return {"imagePipelineArn": rec.arn}


_IMAGE_FILTERS: dict[str, filters.Getter] = {
    "name": lambda i: i.get("name"),
    "version": lambda i: (i.get("version") or "").split("/")[0],
}


@operation("ListImagePipelineImages")
def list_image_pipeline_images(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    rec = get_plain(ctx, KIND, params["imagePipelineArn"])
    images = [summary(r) for r in ctx.tx.find(IMAGE_KIND, accounts=[ctx.account], parent=rec.arn)]
    images = filters.apply(images, params.get("filters"), _IMAGE_FILTERS)
    chunk, token = paging.page(images, params)
    return {"imageSummaryList": chunk, "nextToken": token}


@operation("StartImagePipelineExecution")
def start_image_pipeline_execution(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """Run the pipeline now, whatever its status and start condition: the image record is made
    here (its ARN is the answer) and the same ImagePipelineRun workflow a tick starts builds it."""
    from engine.builds.prepare import Caller, prepare_build
    from engine.pipelines.model import PipelineRunInput

    rec = get_plain(ctx, KIND, params["imagePipelineArn"])
    if rec.account != ctx.account:
        raise ApiError("ForbiddenException", f"{rec.arn} is not owned by this account")
    # What the pipeline names must still exist; a disabled pipeline can still be started by hand.
    check_build_inputs(ctx, rec.body)
    caller = Caller(ctx.account, ctx.region, ctx.tx, ctx.services.blobs, ctx.config.registry)
    image, build = prepare_build(caller, build_params(rec.body, params.get("tags")), "USER_INITIATED")
    ctx.tx.update(rec.with_body({**rec.body, "dateLastRun": now_iso(), "_lastImageArn": image.arn}))
    if not ctx.dry_run:
        services, run = ctx.services, PipelineRunInput(rec.arn, build)

        def start() -> None:
            try:
                services.temporal.start_pipeline_run(run)
            except ApiError as exc:  # the record must not stay PENDING forever
                with services.store.transaction(write=True) as tx:
                    current = tx.get(image.arn, IMAGE_KIND)
                    if current is not None:
                        tx.update(
                            current.with_body({**current.body, "state": {"status": "FAILED", "reason": exc.message}})
                        )
                raise

        ctx.after_commit.append(start)
    return {"clientToken": params["clientToken"], "imagePipelineArn": rec.arn, "imageBuildVersionArn": image.arn}
