"""The HTTP server: a bare ASGI app (no framework: routing comes from the API model) served
by uvicorn. Handlers are synchronous and use the database, so each request runs on a worker
thread and the event loop only moves bytes."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from engine import managed, settings
from engine.api.dispatch import Dispatcher
from engine.api.services import Services
from engine.observability.api import api_metrics, send_metrics
from engine.observability.process import setup_process
from engine.store import Store

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_BODY = 16 * 1024 * 1024  # component documents are at most 16 MB


def build_services(config: settings.Config) -> Services:
    config.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(config.db_url)
    store.migrate()
    managed.seed(config, store)
    return Services(config=config, store=store)


class App:
    def __init__(self, services: Services) -> None:
        self.dispatcher = Dispatcher(services)
        self.metrics = api_metrics(services)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if len(body) > MAX_BODY:
                await _plain(send, 413, b'{"message":"request body too large"}')
                return
            if not message.get("more_body"):
                break
        if scope["path"] == "/healthz":
            await _plain(send, 200, b'{"status":"ok"}')
            return
        if scope["path"] == "/metrics":  # Prometheus; unauthenticated like /healthz (docs/OBSERVABILITY.md)
            await send_metrics(send, self.metrics)
            return
        headers: dict[str, str] = {}
        for k, v in scope["headers"]:
            name, value = k.decode("latin-1").lower(), v.decode("latin-1")
            # A repeated header is one comma-separated value, as SigV4 canonicalizes it.
            headers[name] = f"{headers[name]},{value}" if name in headers else value
        raw_path = scope.get("raw_path") or scope["path"].encode()
        args = (
            scope["method"],
            raw_path.decode("latin-1"),
            scope.get("query_string", b"").decode("latin-1"),
            headers,
            bytes(body),
        )
        if _is_read(scope["method"], scope["path"]):
            # Reads are short index lookups: a thread hop would cost more than the read itself.
            response = self.dispatcher.handle(*args)
        else:
            # Writes may wait for the write lock or call Temporal: keep them off the event loop.
            response = await asyncio.to_thread(self.dispatcher.handle, *args)
        await send({"type": "http.response.start", "status": response.status, "headers": response.headers})
        await send({"type": "http.response.body", "body": response.body})


def _is_read(method: str, path: str) -> bool:
    return path.startswith(("/Get", "/List")) or (method == "GET" and path.startswith("/tags/"))


async def _plain(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


def create_app() -> App:
    """Factory for uvicorn (also used by each worker process); reads settings from the env."""
    config = settings.load()
    setup_process(config, "imagebuilder-api")
    services = build_services(config)
    from engine.builds.resume import resume_in_background

    resume_in_background(services)  # builds a killed API server accepted but never started
    return App(services)


def main(argv: Sequence[str] | None = None) -> int:
    import uvicorn

    parser = argparse.ArgumentParser(prog="imagebuilder server", description="Serve the Image Builder API (rest-json).")
    settings.add_arguments(parser)
    args = parser.parse_args(argv)
    config = settings.load(args)
    # Worker processes re-read settings from the environment: export what the flags said.
    for s in settings.SETTINGS:
        os.environ[s.env] = str(getattr(config, s.name))
    services = build_services(config)  # migrate once, before workers start
    from engine.api.auth import DEV_MODE_BANNER, build_authenticator

    build_authenticator(config, services.store)  # a keys file or master key that cannot be used stops here
    services.store.dispose()
    if config.auth_mode == "dev":
        print(DEV_MODE_BANNER.format(account=config.account_id), file=sys.stderr)
    print(f"imagebuilder API on http://{config.host}:{config.port} (data in {config.data_dir})", file=sys.stderr)
    uvicorn.run(
        "engine.api.server:create_app",
        factory=True,
        host=config.host,
        port=config.port,
        workers=config.workers if config.workers > 1 else None,
        log_level="warning",
        log_config=None,  # uvicorn's lines go through our handler (text or JSON)
        access_log=False,
    )
    return 0
