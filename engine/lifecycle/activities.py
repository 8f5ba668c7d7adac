"""Lifecycle activities on the control worker, the process with the database: plan a run
(evaluate the rules, record the execution), apply one image's action, finish the record.

The execution record (kind "lifecycle-execution", see engine/api/handlers/executions.py) is
what GetLifecycleExecution and ListLifecycleExecutionResources read: the image resources at
the top level, their AMIs and image URIs beneath them (``parentResourceId``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import activity

from engine.events import hooks
from engine.lifecycle import removal
from engine.lifecycle.facts import amis_of, image_facts, parse_time, status_of
from engine.lifecycle.model import (
    ACTION_FOR_STATE,
    KIND,
    ActionResult,
    FinishRequest,
    ImageAction,
    Plan,
    PlanRequest,
)
from engine.lifecycle.rules import IN_PROGRESS, ami_exclusion, evaluate
from engine.store import Record, Store, Tx
from engine.store.db import now_iso
from workers.blobstore import BlobStore

#: The state each action leaves an image in.
RESULT_STATE = {"AVAILABLE": "AVAILABLE", "DEPRECATE": "DEPRECATED", "DISABLE": "DISABLED", "DELETE": "DELETED"}
POLICY_KIND = "lifecycle-policy"


def region_of(arn: str) -> str:
    return arn.split(":")[3]


def _resource(account: str, arn: str, action: str, reason: str, now: str) -> dict[str, Any]:
    return {
        "accountId": account,
        "resourceId": arn,
        "region": region_of(arn),
        "action": {"name": action, "reason": reason[:1024]},
        "state": {"status": "IN_PROGRESS"},
        "startTime": now,
    }


def save_execution(tx: Tx, execution_id: str, account: str, parent: str, changes: dict[str, Any]) -> None:
    rec = tx.get(execution_id, KIND)
    if rec is None:
        tx.insert(Record(arn=execution_id, kind=KIND, account=account, name=execution_id, parent=parent, body=changes))
    else:
        tx.update(rec.with_body({**rec.body, **changes}))


class LifecycleActivities:
    def __init__(self, store: Store, blobs: BlobStore, registry: str) -> None:
        self.store, self.blobs = store, blobs
        self.registry = removal.Registry([registry])

    # -- plan ---------------------------------------------------------------------------------

    @activity.defn(name="PlanLifecycleExecution")
    async def plan(self, request: PlanRequest) -> Plan:
        return await asyncio.to_thread(self._plan, request)

    def _plan(self, request: PlanRequest) -> Plan:
        run, now = request.run, parse_time(request.now)
        with self.store.transaction(write=not run.dry_run) as tx:
            if run.state_update is not None:
                actions, parent = self._manual_actions(tx, request), run.state_update.image_arn
            else:
                policy = tx.get(run.policy_arn, POLICY_KIND)
                if policy is None or policy.account != run.account:
                    return Plan(request.execution_id, skip_reason=f"lifecycle policy {run.policy_arn} no longer exists")
                if policy.body.get("status") != "ENABLED" and not run.dry_run:
                    return Plan(request.execution_id, skip_reason=f"lifecycle policy {run.policy_arn} is disabled")
                images = [image_facts(r) for r in tx.find("image", accounts=[run.account])]
                actions = [
                    ImageAction(request.execution_id, d.image_arn, d.action, d.reason, dict(d.include), d.skipped_amis)
                    for d in evaluate(policy.body, images, now)
                ]
                parent = policy.arn
                if not run.dry_run:
                    tx.update(policy.with_body({**policy.body, "dateLastRun": request.now}))
            if run.dry_run:
                return Plan(request.execution_id, tuple(actions))
            resources = [_resource(run.account, a.image_arn, a.action, a.reason, request.now) for a in actions]
            changes: dict[str, Any] = {
                "state": {"status": "IN_PROGRESS"},
                "startTime": request.now,
                "resourcesImpactedSummary": {"hasImpactedResources": False},
                "_resources": resources,
                "_workflowId": request.workflow_id,
            }
            if run.policy_arn:
                changes["lifecyclePolicyArn"] = run.policy_arn
            save_execution(tx, request.execution_id, run.account, parent, changes)
        return Plan(request.execution_id, tuple(actions))

    def _manual_actions(self, tx: Tx, request: PlanRequest) -> list[ImageAction]:
        update = request.run.state_update
        assert update is not None
        rec = tx.get(update.image_arn, "image")
        if rec is None:
            return []
        now = parse_time(request.now)
        skipped = tuple(
            (ami.image_id, why)
            for ami in amis_of(rec.body)
            if update.include.get("amis") and (why := ami_exclusion(update.ami_exclusions, ami, now)) is not None
        )
        action = ACTION_FOR_STATE[update.status]
        reason = f"StartResourceStateUpdate to {update.status}"
        return [ImageAction(request.execution_id, rec.arn, action, reason, dict(update.include), skipped)]

    # -- apply --------------------------------------------------------------------------------

    @activity.defn(name="ApplyLifecycleAction")
    async def apply(self, action: ImageAction) -> ActionResult:
        return await asyncio.to_thread(self._apply, action)

    def _apply(self, action: ImageAction) -> ActionResult:
        with self.store.transaction() as tx:
            rec = tx.get(action.image_arn, "image")
            # What other images still name: a manifest one of them uses is not deleted.
            others = tx.find("image", accounts=[rec.account]) if rec is not None else []
            live_uris = [
                uri
                for other in others
                if other.arn != action.image_arn and status_of(other.body) != "DELETED"
                for uri in removal.image_uris(other.body)
            ]
        target = RESULT_STATE[action.action]
        if rec is None:
            return self._record(action, "SUCCESS", "the image no longer exists", [])
        status = status_of(rec.body)
        if status in IN_PROGRESS:
            return self._record(action, "SKIPPED", f"a build of the image is running ({status})", [])
        if status == target:
            return self._record(action, "SUCCESS", f"the image was already {target}", [])
        outcomes: list[removal.Outcome] = []
        keep = dict(action.skipped_amis)
        if action.action == "DELETE":
            if rec.body.get("type") == "DOCKER" and action.include.get("containers"):
                outcomes = removal.remove_container_image(self.registry, rec.body, live_uris)
            elif action.include.get("amis"):
                outcomes = removal.remove_machine_image(self.blobs, rec.body, keep)
        elif action.include.get("amis"):
            outcomes = [
                removal.Outcome(ami.image_id, "SKIPPED", keep[ami.image_id], ami.region)
                if ami.image_id in keep
                else removal.Outcome(ami.image_id, "SUCCESS", f"set {target}", ami.region)
                for ami in amis_of(rec.body)
            ]
        self._set_image_state(action, target, {o.resource_id for o in outcomes if o.status == "SUCCESS"})
        failed = [o for o in outcomes if o.status == "FAILED"]
        status_out = "FAILED" if failed else "SUCCESS"
        reason = "; ".join(f"{o.resource_id}: {o.reason}" for o in failed) or action.reason
        return self._record(action, status_out, reason, outcomes)

    def _set_image_state(self, action: ImageAction, target: str, changed_amis: set[str]) -> None:
        now = now_iso()
        with self.store.transaction(write=True) as tx:
            rec = tx.get(action.image_arn, "image")
            if rec is None:
                return
            body = dict(rec.body)
            state: dict[str, Any] = {"status": target}
            if target != "AVAILABLE":
                why = f"{action.action} by lifecycle execution {action.execution_id}: {action.reason}"
                state["reason"] = why[:1024]
            body.update(state=state, lifecycleExecutionId=action.execution_id, dateUpdated=now)
            if target == "DEPRECATED":
                body["deprecationTime"] = now
            elif target == "AVAILABLE":
                body.pop("deprecationTime", None)
            outputs = dict(body.get("outputResources") or {})
            if outputs.get("amis") and changed_amis:
                outputs["amis"] = [
                    {**ami, "state": {"status": target}} if ami.get("image") in changed_amis else ami
                    for ami in outputs["amis"]
                ]
                body["outputResources"] = outputs
            hooks.image_state_event(tx, rec, body)
            tx.update(rec.with_body(body))

    def _record(self, action: ImageAction, status: str, reason: str, outcomes: list[removal.Outcome]) -> ActionResult:
        """The image's entry and its AMIs' or URIs' entries in the execution record."""
        now = now_iso()
        with self.store.transaction(write=True) as tx:
            rec = tx.get(action.execution_id, KIND)
            if rec is not None:
                account = rec.account
                resources = [
                    r for r in rec.body.get("_resources") or [] if r.get("parentResourceId") != action.image_arn
                ]
                for entry in resources:
                    if entry.get("resourceId") == action.image_arn and not entry.get("parentResourceId"):
                        entry["state"] = {"status": status, "reason": reason[:1024]}
                        entry["endTime"] = now
                for o in outcomes:
                    child = {
                        "accountId": account,
                        "resourceId": o.resource_id,
                        "region": o.region or region_of(action.image_arn),
                        "action": {"name": action.action},
                        "state": {"status": o.status, "reason": o.reason[:1024]} if o.reason else {"status": o.status},
                        "startTime": now,
                        "endTime": now,
                        "parentResourceId": action.image_arn,
                    }
                    if not o.resource_id.startswith("ami-") and ":" in o.resource_id:
                        child["imageUris"] = [o.resource_id]
                    resources.append(child)
                impacted = rec.body.get("resourcesImpactedSummary") or {}
                changes = {
                    "_resources": resources,
                    "resourcesImpactedSummary": {
                        "hasImpactedResources": bool(impacted.get("hasImpactedResources")) or status == "SUCCESS"
                    },
                }
                tx.update(rec.with_body({**rec.body, **changes}))
        removed = tuple(o.resource_id for o in outcomes if o.status == "SUCCESS")
        return ActionResult(action.image_arn, action.action, status, reason, removed)

    # -- finish -------------------------------------------------------------------------------

    @activity.defn(name="FinishLifecycleExecution")
    async def finish(self, request: FinishRequest) -> None:
        await asyncio.to_thread(self._finish, request)

    def _finish(self, request: FinishRequest) -> None:
        now = now_iso()
        with self.store.transaction(write=True) as tx:
            rec = tx.get(request.execution_id, KIND)
            if rec is None:
                return
            leftover = "the execution was cancelled" if request.status == "CANCELLED" else "the execution ended"
            resources = [
                {**r, "state": {"status": "SKIPPED", "reason": leftover}, "endTime": now}
                if (r.get("state") or {}).get("status") == "IN_PROGRESS"
                else r
                for r in rec.body.get("_resources") or []
            ]
            state = {"status": request.status}
            if request.reason:
                state["reason"] = request.reason[:1024]
            tx.update(rec.with_body({**rec.body, "state": state, "endTime": now, "_resources": resources}))

    def all(self) -> list[Any]:
        return [self.plan, self.apply, self.finish]
