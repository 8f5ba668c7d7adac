"""Malformed requests never get a 5xx: hypothesis builds bodies from the API model with the
wrong types, sizes and characters in every member, and sends them to every operation."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import botocore.session
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.conftest import Server

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


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=request())
def test_malformed_requests_never_get_a_server_error(server: Server, case: tuple[str, dict[str, Any]]) -> None:
    operation, body = case
    op = MODEL.operation_model(operation)
    uri = op.http["requestUri"].split("?")[0]
    label = body.pop("resourceArn", "arn") if "{resourceArn}" in uri else None
    uri = uri.replace("{resourceArn}", quote(str(label), safe=""))
    query = {}
    if op.http["method"] in ("GET", "DELETE"):
        query = {k: json.dumps(v) if not isinstance(v, str) else v for k, v in body.items()}
        data = b""
    else:
        data = json.dumps(body).encode()
    resp = requests.request(op.http["method"], server.url + uri, params=query, data=data, timeout=30)
    assert resp.status_code < 500 or resp.headers.get("x-amzn-errortype") == "ServiceUnavailableException", (
        operation,
        body,
        resp.status_code,
        resp.text[:300],
    )
    if resp.status_code != 200:
        declared = {e.name for e in op.error_shapes}
        assert resp.headers.get("x-amzn-errortype") in declared, (operation, resp.headers.get("x-amzn-errortype"))
        assert isinstance(resp.json().get("message"), str)
