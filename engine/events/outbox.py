"""The outbox: events are rows of the store, written in the transaction that makes the change
they report, so an event exists exactly when its change was committed; delivery reads and
deletes them later (delivery.py). Kind ``event-outbox``; names sort in publication order."""

from __future__ import annotations

import time
from typing import Any

from engine.store import Record, Tx

KIND = "event-outbox"


def publish(tx: Tx, event: dict[str, Any], topic_arn: str | None) -> None:
    tx.insert(
        Record(
            arn=f"event/{event['id']}",
            kind=KIND,
            account=str(event.get("account") or ""),
            name=f"{time.time_ns():020d}-{event['id']}",
            body={"event": event, "topicArn": topic_arn or ""},
        )
    )
