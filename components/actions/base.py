"""The contract between the runner and the action modules.

Each action is one module in this package (``create_file.py`` for ``CreateFile``) that defines

    NAME: str                      # the action keyword documents use
    PLATFORMS: frozenset[str]      # platforms it runs on, e.g. frozenset({"Linux", "macOS"})
    def run(ctx: ActionContext, inputs: Any) -> ActionResult

and has its JSON Schema for ``inputs`` beside it as ``<module>.schema.json``. The validator
checks inputs against the schema before anything runs; ``run`` may assume they conform.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from components.targets.base import Target


class ActionFailed(Exception):
    """The action ran and failed; the message is what the document author sees."""

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class RebootRequested(Exception):  # a request, not an error, so no "Error" suffix
    """The step asked for a reboot (exit code 194 or the Reboot action).

    The runner reboots the target and runs the same step again; finished steps are not rerun.
    """

    def __init__(self, delay_seconds: int = 0) -> None:
        super().__init__("reboot requested")
        self.delay_seconds = delay_seconds


class StepLog(Protocol):
    """Where an action writes what the step printed; the runner saves it to the log directory."""

    def stdout(self, data: bytes) -> None: ...
    def stderr(self, data: bytes) -> None: ...
    def info(self, message: str) -> None: ...


@dataclass(frozen=True)
class S3Settings:
    """Where S3Download / S3Upload go: any S3-compatible endpoint."""

    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key_id: str | None = None
    secret_access_key: str | None = None


@dataclass
class ActionContext:
    target: Target
    log: StepLog
    phase: str
    step: str
    #: Seconds left for this step (from timeoutSeconds); None means no limit.
    timeout: float | None
    #: A scratch directory on the target that lives for the whole run (for downloads, scripts).
    work_dir: str
    #: The folder on the engine host that holds this run's logs and step artifacts.
    log_dir: Path
    s3: S3Settings = field(default_factory=S3Settings)
    #: Runs another document on the same target (ExecuteDocument); returns its outputs.
    run_document: Callable[[str, dict[str, str], list[str] | None], dict[str, Any]] | None = None


@dataclass(frozen=True)
class ActionResult:
    #: What ``{{ phase.step.outputs.X }}`` can refer to later.
    outputs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ActionModule:
    name: str
    platforms: frozenset[str]
    schema: dict[str, Any]
    run: Callable[[ActionContext, Any], ActionResult]


@cache
def registry() -> dict[str, ActionModule]:
    """All action modules in this package, keyed by the action keyword documents use."""
    found: dict[str, ActionModule] = {}
    here = Path(__file__).parent
    for info in pkgutil.iter_modules([str(here)]):
        if info.name.startswith("_") or info.name == "base":
            continue
        module: ModuleType = importlib.import_module(f"{__package__}.{info.name}")
        name = getattr(module, "NAME", None)
        if name is None:
            continue
        schema_file = here / f"{info.name}.schema.json"
        schema = json.loads(schema_file.read_text()) if schema_file.exists() else {}
        found[name] = ActionModule(name, module.PLATFORMS, schema, module.run)
    return found
