"""SigV4 authentication against a real server: requests signed by botocore's own signer (the
Authorization header and the presigned query string), then tampered with, answer the AWS error
codes boto3 parses; keys are sealed at rest, reloaded when the keys file changes, and can live in
the database; dev mode accepts any signature and says so."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import quote

import boto3
import botocore.config
import pytest
import requests
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from engine.api.auth.keys import add_key, provision_first_key, read_keys_file, write_keys_file
from tests.api.conftest import (
    ACCOUNT,
    CREDENTIALS,
    OTHER_ACCOUNT,
    REGION,
    Server,
    error_code,
    start_server,
    stop_server,
)

LIST = "/ListComponents"
BODY = b'{"maxResults": 5}'


def signed(
    server: Server,
    method: str = "POST",
    path: str = LIST,
    data: bytes = BODY,
    key: tuple[str, str] = CREDENTIALS[ACCOUNT],
    token: str | None = None,
    region: str = REGION,
    service: str = "imagebuilder",
    at: datetime | None = None,
) -> AWSRequest:
    """A request signed with botocore's SigV4 signer, optionally as of another time."""
    req = AWSRequest(method=method, url=server.url + path, data=data, headers={"Content-Type": "application/json"})
    with mock.patch("botocore.auth.get_current_datetime", return_value=at or datetime.now(UTC).replace(tzinfo=None)):
        SigV4Auth(Credentials(*key, token), service, region).add_auth(req)
    return req


def send(req: AWSRequest, **header_changes: str | None) -> requests.Response:
    headers = dict(req.headers)
    for name, value in header_changes.items():
        name = name.replace("_", "-")
        headers.pop(name, None)
        if value is not None:
            headers[name] = value
    return requests.request(req.method, req.url, data=req.body, headers=headers, timeout=10)


def flip(signature: str) -> str:
    return signature[:-1] + ("0" if signature[-1] != "0" else "1")


def refused(resp: requests.Response, status: int, code: str, words: str = "") -> bool:
    body = resp.json()
    return (
        resp.status_code == status
        and resp.headers.get("x-amzn-errortype") == code
        and words in body.get("message", "")
        and resp.headers.get("x-amzn-requestid") is not None
    )


def _auth(req: AWSRequest) -> str:
    return str(req.headers["Authorization"])


HEADER_CASES: list[tuple[str, Callable[[Server], requests.Response], int, str, str]] = [
    ("unsigned", lambda s: requests.post(s.url + LIST, data=BODY, timeout=10), 403,
     "MissingAuthenticationTokenException", "Missing Authentication Token"),
    ("tampered signature", lambda s: (lambda r: send(r, Authorization=flip(_auth(r))))(signed(s)), 403,
     "SignatureDoesNotMatch", "does not match"),
    ("body changed after signing", lambda s: (lambda r: (setattr(r, "data", b'{"maxResults": 6}'), send(r))[1])(
        signed(s)), 403, "SignatureDoesNotMatch", "does not match"),
    ("wrong secret", lambda s: send(signed(s, key=("AKIDEXAMPLE", "not-the-secret"))), 403,
     "SignatureDoesNotMatch", "does not match"),
    ("unknown access key", lambda s: send(signed(s, key=("AKIDNOBODY", "secret"))), 403,
     "UnrecognizedClientException", "security token included in the request is invalid"),
    ("expired date", lambda s: send(signed(s, at=datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=16))),
     400, "RequestExpired", "Signature expired"),
    ("date in the future", lambda s: send(signed(s, at=datetime.now(UTC).replace(tzinfo=None) + timedelta(minutes=16))),
     400, "RequestExpired", "Signature not yet current"),
    ("no date header", lambda s: send(signed(s), X_Amz_Date=None), 403, "IncompleteSignature", "X-Amz-Date"),
    ("no Signature=", lambda s: (lambda r: send(r, Authorization=_auth(r).split(", Signature=")[0]))(signed(s)),
     403, "IncompleteSignature", "'Signature' parameter"),
    ("another algorithm", lambda s: (lambda r: send(r, Authorization=_auth(r).replace("AWS4-HMAC-SHA256", "AWS3")))(
        signed(s)), 403, "IncompleteSignature", "AWS4-HMAC-SHA256"),
    ("host not signed", lambda s: (lambda r: send(r, Authorization=_auth(r).replace("host;", "")))(signed(s)),
     403, "IncompleteSignature", "'Host'"),
    ("scoped to another region", lambda s: send(signed(s, region="eu-west-1")), 403,
     "SignatureDoesNotMatch", "valid region"),
    ("scoped to another service", lambda s: send(signed(s, service="ec2")), 403,
     "SignatureDoesNotMatch", "correct service"),
    ("session token on a permanent key", lambda s: send(signed(s, token="made-up")), 403,
     "UnrecognizedClientException", "invalid"),
]  # fmt: skip


