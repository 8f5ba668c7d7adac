"""The wire contract across all operations: every operation of the model is routed by its
method and URI, errors come back in the AWS shape and only as codes the operation declares,
and concurrent writers lose nothing."""

from __future__ import annotations

import json
import threading
from typing import Any
from urllib.parse import quote

import botocore.session
import pytest

from tests.api.conftest import ACCOUNT, Server

MODEL = botocore.session.get_session().get_service_model("imagebuilder")
ARN = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:component/none/1.0.0/1"
DOC = "schemaVersion: 1.0\nphases:\n  - name: build\n    steps:\n      - name: S\n        action: ExecuteBash\n"
DOC += "        inputs:\n          commands: [echo hi]\n"


def _path(operation: str) -> str:
    uri = MODEL.operation_model(operation).http["requestUri"].split("?")[0]
    return uri.replace("{resourceArn}", quote(ARN, safe=""))


@pytest.mark.parametrize("operation", MODEL.operation_names)
def test_every_operation_is_routed_and_answers_in_its_own_terms(server: Server, operation: str) -> None:
    op = MODEL.operation_model(operation)
    resp = server.request(op.http["method"], _path(operation), data=b"{}", timeout=10)
    declared = {e.name for e in op.error_shapes}
    if resp.status_code == 200:
        # Only operations without required members can succeed on an empty request.
        required = set(op.input_shape.required_members) - {"resourceArn"} if op.input_shape else set()
        assert not required, f"{operation} accepted a request without {required}"
        return
    code = resp.headers.get("x-amzn-errortype")
    assert code in declared, f"{operation} answered {code}, which it does not declare ({sorted(declared)})"
    assert resp.status_code < 500 or code in ("ServiceUnavailableException",), resp.text
    assert isinstance(resp.json()["message"], str) and resp.json()["message"]


def test_unknown_route_and_bad_bodies(server: Server) -> None:
    resp = server.request("POST", "/NoSuchOperation", data=b"{}", timeout=5)
    assert resp.status_code == 404 and resp.headers["x-amzn-errortype"] == "UnknownOperationException"
    resp = server.request("PUT", "/CreateComponent", data=b"{not json", timeout=5)
    assert resp.status_code == 400 and resp.headers["x-amzn-errortype"] == "InvalidRequestException"
    resp = server.request("PUT", "/CreateComponent", data=b"[1, 2]", timeout=5)
    assert resp.status_code == 400
    body = {"name": "typed", "semanticVersion": 1, "platform": "Linux", "data": DOC, "clientToken": "t-typed"}
    resp = server.request("PUT", "/CreateComponent", data=json.dumps(body).encode(), timeout=5)
    assert resp.status_code == 400 and "semanticVersion" in resp.json()["message"]
    body = {"name": "enum", "semanticVersion": "1.0.0", "platform": "Plan9", "data": DOC, "clientToken": "t-enum"}
    resp = server.request("PUT", "/CreateComponent", data=json.dumps(body).encode(), timeout=5)
    assert resp.status_code == 400 and "enum" in resp.json()["message"]
    resp = server.request("PUT", "/CreateComponent", data=b"x" * (17 * 1024 * 1024), timeout=30)
    assert resp.status_code == 413


def test_concurrent_writers_lose_nothing(ib: Any) -> None:
    """16 clients create builds of one component version at once: 16 distinct builds."""
    arns: list[str] = []
    failures: list[Exception] = []

    def create(i: int) -> None:
        try:
            r = ib.create_component(name="contended", semanticVersion="1.0.0", platform="Linux", data=DOC + f"# {i}\n")
            arns.append(r["componentBuildVersionArn"])
        except Exception as exc:
            failures.append(exc)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    assert sorted(int(a.rsplit("/", 1)[1]) for a in arns) == list(range(1, 17))
    listed = ib.list_component_build_versions(
        componentVersionArn=f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:component/contended/1.0.0"
    )["componentSummaryList"]
    assert len(listed) == 16


def test_one_client_token_raced_creates_one_resource(ib: Any) -> None:
    results: list[str] = []

    def create() -> None:
        r = ib.create_component(
            name="raced", semanticVersion="1.0.0", platform="Linux", data=DOC, clientToken="the-same-token"
        )
        results.append(r["componentBuildVersionArn"])

    threads = [threading.Thread(target=create) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8 and len(set(results)) == 1
