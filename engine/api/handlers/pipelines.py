"""Image pipelines: create, get, list, update, delete, the images a pipeline produced, and
manual starts. Schedules are validated here (EventBridge cron and rate expressions, IANA
time zones); firing them is the pipeline schedule workflow's job, a later part."""

from __future__ import annotations

import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.api import errors
from engine.api.context import RequestContext
from engine.api.errors import ApiError
from engine.api.handlers.images import KIND as IMAGE_KIND
from engine.api.handlers.images import check_build_inputs, not_yet, summary
from engine.api.registry import operation
from engine.resources import arns, filters, paging
from engine.resources.common import get_plain, public, resolve
from engine.store import Record
from engine.store.db import now_iso

KIND = "image-pipeline"
DEFAULT_START_CONDITION = "EXPRESSION_MATCH_AND_DEPENDENCY_UPDATES_AVAILABLE"
DEFAULT_TEST_TIMEOUT = 720  # stored and returned when not given; the timeout itself is documented as inactive

# --- schedule expressions -----------------------------------------------------------------------

_MONTHS = {
    m: i + 1 for i, m in enumerate(["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"])
}
_DAYS = {d: i + 1 for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])}  # 1 = Sunday


class _Field:
    def __init__(self, name: str, low: int, high: int, names: dict[str, int] | None = None, special: str = "") -> None:
        self.name, self.low, self.high, self.names, self.special = name, low, high, names or {}, special

    def number(self, text: str) -> int:
        value = self.names.get(text.upper()) if not text.isdigit() else int(text)
        if value is None or not self.low <= value <= self.high:
            raise ValueError(f"{text!r} is not a {self.name} ({self.low}-{self.high})")
        return value

    def check(self, text: str) -> None:
        if text == "?":
            if "?" not in self.special:
                raise ValueError(f"? is allowed only in day-of-month and day-of-week, not in {self.name}")
            return
        for item in text.split(","):
            self._item(item)

    def _item(self, item: str) -> None:
        if not item:
            raise ValueError(f"empty list entry in {self.name}")
        upper = item.upper()
        if ("L" in self.special and upper == "L") or ("W" in self.special and upper == "LW"):
            return
        if "W" in self.special and upper.endswith("W"):
            self.number(item[:-1])
            return
        if "#" in self.special and "#" in item:
            day, nth = item.split("#", 1)
            self.number(day)
            if not nth.isdigit() or not 1 <= int(nth) <= 5:
                raise ValueError(f"{item!r}: the number after # is the week of the month, 1-5")
            return
        if "#" in self.special and upper.endswith("L"):  # day-of-week 6L: the last Friday
            self.number(item[:-1])
            return
        base, _, step = item.partition("/")
        if step and (not step.isdigit() or int(step) < 1):
            raise ValueError(f"{item!r}: the increment after / must be a positive number")
        if base == "*":
            return
        first, _, last = base.partition("-")
        self.number(first)
        if last:
            self.number(last)


_CRON_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day-of-month", 1, 31, special="?LW"),
    _Field("month", 1, 12, _MONTHS),
    _Field("day-of-week", 1, 7, _DAYS, special="?L#"),
    _Field("year", 1970, 2199),
)
_RATE = re.compile(r"^rate\(\s*(\d+)\s+([a-z]+)\s*\)$")
_RATE_UNITS = ("minute", "hour", "day")


def check_schedule_expression(expression: str) -> None:
    text = expression.strip()
    if text.startswith("rate("):
        m = _RATE.match(text)
        if not m:
            raise errors.invalid(f"schedule expression {expression!r}: write rate(<number> <unit>), e.g. rate(1 day)")
        value, unit = int(m[1]), m[2]
        if value < 1:
            raise errors.invalid(f"schedule expression {expression!r}: the rate must be at least 1")
        singular = unit.removesuffix("s")
        if singular not in _RATE_UNITS:
            raise errors.invalid(f"schedule expression {expression!r}: the unit is minute(s), hour(s) or day(s)")
        if (value == 1) != (unit == singular):
            want = singular if value == 1 else singular + "s"
            raise errors.invalid(f"schedule expression {expression!r}: write rate({value} {want})")
        return
    if not (text.startswith("cron(") and text.endswith(")")):
        raise errors.invalid(
            f"schedule expression {expression!r}: use cron(<minute> <hour> <day-of-month> <month> <day-of-week> "
            "<year>) or rate(<number> <unit>)"
        )
    fields = text[5:-1].split()
    if len(fields) != 6:
        raise errors.invalid(
            f"schedule expression {expression!r}: a cron expression has 6 fields (minute hour day-of-month month "
            f"day-of-week year), this one has {len(fields)}"
        )
    for spec, field_text in zip(_CRON_FIELDS, fields, strict=True):
        try:
            spec.check(field_text)
        except ValueError as exc:
            raise errors.invalid(f"schedule expression {expression!r}: {exc}") from None
    if (fields[2] == "?") == (fields[4] == "?"):
        raise errors.invalid(
            f"schedule expression {expression!r}: exactly one of day-of-month and day-of-week must be ? "
            "(constrain one of them, e.g. cron(0 8 1 * ? *) or cron(0 8 ? * MON *))"
        )


def _schedule(schedule: dict[str, Any] | None) -> dict[str, Any] | None:
    if schedule is None:
        return None
    expression = schedule.get("scheduleExpression")
    if not expression:
        raise errors.invalid("schedule.scheduleExpression is required when a schedule is given")
    check_schedule_expression(expression)
    timezone = schedule.get("timezone") or "UTC"
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise errors.invalid(f"schedule.timezone {timezone!r} is not an IANA time zone (e.g. Etc/UTC)") from None
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
    }
    ctx.tx.insert(Record(arn=arn, kind=KIND, account=ctx.account, name=norm, body=body, created=now))
    return {"clientToken": params["clientToken"], "imagePipelineArn": arn}


@operation("GetImagePipeline")
def get_image_pipeline(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    rec = get_plain(ctx, KIND, params["imagePipelineArn"])
    return {"imagePipeline": public(rec.body)}


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
    bodies = [public(r.body) for r in ctx.tx.find(KIND, accounts=[ctx.account])]
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
    body = {**rec.body, **settings, "dateUpdated": now_iso(), "consecutiveFailures": 0}
    ctx.tx.update(rec.with_body(body))
    return {"clientToken": params["clientToken"], "imagePipelineArn": rec.arn}


@operation("DeleteImagePipeline")
def delete_image_pipeline(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    rec = get_plain(ctx, KIND, params["imagePipelineArn"])
    if rec.account != ctx.account:
        raise ApiError("ForbiddenException", f"{rec.arn} is not owned by this account")
    # Images it built stay (they keep naming the pipeline as their source); running builds go on.
    ctx.tx.delete(rec.arn)
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
    rec = get_plain(ctx, KIND, params["imagePipelineArn"])
    # What the pipeline names must still exist; a disabled pipeline can still be started by hand.
    check_build_inputs(ctx, rec.body)
    raise not_yet("StartImagePipelineExecution")
