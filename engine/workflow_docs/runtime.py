"""What the interpreter needs per run: bind parameters, resolve a step's inputs, evaluate ``if``.

The run's context is a plain mapping::

    {"stepOutputs": {step: {output: value}}, "parameters": {name: value},
     "imagebuilder": {systemVariable: value}, "workflowOutputs": {name: value}}

Functions here are pure (no I/O, no clock), so the Temporal workflow can call them directly.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from engine.workflow_docs.errors import ResolutionError, WorkflowDocumentError
from engine.workflow_docs.jsonpath import DYNAMIC_SUFFIX, interpolate, is_path, resolve_path, stringify
from engine.workflow_docs.model import (
    Condition,
    Parameter,
    ParameterType,
    ParameterValue,
    Step,
    WorkflowDocument,
)
from engine.workflow_docs.validate import MAX_PARAMETER_VALUE_CHARS, NUMBER_RE


def resolve_inputs(step: Step, context: Mapping[str, Any]) -> dict[str, Any]:
    """The step's inputs with every ``key.$`` variable and ``{{ $.… }}`` replaced by its value.

    ``key.$`` becomes ``key``. Raises ResolutionError when a variable has no value in this run (for
    example, the output of a step that was skipped).
    """
    resolved = _resolve(step.inputs, context)
    # The result must not share objects with the context (step outputs are kept for later steps).
    out: dict[str, Any] = copy.deepcopy(resolved)
    return out


def _resolve(value: Any, context: Mapping[str, Any]) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key.endswith(DYNAMIC_SUFFIX) and len(key) > len(DYNAMIC_SUFFIX):
                out[key[: -len(DYNAMIC_SUFFIX)]] = _resolve_variable(item, context)
            else:
                out[key] = _resolve(item, context)
        return out
    if isinstance(value, list):
        return [_resolve(item, context) for item in value]
    if isinstance(value, str) and "{{" in value:
        return interpolate(value, context)
    return value


def _resolve_variable(value: Any, context: Mapping[str, Any]) -> Any:
    if isinstance(value, list):
        return [_resolve_variable(item, context) for item in value]
    if is_path(value):
        return resolve_path(value, context)
    if isinstance(value, str):
        return interpolate(value, context)
    return value


def resolve_value(value: Any, context: Mapping[str, Any]) -> Any:
    """A condition's ``value`` or ``rollbackEnabled``: a variable, an interpolated string or a literal."""
    if is_path(value):
        return resolve_path(value, context)
    if isinstance(value, str) and "{{" in value:
        return interpolate(value, context)
    return value


def evaluate_condition(condition: Condition | None, context: Mapping[str, Any]) -> bool:
    """Whether a step runs: True without a condition; and/or short-circuit in document order."""
    if condition is None:
        return True
    op = condition.op
    if op == "and":
        return all(evaluate_condition(c, context) for c in condition.children)
    if op == "or":
        return any(evaluate_condition(c, context) for c in condition.children)
    if op == "not":
        return not evaluate_condition(condition.children[0], context)
    actual = resolve_value(condition.value, context)
    expected = condition.operand
    if op == "stringEquals":
        # Non-strings are compared by their text (true, 3, ...).
        return stringify(expected) == stringify(actual)
    if op == "booleanEquals":
        return _boolean(actual, condition) == _boolean(expected, condition)
    left, right = _number(actual, condition), _number(expected, condition)
    comparisons = {
        "numberEquals": left == right,
        "numberGreaterThan": left > right,
        "numberGreaterThanEquals": left >= right,
        "numberLessThan": left < right,
        "numberLessThanEquals": left <= right,
    }
    if op not in comparisons:
        raise ResolutionError(f"unknown condition operator '{op}'")
    return comparisons[op]


def _boolean(value: Any, condition: Condition) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ResolutionError(f"booleanEquals needs a boolean, but {_source(condition)} is {value!r}")


