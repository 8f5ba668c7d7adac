"""Turn parsed YAML into a ``Document``, collecting every structural problem with its line.

This covers what a document means on its own (spec §1-4, §6-7): schemaVersion, parameters and
constants, phases, step fields and their ranges, loops and ``if`` shapes. What depends on the
action modules or on other steps (inputs schemas, references) is in ``checks.py``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from components import conditions
from components.document.model import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_TIMEOUT_SECONDS,
    STANDARD_PHASES,
    Constant,
    Document,
    Loop,
    LoopKind,
    OnFailure,
    Parameter,
    Phase,
    Step,
)
from components.document.parser import item_line, key_line, line_of
from components.errors import DocumentError

TOP_KEYS = ("name", "description", "schemaVersion", "parameters", "constants", "phases")
STEP_KEYS = ("name", "action", "inputs", "timeoutSeconds", "onFailure", "maxAttempts", "if", "loop", "disableLogging")
#: API-level parameter types (botocore) besides the documented `string`; compared case-insensitively.
PARAMETER_TYPES = ("string", "integer", "boolean", "stringlist")
NAME_RULE = re.compile(r"^[A-Za-z0-9_-]{3,128}$")
DELIMITERS = (".", ",", ";", ":", "\n", "\t", " ", "-", "_")


class _Collector:
    """Accumulates DocumentErrors for one document so validation reports all of them at once."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.errors: list[DocumentError] = []

    def add(self, line: int | None, message: str, step: str | None = None, phase: str | None = None) -> None:
        self.errors.append(DocumentError(self.label, line, message, step=step, phase=phase))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _scalar_text(value: Any) -> str | None:
    """Scalars as the string a document means; None for maps and lists."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return None


def build_document(data: Any, label: str, path: Path | None, text: str) -> tuple[Document | None, list[DocumentError]]:
    out = _Collector(label)
    if not isinstance(data, Mapping):
        out.add(line_of(data, 1), "a component document must be a YAML map with schemaVersion and phases")
        return None, out.errors
    for key in data:
        if key not in TOP_KEYS:
            out.add(key_line(data, key), f"unknown top-level key '{key}' (allowed: {', '.join(TOP_KEYS)})")
    version = data.get("schemaVersion")
    if "schemaVersion" not in data:
        out.add(line_of(data, 1), "schemaVersion is required (use 1.0)")
    elif _scalar_text(version) not in ("1.0", "1"):
        out.add(key_line(data, "schemaVersion"), f"schemaVersion must be 1.0, not {version!r}")
    for key in ("name", "description"):
        if key in data and not isinstance(data[key], str | int | float):
            out.add(key_line(data, key), f"{key} must be a string")
    parameters = _parameters(data, out)
    constants = _constants(data, out)
    seen: set[str] = set()
    items: list[Parameter | Constant] = [*parameters, *constants]
    for item in items:
        if item.name in seen:
            out.add(
                item.line, f"'{item.name}' is defined more than once (parameters and constants share one namespace)"
            )
        seen.add(item.name)
    phases = _phases(data, out)
    doc = Document(
        path=path,
        label=label,
        schema_version="1.0",
        phases=tuple(phases),
        name=str(data.get("name") or ""),
        description=str(data.get("description") or ""),
        parameters=tuple(parameters),
        constants=tuple(constants),
        text=text,
    )
    return doc, out.errors


def _named_items(data: Mapping[str, Any], key: str, out: _Collector) -> list[tuple[str, Any, int | None]]:
    """The `- Name: {...}` list form shared by parameters and constants."""
    raw = data.get(key)
    if raw is None:
        return []
    if not isinstance(raw, list):
        out.add(key_line(data, key), f"{key} must be a list of one-key maps like '- Name: {{type: string}}'")
        return []
    items = []
    for i, entry in enumerate(raw):
        line = item_line(raw, i)
        if isinstance(entry, Mapping) and len(entry) > 1 and isinstance(entry.get("name"), str):
            name = entry["name"]
            out.add(
                line,
                f"{key} entries are written '- {name}: {{type: string, ...}}', not '- name: {name}' with sibling keys",
            )
            continue
        if not isinstance(entry, Mapping) or len(entry) != 1:
            out.add(line, f"each entry of {key} must be a map with exactly one key, the name")
            continue
        ((name, body),) = entry.items()
        if not isinstance(name, str) or not NAME_RULE.match(name):
            out.add(line, f"{key[:-1]} name {name!r} must be 3-128 characters of letters, digits, '_' or '-'")
            continue
        if not isinstance(body, Mapping):
            out.add(line, f"{key[:-1]} '{name}' must map to its settings (type, ...)")
            continue
        items.append((name, body, line))
    return items


def _parameters(data: Mapping[str, Any], out: _Collector) -> list[Parameter]:
    result = []
    for name, body, line in _named_items(data, "parameters", out):
        ptype = body.get("type")
        if not isinstance(ptype, str) or ptype.lower() not in PARAMETER_TYPES:
            out.add(line, f"parameter '{name}' needs a type: string (got {ptype!r})")
            continue
        default = body.get("default")
        if (
            default is not None
            and _scalar_text(default) is None
            and not (ptype.lower() == "stringlist" and isinstance(default, list))
        ):
            out.add(line, f"parameter '{name}' default must be a string")
            continue
        text = ",".join(map(str, default)) if isinstance(default, list) else _scalar_text(default)
        result.append(Parameter(name, ptype, text, str(body.get("description") or ""), line))
    return result


def _constants(data: Mapping[str, Any], out: _Collector) -> list[Constant]:
    result = []
    for name, body, line in _named_items(data, "constants", out):
        if body.get("type") != "string":
            out.add(line, f"constant '{name}' must have type: string (got {body.get('type')!r})")
            continue
        value = _scalar_text(body.get("value"))
        if value is None:
            out.add(line, f"constant '{name}' needs a string value")
            continue
        result.append(Constant(name, "string", value, line))
    return result


def _phases(data: Mapping[str, Any], out: _Collector) -> list[Phase]:
    raw = data.get("phases")
    if raw is None:
        out.add(line_of(data, 1), "phases is required (a list with build, validate and/or test)")
        return []
    if not isinstance(raw, list) or not raw:
        out.add(key_line(data, "phases"), "phases must be a non-empty list of {name, steps}")
        return []
    phases: list[Phase] = []
    for i, entry in enumerate(raw):
        line = item_line(raw, i)
        if not isinstance(entry, Mapping):
            out.add(line, "each phase must be a map with name and steps")
            continue
        for key in entry:
            if key not in ("name", "steps"):
                out.add(key_line(entry, key), f"unknown phase key '{key}' (allowed: name, steps)")
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            out.add(line, "a phase needs a name")
            continue
        if any(p.name == name for p in phases):
            out.add(line, "phase names must be unique in a document", phase=name)
            continue
        phases.append(Phase(name, tuple(_steps(entry, name, out)), line))
    if phases and not any(p.name in STANDARD_PHASES for p in phases):
        out.add(key_line(data, "phases"), "a document needs at least one of the phases build, validate, test")
    return phases


def _steps(phase: Mapping[str, Any], phase_name: str, out: _Collector) -> list[Step]:
    raw = phase.get("steps")
    if not isinstance(raw, list) or not raw:
        out.add(key_line(phase, "steps"), "steps must be a non-empty list", phase=phase_name)
        return []
    steps: list[Step] = []
    loop_names: set[str] = set()
    for i, entry in enumerate(raw):
        line = item_line(raw, i)
        if not isinstance(entry, Mapping):
            out.add(line, "each step must be a map with name, action and inputs", phase=phase_name)
            continue
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            out.add(line, "a step needs a name", phase=phase_name)
            continue
        step = _step(entry, name, phase_name, line, out)
        if any(s.name == name for s in steps):
            out.add(line, "step names must be unique within a phase", step=name, phase=phase_name)
        if step.loop is not None and step.loop.name is not None:
            if step.loop.name in loop_names:
                out.add(
                    step.loop.line,
                    f"loop name '{step.loop.name}' is used twice in this phase",
                    step=name,
                    phase=phase_name,
                )
            loop_names.add(step.loop.name)
        steps.append(step)
    return steps


def _step(entry: Mapping[str, Any], name: str, phase: str, line: int | None, out: _Collector) -> Step:
    def err(key: str, message: str) -> None:
        out.add(key_line(entry, key, line), message, step=name, phase=phase)

    for key in entry:
        if key not in STEP_KEYS:
            err(key, f"unknown step field '{key}' (allowed: {', '.join(STEP_KEYS)})")
    action = entry.get("action")
    if not isinstance(action, str) or not action:
        err("action", "action is required (an action module name such as ExecuteBash)")
        action = ""
    timeout = entry.get("timeoutSeconds", DEFAULT_TIMEOUT_SECONDS)
    if not _is_int(timeout) or (timeout < 1 and timeout != -1):
        err("timeoutSeconds", f"timeoutSeconds must be a positive integer or -1 (no limit), not {timeout!r}")
        timeout = DEFAULT_TIMEOUT_SECONDS
    attempts = entry.get("maxAttempts", DEFAULT_MAX_ATTEMPTS)
    if not _is_int(attempts) or attempts < 1:
        err("maxAttempts", f"maxAttempts must be an integer of at least 1, not {attempts!r}")
        attempts = DEFAULT_MAX_ATTEMPTS
    if action == "ExecuteDocument":
        # A nested run has its own steps' timeouts and retries (spec §8.1).
        if entry.get("timeoutSeconds", -1) != -1:
            err("timeoutSeconds", "ExecuteDocument always runs without a timeout; remove timeoutSeconds or set -1")
        if entry.get("maxAttempts", 1) != 1:
            err("maxAttempts", "ExecuteDocument runs once; remove maxAttempts or set 1")
        timeout, attempts = -1, 1
    on_failure_raw = entry.get("onFailure", OnFailure.ABORT.value)
    try:
        on_failure = OnFailure(on_failure_raw)
    except ValueError:
        err("onFailure", f"onFailure must be Abort, Continue or Ignore, not {on_failure_raw!r}")
        on_failure = OnFailure.ABORT
    disable_logging = entry.get("disableLogging", False)
    if not isinstance(disable_logging, bool):
        err("disableLogging", "disableLogging must be true or false")
        disable_logging = False
    condition = entry.get("if")
    if "if" in entry:
        for problem in conditions.check(condition, top=True):
            err("if", f"if: {problem}")
    loop = _loop(entry["loop"], entry, err) if "loop" in entry else None
    return Step(
        name=name,
        action=action,
        inputs=entry.get("inputs"),
        timeout_seconds=timeout,
        on_failure=on_failure,
        max_attempts=attempts,
        condition=condition,
        loop=loop,
        disable_logging=disable_logging,
        line=line,
    )


def _loop(raw: Any, entry: Mapping[str, Any], err: Any) -> Loop | None:
    line = key_line(entry, "loop")
    if not isinstance(raw, Mapping):
        err("loop", "loop must be a map with 'for' or 'forEach'")
        return None
    for key in raw:
        if key not in ("name", "for", "forEach"):
            err("loop", f"unknown loop key '{key}' (allowed: name, for, forEach)")
    name = raw.get("name")
    if name is not None and (not isinstance(name, str) or not NAME_RULE.match(name) or name == "loop"):
        err("loop", f"loop name {name!r} must be 3-128 letters, digits, '_' or '-' (and not 'loop')")
        name = None
    if ("for" in raw) == ("forEach" in raw):
        err("loop", "a loop needs exactly one of 'for' and 'forEach'")
        return None
    if "for" in raw:
        spec = raw["for"]
        if not isinstance(spec, Mapping) or not all(_is_int(spec.get(k)) for k in ("start", "end", "updateBy")):
            err("loop", "loop.for needs integer start, end and updateBy (no variables)")
            return None
        start, end, update_by = spec["start"], spec["end"], spec["updateBy"]
        if update_by == 0 or (end - start) * update_by < 0:
            err("loop", f"loop.for from {start} to {end} by {update_by} never reaches its end")
            return None
        return Loop(LoopKind.FOR, name, start=start, end=end, update_by=update_by, line=line)
    spec = raw["forEach"]
    if isinstance(spec, list):
        if not spec or any(_scalar_text(v) is None for v in spec):
            err("loop", "loop.forEach must be a non-empty list of strings")
            return None
        return Loop(LoopKind.FOR_EACH, name, items=tuple(spec), line=line)
    if isinstance(spec, Mapping):
        text, delimiter = spec.get("list"), spec.get("delimiter", ",")
        if not isinstance(text, str):
            err("loop", "loop.forEach.list must be a string")
            return None
        if delimiter not in DELIMITERS:
            err("loop", f"loop.forEach.delimiter must be one character of {DELIMITERS!r}, not {delimiter!r}")
            return None
        return Loop(LoopKind.FOR_EACH, name, list_text=text, delimiter=delimiter, line=line)
    err("loop", "loop.forEach must be a list, or a map with list and delimiter")
    return None
