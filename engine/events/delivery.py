"""Delivery of outbox events to webhook endpoints: HTTP POST of the event JSON, retried with
exponential backoff while the receiver fails, in publication order per endpoint (a failing
endpoint holds back its later events, not other endpoints' events), for at most ``max_age``
seconds per event (EventBridge's default retry window is 24 hours). Runs in the control worker;
one worker delivers at a time (a lease row), so several control workers do not send twice.
Delivery is at least once: a receiver dedupes by the event ``id``."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from engine.events.endpoints import EndpointsFile
from engine.events.outbox import KIND
from engine.store import Record, Store

log = logging.getLogger("engine.events")

LEASE_KIND = "event-delivery-lease"
LEASE_ARN = "event-delivery-lease"


@dataclass(frozen=True)
class DeliveryPolicy:
    timeout: float = 10.0
    first_retry: float = 1.0
    max_retry: float = 300.0
    max_age: float = 86400.0
    poll: float = 1.0
    lease: float = 60.0
    batch: int = 200

    def backoff(self, attempts: int) -> float:
        return float(min(self.first_retry * 2 ** max(attempts - 1, 0), self.max_retry))


def post(url: str, event: dict[str, Any], timeout: float) -> None:
    """One POST; raises OSError (urllib's errors are OSErrors) unless the answer is 2xx."""
    request = urllib.request.Request(
        url,
        data=json.dumps(event).encode(),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "imagebuilder-onprem-events",
            "X-Imagebuilder-Event-Id": str(event.get("id", "")),
            "X-Imagebuilder-Detail-Type": str(event.get("detail-type", "")),
        },
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        if not 200 <= response.status < 300:
            raise urllib.error.HTTPError(url, response.status, response.reason, response.headers, None)


class EventDelivery:
    def __init__(self, store: Store, endpoints: EndpointsFile, policy: DeliveryPolicy | None = None) -> None:
        self.store = store
        self.endpoints = endpoints
        self.policy = policy or DeliveryPolicy()
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{id(self)}"

    async def run(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.drain_once)
            except Exception:  # the loop must outlive a bad pass (database restart, ...)
                log.exception("event delivery pass failed; retrying")
            await asyncio.sleep(self.policy.poll)

    def _hold_lease(self, now: float) -> bool:
        with self.store.transaction(write=True) as tx:
            rec = tx.get(LEASE_ARN, LEASE_KIND)
            if rec is not None and rec.body.get("owner") != self.owner and float(rec.body.get("until", 0)) > now:
                return False
            body = {"owner": self.owner, "until": now + self.policy.lease}
            if rec is None:
                tx.insert(Record(arn=LEASE_ARN, kind=LEASE_KIND, account="", name="lease", body=body))
            else:
                tx.update(rec.with_body(body))
        return True

    def drain_once(self) -> int:
        """One pass; returns how many deliveries succeeded."""
        now = time.time()
        if not self._hold_lease(now):
            return 0
        endpoints = self.endpoints.current()
        queues: dict[str, list[Record]] = {}
        with self.store.transaction(write=True) as tx:
            for rec in tx.find(KIND):
                body = rec.body
                if "pending" not in body:
                    urls = endpoints.urls(str(body.get("topicArn") or ""))
                    if not urls:
                        tx.delete(rec.arn)  # nobody listens for it
                        continue
                    body = {**body, "pending": {u: {"attempts": 0, "next": 0.0} for u in urls}, "queued": now}
                    rec = rec.with_body(body)
                    tx.update(rec)
                for url in body["pending"]:
                    queues.setdefault(url, []).append(rec)
        if not queues:
            return 0
        with ThreadPoolExecutor(max_workers=min(8, len(queues)), thread_name_prefix="events") as pool:
            return sum(pool.map(lambda item: self._deliver_queue(*item), queues.items()))

    def _deliver_queue(self, url: str, records: list[Record]) -> int:
        delivered = 0
        for rec in records[: self.policy.batch]:
            state = rec.body["pending"][url]
            now = time.time()
            if float(state["next"]) > now:
                break  # waiting to retry the oldest: later events wait behind it (order)
            try:
                post(url, rec.body["event"], self.policy.timeout)
            except (OSError, ValueError) as exc:
                attempts = int(state["attempts"]) + 1
                expired = now - float(rec.body.get("queued", now)) >= self.policy.max_age
                self._update(rec.arn, url, None if expired else {
                    "attempts": attempts, "next": now + self.policy.backoff(attempts), "lastError": str(exc)[:300],
                })  # fmt: skip
                if expired:
                    log.error(
                        "event %s dropped for %s after %d attempts over %.0f s: %s",
                        rec.body["event"].get("id"), url, attempts, self.policy.max_age, exc,
                    )  # fmt: skip
                    continue
                log.warning("event %s to %s failed (attempt %d): %s", rec.body["event"].get("id"), url, attempts, exc)
                break
            self._update(rec.arn, url, None)
            delivered += 1
        return delivered

    def _update(self, arn: str, url: str, state: dict[str, Any] | None) -> None:
        """Record one endpoint's outcome: None = done with it (the row goes when none are left)."""
        with self.store.transaction(write=True) as tx:
            rec = tx.get(arn, KIND)
            if rec is None:
                return
            pending = dict(rec.body.get("pending") or {})
            if state is None:
                pending.pop(url, None)
            else:
                pending[url] = state
            if pending:
                tx.update(rec.with_body({**rec.body, "pending": pending}))
            else:
                tx.delete(arn)