@pytest.mark.parametrize("case", HEADER_CASES, ids=[c[0] for c in HEADER_CASES])
def test_bad_header_signatures_are_refused_as_aws_does(
    server: Server, case: tuple[str, Callable[[Server], requests.Response], int, str, str]
) -> None:
    _, make, status, code, words = case
    resp = make(server)
    assert refused(resp, status, code, words), (resp.status_code, resp.headers, resp.text)


def test_a_good_signature_within_the_clock_skew_is_accepted(server: Server) -> None:
    assert send(signed(server)).status_code == 200
    fourteen_minutes_ago = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=14)
    assert send(signed(server, at=fourteen_minutes_ago)).status_code == 200


def test_boto3_parses_the_errors(server: Server) -> None:
    def client(key_id: str, secret: str) -> Any:
        return boto3.client(
            "imagebuilder",
            endpoint_url=server.url,
            region_name=REGION,
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            config=botocore.config.Config(retries={"total_max_attempts": 1}),
        )

    with pytest.raises(ClientError) as exc:
        client("AKIDEXAMPLE", "wrong").list_components()
    assert error_code(exc.value) == "SignatureDoesNotMatch"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    with pytest.raises(ClientError) as exc:
        client("AKIDUNKNOWN", "secret").get_component(
            componentBuildVersionArn=f"arn:aws:imagebuilder:{REGION}:{ACCOUNT}:component/x/1.0.0/1"
        )
    assert error_code(exc.value) == "UnrecognizedClientException"


def presigned(server: Server, expires: int = 60, at: datetime | None = None, key: tuple[str, str] | None = None) -> str:
    arn = f"arn:aws:imagebuilder:{REGION}:aws:component/hello-world-linux/x.x.x"
    req = AWSRequest(method="GET", url=f"{server.url}/GetComponent?componentBuildVersionArn={quote(arn, safe='')}")
    with mock.patch("botocore.auth.get_current_datetime", return_value=at or datetime.now(UTC).replace(tzinfo=None)):
        SigV4QueryAuth(Credentials(*(key or CREDENTIALS[ACCOUNT])), "imagebuilder", REGION, expires=expires).add_auth(
            req
        )
    return str(req.url)


PRESIGNED_CASES: list[tuple[str, Callable[[Server], str], int, str, str]] = [
    ("tampered signature", lambda s: (lambda u: u[:-1] + flip(u[-1]))(presigned(s)), 403,
     "SignatureDoesNotMatch", "does not match"),
    ("parameter changed after signing", lambda s: presigned(s).replace("hello-world-linux", "update-linux"), 403,
     "SignatureDoesNotMatch", "does not match"),
    ("expired", lambda s: presigned(s, expires=60, at=datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=2)),
     400, "RequestExpired", "Request has expired"),
    ("signed in the future", lambda s: presigned(s, at=datetime.now(UTC).replace(tzinfo=None) + timedelta(hours=1)),
     400, "RequestExpired", "not yet current"),
    ("unknown key", lambda s: presigned(s, key=("AKIDNOBODY", "x")), 403, "UnrecognizedClientException", "invalid"),
    ("no X-Amz-Signature", lambda s: presigned(s).split("&X-Amz-Signature=")[0], 403, "IncompleteSignature",
     "X-Amz-Signature"),
    ("bad X-Amz-Expires", lambda s: presigned(s).replace("X-Amz-Expires=60", "X-Amz-Expires=0"), 403,
     "IncompleteSignature", "X-Amz-Expires"),
]  # fmt: skip


