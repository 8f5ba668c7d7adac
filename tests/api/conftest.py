"""A real API server process on a free loopback port, and real boto3 clients for it.

Each test module gets its own server and data directory, so tests don't see each other's
resources. Authentication is on, as in production: every server gets a keys file with one
access key for each of two accounts (``CREDENTIALS``); ``Server.client(account)`` signs as that
account, ``Server.request`` signs a raw HTTP request. `check_output(operation, response)`
asserts a response matches the operation's output shape in the API model (required members,
types, enums).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import boto3
import botocore.config
import botocore.session
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from engine.api.auth.keys import add_key

REGION = "us-east-1"
ACCOUNT = "123456789012"
OTHER_ACCOUNT = "210987654321"
#: account -> (access key id, secret access key) provisioned in every test server's keys file.
CREDENTIALS = {ACCOUNT: ("AKIDEXAMPLE", "secret"), OTHER_ACCOUNT: ("AKIDOTHEREXAMPLE", "other-secret")}


def provision_keys(data_dir: Path) -> None:
    """The keys file a server in data_dir reads by default: one key per test account."""
    for account, (key_id, secret) in CREDENTIALS.items():
        add_key(
            data_dir / "auth" / "keys.json",
            data_dir / "auth" / "master.key",
            key_id,
            secret,
            account,
            principal=f"arn:aws:iam::{account}:user/tester",
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log: Path

    def client(self, account: str = ACCOUNT, **kwargs: Any) -> Any:
        key_id, secret = CREDENTIALS[account]
        return boto3.client(
            "imagebuilder",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            # ServiceUnavailable is retried by botocore; tests want the first answer.
            config=botocore.config.Config(retries={"total_max_attempts": 1, "mode": "standard"}),
            **kwargs,
        )

    def request(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None = None,
        data: bytes = b"",
        account: str = ACCOUNT,
        timeout: float = 30,
    ) -> requests.Response:
        """A raw HTTP request signed (SigV4, Authorization header) as the account's key."""
        url = self.url + path
        if params:
            url += "?" + urlencode(params, quote_via=quote, safe="-_.~")
        prepared = sign(method, url, data, account)
        return requests.request(method, url, data=data, headers=dict(prepared.headers), timeout=timeout)


def sign(method: str, url: str, data: bytes = b"", account: str = ACCOUNT, **headers: str) -> AWSRequest:
    """botocore's own SigV4 signer over a request (headers as given plus Host, X-Amz-Date)."""
    key_id, secret = CREDENTIALS[account]
    req = AWSRequest(method=method, url=url, data=data, headers=headers)
    SigV4Auth(Credentials(key_id, secret), "imagebuilder", REGION).add_auth(req)
    return req


def start_server(data_dir: Path, database_url: str = "", workers: int = 1, env: dict[str, str] | None = None) -> Server:
    port = free_port()
    log = data_dir / "server.log"
    data_dir.mkdir(parents=True, exist_ok=True)
    provision_keys(data_dir)
    env = {**os.environ, "IMAGEBUILDER_DATABASE_URL": database_url, **(env or {})}
    cmd = [sys.executable, "-m", "engine.cli", "server", "--port", str(port), "--data-dir", str(data_dir)]
    cmd += ["--workers", str(workers)]
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()}")
        try:
            if requests.get(url + "/healthz", timeout=1).status_code == 200:
                return Server(url, data_dir, proc, log)
        except requests.ConnectionError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"server did not start: {log.read_text()}")


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("api"))
    yield srv
    stop_server(srv)


@pytest.fixture(scope="module")
def ib(server: Server) -> Any:
    """A boto3 imagebuilder client pointed at the test server."""
    return server.client()


def _check(shape: Any, value: Any, path: str) -> None:
    kind = shape.type_name
    if kind == "structure":
        assert isinstance(value, dict), f"{path}: expected object, got {value!r}"
        for req in shape.required_members:
            assert req in value, f"{path}: missing required member {req}"
        for key, v in value.items():
            if key == "ResponseMetadata" and not path:
                continue
            assert key in shape.members, f"{path}: member {key} is not in shape {shape.name}"
            _check(shape.members[key], v, f"{path}.{key}")
    elif kind == "list":
        assert isinstance(value, list), f"{path}: expected list"
        for i, v in enumerate(value):
            _check(shape.member, v, f"{path}[{i}]")
    elif kind == "map":
        assert isinstance(value, dict), f"{path}: expected map"
        for k, v in value.items():
            _check(shape.value, v, f"{path}.{k}")
    elif kind == "string":
        assert isinstance(value, str), f"{path}: expected string, got {value!r}"
        if shape.enum:
            assert value in shape.enum, f"{path}: {value!r} not in enum {shape.enum}"
    elif kind in ("integer", "long"):
        assert isinstance(value, int) and not isinstance(value, bool), f"{path}: expected int"
    elif kind == "boolean":
        assert isinstance(value, bool), f"{path}: expected bool"


def check_output(operation: str, response: dict[str, Any]) -> None:
    """Assert a boto3 response matches the operation's output shape in the API model."""
    model = botocore.session.get_session().get_service_model("imagebuilder").operation_model(operation)
    if model.output_shape is not None:
        _check(model.output_shape, response, "")


def error_code(exc: Exception) -> str:
    code: str = exc.response["Error"]["Code"]  # type: ignore[attr-defined]
    return code
