"""The executor interface: one class per kind of host that runs build steps.

An executor implements the workflow step actions that make sense on its hosts; the others
raise NotSupported. Executors register by kind (``class DockerExecutor(Executor, kind="docker")``)
and the worker builds the ones its configuration names. Instance state lives on the host's disk
(under ``state_dir``) so a restarted worker still knows, and can clean up, what it started.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from workers.blobstore import BlobStore
from workers.contracts import CleanupRequest, CleanupResult, StepRequest, StepResult
from workers.errors import NotSupported, StepFailed

#: Workflow step action -> executor method.
ACTION_METHODS: dict[str, str] = {
    "LaunchInstance": "launch_instance",
    "BootstrapInstanceForContainer": "bootstrap_instance",
    "ExecuteComponents": "execute_components",
    "CollectImageMetadata": "collect_image_metadata",
    "CollectImageScanFindings": "collect_image_scan_findings",
    "SanitizeInstance": "sanitize_instance",
    "RunSysPrep": "run_sysprep",
    "RunCommand": "run_command",
    "WaitForSSMAgent": "wait_for_agent",
    "CreateImage": "create_image",
    "TerminateInstance": "terminate_instance",
    "DistributeImage": "distribute_image",
    "ModifyImageAttributes": "modify_image_attributes",
    "ApplyImageConfigurations": "apply_image_configurations",
    "DistributeContainerImage": "distribute_container_image",
    # Not a workflow document action: the one step of an import (engine/builds/imports.py).
    "ImportDisk": "import_disk",
}


@dataclass
class StepRuntime:
    """What a running step gets besides its request: cancellation, progress, a log folder."""

    cancel: threading.Event
    log_dir: Path
    heartbeat: Callable[[Any], None]

    def check_cancelled(self) -> None:
        if self.cancel.is_set():
            from temporalio.exceptions import CancelledError

            raise CancelledError("the build was cancelled")


@dataclass(frozen=True)
class ExecutorSettings:
    host_id: str
    state_dir: Path
    blobs: BlobStore
    registry: str = "127.0.0.1:5000"
    #: How many builds this host runs at once (the worker's activity slots follow it).
    max_concurrent: int = 2
    #: Disk exports (s3ExportConfiguration) go to <export_dir>/<bucket>/<prefix>/ unless an
    #: S3-compatible endpoint is set, in which case they are uploaded there.
    export_dir: Path | None = None
    s3_endpoint_url: str = ""
    #: ImportVmImage reads local disk files from here only.
    import_dir: Path | None = None


class Executor(abc.ABC):
    kind: ClassVar[str] = ""
    registry: ClassVar[dict[str, type[Executor]]] = {}

    def __init_subclass__(cls, kind: str = "", **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if kind:
            cls.kind = kind
            Executor.registry[kind] = cls

    def __init__(self, settings: ExecutorSettings) -> None:
        self.settings = settings

    def run(self, action: str, request: StepRequest, runtime: StepRuntime) -> StepResult:
        method = ACTION_METHODS.get(action)
        fn = getattr(self, method, None) if method else None
        if fn is None:
            raise NotSupported(f"the {self.kind} executor cannot run {action} steps")
        result: StepResult = fn(request, runtime)
        return result

    @abc.abstractmethod
    def launch_instance(self, request: StepRequest, runtime: StepRuntime) -> StepResult: ...

    @abc.abstractmethod
    def execute_components(self, request: StepRequest, runtime: StepRuntime) -> StepResult: ...

    @abc.abstractmethod
    def terminate_instance(self, request: StepRequest, runtime: StepRuntime) -> StepResult: ...

    @abc.abstractmethod
    def cleanup(self, request: CleanupRequest) -> CleanupResult:
        """Remove the given instances (and artifacts) if they still exist. Idempotent."""

    @abc.abstractmethod
    def live_instances(self) -> list[str]:
        """Instances this host holds now (for leak checks and crash recovery)."""


def raise_if_component_failed(component: str, summary: Any) -> None:
    """A component run's summary (components.runner) as the step failure users read: which
    component, which step of which phase, and why."""
    from components.runner_state import FAILED

    if summary.status != FAILED:
        return
    failed = next((s for s in summary.steps if s.status == FAILED), None)
    where = f"step {failed.step} (phase {failed.phase})" if failed else "a step"
    reason = (failed.failure_message if failed else "") or summary.failure_message
    raise StepFailed(f"component {component} failed at {where}: {reason}")


def load_executors(kinds: list[str], settings: ExecutorSettings) -> dict[str, Executor]:
    """Import the executor modules named and build one executor of each kind."""
    import importlib

    out: dict[str, Executor] = {}
    for kind in kinds:
        importlib.import_module(f"workers.executors.{kind}")
        out[kind] = Executor.registry[kind](settings)
    return out