def test_presigned_urls_work_until_they_expire(server: Server) -> None:
    resp = requests.get(presigned(server), timeout=10)
    assert resp.status_code == 200, resp.text
    assert resp.json()["component"]["arn"].endswith("component/hello-world-linux/1.0.0/1")


@pytest.mark.parametrize("case", PRESIGNED_CASES, ids=[c[0] for c in PRESIGNED_CASES])
def test_bad_presigned_urls_are_refused(
    server: Server, case: tuple[str, Callable[[Server], str], int, str, str]
) -> None:
    _, make, status, code, words = case
    resp = requests.get(make(server), timeout=10)
    assert refused(resp, status, code, words), (resp.status_code, resp.headers, resp.text)


def test_both_auth_forms_at_once_are_refused(server: Server) -> None:
    url = presigned(server)
    req = AWSRequest(method="GET", url=url)
    SigV4Auth(Credentials(*CREDENTIALS[ACCOUNT]), "imagebuilder", REGION).add_auth(req)
    resp = requests.get(url, headers=dict(req.headers), timeout=10)
    assert refused(resp, 403, "IncompleteSignature", "Only one auth mechanism")


def test_secrets_are_sealed_at_rest_and_never_logged(server: Server) -> None:
    secret = CREDENTIALS[OTHER_ACCOUNT][1]
    server.client(OTHER_ACCOUNT).list_components()
    requests.post(server.url + LIST, data=BODY, timeout=10)
    stored = (server.data_dir / "auth" / "keys.json").read_text()
    assert "AKIDOTHEREXAMPLE" in stored and secret not in stored
    assert secret not in server.log.read_text()
    assert oct((server.data_dir / "auth" / "master.key").stat().st_mode & 0o777) == "0o600"


@pytest.fixture
def keys_file(server: Server) -> Iterator[Path]:
    path = server.data_dir / "auth" / "keys.json"
    before = read_keys_file(path)
    yield path
    write_keys_file(path, before)


def wait_for(check: Callable[[], bool], seconds: float = 5) -> bool:
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return check()


def test_keys_added_and_revoked_without_a_restart(server: Server, keys_file: Path) -> None:
    master = server.data_dir / "auth" / "master.key"
    add_key(keys_file, master, "AKIDLATECOMER", "late-secret", OTHER_ACCOUNT)
    assert wait_for(lambda: send(signed(server, key=("AKIDLATECOMER", "late-secret"))).status_code == 200)
    current = read_keys_file(keys_file)
    write_keys_file(keys_file, type(current)({k: v for k, v in current.keys.items() if k != "AKIDLATECOMER"}))
    assert wait_for(
        lambda: refused(send(signed(server, key=("AKIDLATECOMER", "late-secret"))), 403, "UnrecognizedClientException")
    )


def test_temporary_credentials_need_their_token_and_expire(server: Server, keys_file: Path) -> None:
    master = server.data_dir / "auth" / "master.key"
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    add_key(keys_file, master, "ASIATEMPORARY", "temp-secret", ACCOUNT, session_token="the-token", expires=later)
    key = ("ASIATEMPORARY", "temp-secret")
    assert wait_for(lambda: send(signed(server, key=key, token="the-token")).status_code == 200)
    assert refused(send(signed(server, key=key)), 403, "UnrecognizedClientException")
    assert refused(send(signed(server, key=key, token="another-token")), 403, "UnrecognizedClientException")
    earlier = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    add_key(keys_file, master, "ASIATEMPORARY", "temp-secret", ACCOUNT, session_token="the-token", expires=earlier)
    assert wait_for(
        lambda: refused(send(signed(server, key=key, token="the-token")), 403, "ExpiredTokenException", "expired")
    )


