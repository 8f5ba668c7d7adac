"""Checks that need more than the document's own shape: action inputs and ``{{ }}`` references."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError as SchemaError

from components.actions.base import ActionModule
from components.document.model import Document, Phase, Step
from components.document.parser import item_line, key_line, line_of
from components.errors import DocumentError, ExpressionError
from components.expressions import RefKind, iter_strings, parse_ref, references

#: Every action keyword AWSTOE documents (spec §8), to tell "not written yet" from "no such action".
DOCUMENTED_ACTIONS = frozenset(
    [
        "AppendFile",
        "Assert",
        "CopyFile",
        "CopyFolder",
        "CreateFile",
        "CreateFolder",
        "CreateSymlink",
        "DeleteFile",
        "DeleteFolder",
        "ExecuteBash",
        "ExecuteBinary",
        "ExecuteDocument",
        "ExecutePowerShell",
        "InstallMSI",
        "ListFiles",
        "MoveFile",
        "MoveFolder",
        "ReadFile",
        "Reboot",
        "SetFileEncoding",
        "SetFileOwner",
        "SetFolderOwner",
        "SetFilePermissions",
        "SetFolderPermissions",
        "SetRegistry",
        "S3Download",
        "S3Upload",
        "UninstallMSI",
        "UpdateOS",
        "WebDownload",
    ]
)


def check_document(doc: Document, actions: Mapping[str, ActionModule]) -> list[DocumentError]:
    errors: list[DocumentError] = []
    variables = {p.name for p in doc.parameters} | {c.name for c in doc.constants}
    earlier: set[tuple[str, str]] = set()
    for phase in doc.phases:
        for step in phase.steps:
            errors += _check_action(doc, phase, step, actions)
            errors += _check_references(doc, phase, step, variables, earlier)
            earlier.add((phase.name, step.name))
    return errors


def default_inputs(step: Step, module: ActionModule | None) -> Any:
    """What an omitted ``inputs`` means: {} or [] if the action's schema takes it (UpdateOS, Reboot)."""
    if step.inputs is not None or module is None:
        return step.inputs
    candidates: tuple[Any, ...] = ({}, [])
    for candidate in candidates:
        if not list(_validator(module.name, module.schema).iter_errors(candidate)):
            return candidate
    return None


def _check_action(doc: Document, phase: Phase, step: Step, actions: Mapping[str, ActionModule]) -> list[DocumentError]:
    def error(line: int | None, message: str) -> DocumentError:
        return DocumentError(doc.label, line, message, step=step.name, phase=phase.name)

    if not step.action:
        return []
    module = actions.get(step.action)
    if module is None:
        if step.action in DOCUMENTED_ACTIONS:
            return [
                error(
                    step.line,
                    f"action '{step.action}' is documented by AWSTOE but has no module in components/actions yet",
                )
            ]
        known = ", ".join(sorted(DOCUMENTED_ACTIONS | set(actions)))
        return [error(step.line, f"unknown action '{step.action}' (known: {known})")]
    inputs = default_inputs(step, module)
    if inputs is None:
        return [error(step.line, f"inputs are required for {step.action}")]
    if not module.schema:
        return []
    found = sorted(_validator(module.name, module.schema).iter_errors(inputs), key=lambda e: list(e.absolute_path))
    return [error(_schema_line(step, e), _describe(e)) for e in found]


@cache
def _validator_cached(name: str, schema_key: str) -> Any:
    import json

    schema = json.loads(schema_key)
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


def _validator(name: str, schema: Mapping[str, Any]) -> Any:
    import json

    return _validator_cached(name, json.dumps(schema, sort_keys=True))


def _schema_line(step: Step, error: SchemaError) -> int | None:
    """Walk the path the schema error points at to the innermost node with a line."""
    node: Any = step.inputs
    line = line_of(node, step.line)
    for part in error.absolute_path:
        if isinstance(node, Mapping) and part in node:
            line = key_line(node, part, line)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            line = item_line(node, part, line)
        else:
            break
        node = node[part]
    return line


