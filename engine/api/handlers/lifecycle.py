"""Lifecycle policies: create, get, list, update, delete, with the documented rules for what a
policy may say. Each ENABLED policy has a daily Temporal schedule that runs the LifecycleExecution
workflow (engine/lifecycle); the schedule follows the policy's status after every change.
StartResourceStateUpdate and CancelLifecycleExecution (validated in images.py) are carried out
here: a state update is a tracked lifecycle execution too, as in Image Builder."""

from __future__ import annotations

import logging
import uuid
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
log = logging.getLogger(__name__)


def _sync_schedule_after_commit(ctx: RequestContext, arn: str, enabled: bool) -> None:
    """Best effort: the policy is stored whether or not Temporal answers now; the control worker
    gives every ENABLED policy its schedule when it starts."""
    if ctx.dry_run:
        return
    services, account = ctx.services, ctx.account

    def sync() -> None:
        try:
            services.temporal.sync_lifecycle_schedule(arn, account, enabled)
        except ApiError as exc:
            log.warning("lifecycle policy %s: schedule not updated now: %s", arn, exc.message)

    ctx.after_commit.append(sync)


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
    _sync_schedule_after_commit(ctx, arn, body["status"] == "ENABLED")
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
    _sync_schedule_after_commit(ctx, rec.arn, body["status"] == "ENABLED")
    return {"lifecyclePolicyArn": rec.arn}


@operation("DeleteLifecyclePolicy")
def delete_lifecycle_policy(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    rec = get_plain(ctx, KIND, params["lifecyclePolicyArn"])
    # Its executions stay readable (ListLifecycleExecutions by policy ARN); a run in progress
    # finishes (the next one finds no policy and does nothing).
    ctx.tx.delete(rec.arn)
    _sync_schedule_after_commit(ctx, rec.arn, False)
    return {"lifecyclePolicyArn": rec.arn}


# --- lifecycle executions started or stopped by hand ------------------------------------------


def start_state_update(ctx: RequestContext, image: Record, params: dict[str, Any]) -> dict[str, Any]:
    """StartResourceStateUpdate after images.py validated it: record the execution, then run
    the LifecycleExecution workflow for this one image."""
    from engine.lifecycle.activities import save_execution
    from engine.lifecycle.facts import parse_time
    from engine.lifecycle.model import LifecycleRunRequest, StateUpdate

    wanted = params["state"]["status"]
    include = {k: bool(v) for k, v in (params.get("includeResources") or {}).items() if v is not None}
    image_type = image.body.get("type")
    if image_type == "DOCKER" and (include.get("amis") or include.get("snapshots")):
        raise errors.invalid("includeResources: a container image has no AMIs or snapshots; use containers")
    if image_type == "AMI" and include.get("containers"):
        raise errors.invalid("includeResources: a machine image has no containers; use amis and snapshots")
    if include.get("snapshots") and not include.get("amis"):
        raise errors.invalid("includeResources: snapshots can only be included together with amis")
    if (image.body.get("state") or {}).get("status") == "DELETED":
        raise errors.invalid(f"{image.arn} is DELETED; its state cannot change any more")
    update_at = params.get("updateAt")
    if update_at is not None:
        update_at = _iso(update_at)
        if parse_time(update_at).timestamp() <= parse_time(now_iso()).timestamp():
            raise errors.invalid("updateAt must be in the future")
    exclusions = (params.get("exclusionRules") or {}).get("amis")
    execution_id = f"lce-{uuid.uuid4()}"
    workflow_id = f"lifecycle/{execution_id}"
    save_execution(
        ctx.tx,
        execution_id,
        ctx.account,
        image.arn,
        {
            "state": {"status": "PENDING" if update_at else "IN_PROGRESS"},
            "startTime": now_iso(),
            "resourcesImpactedSummary": {"hasImpactedResources": False},
            "_resources": [],
            "_workflowId": workflow_id,
        },
    )
    request = LifecycleRunRequest(
        account=ctx.account,
        execution_id=execution_id,
        state_update=StateUpdate(image.arn, wanted, include, exclusions, update_at),
    )
    services = ctx.services

    def start() -> None:
        try:
            services.temporal.start_lifecycle_execution(request, workflow_id)
        except ApiError as exc:
            _mark(services, execution_id, {"status": "FAILED", "reason": exc.message})
            raise

    ctx.after_commit.append(start)
    return {"lifecycleExecutionId": execution_id, "resourceArn": image.arn}


def cancel_execution(ctx: RequestContext, execution: Record, params: dict[str, Any]) -> dict[str, Any]:
    """CancelLifecycleExecution after images.py validated it: CANCELLING now, CANCELLED when the
    workflow stops between two images (what it did stays done)."""
    ctx.tx.update(execution.with_body({**execution.body, "state": {"status": "CANCELLING"}}))
    services, workflow_id = ctx.services, str(execution.body.get("_workflowId") or "")

    def cancel() -> None:
        if not workflow_id or not services.temporal.cancel_workflow(workflow_id):
            _mark(services, execution.name, {"status": "CANCELLED", "reason": "the execution was no longer running"})

    ctx.after_commit.append(cancel)
    return {"lifecycleExecutionId": execution.name}


def _mark(services: Any, execution_id: str, state: dict[str, str]) -> None:
    from engine.lifecycle.model import KIND as EXECUTION

    with services.store.transaction(write=True) as tx:
        rec = tx.get(execution_id, EXECUTION)
        if rec is not None:
            tx.update(rec.with_body({**rec.body, "state": state, "endTime": now_iso()}))


def _iso(value: Any) -> str:
    """A validated timestamp member (datetime, epoch seconds or ISO text) as ISO 8601 UTC."""
    from datetime import UTC, datetime

    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
    elif isinstance(value, (int, float)):
        moment = datetime.fromtimestamp(value, UTC)
    else:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