def _number(value: Any, condition: Condition) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and NUMBER_RE.match(value.strip()):
        return float(value)
    raise ResolutionError(f"{condition.op} needs a number, but {_source(condition)} is {value!r}")


def _source(condition: Condition) -> str:
    return f"'{condition.value}'" if isinstance(condition.value, str) else "the value"


def rollback_enabled(step: Step, context: Mapping[str, Any]) -> bool:
    """The step's rollbackEnabled for this run (it may be a variable)."""
    value = resolve_value(step.rollback_enabled, context)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ResolutionError(f"rollbackEnabled of step '{step.name}' resolved to {value!r}, not a boolean")


def resolve_outputs(document: WorkflowDocument, context: Mapping[str, Any]) -> dict[str, Any]:
    """The workflow's outputs for this run; an output whose step was skipped is left out."""
    outputs: dict[str, Any] = {}
    for output in document.outputs:
        try:
            outputs[output.name] = copy.deepcopy(resolve_path(output.value, context))
        except ResolutionError:
            continue
    return outputs


# --- parameters ---------------------------------------------------------------------------------


def bind_parameters(
    document: WorkflowDocument, given: Mapping[str, Sequence[str]] | None = None
) -> dict[str, ParameterValue]:
    """Typed values for ``$.parameters``: the caller's values (strings, as the API carries them)
    converted to each parameter's type, then defaults. Raises WorkflowDocumentError naming the
    parameter when one is unknown, missing or of the wrong type."""
    given = dict(given or {})
    declared = {p.name: p for p in document.parameters}
    for name in given:
        if name not in declared:
            raise WorkflowDocumentError(f"the workflow has no parameter '{name}'")
    values: dict[str, ParameterValue] = {}
    for param in document.parameters:
        if param.name in given:
            values[param.name] = parameter_value(param, given[param.name])
        elif param.default is not None:
            values[param.name] = copy.deepcopy(param.default)
        else:
            raise WorkflowDocumentError(f"parameter '{param.name}' needs a value (it has no default)")
    return values


def parameter_value(param: Parameter, strings: Sequence[str]) -> ParameterValue:
    """Convert the API's list-of-strings form of a parameter value to the parameter's type."""
    if isinstance(strings, str):
        strings = [strings]
    items = list(strings)
    for item in items:
        if len(item) > MAX_PARAMETER_VALUE_CHARS:
            raise WorkflowDocumentError(
                f"the value of parameter '{param.name}' is longer than {MAX_PARAMETER_VALUE_CHARS} characters"
            )
    if param.type is ParameterType.STRING_LIST:
        return items
    if len(items) != 1:
        raise WorkflowDocumentError(f"{param.type.value} parameter '{param.name}' takes exactly one value")
    text = items[0]
    if param.type is ParameterType.INTEGER:
        try:
            return int(text.strip())
        except ValueError:
            raise WorkflowDocumentError(
                f"integer parameter '{param.name}' got {text!r}, which is not a whole number"
            ) from None
    if param.type is ParameterType.BOOLEAN:
        lowered = text.strip().lower()
        if lowered not in ("true", "false"):
            raise WorkflowDocumentError(f"boolean parameter '{param.name}' takes true or false, not {text!r}")
        return lowered == "true"
    return text


def default_value_strings(param: Parameter) -> list[str]:
    """A default as the API returns it (``defaultValue``, a list of strings): ``true`` -> ``["true"]``."""
    if param.default is None:
        return []
    if isinstance(param.default, list):
        return list(param.default)
    return [stringify(param.default)]


def parameter_details(document: WorkflowDocument) -> list[dict[str, Any]]:
    """The document's parameters in the API's WorkflowParameterDetail shape (GetWorkflow)."""
    details = []
    for param in document.parameters:
        detail: dict[str, Any] = {"name": param.name, "type": param.type.value}
        if param.default is not None:
            detail["defaultValue"] = default_value_strings(param)
        if param.description:
            detail["description"] = param.description
        details.append(detail)
    return details
