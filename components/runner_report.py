"""Build detailedoutput.json and the in-memory summary from a run's state (spec §4 statuses, §10 shape)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.document import Document, Loop, Step
from components.logs import step_folder
from components.runner_state import (
    FAILED,
    IGNORED_FAILURE,
    SKIPPED,
    SUCCESS,
    SUCCESS_WITH_IGNORED,
    RunState,
    StepState,
    step_key,
)


@dataclass(frozen=True)
class StepSummary:
    document: str
    phase: str
    step: str
    action: str
    status: str
    duration_seconds: float
    failure_message: str = ""


@dataclass(frozen=True)
class RunSummary:
    execution_id: str
    status: str
    log_dir: Path
    detailed_output: Path
    steps: tuple[StepSummary, ...]
    failure_message: str = ""
    #: "document/phase/step" of the first failed step, if any.
    failed_step: str | None = None
    executed_step_count: int = 0
    failed_step_count: int = 0
    ignored_failed_step_count: int = 0

    def outputs(self) -> dict[str, Any]:
        """The awstoe result object (what ``awstoe run`` prints and ExecuteDocument outputs)."""
        return {
            "executedStepCount": self.executed_step_count,
            "executionId": self.execution_id,
            "failedStepCount": self.failed_step_count,
            "failureMessage": self.failure_message,
            "ignoredFailedStepCount": self.ignored_failed_step_count,
            "logUrl": str(self.log_dir),
            "status": self.status,
        }


def combine(statuses: Iterable[str]) -> str:
    """Failed beats ignored failures beats success; skipped steps count as success (DOC-COND)."""
    found = set(statuses)
    if FAILED in found:
        return FAILED
    if IGNORED_FAILURE in found or SUCCESS_WITH_IGNORED in found:
        return SUCCESS_WITH_IGNORED
    return SUCCESS


def _json_list(value: Any) -> str:
    # awstoe writes inputs/outputs as a JSON string holding a list.
    if value is None:
        return "[]"
    return json.dumps(value if isinstance(value, list) else [value], default=str)


def _loop(loop: Loop | None) -> dict[str, Any] | None:
    if loop is None:
        return None
    if loop.kind.value == "for":
        return {"name": loop.name, "for": {"start": loop.start, "end": loop.end, "updateBy": loop.update_by}}
    each: Any = list(loop.items) if loop.items is not None else {"list": loop.list_text, "delimiter": loop.delimiter}
    return {"name": loop.name, "forEach": each}


def _step(step: Step, record: StepState, log_dir: Path, step_dir: Path) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": step.name,
        "action": step.action,
        "status": record.status,
        "failureMessage": record.failure_message,
        "timeoutSeconds": step.timeout_seconds,
        "onFailure": step.on_failure.value,
        "maxAttempts": step.max_attempts,
        "attempts": record.attempts,
        "reboots": record.reboots,
        "startTime": record.start_time,
        "endTime": record.end_time,
        "durationSeconds": record.duration_seconds,
        "inputs": "[]" if step.disable_logging else _json_list(record.inputs),
        "outputs": "[]" if step.disable_logging else _json_list(record.outputs),
        "loop": _loop(step.loop),
        "stdoutFile": str((step_dir / "stdout.log").relative_to(log_dir)),
        "stderrFile": str((step_dir / "stderr.log").relative_to(log_dir)),
    }
    if record.exit_code is not None:
        entry["exitCode"] = record.exit_code
    return entry


def detailed_output(
    state: RunState, docs: list[Document], phases: tuple[str, ...] | None, log_dir: Path
) -> dict[str, Any]:
    rendered_docs = []
    for index, doc in enumerate(docs):
        rendered_phases = []
        for phase in doc.phases:
            if phases is not None and phase.name not in phases:
                continue
            steps = []
            for step in phase.steps:
                record = state.steps.get(step_key(index, phase.name, step.name))
                if record is None or record.status == "pending":
                    continue  # not reached (an earlier step aborted the run)
                step_dir = step_folder(log_dir, index, phase.name, step.name)
                steps.append(_step(step, record, log_dir, step_dir))
            if not steps:
                continue
            rendered_phases.append(
                {
                    "name": phase.name,
                    "status": combine(s["status"] for s in steps),
                    "startTime": steps[0]["startTime"],
                    "endTime": steps[-1]["endTime"],
                    "steps": steps,
                }
            )
        if not rendered_phases:
            continue
        rendered_docs.append(
            {
                "name": doc.name,
                "filePath": str(doc.path) if doc.path else doc.label,
                "description": doc.description,
                "status": combine(p["status"] for p in rendered_phases),
                "startTime": rendered_phases[0]["startTime"],
                "endTime": rendered_phases[-1]["endTime"],
                "failureMessage": next(
                    (s["failureMessage"] for p in rendered_phases for s in p["steps"] if s["status"] == FAILED), ""
                ),
                "phases": rendered_phases,
            }
        )
    all_steps = [s for d in rendered_docs for p in d["phases"] for s in p["steps"]]
    return {
        "executionId": state.execution_id,
        "status": combine(d["status"] for d in rendered_docs),
        "startTime": state.start_time,
        "endTime": state.end_time,
        "failureMessage": state.failure_message,
        "executedStepCount": sum(1 for s in all_steps if s["status"] != SKIPPED),
        "failedStepCount": sum(1 for s in all_steps if s["status"] == FAILED),
        "ignoredFailedStepCount": sum(1 for s in all_steps if s["status"] == IGNORED_FAILURE),
        "logUrl": str(log_dir),
        "documents": rendered_docs,
    }


def summarize(state: RunState, docs: list[Document], report: dict[str, Any], log_dir: Path, detail: Path) -> RunSummary:
    steps = []
    failed_step = None
    for d_index, d in enumerate(report["documents"]):
        label = docs[d_index].label if d_index < len(docs) else d["name"]
        for p in d["phases"]:
            for s in p["steps"]:
                steps.append(
                    StepSummary(
                        label,
                        p["name"],
                        s["name"],
                        s["action"],
                        s["status"],
                        float(s["durationSeconds"]),
                        s["failureMessage"],
                    )
                )
                if s["status"] == FAILED and failed_step is None:
                    failed_step = f"{label}/{p['name']}/{s['name']}"
    status = state.status if state.finished else report["status"]
    return RunSummary(
        execution_id=state.execution_id,
        status=status,
        log_dir=log_dir,
        detailed_output=detail,
        steps=tuple(steps),
        failure_message=state.failure_message,
        failed_step=failed_step,
        executed_step_count=report["executedStepCount"],
        failed_step_count=report["failedStepCount"],
        ignored_failed_step_count=report["ignoredFailedStepCount"],
    )
