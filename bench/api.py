"""API throughput and latency: GetComponent, ListComponents and CreateComponent with 1, 8 and
32 concurrent clients, and the time to page through 10,000 components.

    .venv/bin/python bench/api.py [--url URL] [--seconds 5] [--components 10000]

Without --url it starts its own server on a temporary data directory. Clients are separate
processes (so the client's own CPU use does not hide in the server's GIL) driving raw HTTP
over keep-alive connections; the requests are the ones boto3 sends.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DOC = (
    "schemaVersion: 1.0\nphases:\n  - name: build\n    steps:\n      - name: S\n"
    "        action: ExecuteBash\n        inputs:\n          commands: [echo hi]\n"
)


#: Requests are signed as boto3 signs them; our own server has this key (tests/api/conftest.py).
CREDENTIALS = (os.environ.get("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"), os.environ.get("AWS_SECRET_ACCESS_KEY", "secret"))


def _signed_headers(conn: http.client.HTTPConnection, method: str, path: str, data: bytes) -> dict[str, str]:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    req = AWSRequest(method, f"http://{conn.host}:{conn.port}{path}", {"content-type": "application/json"}, data)
    SigV4Auth(Credentials(*CREDENTIALS), "imagebuilder", "us-east-1").add_auth(req)
    return dict(req.headers)


def _request(conn: http.client.HTTPConnection, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else b""
    conn.request(method, path, body=data or None, headers=_signed_headers(conn, method, path, data))
    resp = conn.getresponse()
    payload = resp.read()
    if resp.status != 200:
        raise RuntimeError(f"{method} {path}: {resp.status} {payload[:200]!r}")
    result: dict[str, Any] = json.loads(payload)
    return result


def _worker(args: tuple[str, str, float, str, int]) -> list[float]:
    host_port, op, seconds, arn, idx = args
    host, port = host_port.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    latencies: list[float] = []
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        if op == "GetComponent":
            from urllib.parse import quote

            _request(conn, "GET", f"/GetComponent?componentBuildVersionArn={quote(arn, safe='')}", None)
        elif op == "ListComponents":
            _request(conn, "POST", "/ListComponents", {"maxResults": 25})
        else:
            body = {
                "name": f"bench-{idx}-{n}-{uuid.uuid4().hex[:6]}",
                "semanticVersion": "1.0.0",
                "platform": "Linux",
                "data": DOC,
                "clientToken": str(uuid.uuid4()),
            }
            _request(conn, "PUT", "/CreateComponent", body)
        latencies.append(time.perf_counter() - t0)
        n += 1
    return latencies


def run_load(host_port: str, op: str, clients: int, seconds: float, arn: str) -> dict[str, float]:
    with mp.Pool(clients) as pool:
        results = pool.map(_worker, [(host_port, op, seconds, arn, i) for i in range(clients)])
    lat = sorted(x for r in results for x in r)
    total = len(lat)
    return {
        "requests": total,
        "rps": total / seconds,
        "p50_ms": statistics.median(lat) * 1000,
        "p99_ms": lat[min(total - 1, int(total * 0.99))] * 1000,
    }


def fill(host_port: str, count: int) -> None:
    host, port = host_port.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    for i in range(count):
        _request(
            conn,
            "PUT",
            "/CreateComponent",
            {
                "name": f"page-{i:05d}",
                "semanticVersion": "1.0.0",
                "platform": "Linux",
                "data": DOC,
                "clientToken": str(uuid.uuid4()),
            },
        )


def page_all(host_port: str) -> tuple[int, float]:
    host, port = host_port.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    t0 = time.perf_counter()
    seen = 0
    token = None
    while True:
        body: dict[str, Any] = {"maxResults": 25}
        if token:
            body["nextToken"] = token
        page = _request(conn, "POST", "/ListComponents", body)
        seen += len(page["componentVersionList"])
        token = page.get("nextToken")
        if not token:
            break
    return seen, time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="an existing server, e.g. http://127.0.0.1:8080")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--components", type=int, default=10000)
    parser.add_argument("--workers", type=int, default=1, help="server processes when starting our own")
    parser.add_argument("--clients", default="1,8,32")
    args = parser.parse_args()
    server = None
    if args.url:
        host_port = args.url.split("//", 1)[1].rstrip("/")
    else:
        from tests.api.conftest import start_server, stop_server

        server = start_server(Path(tempfile.mkdtemp(prefix="ib-bench-")), workers=args.workers)
        host_port = server.url.split("//", 1)[1]
    try:
        host, port = host_port.split(":")
        conn = http.client.HTTPConnection(host, int(port))
        arn = _request(
            conn,
            "PUT",
            "/CreateComponent",
            {
                "name": f"bench-get-{uuid.uuid4().hex[:8]}",
                "semanticVersion": "1.0.0",
                "platform": "Linux",
                "data": DOC,
                "clientToken": str(uuid.uuid4()),
            },
        )["componentBuildVersionArn"]
        print(f"{'operation':<16}{'clients':>8}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
        for op in ("GetComponent", "ListComponents", "CreateComponent"):
            for clients in (int(c) for c in args.clients.split(",")):
                r = run_load(host_port, op, clients, args.seconds, arn)
                print(f"{op:<16}{clients:>8}{r['rps']:>10.0f}{r['p50_ms']:>10.2f}{r['p99_ms']:>10.2f}", flush=True)
        if args.components:
            existing, _ = page_all(host_port)
            if existing < args.components:
                fill(host_port, args.components - existing)
            seen, took = page_all(host_port)
            print(f"paged through {seen} components (25 per page) in {took:.2f} s")

    finally:
        if server is not None:
            stop_server(server)

    return 0


if __name__ == "__main__":
    sys.exit(main())
