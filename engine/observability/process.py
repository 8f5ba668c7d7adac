"""Observability wiring for a process: what the API server and ``imagebuilder worker`` call."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from temporalio.client import Client

from engine.observability import metrics, search_attributes, tracing
from engine.observability.interceptors import BuildInterceptor, LogShipping
from engine.observability.logs import configure_logging
from engine.settings import Config
from workers.blobstore import BlobStore

log = logging.getLogger(__name__)


def setup_process(config: Config, service: str) -> None:
    """Log format and level, and the tracer provider, for this process."""
    configure_logging(config.log_level, config.log_format)
    tracing.configure_tracing(config.otel_exporter, service)


def client_interceptors(tracer: Any = None) -> list[Any]:
    """Interceptors for Client.connect (tracing first, so its spans enclose ours)."""
    return [*tracing.interceptors(tracer), BuildInterceptor()]


async def connect_client(address: str, namespace: str) -> Client:
    """The API server's Temporal client: our interceptors, and the search attributes registered
    (or found) first, so builds it starts carry them from the start."""
    client = await Client.connect(address, namespace=namespace, interceptors=client_interceptors())
    await _search_attributes(client)
    return client


async def _search_attributes(client: Client) -> None:
    ready = await search_attributes.ensure_registered(client)
    for interceptor in client.config()["interceptors"]:
        if isinstance(interceptor, BuildInterceptor):
            interceptor.search_attributes_ready = ready


async def observe_workers(
    client: Client, config: Config, workers: Sequence[Any], blobs: BlobStore, control: bool
) -> None:
    """Once a process's workers exist: their capacity in the metrics, the metrics endpoint, where
    s3Logs copies go, and (with the control worker) the search attributes on the namespace."""
    metrics.register_worker_capacity(workers)
    metrics.serve_worker_metrics(config.metrics_port, config.host)
    export_dir = Path(config.export_dir) if config.export_dir else config.data_dir / "exports"
    for interceptor in client.config()["interceptors"]:
        if isinstance(interceptor, BuildInterceptor):
            interceptor.shipping = LogShipping(blobs, export_dir, config.s3_endpoint_url)
    if control:
        await _search_attributes(client)
