"""The API server's /metrics endpoint."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from engine.observability.metrics import CONTENT_TYPE, ApiMetrics

if TYPE_CHECKING:
    from engine.api.services import Services

_shared: ApiMetrics | None = None


def api_metrics(services: Services) -> ApiMetrics:
    """One set of collectors per process (the registry is global): image states from this
    server's store, and the control and executor pool task queues on its Temporal."""
    from engine.builds.prepare import EXECUTOR_FOR_TYPE
    from workers.contracts import CONTROL_QUEUE, pool_queue

    global _shared
    if _shared is None:
        config = services.config
        queues = [CONTROL_QUEUE, *(pool_queue(kind) for kind in sorted(set(EXECUTOR_FOR_TYPE.values())))]
        _shared = ApiMetrics(services.store, config.temporal_address, config.temporal_namespace, queues)
    return _shared


async def send_metrics(send: Callable[[MutableMapping[str, Any]], Awaitable[None]], metrics: ApiMetrics) -> None:
    body = await metrics.render()
    headers = [(b"content-type", CONTENT_TYPE.encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
