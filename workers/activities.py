"""Step activities: one Temporal activity per workflow step action, each handing the step to
the executor named in the build context.

Activities are async only to keep the worker's event loop free: the executor's blocking work
runs on a thread while the activity heartbeats, so Temporal notices a dead worker within the
heartbeat timeout and a cancellation reaches the executor (as ``runtime.cancel``) promptly.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
from collections.abc import Callable
from typing import Any

from temporalio import activity

from workers.blobstore import BlobStore, BlobStoreError
from workers.contracts import CleanupRequest, CleanupResult, StepRequest, StepResult
from workers.errors import InfrastructureError, NotSupported
from workers.executors.base import ACTION_METHODS, Executor, StepRuntime

HEARTBEAT_SECONDS = 5.0
log = logging.getLogger(__name__)


class StepActivities:
    def __init__(self, executors: dict[str, Executor], blobs: BlobStore) -> None:
        self.executors = executors
        self.blobs = blobs

    def _executor(self, kind: str) -> Executor:
        try:
            return self.executors[kind]
        except KeyError:
            raise NotSupported(f"this worker has no {kind} executor") from None

    async def _run_blocking(self, fn: Callable[[StepRuntime], Any], log_ref: str) -> Any:
        cancel = threading.Event()
        details: list[Any] = []
        runtime = StepRuntime(cancel=cancel, log_dir=self.blobs.folder(log_ref), heartbeat=details.append)
        task = asyncio.ensure_future(asyncio.to_thread(fn, runtime))
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=HEARTBEAT_SECONDS)
                if done:
                    return task.result()
                activity.heartbeat(*details[-1:])
        except asyncio.CancelledError:
            # Let the executor stop at its next check and clean up before we report back.
            cancel.set()
            await asyncio.shield(asyncio.wait({task}))
            raise

    def _publish(self, log_ref: str, result: StepResult) -> None:
        """What other hosts read after this step: its log folder and the inventory the image
        record is filled from (on the control worker's host). On the local store, nothing to do."""
        try:
            self.blobs.publish(log_ref)
            if result.outputs.get("packagesRef"):
                self.blobs.publish(str(result.outputs["packagesRef"]))
        except (BlobStoreError, ValueError) as exc:
            raise InfrastructureError(f"the step ran but its files did not reach the shared store: {exc}") from None

    def _publish_log_quietly(self, log_ref: str) -> None:
        try:
            self.blobs.publish(log_ref)
        except (BlobStoreError, ValueError) as exc:  # the step's own error is the one to report
            log.warning("the log folder %s of a failed step was not published: %s", log_ref, exc)

    def step(self, action: str) -> Callable[[StepRequest], Any]:
        async def run(request: StepRequest) -> StepResult:
            executor = self._executor(request.context.executor)
            log_ref = f"{request.context.log_prefix}/{request.workflow_type.lower()}/{request.step_name}"

            def run_and_publish(runtime: StepRuntime) -> StepResult:
                try:
                    done = executor.run(action, request, runtime)
                except BaseException:
                    self._publish_log_quietly(log_ref)  # a failed step's log is the one people read
                    raise
                self._publish(log_ref, done)
                return done

            result: StepResult = await self._run_blocking(run_and_publish, log_ref)
            # Where to read this step's output: shown with the step in the API.
            return dataclasses.replace(result, log_ref=result.log_ref or self.blobs.location(log_ref))

        run.__name__ = ACTION_METHODS[action]
        return activity.defn(name=action)(run)

    def cleanup(self) -> Callable[[CleanupRequest], Any]:
        @activity.defn(name="CleanupBuild")
        async def cleanup(request: CleanupRequest) -> CleanupResult:
            executor = self._executor(request.context.executor)
            result: CleanupResult = await asyncio.to_thread(executor.cleanup, request)
            return result

        return cleanup

    def all(self) -> list[Callable[..., Any]]:
        return [*(self.step(action) for action in ACTION_METHODS), self.cleanup()]
