"""Keeping pipeline schedules in line with the store from the control worker: at start
(schedules the API could not write because Temporal was down get made) and every few minutes
after (a schedule lost or left behind is put right)."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from temporalio.client import Client

from engine.pipelines.schedules import DEFAULT_CATCHUP, reconcile
from engine.store import Store

log = logging.getLogger(__name__)
EVERY = timedelta(minutes=5)
_background: set[asyncio.Task[None]] = set()


async def reconcile_forever(client: Client, store: Store, catchup: timedelta, every: timedelta = EVERY) -> None:
    while True:
        try:
            done = await reconcile(client, store, catchup)
            changed = {k: v for k, v in done.items() if v != "unchanged"}
            if changed:
                log.info("pipeline schedules reconciled: %s", changed)
        except Exception as exc:  # Temporal away now: the next round tries again
            log.warning("pipeline schedules not reconciled: %s", exc)
        await asyncio.sleep(every.total_seconds())


def start_reconciling(client: Client, store: Store, catchup: timedelta = DEFAULT_CATCHUP) -> None:
    """Run reconcile_forever on the running event loop (the worker's), if there is one."""
    try:
        task = asyncio.get_running_loop().create_task(reconcile_forever(client, store, catchup))
    except RuntimeError:
        return  # built outside an event loop: nothing to run it on
    _background.add(task)
    task.add_done_callback(_background.discard)
