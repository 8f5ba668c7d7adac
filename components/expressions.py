"""``{{ ... }}`` references: recognise them, check them statically, substitute them at run time.

Forms (spec §5): ``{{ Name }}`` (parameter/constant), ``{{ loop.value }}`` / ``{{ loop.index }}``
and ``{{ myLoop.value }}`` for a named loop of the current step, chaining
``{{ phase.step.inputs[0].key }}`` / ``{{ phase.step.outputs.key }}``, and the system forms
``env:``, ``context:``, ``aws:ssm:`` and ``aws:imds:``. Whitespace inside the braces is trimmed;
names are case-sensitive.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from components.errors import ExpressionError

REFERENCE = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_NAME = r"[A-Za-z0-9_-]+"
_VARIABLE = re.compile(rf"^{_NAME}$")
_LOOP = re.compile(rf"^(?P<loop>{_NAME})\.(?P<field>index|value)$")
# Step and phase names may hold characters other than [A-Za-z0-9_-], so match loosely.
_CHAIN = re.compile(
    r"^(?P<phase>[^.\[\]\s]+)\.(?P<step>[^.\[\]\s]+)\.(?P<kind>inputs|outputs)"
    r"(?P<path>(?:\.[^.\[\]\s]+|\[\d+\])*)$"
)
_PATH_PART = re.compile(r"\.([^.\[\]\s]+)|\[(\d+)\]")
CONTEXT_KEYS = frozenset(
    {
        "executionId",
        "accountId",
        "region",
        "osPlatform",
        "osName",
        "osVersion",
        "date",
        "dateTime",
        "uuid",
        "hostname",
        "phase",
        "step",
    }
)


class RefKind(enum.StrEnum):
    VARIABLE = "variable"
    LOOP = "loop"
    CHAIN = "chain"
    ENV = "env"
    CONTEXT = "context"
    SSM = "aws:ssm"
    IMDS = "aws:imds"


@dataclass(frozen=True)
class Ref:
    """One parsed reference; ``expr`` is the trimmed text between the braces."""

    kind: RefKind
    expr: str
    name: str = ""
    #: For LOOP: "index" or "value". For CHAIN: "inputs" or "outputs".
    field: str = ""
    phase: str = ""
    step: str = ""
    path: tuple[str | int, ...] = ()


def parse_ref(expr: str) -> Ref:
    """Classify the text between ``{{`` and ``}}``; raise ExpressionError when it is no known form."""
    expr = expr.strip()
    for prefix, kind in (
        ("env:", RefKind.ENV),
        ("context:", RefKind.CONTEXT),
        ("aws:ssm:", RefKind.SSM),
        ("aws:imds:", RefKind.IMDS),
    ):
        if expr.startswith(prefix):
            name = expr[len(prefix) :].strip()
            if not name:
                raise ExpressionError(f"'{{{{ {expr} }}}}' names nothing after '{prefix}'")
            if kind is RefKind.CONTEXT and name not in CONTEXT_KEYS:
                raise ExpressionError(f"unknown context key '{name}' (known: {', '.join(sorted(CONTEXT_KEYS))})")
            if kind is RefKind.IMDS and name.lstrip("/").startswith(("iam/", "identity-credentials/")):
                raise ExpressionError(f"instance metadata path '{name}' holds credentials and is not allowed")
            return Ref(kind, expr, name=name)
    if _VARIABLE.match(expr):
        return Ref(RefKind.VARIABLE, expr, name=expr)
    if m := _LOOP.match(expr):
        return Ref(RefKind.LOOP, expr, name=m["loop"], field=m["field"])
    if m := _CHAIN.match(expr):
        path: list[str | int] = []
        for key, index in _PATH_PART.findall(m["path"]):
            path.append(int(index) if index else key)
        return Ref(RefKind.CHAIN, expr, phase=m["phase"], step=m["step"], field=m["kind"], path=tuple(path))
    raise ExpressionError(f"'{{{{{expr}}}}}' is not a valid variable reference")


def iter_strings(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Every string inside nested dicts/lists, with its path (keys are not substituted)."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from iter_strings(v, (*path, k))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from iter_strings(v, (*path, i))


def references(text: str) -> Iterator[str]:
    """The trimmed expressions of the ``{{ }}`` references in one string."""
    for m in REFERENCE.finditer(text):
        yield m.group(1).strip()


@dataclass(frozen=True)
class LoopFrame:
    """The current iteration of the current step's loop."""

    name: str | None
    index: int
    value: Any


