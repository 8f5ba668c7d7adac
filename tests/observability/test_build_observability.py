"""Observability of real builds: two container builds on the real stack (Temporal dev server
and API server as processes, the Docker executor, the loopback registry).

The first build runs on workers started in this process by `run_workers` (what `imagebuilder
worker` runs), so an in-memory span exporter can see the spans; the second runs on an
`imagebuilder worker` process with JSON logs and a metrics port. Each is followed by an
`imagebuilder follow` process, signing with a profile from a credentials file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families
from temporalio.client import Client

from engine import settings
from engine.observability import tracing
from engine.observability.logs import BuildContextFilter, JsonFormatter
from engine.worker_cli import run_workers
from tests.api.conftest import ACCOUNT, CREDENTIALS, REGION, Server, free_port, start_server, stop_server
from tests.builds.conftest import Temporal
from tests.builds.test_container_build import COMPONENT, FAILING, TERMINAL, leftovers, setup_build, wait_for

BUCKET, PREFIX = "build-logs", "factory"


@dataclass
class Followed:
    arn: str
    recipe_arn: str
    image: dict[str, Any]
    follow_rc: int
    follow_out: str
    worker_metrics: str
    log_lines: list[dict[str, Any]]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("obs")


@pytest.fixture(scope="module")
def env(temporal: Temporal, data_dir: Path) -> Iterator[dict[str, str]]:
    values = {
        "IMAGEBUILDER_DATA_DIR": str(data_dir),
        "IMAGEBUILDER_TEMPORAL_ADDRESS": temporal.address,
        "IMAGEBUILDER_REGISTRY": "127.0.0.1:5000",
        "IMAGEBUILDER_LOG_FORMAT": "json",
    }
    # The in-process control worker's background loops read settings from the environment.
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    yield values
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def api(env: dict[str, str], data_dir: Path) -> Iterator[Server]:
    server = start_server(data_dir, env=env)
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use_tracer_provider(provider)
    return exporter


def credentials_file(folder: Path) -> Path:
    """A profile the way `imagebuilder up` writes the default account's key."""
    key_id, secret = CREDENTIALS[ACCOUNT]
    path = folder / "credentials"
    path.write_text(f"[factory]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n")
    return path


def start_follow(api: Server, arn: str, data_dir: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_SHARED_CREDENTIALS_FILE=str(credentials_file(data_dir)), AWS_DEFAULT_REGION=REGION)
    cmd = [sys.executable, "-m", "engine.cli", "follow", arn, "--endpoint-url", api.url, "--profile", "factory"]
    return subprocess.Popen(
        [*cmd, "--interval", "0.5"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )


def create_build(ib: Any, name: str, component: str) -> tuple[str, str]:
    params = setup_build(ib, name, component=component, tests=False)
    infra = ib.create_infrastructure_configuration(
        name=f"{name}-logged",
        instanceProfileName="local-docker",
        logging={"s3Logs": {"s3BucketName": BUCKET, "s3KeyPrefix": PREFIX}},
    )
    params["infrastructureConfigurationArn"] = infra["infrastructureConfigurationArn"]
    return ib.create_image(**params)["imageBuildVersionArn"], params["containerRecipeArn"]


def build_and_follow(api: Server, data_dir: Path, name: str, component: str, metrics_port: int) -> Followed:
    """Start a build, follow it with `imagebuilder follow`, and read the worker's metrics after."""
    ib = api.client()
    arn, recipe_arn = create_build(ib, f"{name}-{uuid.uuid4().hex[:6]}", component)
    follow = start_follow(api, arn, data_dir)
    image = wait_for(ib, arn, TERMINAL, timeout=600)
    out, _ = follow.communicate(timeout=60)
    text = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
    return Followed(arn, recipe_arn, image, follow.returncode, out, text, [])


class InProcessWorkers:
    """`run_workers` (the control worker and a Docker executor) on a thread of this process."""

    def __init__(self, config: settings.Config) -> None:
        self.loop = asyncio.new_event_loop()
        self.task: asyncio.Task[None] | None = None
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(config,), daemon=True)
        self.thread.start()
        self.ready.wait(30)

    def _run(self, config: settings.Config) -> None:
        asyncio.set_event_loop(self.loop)
        self.task = self.loop.create_task(run_workers(config, True, ["docker"], 2))
        self.loop.call_soon(self.ready.set)
        with contextlib.suppress(asyncio.CancelledError):
            self.loop.run_until_complete(self.task)

    def stop(self) -> None:
        assert self.task is not None
        self.loop.call_soon_threadsafe(self.task.cancel)
        self.thread.join(60)


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[dict[str, Any]] = []
        self.addFilter(BuildContextFilter())
        self.setFormatter(JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture(scope="module")
def available(api: Server, env: dict[str, str], data_dir: Path, spans: InMemorySpanExporter) -> Followed:
    """Build 1 (AVAILABLE) on in-process workers with tracing into `spans`."""
    port = free_port()
    config = settings.load(argparse.Namespace(metrics_port=str(port)))
    handler = ListHandler()
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.INFO)
    workers = InProcessWorkers(config)
    try:
        followed = build_and_follow(api, data_dir, "traced", COMPONENT, port)
    finally:
        workers.stop()
        root.removeHandler(handler)
        root.setLevel(old_level)
    followed.log_lines = handler.lines
    return followed


