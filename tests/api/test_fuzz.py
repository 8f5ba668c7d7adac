"""Malformed requests never get a 5xx: hypothesis builds bodies from the API model with the
wrong types, sizes and characters in every member, and sends them to every operation, signed
as a client would sign them, or unsigned, or with a broken signature. Every refusal is in the
AWS error shape and writes nothing to the store."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock
from urllib.parse import quote, urlencode

import botocore.session
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.conftest import Server, sign

MODEL = botocore.session.get_session().get_service_model("imagebuilder")
OPERATIONS = MODEL.operation_names
JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=False),
    st.text(max_size=40),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=10),
    st.just("arn:aws:imagebuilder:us-east-1:123456789012:component/x/1.0.0/1"),
    st.just("x" * 5000),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


@st.composite
def request(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    operation = draw(st.sampled_from(OPERATIONS))
    shape = MODEL.operation_model(operation).input_shape
    members = list(shape.members) if shape is not None else []
    chosen = draw(st.lists(st.sampled_from(members), unique=True, max_size=len(members))) if members else []
    return operation, {name: draw(JUNK) for name in chosen}


def store_digest(server: Server) -> str:
    """Everything the server has stored (resources and remembered responses), as one hash."""
    db = sqlite3.connect(f"file:{server.data_dir / 'imagebuilder.sqlite'}?mode=ro", uri=True)
    try:
        h = hashlib.sha256()
        for table, key in (("resources", "arn"), ("idempotency", "token")):
            for row in db.execute(f"SELECT * FROM {table} ORDER BY {key}"):
                h.update(repr(row).encode())
        return h.hexdigest()
    finally:
        db.close()


#: How a request is authenticated, and the error (status, code) it must get when not validly signed.
AUTH_MODES: dict[str, tuple[int, str] | None] = {
    "signed": None,
    "unsigned": (403, "MissingAuthenticationTokenException"),
    "tampered": (403, "SignatureDoesNotMatch"),
    "unknown key": (403, "UnrecognizedClientException"),
    "expired": (400, "RequestExpired"),
}


def send(server: Server, operation: str, body: dict[str, Any], auth: str) -> requests.Response:
    op = MODEL.operation_model(operation)
    uri = op.http["requestUri"].split("?")[0]
    label = body.pop("resourceArn", "arn") if "{resourceArn}" in uri else None
    url = server.url + uri.replace("{resourceArn}", quote(str(label), safe=""))
    data = b""
    if op.http["method"] in ("GET", "DELETE"):
        query = {k: json.dumps(v) if not isinstance(v, str) else v for k, v in body.items()}
        if query:
            url += "?" + urlencode(query, quote_via=quote, safe="-_.~")
    else:
        data = json.dumps(body).encode()
    if auth == "unsigned":
        return requests.request(op.http["method"], url, data=data, timeout=30)
    when = datetime.now(UTC).replace(tzinfo=None) - (timedelta(minutes=20) if auth == "expired" else timedelta())
    with mock.patch("botocore.auth.get_current_datetime", return_value=when):
        req = sign(op.http["method"], url, data)
    headers = dict(req.headers)
    if auth == "tampered":
        headers["Authorization"] = headers["Authorization"][:-1] + ("0" if headers["Authorization"][-1] != "0" else "1")
    if auth == "unknown key":
        headers["Authorization"] = headers["Authorization"].replace("Credential=AKIDEXAMPLE/", "Credential=AKIDNOONE/")
    return requests.request(op.http["method"], url, data=data, headers=headers, timeout=30)


def check(server: Server, operation: str, body: dict[str, Any], auth: str) -> None:
    op = MODEL.operation_model(operation)
    before = store_digest(server)
    resp = send(server, operation, dict(body), auth)
    assert resp.status_code < 500 or resp.headers.get("x-amzn-errortype") == "ServiceUnavailableException", (
        operation,
        body,
        resp.status_code,
        resp.text[:300],
    )
    if resp.status_code == 200:
        assert AUTH_MODES[auth] is None, (auth, operation)
        return
    assert isinstance(resp.json().get("message"), str) and resp.headers.get("x-amzn-requestid")
    expected = AUTH_MODES[auth]
    if expected is None:
        declared = {e.name for e in op.error_shapes}
        assert resp.headers.get("x-amzn-errortype") in declared, (operation, resp.headers.get("x-amzn-errortype"))
    else:
        assert (resp.status_code, resp.headers.get("x-amzn-errortype")) == expected, (auth, operation, resp.text)
    assert store_digest(server) == before, f"{operation} wrote to the store although it answered {resp.status_code}"


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=request())
def test_malformed_requests_never_get_a_server_error(server: Server, case: tuple[str, dict[str, Any]]) -> None:
    operation, body = case
    check(server, operation, body, "signed")


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=request(), auth=st.sampled_from([m for m in AUTH_MODES if m != "signed"]))
def test_badly_signed_requests_are_refused_before_anything_else(
    server: Server, case: tuple[str, dict[str, Any]], auth: str
) -> None:
    operation, body = case
    check(server, operation, body, auth)
