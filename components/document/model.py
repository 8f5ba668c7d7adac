"""The parsed, validated form of a component document: frozen dataclasses, built once."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Phases Image Builder itself runs; a document must define at least one of them.
STANDARD_PHASES = ("build", "validate", "test")
DEFAULT_TIMEOUT_SECONDS = 7200
DEFAULT_MAX_ATTEMPTS = 1


class OnFailure(enum.StrEnum):
    ABORT = "Abort"
    CONTINUE = "Continue"
    IGNORE = "Ignore"


class LoopKind(enum.StrEnum):
    FOR = "for"
    FOR_EACH = "forEach"


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str
    default: str | None
    description: str = ""
    line: int | None = None


@dataclass(frozen=True)
class Constant:
    name: str
    type: str
    value: str
    line: int | None = None


@dataclass(frozen=True)
class Loop:
    """``for`` (start/end/updateBy, inclusive) or ``forEach`` (a list, or a delimited string)."""

    kind: LoopKind
    name: str | None = None
    start: int = 0
    end: int = 0
    update_by: int = 1
    #: forEach over a YAML list: the raw items (strings, may hold ``{{ }}``).
    items: tuple[Any, ...] | None = None
    #: forEach over a delimited string: the raw string and its one-character delimiter.
    list_text: str | None = None
    delimiter: str = ","
    line: int | None = None


@dataclass(frozen=True)
class Step:
    name: str
    action: str
    inputs: Any = None
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS
    on_failure: OnFailure = OnFailure.ABORT
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    condition: Any = None
    loop: Loop | None = None
    disable_logging: bool = False
    line: int | None = None


@dataclass(frozen=True)
class Phase:
    name: str
    steps: tuple[Step, ...]
    line: int | None = None


@dataclass(frozen=True)
class Document:
    path: Path | None
    #: What error messages call the document: the file name, or "<inline>".
    label: str
    schema_version: str
    phases: tuple[Phase, ...]
    name: str = ""
    description: str = ""
    parameters: tuple[Parameter, ...] = ()
    constants: tuple[Constant, ...] = ()
    text: str = field(default="", repr=False)

    def phase(self, name: str) -> Phase | None:
        return next((p for p in self.phases if p.name == name), None)