@pytest.fixture(scope="module")
def failed(api: Server, env: dict[str, str], data_dir: Path, available: Followed) -> Iterator[Followed]:
    """Build 2 (FAILED) on an `imagebuilder worker` process: JSON logs, a metrics port."""
    port = free_port()
    log = data_dir / "worker.log"
    worker_env = {**os.environ, **env, "IMAGEBUILDER_METRICS_PORT": str(port)}
    worker = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "worker", "--control", "--executors", "docker"],
        stdout=log.open("wb"), stderr=subprocess.STDOUT, env=worker_env,
    )  # fmt: skip
    try:
        followed = build_and_follow(api, data_dir, "failing", FAILING, port)
    finally:
        worker.terminate()
        worker.wait(30)
    followed.log_lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    yield followed


def _span(spans: InMemorySpanExporter, name: str, arn: str) -> ReadableSpan:
    found = [
        s
        for s in spans.get_finished_spans()
        if s.name == name and (s.attributes or {}).get(tracing.IMAGE_ARN_ATTRIBUTE) == arn
    ]
    assert found, f"no {name} span with the image ARN; have {sorted({s.name for s in spans.get_finished_spans()})}"
    return found[0]


def test_follow_shows_stages_steps_and_step_output_and_exits_0(available: Followed) -> None:
    assert available.image["state"]["status"] == "AVAILABLE", available.image["state"]
    out = available.follow_out
    assert available.follow_rc == 0, out
    assert f"image {available.arn} " in out and out.rstrip().endswith("image AVAILABLE")
    assert "BUILD COMPLETED" in out and "DISTRIBUTION COMPLETED" in out
    for step in ("LaunchBuildInstance", "BootstrapBuildInstance", "ApplyBuildComponents"):
        assert f"BUILD {step} [" in out and "COMPLETED (" in out
    # The running steps' log files, tailed from the folder the API names.
    assert "── docker-build.log" in out or "── components/" in out, out
    assert "│ " in out


def test_workflow_and_activity_spans_carry_the_image_arn(available: Followed, spans: InMemorySpanExporter) -> None:
    _span(spans, "RunWorkflow:ImageBuild", available.arn)
    for action in ("LaunchInstance", "ExecuteComponents", "DistributeContainerImage"):
        started = _span(spans, f"StartActivity:{action}", available.arn)
        ran = _span(spans, f"RunActivity:{action}", available.arn)
        # The executor's span continues the trace the workflow's start of the step began.
        assert ran.parent is not None and ran.parent.span_id == started.context.span_id
        assert ran.context.trace_id == started.context.trace_id
    apply = _span(spans, "RunActivity:ExecuteComponents", available.arn)
    assert (apply.attributes or {})["imagebuilder.step"] == "ApplyBuildComponents"
    assert (apply.attributes or {})["imagebuilder.executor"] == "docker"


def test_builds_are_found_by_search_attributes(available: Followed, temporal: Temporal) -> None:
    async def find(query: str) -> list[str]:
        client = await Client.connect(temporal.address)
        return [w.id async for w in client.list_workflows(query)]

    name_version = available.arn.split(":image/", 1)[1]
    deadline = time.monotonic() + 20  # visibility is eventually consistent
    while True:
        by_image = asyncio.run(find(f"ImageArn = '{available.arn}'"))
        by_recipe = asyncio.run(find(f"RecipeArn = '{available.recipe_arn}'"))
        if (by_image and by_recipe) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert by_image == [f"image/{name_version}"]
    assert by_recipe == [f"image/{name_version}"]


def test_step_executions_name_their_logs_and_the_s3logs_copy(available: Followed, api: Server, data_dir: Path) -> None:
    ib = api.client()
    name, version, build = available.arn.split(":image/", 1)[1].split("/")
    executions = ib.list_workflow_executions(imageBuildVersionArn=available.arn)["workflowExecutions"]
    checked = 0
    for execution in executions:
        stage = execution["type"].lower()
        for step in ib.list_workflow_step_executions(workflowExecutionId=execution["workflowExecutionId"])["steps"]:
            if step["status"] == "SKIPPED":
                continue
            message = step["message"]
            uri = f"s3://{BUCKET}/{PREFIX}/{name}/{version}/{build}/{stage}/{step['name']}/"
            assert f"s3Logs: {uri}" in message, message
            folder = Path(message.split("logs: ", 1)[1].split(";", 1)[0])
            assert folder == data_dir / "store" / "logs" / name / version / build / stage / step["name"]
            assert folder.is_dir()
            files = sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file())
            copied = data_dir / "exports" / BUCKET / PREFIX / name / version / build / stage / step["name"]
            assert sorted(p.relative_to(copied) for p in copied.rglob("*") if p.is_file()) == files
            checked += len(files)
            one = ib.get_workflow_step_execution(stepExecutionId=step["stepExecutionId"])
            assert one["message"] == message
    assert checked > 0