def imagebuilder(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout


def test_keys_in_the_database(server: Server) -> None:
    common = ["--data-dir", str(server.data_dir)]
    out = imagebuilder("keys", "create", "--account", OTHER_ACCOUNT, "--database", *common)
    fields = dict(line.split(" = ") for line in out.strip().splitlines())
    key = (fields["aws_access_key_id"], fields["aws_secret_access_key"])
    assert send(signed(server, key=key)).status_code == 200
    created = send(
        signed(
            server,
            "PUT",
            "/CreateInfrastructureConfiguration",
            json.dumps({"name": "db-key-infra", "instanceProfileName": "p", "clientToken": "db-key"}).encode(),
            key=key,
        )
    )
    assert created.json()["infrastructureConfigurationArn"].split(":")[4] == OTHER_ACCOUNT
    db = (server.data_dir / "imagebuilder.sqlite").read_bytes()
    assert key[1].encode() not in db
    assert key[0] in imagebuilder("keys", "list", "--database", *common)
    imagebuilder("keys", "revoke", "--access-key-id", key[0], "--database", *common)
    assert wait_for(lambda: refused(send(signed(server, key=key)), 403, "UnrecognizedClientException"), 10)


def test_dev_mode_accepts_any_signature_and_says_so(tmp_path: Path) -> None:
    srv = start_server(tmp_path, env={"IMAGEBUILDER_AUTH_MODE": "dev"})
    try:
        resp = send(signed(srv, "PUT", "/CreateInfrastructureConfiguration", json.dumps(
            {"name": "dev-infra", "instanceProfileName": "p", "clientToken": "dev"}).encode(),
            key=("ANYTHING", "whatever")))  # fmt: skip
        assert resp.status_code == 200, resp.text
        assert resp.json()["infrastructureConfigurationArn"].split(":")[4] == ACCOUNT
        assert refused(requests.post(srv.url + LIST, data=BODY, timeout=10), 403, "MissingAuthenticationTokenException")
    finally:
        stop_server(srv)
    assert "AUTH MODE dev" in srv.log.read_text()


def test_a_missing_master_key_stops_the_server_at_start(tmp_path: Path) -> None:
    elsewhere = tmp_path / "nowhere" / "master.key"
    with pytest.raises(RuntimeError, match=r"master key .*nowhere.* is missing"):
        start_server(tmp_path, env={"IMAGEBUILDER_MASTER_KEY_FILE": str(elsewhere)})


def test_the_first_key_of_imagebuilder_up_works_with_the_aws_cli(tmp_path: Path) -> None:
    import argparse
    import os

    from engine import settings
    from engine.up import _credentials_hint

    config = settings.load(argparse.Namespace(data_dir=str(tmp_path)))
    first = provision_first_key(config.keys_path, config.master_key_path, config.account_id)
    assert first is not None and provision_first_key(config.keys_path, config.master_key_path, "1" * 12) is None
    hint = _credentials_hint(config, first)
    assert f"AWS_SHARED_CREDENTIALS_FILE={first[1].resolve()}" in hint and first[0] in hint
    assert oct(first[1].stat().st_mode & 0o777) == "0o600"
    srv = start_server(tmp_path)
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(AWS_SHARED_CREDENTIALS_FILE=str(first[1]), AWS_DEFAULT_REGION=REGION, AWS_PAGER="")
        cmd = [sys.executable, "-m", "awscli", "imagebuilder", "create-infrastructure-configuration", "--name"]
        cmd += ["cli-first-key", "--instance-profile-name", "p", "--endpoint-url", srv.url, "--output", "json"]
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["infrastructureConfigurationArn"].split(":")[4] == ACCOUNT
    finally:
        stop_server(srv)
