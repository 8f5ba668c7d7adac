"""Structured log lines, log locations and the s3Logs copy, without a build."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from moto.server import ThreadedMotoServer

from engine.observability import log_locations
from engine.observability.logs import BuildContextFilter, JsonFormatter, TextFormatter, build_context, configure_logging
from tests.api.conftest import free_port

ARN = "arn:aws:imagebuilder:us-east-1:123456789012:image/web-app/1.2.3/4"


def _capture(formatter: logging.Formatter) -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(BuildContextFilter())
    handler.setFormatter(formatter)
    logger = logging.getLogger(f"test.{id(out)}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, out


def test_json_lines_carry_the_build_context_into_step_threads() -> None:
    logger, out = _capture(JsonFormatter())

    async def step() -> None:
        with build_context(image_arn=ARN, step="ApplyBuildComponents", stage="BUILD"):
            # Executors log from the step's thread: asyncio.to_thread copies the context.
            await asyncio.to_thread(logger.info, "running %s", "components")
        logger.warning("after the step")

    asyncio.run(step())
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["message"] == "running components"
    assert first["level"] == "info" and first["logger"] == logger.name
    assert first["image_arn"] == ARN and first["step"] == "ApplyBuildComponents" and first["stage"] == "BUILD"
    assert first["time"].endswith("Z") and "T" in first["time"]
    assert second["level"] == "warning" and "image_arn" not in second


def test_text_lines_name_the_build_when_known() -> None:
    logger, out = _capture(TextFormatter())
    with build_context(image_arn=ARN, step="Launch"):
        logger.info("hello")
    logger.info("plain")
    with_context, plain = out.getvalue().splitlines()
    assert with_context.endswith(f"hello [image_arn={ARN} step=Launch]")
    assert plain.endswith("plain")


def test_exceptions_are_one_json_line() -> None:
    logger, out = _capture(JsonFormatter())
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logger.exception("failed")
    (line,) = out.getvalue().splitlines()
    assert "RuntimeError: boom" in json.loads(line)["exception"]


def test_bad_log_format_is_refused_with_the_setting_name() -> None:
    with pytest.raises(SystemExit, match="IMAGEBUILDER_LOG_FORMAT"):
        configure_logging("info", "xml")


def test_s3_logs_uri_follows_the_log_store_layout() -> None:
    infra = {"logging": {"s3Logs": {"s3BucketName": "build-logs", "s3KeyPrefix": "/factory/"}}}
    uri = log_locations.s3_logs_uri(infra, ARN, "BUILD", "ApplyBuildComponents")
    assert uri == "s3://build-logs/factory/web-app/1.2.3/4/build/ApplyBuildComponents/"
    no_prefix = {"logging": {"s3Logs": {"s3BucketName": "b"}}}
    assert log_locations.s3_logs_uri(no_prefix, ARN, "TEST", "t") == "s3://b/web-app/1.2.3/4/test/t/"
    assert log_locations.s3_logs_uri({"logging": {}}, ARN, "BUILD", "s") == ""
    assert log_locations.image_log_prefix(ARN) == "logs/web-app/1.2.3/4"


def _step_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "step"
    (folder / "components" / "01-motd").mkdir(parents=True)
    (folder / "docker-build.log").write_text("Step 1/3\n")
    (folder / "components" / "01-motd" / "console.log").write_text("hi\n")
    return folder


def test_ship_step_logs_to_the_export_dir(tmp_path: Path) -> None:
    folder = _step_folder(tmp_path)
    uri = "s3://logs-bucket/p/web-app/1.2.3/4/build/Apply/"
    assert log_locations.ship_step_logs(folder, uri, tmp_path / "exports") == 2
    target = tmp_path / "exports" / "logs-bucket" / "p" / "web-app" / "1.2.3" / "4" / "build" / "Apply"
    assert (target / "docker-build.log").read_text() == "Step 1/3\n"
    assert (target / "components" / "01-motd" / "console.log").read_text() == "hi\n"
    with pytest.raises(ValueError, match="inside a bucket"):
        log_locations.ship_step_logs(folder, "s3://../x/", tmp_path / "exports")


@pytest.fixture()
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def test_ship_step_logs_to_an_s3_endpoint(tmp_path: Path, s3_endpoint: str) -> None:
    from workers.disk_export import s3_client

    s3 = s3_client(s3_endpoint)
    s3.create_bucket(Bucket="logs-bucket")
    folder = _step_folder(tmp_path)
    assert (
        log_locations.ship_step_logs(folder, "s3://logs-bucket/p/img/1.0.0/1/build/Apply/", tmp_path, s3_endpoint) == 2
    )
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="logs-bucket")["Contents"])
    assert keys == [
        "p/img/1.0.0/1/build/Apply/components/01-motd/console.log",
        "p/img/1.0.0/1/build/Apply/docker-build.log",
    ]
    body = s3.get_object(Bucket="logs-bucket", Key="p/img/1.0.0/1/build/Apply/docker-build.log")["Body"].read()
    assert body == b"Step 1/3\n"


@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [("--log-format", "xml", "must be text or json"), ("--otel-exporter", "jaeger", "OTLP/HTTP URL")],
)
def test_worker_refuses_bad_observability_settings(flag: str, value: str, says: str) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "engine.cli", "worker", "--control", flag, value],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0 and says in done.stderr, done.stderr