def test_worker_metrics_have_step_durations_and_slots(available: Followed) -> None:
    families = {f.name: f for f in text_string_to_metric_families(available.worker_metrics)}
    counts = {
        (s.labels["action"], s.labels["outcome"]): s.value
        for s in families["imagebuilder_step_duration_seconds"].samples
        if s.name.endswith("_count") and s.labels["executor"] == "docker"
    }
    assert counts[("ExecuteComponents", "ok")] >= 1 and counts[("LaunchInstance", "ok")] >= 1
    slots = {
        (s.labels["task_queue"], s.labels["state"]): s.value for s in families["imagebuilder_worker_slots"].samples
    }
    assert slots[("imagebuilder-docker", "used")] + slots[("imagebuilder-docker", "free")] == 2


def test_api_metrics_have_images_by_state_and_queues(available: Followed, api: Server) -> None:
    families = {f.name: f for f in text_string_to_metric_families(requests.get(api.url + "/metrics", timeout=10).text)}
    images = {(s.labels["state"], s.labels["type"]): s.value for s in families["imagebuilder_images"].samples}
    assert images[("AVAILABLE", "DOCKER")] >= 1
    assert families["imagebuilder_temporal_up"].samples[0].value == 1
    backlog = {(s.labels["task_queue"], s.labels["type"]) for s in families["imagebuilder_task_queue_backlog"].samples}
    assert ("imagebuilder-control", "workflow") in backlog and ("imagebuilder-docker", "activity") in backlog


def test_in_process_log_lines_carry_the_build(available: Followed) -> None:
    steps = [line for line in available.log_lines if line.get("image_arn") == available.arn and line.get("step")]
    assert any(line["step"] == "ApplyBuildComponents" and "ok after" in line["message"] for line in steps), steps


def test_failed_build_followed_to_exit_1_with_the_reason(failed: Followed) -> None:
    assert failed.image["state"]["status"] == "FAILED"
    assert failed.follow_rc == 1, failed.follow_out
    assert "BUILD ApplyBuildComponents [ExecuteComponents] FAILED" in failed.follow_out
    assert "image FAILED: " in failed.follow_out
    assert leftovers(failed.arn) == []


def test_worker_process_writes_json_lines_with_the_build(failed: Followed) -> None:
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in failed.log_lines)
    failing = [line for line in failed.log_lines if line.get("step") == "ApplyBuildComponents"]
    assert any(line["image_arn"] == failed.arn and "failed after" in line["message"] for line in failing), failing
    counts = {
        (s.labels["action"], s.labels["outcome"]): s.value
        for f in text_string_to_metric_families(failed.worker_metrics)
        for s in f.samples
        if s.name == "imagebuilder_step_duration_seconds_count"
    }
    assert counts[("ExecuteComponents", "failed")] == 1


def test_failed_step_message_keeps_the_error_and_names_the_logs(failed: Followed, api: Server) -> None:
    ib = api.client()
    build = ib.list_workflow_executions(imageBuildVersionArn=failed.arn)["workflowExecutions"][0]
    steps = ib.list_workflow_step_executions(workflowExecutionId=build["workflowExecutionId"])["steps"]
    apply = next(s for s in steps if s["name"] == "ApplyBuildComponents")
    assert apply["status"] == "FAILED"
    error, logs = apply["message"].split("; logs: ", 1)
    assert error and Path(logs.split(";", 1)[0]).is_dir()


def test_api_server_log_lines_are_json(api: Server) -> None:
    unsigned = requests.get(api.url + "/ListComponents", timeout=10)  # refused, and logged as such
    assert unsigned.status_code == 403
    time.sleep(0.5)
    lines = [json.loads(line) for line in api.log.read_text().splitlines() if line.startswith("{")]
    refused = [line for line in lines if "refused: MissingAuthenticationTokenException" in line["message"]]
    assert refused and refused[-1]["level"] == "info" and refused[-1]["logger"] == "imagebuilder.api"


def test_follow_refuses_what_it_cannot_follow(api: Server, data_dir: Path) -> None:
    unknown = f"arn:aws:imagebuilder:{REGION}:{ACCOUNT}:image/nothing/1.0.0/1"
    follow = start_follow(api, unknown, data_dir)
    out, _ = follow.communicate(timeout=60)
    assert follow.returncode == 4 and "InvalidRequestException" in out and "does not exist" in out
    bad = subprocess.run(
        [sys.executable, "-m", "engine.cli", "follow", "not-an-arn"], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2 and "not an image build version ARN" in bad.stderr
