"""Lifecycle policies: create, get, list, update, delete, with the documented rules for what a
policy may say. Running them (once a day, deprecate -> disable -> delete) is the lifecycle
workflow's job, which arrives with the build orchestration."""

from __future__ import annotations

from typing import Any

from engine.api import errors
from engine.api.context import RequestContext
from engine.api.errors import ApiError
from engine.api.registry import operation
from engine.resources import arns, filters, paging
from engine.resources.common import get_plain, public
from engine.store import Record
from engine.store.db import now_iso

KIND = "lifecycle-policy"


def _check_selection(selection: dict[str, Any]) -> None:
    recipes, tag_map = selection.get("recipes"), selection.get("tagMap")
    if bool(recipes) == bool(tag_map):
        raise ApiError(
            "InvalidParameterCombinationException",
            "resourceSelection needs exactly one of recipes and tagMap",
        )
    for i, recipe in enumerate(recipes or []):
        version = recipe["semanticVersion"]
        if not _version_selector(version):
            raise errors.invalid(
                f"resourceSelection.recipes[{i}].semanticVersion {version!r}: use <major>.<minor>.<patch> "
                "with x wildcards only at the end (1.x.x, 1.2.x)"
            )


def _version_selector(version: str) -> bool:
    """1.2.3, 1.2.x, 1.x.x or x.x.x: everything right of the first x is an x as well."""
    parts = version.split(".")
    if len(parts) != 3 or not all(p == "x" or p.isdigit() for p in parts):
        return False
    first_x = parts.index("x") if "x" in parts else 3
    return all(p == "x" for p in parts[first_x:])


def _check_rule(i: int, rule: dict[str, Any], resource_type: str) -> None:
    where = f"policyDetails[{i}]"
    action, flt = rule["action"], rule["filter"]
    atype, ftype = action["type"], flt["type"]
    if resource_type == "CONTAINER_IMAGE" and atype != "DELETE":
        raise errors.invalid(f"{where}: policies for CONTAINER_IMAGE support only DELETE rules, not {atype}")
    include = action.get("includeResources") or {}
    if resource_type == "CONTAINER_IMAGE" and (include.get("amis") or include.get("snapshots")):
        raise errors.invalid(f"{where}: a CONTAINER_IMAGE policy cannot include AMIs or snapshots")
    if resource_type == "AMI_IMAGE" and include.get("containers"):
        raise errors.invalid(f"{where}: an AMI_IMAGE policy cannot include containers")
    if atype in ("DEPRECATE", "DISABLE") and (include.get("snapshots") or include.get("containers")):
        raise errors.invalid(f"{where}: {atype} rules can include AMIs only")
    if include.get("snapshots") and not include.get("amis"):
        raise errors.invalid(f"{where}: snapshots can only be included together with amis")
    if ftype == "AGE":
        if not flt.get("unit"):
            raise errors.invalid(f"{where}: an AGE filter needs a unit (DAYS, WEEKS, MONTHS or YEARS)")
        if flt.get("retainAtLeast") is not None and atype != "DELETE":
            raise errors.invalid(f"{where}: retainAtLeast applies to DELETE rules only")
    else:  # COUNT
        if atype != "DELETE":
            raise errors.invalid(f"{where}: the COUNT filter can only be used with DELETE rules")
        if flt.get("unit") is not None or flt.get("retainAtLeast") is not None:
            raise errors.invalid(f"{where}: a COUNT filter takes only a value (the number of images to keep)")
    exclusions = rule.get("exclusionRules") or {}
    amis = exclusions.get("amis")
    if amis is not None:
        if resource_type != "AMI_IMAGE":
            raise errors.invalid(f"{where}: exclusionRules.amis applies to AMI_IMAGE policies only")
        last = amis.get("lastLaunched")
        if last is not None and not (1 <= int(last.get("value", 0)) <= 365):
            raise errors.invalid(f"{where}: exclusionRules.amis.lastLaunched.value must be 1 to 365")


def _check(params: dict[str, Any]) -> None:
    resource_type = params["resourceType"]
    details = params["policyDetails"]
    if not 1 <= len(details) <= 3:
        raise errors.invalid("policyDetails needs one to three rules")
    seen: set[str] = set()
    for i, rule in enumerate(details):
        atype = rule["action"]["type"]
        if atype in seen:
            raise errors.invalid(f"policyDetails[{i}]: a policy has at most one rule per action type ({atype})")
        seen.add(atype)
        _check_rule(i, rule, resource_type)
    _check_selection(params["resourceSelection"])


_FIELDS = ("description", "status", "executionRole", "resourceType", "policyDetails", "resourceSelection")


@operation("CreateLifecyclePolicy")
def create_lifecycle_policy(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    _check(params)
    name = params["name"]
    norm = arns.normalize_name(name)
    if ctx.tx.find(KIND, accounts=[ctx.account], name=norm):
        raise ApiError("ResourceAlreadyExistsException", f"a lifecycle policy named {name} already exists")
    arn = arns.build(ctx.region, ctx.account, KIND, name)
    now = now_iso()
    body: dict[str, Any] = {
        "arn": arn,
        "name": name,
        **{k: params.get(k) for k in _FIELDS},
        "status": params.get("status") or "ENABLED",
        "dateCreated": now,
        "dateUpdated": now,
        "tags": params.get("tags") or {},
    }
    ctx.tx.insert(Record(arn=arn, kind=KIND, account=ctx.account, name=norm, body=body, created=now))
    return {"clientToken": params["clientToken"], "lifecyclePolicyArn": arn}


@operation("GetLifecyclePolicy")
def get_lifecycle_policy(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    rec = get_plain(ctx, KIND, params["lifecyclePolicyArn"])
    return {"lifecyclePolicy": public(rec.body)}


_FILTERS: dict[str, filters.Getter] = {
    "name": lambda i: i["name"],
    "resourceType": lambda i: i.get("resourceType"),
    "status": lambda i: i.get("status"),
}


@operation("ListLifecyclePolicies")
def list_lifecycle_policies(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    bodies = [public(r.body) for r in ctx.tx.find(KIND, accounts=[ctx.account])]
    bodies = filters.apply(bodies, params.get("filters"), _FILTERS)
    chunk, token = paging.page(bodies, params)
    return {"lifecyclePolicySummaryList": chunk, "nextToken": token}


@operation("UpdateLifecyclePolicy")
def update_lifecycle_policy(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    rec = get_plain(ctx, KIND, params["lifecyclePolicyArn"])
    if params["resourceType"] != rec.body.get("resourceType"):
        raise errors.invalid(
            f"the resource type of a lifecycle policy cannot change: it is {rec.body.get('resourceType')}"
        )
    _check(params)
    body = {
        **rec.body,
        **{k: params.get(k) for k in _FIELDS},
        "status": params.get("status") or rec.body.get("status") or "ENABLED",
        "dateUpdated": now_iso(),
    }
    ctx.tx.update(rec.with_body(body))
    return {"lifecyclePolicyArn": rec.arn}


@operation("DeleteLifecyclePolicy")
def delete_lifecycle_policy(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    rec = get_plain(ctx, KIND, params["lifecyclePolicyArn"])
    # Its executions stay readable (ListLifecycleExecutions by image); running ones would be
    # cancelled here once the lifecycle workflow exists.
    ctx.tx.delete(rec.arn)
    return {"lifecyclePolicyArn": rec.arn}
