"""What the build's record activities (engine/builds/records.py) call inside their transactions
after writing an image state or an execution record: the events, and the scan request."""

from __future__ import annotations

from typing import Any

from engine.builds.model import ExecutionRecord
from engine.events import model
from engine.events.outbox import publish
from engine.scanning import jobs
from engine.store import Record, Tx


def _topic(image: dict[str, Any] | None) -> str:
    return str(((image or {}).get("infrastructureConfiguration") or {}).get("snsTopicArn") or "")


def image_state_written(tx: Tx, before: Record, after: dict[str, Any]) -> None:
    image_state_event(tx, before, after)
    jobs.image_state_written(tx, before, after)


def image_state_event(tx: Tx, before: Record, after: dict[str, Any]) -> None:
    """The "Image State Change" event alone: what lifecycle actions (deprecate, disable, delete)
    publish, since they are not builds and request no scan."""
    previous = str((before.body.get("state") or {}).get("status") or "")
    state = after.get("state") or {}
    if state.get("status") and state.get("status") != previous:
        publish(tx, model.image_state_change(before.account, before.arn, previous, state), _topic(after))


def execution_written(tx: Tx, record: ExecutionRecord, existing: Record | None) -> None:
    """After SaveExecution wrote ``record`` over ``existing`` (None for a new one). Its parent is
    the image ARN of a workflow execution, the workflow execution id of a step."""
    before = existing.body if existing is not None else None
    after = {**(before or {}), **record.body}
    kind, ident, parent = record.kind, record.id, record.parent
    previous = str((before or {}).get("status") or "")
    status = str(after.get("status") or "")
    if not status or status == previous:
        return
    if kind == "workflow-execution":
        image = tx.get(parent, "image")
        if image is not None:
            event = model.workflow_state_change(image.account, parent, after, ident, previous)
            publish(tx, event, _topic(image.body))
    elif kind == "workflow-step-execution":
        image_arn = str(after.get("imageBuildVersionArn") or "")
        image = tx.get(image_arn, "image")
        if image is None:
            return
        publish(tx, model.step_state_change(image.account, after, ident, parent, previous), _topic(image.body))
        if after.get("action") == "WaitForAction" and status == "RUNNING":
            publish(tx, model.step_waiting(image.account, after, ident, parent), _topic(image.body))
