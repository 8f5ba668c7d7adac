"""The on-disk contract of one run, shaped like awstoe's log directory (spec §10).

    <log-directory>/TOE_<YYYY-MM-DD_HH-MM-SS>_UTC-0_<executionId>/
        console.log           everything the steps printed, plus one line per step event
        documents/<n>_<file>  the documents as run
        steps/<n>-<phase>-<step>/{stdout,stderr}.log   each step's own output (appended on reruns)
        state.json            the resume state (runner_state.py); lets a run survive a reboot or restart
        chaining.json         inputs and outputs of finished steps, as ``{{ phase.step.* }}`` sees them
        detailedoutput.json   the result, rewritten after every step so it is always current

Only paths and small JSON leave the engine; large output stays in these files.
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

RUN_DIR_PREFIX = "TOE_"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def run_dir_name(execution_id: str, started: datetime) -> str:
    return f"{RUN_DIR_PREFIX}{started.astimezone(UTC):%Y-%m-%d_%H-%M-%S}_UTC-0_{execution_id}"


def find_run_dir(log_directory: Path, execution_id: str) -> Path | None:
    """The folder of an earlier run with this execution id (to resume it), if there is one."""
    if not log_directory.is_dir():
        return None
    for entry in sorted(log_directory.glob(f"{RUN_DIR_PREFIX}*_{execution_id}")):
        if (entry / "state.json").exists():
            return entry
    return None


def write_json_atomic(path: Path, data: Any, *, indent: int | None = 2, durable: bool = True) -> None:
    """Write via rename so a crash never leaves half a file for the resume to trip over.

    Files rewritten after every step pass ``indent=None``: only then does json use its C
    encoder (pretty-printing falls back to pure Python, which dominated a step's cost).
    ``durable=False`` skips the fsync for files a resume rebuilds rather than reads.
    """
    text = json.dumps(data, indent=indent, default=str)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        handle.write(text)
        if durable:
            handle.flush()
            os.fsync(handle.fileno())
    tmp.replace(path)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:80] or "_"


def step_folder(run_dir: Path, doc_index: int, phase: str, step: str) -> Path:
    return run_dir / "steps" / f"{doc_index}-{_safe(phase)}-{_safe(step)}"


class RunLog:
    """Owns one run's folder: console.log, per-step output files and the JSON results."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self._console = (path / "console.log").open("ab")

    def close(self) -> None:
        self._console.close()

    def console(self, message: str) -> None:
        self._console.write(f"[{now_iso()}] {message}\n".encode())
        self._console.flush()

    def console_bytes(self, data: bytes) -> None:
        self._console.write(data)
        self._console.flush()

    def save_document(self, index: int, source: Path | None, text: str) -> Path:
        folder = self.path / "documents"
        folder.mkdir(exist_ok=True)
        target = folder / f"{index}_{_safe(source.name if source else 'document.yaml')}"
        target.write_text(text, encoding="utf-8")
        return target

    def step_log(self, doc_index: int, phase: str, step: str, quiet: bool) -> StepLogFiles:
        folder = step_folder(self.path, doc_index, phase, step)
        folder.mkdir(parents=True, exist_ok=True)
        return StepLogFiles(self, folder, f"{phase}/{step}", quiet)

    def write_detailed_output(self, data: dict[str, Any]) -> Path:
        target = self.path / "detailedoutput.json"
        write_json_atomic(target, data)
        return target

    def write_chaining(self, data: dict[str, Any]) -> None:
        # Rewritten after every step and rebuilt from state.json on resume: compact, no fsync.
        write_json_atomic(self.path / "chaining.json", data, indent=None, durable=False)


class StepLogFiles:
    """The StepLog actions write to: the step's own files, mirrored into console.log.

    With ``quiet`` (the step's ``disableLogging``) nothing the step prints is kept, because such
    steps handle secrets.
    """

    def __init__(self, run: RunLog, folder: Path, label: str, quiet: bool) -> None:
        self.run = run
        self.folder = folder
        self.label = label
        self.quiet = quiet
        self._out: BinaryIO = (folder / "stdout.log").open("ab")
        self._err: BinaryIO = (folder / "stderr.log").open("ab")

    def stdout(self, data: bytes) -> None:
        if not self.quiet:
            self._out.write(data)
            self._out.flush()
            self.run.console_bytes(data)

    def stderr(self, data: bytes) -> None:
        if not self.quiet:
            self._err.write(data)
            self._err.flush()
            self.run.console_bytes(data)

    def info(self, message: str) -> None:
        self.run.console(f"{self.label}: {message}")

    def close(self) -> None:
        self._out.close()
        self._err.close()
