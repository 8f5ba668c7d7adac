"""Prometheus metrics.

Workers (on ``metrics_port``): step durations by action, executor and outcome, and activity
slots used and free per task queue, both fed by the activity interceptor (interceptors.py).
The API server (its own ``/metrics``): image build versions by state, read from the store at
scrape time, and the Temporal task queues' backlog and pollers (DescribeTaskQueue with stats).
Every process also has prometheus_client's process and Python collectors.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from prometheus_client import REGISTRY, Histogram, generate_latest, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from temporalio.client import Client

    from engine.store import Store

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

STEP_SECONDS = Histogram(
    "imagebuilder_step_duration_seconds",
    "Wall time of build steps run by this worker's executors",
    ["action", "executor", "outcome"],
    # Steps range from a no-op (milliseconds) to a VM boot and component run (tens of minutes).
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200),
)


class SlotsCollector(Collector):
    """Activity slots per task queue of this worker: the capacity it registered (Temporal's
    max_concurrent_activities) against the activities running now."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._limits: dict[str, int] = {}
        self._used: dict[str, int] = {}

    def register(self, task_queue: str, limit: int) -> None:
        with self._lock:
            self._limits[task_queue] = limit

    @contextmanager
    def slot(self, task_queue: str) -> Iterator[None]:
        with self._lock:
            self._used[task_queue] = self._used.get(task_queue, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self._used[task_queue] -= 1

    def collect(self) -> Iterable[Metric]:
        slots = GaugeMetricFamily(
            "imagebuilder_worker_slots",
            "Activity slots of this worker by task queue and state",
            labels=["task_queue", "state"],
        )
        with self._lock:
            for queue, limit in sorted(self._limits.items()):
                used = self._used.get(queue, 0)
                slots.add_metric([queue, "used"], used)
                slots.add_metric([queue, "free"], max(limit - used, 0))
        yield slots


SLOTS = SlotsCollector()
REGISTRY.register(SLOTS)


def register_worker_capacity(workers: Sequence[Any]) -> None:
    """Record each Temporal worker's task queue and activity limit (from its own config)."""
    for worker in workers:
        config = worker.config()
        limit = config.get("max_concurrent_activities")
        if config.get("activities") and isinstance(limit, int):
            SLOTS.register(config["task_queue"], limit)


def serve_worker_metrics(port: int, host: str) -> None:
    """/metrics for a worker process, on a daemon thread (0: none)."""
    if port:
        start_http_server(port, addr=host)
        log.info("metrics on http://%s:%d/metrics", host, port)


# -- the API server's view: the store and Temporal ------------------------------------------------


class ImagesByStateCollector(Collector):
    """Image build versions by state and type, counted in the store at scrape time (so every
    API process reports the same truth). Managed parent images (account aws) are not builds."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _query(self) -> sa.TextClause:
        if self.store.is_sqlite:
            status, kind = "json_extract(body, '$.state.status')", "json_extract(body, '$.type')"
        else:
            status, kind = "(body::jsonb) #>> '{state,status}'", "(body::jsonb) ->> 'type'"
        return sa.text(
            f"SELECT {status} AS status, {kind} AS type, count(*) AS n FROM resources "
            "WHERE kind = 'image' AND account <> 'aws' GROUP BY 1, 2"
        )

    def collect(self) -> Iterable[Metric]:
        images = GaugeMetricFamily(
            "imagebuilder_images", "Image build versions by state and type", labels=["state", "type"]
        )
        with self.store.transaction() as tx:
            for status, kind, count in tx.conn.execute(self._query()):
                images.add_metric([status or "UNKNOWN", kind or "UNKNOWN"], count)
        yield images


class TaskQueueCollector(Collector):
    """Temporal task queue backlog and pollers, as last refreshed (``refresh`` before a scrape)."""

    def __init__(self, address: str, namespace: str, queues: Sequence[str]) -> None:
        self.address = address
        self.namespace = namespace
        self.queues = tuple(queues)
        self._client: Client | None = None
        self._samples: list[tuple[str, str, int, int]] = []
        self._up = 0

    async def refresh(self, timeout: float = 3.0) -> None:
        try:
            self._samples = await asyncio.wait_for(self._describe(), timeout)
            self._up = 1
        except Exception as exc:  # any failure is "Temporal unreachable" for the scrape, never a 500
            log.debug("task queue stats unavailable: %s", exc)
            self._client, self._samples, self._up = None, [], 0

    async def _describe(self) -> list[tuple[str, str, int, int]]:
        from temporalio.api.enums.v1 import TaskQueueType
        from temporalio.api.taskqueue.v1 import TaskQueue
        from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
        from temporalio.client import Client

        if self._client is None:
            self._client = await Client.connect(self.address, namespace=self.namespace)
        samples = []
        kinds = {"workflow": TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, "activity": TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY}
        for queue in self.queues:
            for kind, value in kinds.items():
                resp = await self._client.workflow_service.describe_task_queue(
                    DescribeTaskQueueRequest(
                        namespace=self.namespace,
                        task_queue=TaskQueue(name=queue),
                        task_queue_type=value,
                        report_stats=True,
                    )
                )
                samples.append((queue, kind, int(resp.stats.approximate_backlog_count), len(resp.pollers)))
        return samples

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily("imagebuilder_temporal_up", "1 when the last task queue query reached Temporal")
        up.add_metric([], self._up)
        yield up
        backlog = GaugeMetricFamily(
            "imagebuilder_task_queue_backlog",
            "Tasks waiting in a Temporal task queue (approximate, from DescribeTaskQueue stats)",
            labels=["task_queue", "type"],
        )
        pollers = GaugeMetricFamily(
            "imagebuilder_task_queue_pollers", "Workers polling a Temporal task queue", labels=["task_queue", "type"]
        )
        for queue, kind, depth, polling in self._samples:
            backlog.add_metric([queue, kind], depth)
            pollers.add_metric([queue, kind], polling)
        yield backlog
        yield pollers


class ApiMetrics:
    """What the API server's /metrics serves."""

    def __init__(self, store: Store, address: str, namespace: str, queues: Sequence[str]) -> None:
        self.queues = TaskQueueCollector(address, namespace, queues)
        self._collectors: list[Collector] = [ImagesByStateCollector(store), self.queues]
        for collector in self._collectors:
            REGISTRY.register(collector)

    async def render(self) -> bytes:
        await self.queues.refresh()
        # Collecting reads the store: keep that off the event loop.
        return await asyncio.to_thread(generate_latest, REGISTRY)

    def close(self) -> None:
        for collector in self._collectors:
            REGISTRY.unregister(collector)
