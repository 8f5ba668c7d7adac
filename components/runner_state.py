"""What a run remembers between steps, saved as JSON in its log folder after every change.

A step that asks for a reboot may take the engine process down with it (or the engine may be
restarted while the target reboots). Starting the same execution id again with the same log
directory loads this file: finished steps keep their status and outputs (so chaining still
works), the interrupted step runs again, and its ``if`` is not evaluated a second time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from components.logs import write_json_atomic

STATE_FILE = "state.json"
SUCCESS = "success"
FAILED = "failed"
SKIPPED = "skipped"
IGNORED_FAILURE = "IgnoredFailure"
SUCCESS_WITH_IGNORED = "SuccessWithIgnoredFailure"
FINAL_STEP_STATUSES = frozenset({SUCCESS, FAILED, SKIPPED, IGNORED_FAILURE})
FINAL_RUN_STATUSES = frozenset({SUCCESS, FAILED, SUCCESS_WITH_IGNORED})


def step_key(doc_index: int, phase: str, step: str) -> str:
    return f"{doc_index}/{phase}/{step}"


@dataclass
class StepState:
    action: str
    status: str = "pending"
    start_time: str | None = None
    end_time: str | None = None
    duration_seconds: float = 0.0
    failure_message: str = ""
    exit_code: int | None = None
    attempts: int = 0
    reboots: int = 0
    #: The ``if`` decision (Execute / Skip / Abort), made once even across reboots.
    decision: str | None = None
    inputs: Any = None
    outputs: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.status in FINAL_STEP_STATUSES


_STEP_FIELDS = fields(StepState)


@dataclass
class RunState:
    execution_id: str
    start_time: str
    #: The request, so a resume can check it runs the same thing.
    documents: list[str]
    phases: list[str] | None
    status: str = "running"
    end_time: str | None = None
    failure_message: str = ""
    steps: dict[str, StepState] = field(default_factory=dict)
    #: Set before the target is told to reboot and cleared once it is back.
    reboot_pending: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINAL_RUN_STATUSES

    def to_json(self) -> dict[str, Any]:
        # Not dataclasses.asdict: it deep-copies every step's inputs and outputs on each save,
        # and the state is saved several times per step. json only reads these values.
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "steps"}
        data["steps"] = {key: {f.name: getattr(s, f.name) for f in _STEP_FIELDS} for key, s in self.steps.items()}
        return data

    def save(self, folder: Path) -> None:
        # Compact: saved several times per step, and only the engine reads it back.
        write_json_atomic(folder / STATE_FILE, self.to_json(), indent=None)

    @classmethod
    def load(cls, folder: Path) -> RunState:
        data = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
        steps = {key: StepState(**value) for key, value in data.pop("steps", {}).items()}
        return cls(**data, steps=steps)
