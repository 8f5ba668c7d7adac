"""Activities that write build progress to the store, so GetImage, GetWorkflowExecution and
ListWorkflowStepExecutions read current truth. They run on the control worker, the one process
of a build that has the database.

The build sends what it wrote since its last batch as one ``SaveBuildRecords`` call (one
transaction): a few activities per build instead of one per record, which is most of the
orchestration's cost on a short build.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from temporalio import activity

from engine.builds.model import ExecutionRecord, ImageStateUpdate, RecordBatch
from engine.events import hooks
from engine.store import Record, Store, Tx
from engine.store.db import now_iso
from workers.blobstore import BlobStore

TERMINAL = frozenset({"AVAILABLE", "FAILED", "CANCELLED"})
log = logging.getLogger(__name__)


class RecordActivities:
    def __init__(self, store: Store, blobs: BlobStore | None = None) -> None:
        self.store = store
        #: Where CollectImageMetadata left the package inventory (ImageStateUpdate.packages_ref).
        self.blobs = blobs

    @activity.defn(name="SaveBuildRecords")
    async def save_build_records(self, batch: RecordBatch) -> None:
        await asyncio.to_thread(self._save_batch, batch)

    def _save_batch(self, batch: RecordBatch) -> None:
        with self.store.transaction(write=True) as tx:
            # In order: one record's partial updates build on each other.
            for write in batch.writes:
                if write.record is not None:
                    self._save_execution(write.record, tx)
                if write.image_state is not None:
                    self._set_image_state(write.image_state, tx)

    def _set_image_state(self, update: ImageStateUpdate, tx: Tx | None = None) -> None:
        if tx is None:
            with self.store.transaction(write=True) as own:
                return self._set_image_state(update, own)
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
        if update.packages_ref and update.status == "AVAILABLE":
            body.update(self._inventory(update.packages_ref))
        if update.status in TERMINAL:
            body["buildExecutionEnded"] = now_iso()
        body["dateUpdated"] = now_iso()
        tx.update(rec.with_body(body))
        hooks.image_state_written(tx, rec, body)  # events, scan request (engine/events/hooks.py)

    def _inventory(self, ref: str) -> dict[str, Any]:
        """The image record's package list and OS version from a CollectImageMetadata inventory.
        A missing or unreadable inventory costs the list, not the build (it is already done)."""
        if self.blobs is None:
            log.warning("no blob store: the package inventory %s is not read", ref)
            return {}
        try:
            data = json.loads(self.blobs.read_text(ref))
        except (OSError, ValueError) as exc:
            log.warning("the package inventory %s is unreadable: %s", ref, exc)
            return {}
        if not isinstance(data, dict):
            log.warning("the package inventory %s is not a JSON object", ref)
            return {}
        found = data.get("packages")
        packages = [p for p in (found if isinstance(found, list) else []) if _is_package(p)]
        out: dict[str, Any] = {"_packages": packages}
        if isinstance(data.get("osVersion"), str) and data["osVersion"]:
            out["osVersion"] = data["osVersion"]
        return out

    def _save_execution(self, record: ExecutionRecord, tx: Tx | None = None) -> None:
        if tx is None:
            with self.store.transaction(write=True) as own:
                return self._save_execution(record, own)
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
        return [self.save_build_records]


def _is_package(entry: Any) -> bool:
    """An ImagePackage: packageName and packageVersion (other keys, e.g. source names, are kept)."""
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("packageName"), str)
        and isinstance(entry.get("packageVersion"), str)
    )
