"""A fleet sharing one S3-compatible image store: a real container build where the API server
and control worker are one "host" and the docker executor another, with separate data
directories (so separate store caches) and nothing shared but the database, Temporal and a
bucket on moto's S3 server (standing in for MinIO / Ceph RGW) on loopback.

The executor host has none of the documents the API wrote, so the build only succeeds if they
travel through the bucket; the image record's package list only appears if the inventory the
executor collected travels back the same way.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.api.conftest import Server, start_server, stop_server
from tests.builds.conftest import Temporal
from tests.builds.test_container_build import TERMINAL, leftovers, setup_build, wait_for
from tests.support.s3 import s3_server

PREFIX = "fleet/one"


@dataclass
class Fleet:
    api: Server
    control_dir: Path  # the API's and control worker's host
    executor_dir: Path  # the docker executor's host
    bucket: str
    s3: Any


def _worker(data_dir: Path, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    log = (data_dir / f"worker{'-'.join(args)}.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "worker", *args],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env}, start_new_session=True,
    )  # fmt: skip


@pytest.fixture(scope="module")
def fleet(temporal: Temporal, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    with s3_server() as endpoint:
        credentials = {
            "AWS_ACCESS_KEY_ID": "fleet",
            "AWS_SECRET_ACCESS_KEY": "fleet-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="fleet",
                          aws_secret_access_key="fleet-secret")  # fmt: skip
        bucket = f"images-{uuid.uuid4().hex[:8]}"
        s3.create_bucket(Bucket=bucket)
        control_dir, executor_dir = tmp_path_factory.mktemp("control-host"), tmp_path_factory.mktemp("docker-host")
        common = {
            **credentials,
            "IMAGEBUILDER_TEMPORAL_ADDRESS": temporal.address,
            "IMAGEBUILDER_REGISTRY": "127.0.0.1:5000",
            "IMAGEBUILDER_STORE_URL": f"s3://{bucket}/{PREFIX}",
            "IMAGEBUILDER_S3_ENDPOINT_URL": endpoint,
            # The control plane's database, reachable from the control host only.
            "IMAGEBUILDER_DATABASE_URL": f"sqlite:///{control_dir / 'imagebuilder.sqlite'}",
        }
        api = start_server(control_dir, database_url=common["IMAGEBUILDER_DATABASE_URL"], env=common)
        control = _worker(control_dir, {**common, "IMAGEBUILDER_DATA_DIR": str(control_dir)}, "--control")
        executor = _worker(
            executor_dir, {**common, "IMAGEBUILDER_DATA_DIR": str(executor_dir)}, "--executors", "docker"
        )
        try:
            yield Fleet(api, control_dir, executor_dir, bucket, s3)
        finally:
            for proc in (executor, control):
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(30)
            stop_server(api)


def _objects(fleet: Fleet) -> dict[str, str]:
    """Relative reference -> the sha256 it was published with."""
    found = {}
    for page in fleet.s3.get_paginator("list_objects_v2").paginate(Bucket=fleet.bucket, Prefix=f"{PREFIX}/"):
        for obj in page.get("Contents") or []:
            head = fleet.s3.head_object(Bucket=fleet.bucket, Key=obj["Key"])
            found[obj["Key"].removeprefix(f"{PREFIX}/")] = head["Metadata"]["sha256"]
    return found


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_build_across_two_hosts_shares_documents_logs_and_inventory_through_the_bucket(fleet: Fleet) -> None:
    ib = fleet.api.client()
    name = f"fleet-{uuid.uuid4().hex[:6]}"
    arn = ib.create_image(**setup_build(ib, name, tests=False))["imageBuildVersionArn"]
    image = wait_for(ib, arn, TERMINAL)
    assert image["state"]["status"] == "AVAILABLE", image["state"]
    assert leftovers(arn) == []
    objects = _objects(fleet)
    control, executor = fleet.control_dir / "store", fleet.executor_dir / "store"

    # Documents: written by the API, under the same relative keys, with their checksums; the
    # executor host got the component document from the bucket (it never had a copy).
    documents = sorted(ref for ref in objects if ref.startswith("documents/"))
    assert [r.rsplit(".", 1)[1] for r in documents].count("yaml") >= 1 and any(r.endswith(".json") for r in documents)
    for ref in documents:
        assert (control / ref).is_file() and _sha256(control / ref) == objects[ref] == ref[10:74]
    fetched = [ref for ref in documents if (executor / ref).is_file()]
    assert fetched and all(_sha256(executor / ref) == objects[ref] for ref in fetched)

    # Step logs: written on the executor host, every file in the bucket under the same key.
    logs = {ref for ref in objects if ref.startswith("logs/")}
    local_logs = {p.relative_to(executor).as_posix() for p in (executor / "logs").rglob("*") if p.is_file()}
    assert local_logs and logs == local_logs
    assert all(_sha256(executor / ref) == objects[ref] for ref in logs)
    steps = {ref.split("/")[5] for ref in logs}  # logs/<image>/<version>/<build>/build/<step>/...
    assert {"ApplyBuildComponents", "DistributeContainerImage"} <= steps, steps  # the steps that write logs
    assert any(ref.endswith("detailedoutput.json") for ref in logs)
    assert not (control / "logs").exists()  # the control host never needed them

    # The inventory went executor -> bucket -> control worker -> image record.
    packages_ref = next(ref for ref in objects if ref.endswith("/packages.json"))
    assert _sha256(control / packages_ref) == _sha256(executor / packages_ref) == objects[packages_ref]
    packages = ib.list_image_packages(imageBuildVersionArn=arn)["imagePackageList"]
    assert any(p["packageName"] == "bash" for p in packages), packages[:5]

    # Where a step's log is, as the API shows it: the bucket, not a path on some host.
    build = ib.list_workflow_executions(imageBuildVersionArn=arn)["workflowExecutions"][0]
    step_list = ib.list_workflow_step_executions(workflowExecutionId=build["workflowExecutionId"])["steps"]
    assert any(f"s3://{fleet.bucket}/{PREFIX}/logs/" in (s.get("message") or "") for s in step_list), step_list


def test_a_store_the_api_cannot_reach_is_service_unavailable_not_a_500(tmp_path: Path) -> None:
    env = {
        "AWS_ACCESS_KEY_ID": "fleet",
        "AWS_SECRET_ACCESS_KEY": "fleet-secret",
        "IMAGEBUILDER_STORE_URL": "s3://images/fleet",
        "IMAGEBUILDER_S3_ENDPOINT_URL": "http://127.0.0.1:9",  # nothing listens there
        "IMAGEBUILDER_TEMPORAL_ADDRESS": "127.0.0.1:9",
    }
    api = start_server(tmp_path / "api", env=env)
    try:
        ib = api.client()
        request = setup_build(ib, "unreachable", tests=False)
        with pytest.raises(ib.exceptions.ServiceUnavailableException) as raised:
            ib.create_image(**request)
        message = raised.value.response["Error"]["Message"]
        assert "the image store cannot take the build's documents" in message, message
        assert "s3://images/fleet/documents/" in message and "http://127.0.0.1:9" in message, message
        assert ib.list_images()["imageVersionList"] == []  # nothing half-made
    finally:
        stop_server(api)
