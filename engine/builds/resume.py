"""Builds the API accepted but never handed to Temporal.

CreateImage (and RetryImage, StartImagePipelineExecution, the imports) commit the PENDING image
record first and start its workflow after the commit. An API server killed in between leaves an
image PENDING with no workflow, and its clientToken already answers with that image: nothing
would ever start it. So each API server, when it starts, looks for such images and starts them
from the input they were frozen with (``_buildInput``); one without a stored input is marked
FAILED with the reason.

An image counts as unstarted only if it is seen PENDING without a running workflow twice,
``CONFIRM_AFTER`` apart: longer than any API server waits for Temporal in that window, so a
build another server is starting right now is never started twice or failed by mistake.
Scheduled pipeline builds are left alone: their image is made inside the pipeline's workflow,
which starts the build itself. Starting is idempotent (fixed workflow ids): several API servers
doing this at once start each build once.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from temporalio.exceptions import WorkflowAlreadyStartedError

from engine.api.errors import ApiError
from engine.api.services import Services
from engine.builds.client import CALL_TIMEOUT
from engine.builds.model import workflow_id

log = logging.getLogger(__name__)
CONFIRM_AFTER = 2 * CALL_TIMEOUT
#: Closed runs a PENDING image may have behind it: a RetryImage whose new run never started.
RERUNNABLE = frozenset({"FAILED", "CANCELED", "TERMINATED", "TIMED_OUT"})


@dataclass(frozen=True)
class Unstarted:
    arn: str
    workflow: str  # the id of the workflow that should be running: the build's or its pipeline run's
    rerun: bool


def candidates(services: Services) -> dict[str, Unstarted]:
    """PENDING images an API request started (not a schedule) whose workflow is not running."""
    from engine.pipelines.schedules import pipeline_name

    with services.store.transaction() as tx:
        pending = [r for r in tx.find("image") if (r.body.get("state") or {}).get("status") == "PENDING"]
    found = {}
    for rec in pending:
        if rec.body.get("buildType") == "SCHEDULED":
            continue
        build_id = workflow_id(rec.arn)
        pipeline = rec.body.get("sourcePipelineArn")
        wf = f"image-pipeline-run/{pipeline_name(pipeline)}/{build_id}" if pipeline else build_id
        status = services.temporal.run_status(wf)
        if status is None or status in RERUNNABLE:
            found[rec.arn] = Unstarted(rec.arn, wf, rerun=status is not None)
        elif status == "COMPLETED" and wf == build_id:
            log.warning("%s is PENDING but its build completed; its final state was not written", rec.arn)
    return found


def start(services: Services, build: Unstarted) -> None:
    from engine.builds.prepare import load_build_input
    from engine.pipelines.model import PipelineRunInput

    with services.store.transaction() as tx:
        rec = tx.get(build.arn, "image")
    if rec is None or (rec.body.get("state") or {}).get("status") != "PENDING":
        return
    ref = rec.body.get("_buildInput")
    if not ref:
        with services.store.transaction(write=True) as tx:
            current = tx.get(build.arn, "image")
            if current is not None and (current.body.get("state") or {}).get("status") == "PENDING":
                reason = "the API server stopped before this build started, and it kept no input to start it from"
                tx.update(current.with_body({**current.body, "state": {"status": "FAILED", "reason": reason}}))
        return
    payload = load_build_input(services.blobs, str(ref))
    pipeline = rec.body.get("sourcePipelineArn")
    try:
        if pipeline:
            services.temporal.start_pipeline_run(PipelineRunInput(str(pipeline), payload))
        else:
            services.temporal.start_build(payload, rerun=build.rerun)
        log.info("started the build of %s, which the API accepted but never started", build.arn)
    except WorkflowAlreadyStartedError:
        pass  # started meanwhile by another API server: fine
    except ApiError as exc:
        if exc.code != "ResourceInUseException":  # the same, said by start_build
            raise


def resume_unstarted(services: Services, confirm_after: float = CONFIRM_AFTER, rounds: int = 20) -> list[str]:
    """Start every build confirmed unstarted; retries while Temporal cannot be reached."""
    started: list[str] = []
    seen: dict[str, Unstarted] = {}
    for _ in range(rounds):
        try:
            now = candidates(services)
            for arn in now.keys() & seen.keys():
                start(services, now[arn])
                started.append(arn)
        except (ApiError, OSError, ValueError) as exc:
            log.warning("cannot resume unstarted builds yet: %s", exc)
            now = seen
        if not now:
            return started
        seen = {arn: u for arn, u in now.items() if arn not in started}
        if not seen:
            return started
        time.sleep(confirm_after)
    return started


def resume_in_background(services: Services) -> threading.Thread:
    thread = threading.Thread(target=resume_unstarted, args=(services,), name="resume-unstarted", daemon=True)
    thread.start()
    return thread