@dataclass(frozen=True)
class Scope:
    """What references resolve against at run time."""

    variables: Mapping[str, str] = field(default_factory=dict)
    loop: LoopFrame | None = None
    #: (phase, step) -> {"inputs": ..., "outputs": ...} of steps that ran before this one.
    steps: Mapping[tuple[str, str], Mapping[str, Any]] = field(default_factory=dict)
    env: Callable[[str], str | None] = lambda _name: None
    context: Mapping[str, str] = field(default_factory=dict)


_UNRESOLVED = object()


def resolve(ref: Ref, scope: Scope) -> Any:
    """The value of one reference; ``_UNRESOLVED`` for a loop ref outside a loop (left verbatim)."""
    if ref.kind is RefKind.VARIABLE:
        if ref.name not in scope.variables:
            raise ExpressionError(f"'{ref.name}' is not a parameter or constant of this document")
        return scope.variables[ref.name]
    if ref.kind is RefKind.LOOP:
        frame = scope.loop
        if frame is None or (ref.name != "loop" and ref.name != frame.name):
            return _UNRESOLVED
        return frame.index if ref.field == "index" else frame.value
    if ref.kind is RefKind.CHAIN:
        record = scope.steps.get((ref.phase, ref.step))
        if record is None:
            raise ExpressionError(f"step '{ref.step}' of phase '{ref.phase}' has not run in this execution")
        return _walk(record.get(ref.field), ref)
    if ref.kind is RefKind.ENV:
        value = scope.env(ref.name)
        if value is None:
            raise ExpressionError(f"environment variable '{ref.name}' is not set on the target")
        return value
    if ref.kind is RefKind.CONTEXT:
        if ref.name not in scope.context:
            raise ExpressionError(f"context key '{ref.name}' is not available here")
        return scope.context[ref.name]
    # Parameter Store and instance metadata exist only inside AWS; say so rather than guess.
    raise ExpressionError(f"'{{{{ {ref.expr} }}}}' needs AWS ({ref.kind.value}), which an on-prem run does not have")


def _walk(value: Any, ref: Ref) -> Any:
    for part in ref.path:
        if isinstance(part, int) and isinstance(value, list) and part < len(value):
            value = value[part]
        elif isinstance(part, int) and isinstance(value, Mapping) and part == 0:
            value = value  # a map-form input is the single element [0]
        elif isinstance(part, str) and isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(part, str) and isinstance(value, list) and len(value) == 1 and part in value[0]:
            value = value[0][part]  # list-form inputs with one item: allow `.key` for `[0].key`
        else:
            raise ExpressionError(f"'{{{{ {ref.expr} }}}}' does not resolve: no '{part}' in the step's {ref.field}")
    return value


def to_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return ",".join(to_text(v) for v in value)
    return json.dumps(value)


def substitute_text(text: str, scope: Scope) -> Any:
    """Replace references in one string. A string that is exactly one reference keeps the value's type."""
    found = list(REFERENCE.finditer(text))
    if len(found) == 1 and found[0].span() == (0, len(text)):
        whole = found[0]
        value = resolve(parse_ref(whole.group(1)), scope)
        return text if value is _UNRESOLVED else value

    def one(m: re.Match[str]) -> str:
        value = resolve(parse_ref(m.group(1)), scope)
        return m.group(0) if value is _UNRESOLVED else to_text(value)

    return REFERENCE.sub(one, text)


def substitute(value: Any, scope: Scope) -> Any:
    """A deep copy of ``value`` (plain dicts/lists) with every reference in its strings replaced."""
    if isinstance(value, str):
        return substitute_text(value, scope)
    if isinstance(value, Mapping):
        return {k: substitute(v, scope) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [substitute(v, scope) for v in value]
    return value