def _render_path(parts: Iterable[Any]) -> str:
    text = "inputs"
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


_TYPE_WORDS = {
    "array": "a list",
    "object": "a map",
    "string": "a string",
    "integer": "an integer",
    "boolean": "true or false",
    "number": "a number",
    "null": "empty",
}


def _describe(error: SchemaError) -> str:
    where = _render_path(error.absolute_path)
    expected: Any = error.validator_value
    if error.validator == "type":
        types = [str(t) for t in (expected if isinstance(expected, list) else [expected])]
        what = " or ".join(_TYPE_WORDS.get(t, t) for t in types)
        if "array" in types and isinstance(error.schema, Mapping):
            item_type = (error.schema.get("items") or {}).get("type")
            # Scalars that YAML may type as numbers or booleans are accepted as strings.
            item_types = item_type if isinstance(item_type, list) else [item_type]
            if "string" in item_types or item_types[0] in _TYPE_WORDS:
                what = f"a list of {'string' if 'string' in item_types else item_types[0]}s"
        return f"{where} must be {what}"
    if error.validator == "required":
        missing = str(error.message).split("'")[1] if "'" in error.message else error.message
        return f"{where}: '{missing}' is required"
    if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
        allowed = set((error.schema.get("properties") or {}) if isinstance(error.schema, Mapping) else ())
        extra = sorted(str(k) for k in error.instance if k not in allowed)
        return f"{where}: unknown field {', '.join(repr(k) for k in extra)} (allowed: {', '.join(sorted(allowed))})"
    if error.validator == "enum":
        return f"{where} must be one of {', '.join(map(repr, expected))}"
    return f"{where}: {error.message}"


def _check_references(
    doc: Document, phase: Phase, step: Step, variables: set[str], earlier: set[tuple[str, str]]
) -> list[DocumentError]:
    found: list[tuple[int | None, str]] = []
    for path, text in iter_strings(step.inputs):
        found += [(_line_at(step.inputs, path, step.line), expr) for expr in references(text)]
    if step.loop is not None:
        for text in (*(step.loop.items or ()), step.loop.list_text or ""):
            found += [(step.loop.line, expr) for expr in references(str(text))]
    for _path, text in iter_strings(step.condition):
        found += [(step.line, expr) for expr in references(text)]
    errors = []
    for line, expr in found:
        message = _reference_problem(expr, step, variables, earlier)
        if message:
            errors.append(DocumentError(doc.label, line, message, step=step.name, phase=phase.name))
    return errors


def _reference_problem(expr: str, step: Step, variables: set[str], earlier: set[tuple[str, str]]) -> str | None:
    try:
        ref = parse_ref(expr)
    except ExpressionError as exc:
        return str(exc)
    if ref.kind is RefKind.VARIABLE and ref.name not in variables:
        return f"'{{{{ {expr} }}}}' is not a parameter or constant of this document"
    if ref.kind is RefKind.LOOP and ref.name != "loop":
        loop_name = step.loop.name if step.loop else None
        if ref.name != loop_name:
            return f"'{{{{ {expr} }}}}': '{ref.name}' is not this step's loop name"
    if ref.kind is RefKind.CHAIN and (ref.phase, ref.step) not in earlier:
        return (
            f"'{{{{ {expr} }}}}' refers to step '{ref.step}' of phase '{ref.phase}', "
            "which does not come before this step in the document"
        )
    return None


def _line_at(node: Any, path: tuple[str | int, ...], default: int | None) -> int | None:
    line = line_of(node, default)
    for part in path:
        if isinstance(node, Mapping) and part in node:
            line = key_line(node, part, line)
        elif isinstance(node, list) and isinstance(part, int):
            line = item_line(node, part, line)
        else:
            break
        node = node[part]
    return line
