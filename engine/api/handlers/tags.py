"""Tags on any taggable resource, addressed by its ARN (a build ARN for versioned ones)."""

from __future__ import annotations

from typing import Any

from engine.api import errors
from engine.api.context import RequestContext
from engine.api.registry import operation
from engine.resources import arns
from engine.resources.common import readable, visible_accounts
from engine.store import Record

TAGGABLE = frozenset(
    {
        "component",
        "image-recipe",
        "container-recipe",
        "infrastructure-configuration",
        "distribution-configuration",
        "image-pipeline",
        "image",
        "workflow",
        "lifecycle-policy",
    }
)


def _taggable(ctx: RequestContext, arn_text: str) -> Record:
    arn = arns.parse(arn_text)
    if arn.kind not in TAGGABLE:
        raise errors.ApiError("InvalidParameterException", f"{arn.kind} resources do not take tags")
    rec = ctx.tx.get(arn_text)
    if rec is None or not readable(rec, visible_accounts(ctx)):
        raise errors.not_found(f"{arn_text} does not exist")
    return rec


@operation("ListTagsForResource")
def list_tags(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    rec = _taggable(ctx, params["resourceArn"])
    return {"tags": rec.body.get("tags") or {}}


@operation("TagResource")
def tag_resource(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    rec = _taggable(ctx, params["resourceArn"])
    if rec.account != ctx.account:
        raise errors.ApiError("InvalidParameterException", f"{rec.arn} is not owned by this account")
    tags = {**(rec.body.get("tags") or {}), **params["tags"]}
    if len(tags) > 50:
        raise errors.ApiError("InvalidParameterException", "a resource can have at most 50 tags")
    ctx.tx.update(rec.with_body({**rec.body, "tags": tags}))
    return {}


@operation("UntagResource")
def untag_resource(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    rec = _taggable(ctx, params["resourceArn"])
    if rec.account != ctx.account:
        raise errors.ApiError("InvalidParameterException", f"{rec.arn} is not owned by this account")
    tags = {k: v for k, v in (rec.body.get("tags") or {}).items() if k not in set(params["tagKeys"])}
    ctx.tx.update(rec.with_body({**rec.body, "tags": tags}))
    return {}
