"""The parsed form of an Image Builder workflow document: frozen dataclasses, built once by the parser.

Everything here is plain data (strings, numbers, bools, lists, dicts, tuples, StrEnums) so a
``WorkflowDocument`` can be a Temporal workflow input as it is; step ``inputs`` stay the raw,
JSON-compatible mapping the author wrote (``.$`` keys included) and are resolved per run by
``resolve_inputs``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class WorkflowType(StrEnum):
    """The stage a workflow runs in; it decides which step actions are allowed."""

    BUILD = "BUILD"
    TEST = "TEST"
    DISTRIBUTION = "DISTRIBUTION"


class OnFailure(StrEnum):
    """What a failed step does to the workflow (the document spells these capitalised)."""

    ABORT = "Abort"  # fail the workflow and roll back completed steps
    CONTINUE = "Continue"  # record the failure and run the remaining steps


class ParameterType(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    STRING_LIST = "stringList"


#: A typed parameter value: what ``$.parameters.<name>`` resolves to.
ParameterValue = str | int | bool | list[str]


@dataclass(frozen=True)
class Parameter:
    name: str
    type: ParameterType = ParameterType.STRING
    #: The typed default (a ParameterValue); None means the caller must give a value when the workflow runs.
    #: Typed Any on purpose: Temporal's converter would turn a union's bool into int (it tries int first).
    default: Any = None
    description: str = ""

    @property
    def required(self) -> bool:
        return self.default is None


@dataclass(frozen=True)
class Condition:
    """One node of an ``if`` tree.

    A single class (rather than one per operator) so the tree stays unambiguous in a JSON payload.
    ``op`` is ``and``/``or`` (``children``), ``not`` (one child) or a comparison operator such as
    ``stringEquals``, which compares ``operand`` (the literal after the operator) with ``value``
    (a ``$.…`` variable, or a literal).
    """

    op: str
    children: tuple[Condition, ...] = ()
    operand: Any = None  # Any, not a union, so Temporal's converter keeps true and 1.5 as they are
    value: Any = None


@dataclass(frozen=True)
class Step:
    name: str
    action: str
    description: str = ""
    #: The raw inputs, JSON-compatible; ``key.$`` entries and ``{{ $.… }}`` strings are resolved per run.
    inputs: dict[str, Any] = field(default_factory=dict)
    if_: Condition | None = None
    on_failure: OnFailure = OnFailure.ABORT
    #: True/False, or a ``$.…`` variable that resolves to a boolean at run time.
    rollback_enabled: bool | str = True
    #: The effective timeout: the document's ``timeoutSeconds`` or the action's default.
    timeout_seconds: int = 0
    #: Seconds to pause before the step runs.
    wait_seconds: int = 0
    #: 1-based line of the step in the document, for messages at run time.
    line: int | None = None


@dataclass(frozen=True)
class Output:
    """A workflow output (``outputs:``); ``ImageId`` from a BUILD workflow is the image the tests use."""

    name: str
    value: str  # a ``$.…`` variable


@dataclass(frozen=True)
class WorkflowDocument:
    name: str
    description: str
    schema_version: str
    parameters: tuple[Parameter, ...]
    steps: tuple[Step, ...]
    outputs: tuple[Output, ...] = ()
    type: WorkflowType = WorkflowType.BUILD

    def step(self, name: str) -> Step:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(name)

    def parameter(self, name: str) -> Parameter:
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(name)
