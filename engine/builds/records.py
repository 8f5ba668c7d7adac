"""Activities that write build progress to the store, so GetImage, GetWorkflowExecution and
ListWorkflowStepExecutions read current truth. They run as local activities on the control
worker, the one process of a build that has the database."""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import activity

from engine.builds.model import ExecutionRecord, ImageStateUpdate
from engine.events import hooks
from engine.store import Record, Store
from engine.store.db import now_iso

TERMINAL = frozenset({"AVAILABLE", "FAILED", "CANCELLED"})


class RecordActivities:
    def __init__(self, store: Store) -> None:
        self.store = store

    @activity.defn(name="SetImageState")
    async def set_image_state(self, update: ImageStateUpdate) -> None:
        await asyncio.to_thread(self._set_image_state, update)

    def _set_image_state(self, update: ImageStateUpdate) -> None:
        with self.store.transaction(write=True) as tx:
            rec = tx.get(update.image_arn, "image")
            if rec is None:
                return  # deleted while building: nothing to report to
            body: dict[str, Any] = dict(rec.body)
            state: dict[str, Any] = {"status": update.status}
            if update.reason:
                state["reason"] = update.reason[:1024]
            if update.failure_context:
                state["failureContext"] = update.failure_context
            body["state"] = state
            if update.output_resources is not None:
                body["outputResources"] = update.output_resources
            if update.status in TERMINAL:
                body["buildExecutionEnded"] = now_iso()
            body["dateUpdated"] = now_iso()
            tx.update(rec.with_body(body))
            hooks.image_state_written(tx, rec, body)  # events, scan request (engine/events/hooks.py)

    @activity.defn(name="SaveExecution")
    async def save_execution(self, record: ExecutionRecord) -> None:
        await asyncio.to_thread(self._save_execution, record)

    def _save_execution(self, record: ExecutionRecord) -> None:
        with self.store.transaction(write=True) as tx:
            existing = tx.get(record.id, record.kind)
            if existing is None:
                tx.insert(
                    Record(
                        arn=record.id,
                        kind=record.kind,
                        account=record.account,
                        name=record.id,
                        parent=record.parent,
                        body=record.body,
                    )
                )
            else:
                tx.update(existing.with_body({**existing.body, **record.body}))
            hooks.execution_written(tx, record, existing)  # step and workflow events

    def all(self) -> list[Any]:
        return [self.set_image_state, self.save_execution]
