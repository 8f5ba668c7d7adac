"""Turn loaded YAML (plain data plus line numbers) into a ``WorkflowDocument``, or say what is wrong.

Checks, in document order, stopping at the first problem: the document's keys and schemaVersion,
parameters, then each step (name, action allowed in this workflow's stage, onFailure,
rollbackEnabled, timeouts, ``if`` and inputs against the action's JSON Schema, with every ``$.…``
variable pointing at an earlier step's real output, a declared parameter or a system variable), then
the workflow outputs and the documented limits.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NoReturn

from jsonschema import Draft202012Validator, ValidationError

from engine.workflow_docs.actions import (
    ACTIONS,
    AMI_DISTRIBUTION_ACTIONS,
    CONTAINER_DISTRIBUTION_ACTIONS,
    ActionSpec,
    ValueType,
)
from engine.workflow_docs.errors import WorkflowDocumentError
from engine.workflow_docs.jsonpath import (
    DYNAMIC_SUFFIX,
    Scope,
    interpolations,
    is_path,
    parse_path,
    reference_type,
)
from engine.workflow_docs.model import (
    Condition,
    OnFailure,
    Output,
    Parameter,
    ParameterType,
    ParameterValue,
    Step,
    WorkflowDocument,
    WorkflowType,
)
from engine.workflow_docs.yamlload import Lines, Path

# Documented limits.
MAX_STEPS = 15
MAX_PARAMETERS = 25
MAX_OUTPUTS = 25
MAX_PARAMETER_NAME_CHARS = 128
MAX_PARAMETER_VALUE_CHARS = 1024
MAX_DESCRIPTION_CHARS = 1024
MAX_WAIT_SECONDS = 3600
MAX_CONDITION_DEPTH = 4  # nested levels below the one top-level statement
MAX_BRANCHES = 10

SCHEMA_VERSION = "1.0"
#: The API's pattern for step names and actions (the prose allows less; the API wins).
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9-_]{1,99}$")
#: Numeric strings a number comparison accepts.
NUMBER_RE = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")

DOCUMENT_KEYS = ("name", "description", "schemaVersion", "parameters", "steps", "outputs")
PARAMETER_KEYS = ("name", "type", "default", "description")
STEP_KEYS = (
    "name",
    "action",
    "description",
    "onFailure",
    "rollbackEnabled",
    "timeoutSeconds",
    "waitSeconds",
    "if",
    "inputs",
)
OUTPUT_KEYS = ("name", "value")
BRANCHES = ("and", "or")
COMPARISONS = (
    "booleanEquals",
    "numberEquals",
    "numberGreaterThan",
    "numberGreaterThanEquals",
    "numberLessThan",
    "numberLessThanEquals",
    "stringEquals",
)
OPERATORS = (*BRANCHES, "not", *COMPARISONS)

#: A value of each type, standing in for a variable while the inputs are checked against the schema.
_SAMPLES: dict[ValueType, Any] = {
    ValueType.STRING: "",
    ValueType.INTEGER: 0,
    ValueType.BOOLEAN: False,
    ValueType.STRING_LIST: [""],
    ValueType.OBJECT_LIST: [{}],
    ValueType.OBJECT: {},
    ValueType.ANY: None,
}
_SCALARS = {"string", "integer", "number", "boolean"}
_JSON_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "array": "a list",
    "object": "a mapping",
    "null": "empty",
}


def validate_document(data: Any, lines: Lines, workflow_type: WorkflowType) -> WorkflowDocument:
    return _Validator(lines, workflow_type).document(data)


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return "empty"


def _display(path: Path) -> str:
    """An input's path as the author would write it: ``distributions[0].amiTags``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


@dataclass
class _Placeholders:
    """Variables in a step's inputs, by their path in the schema-check copy (``.$`` suffixes dropped)."""

    types: dict[Path, tuple[ValueType, str]] = field(default_factory=dict)  # path -> (type, variable)
    origin: dict[Path, Path] = field(default_factory=dict)  # schema-copy path -> path as written

    def written(self, path: Path) -> Path:
        for end in range(len(path), 0, -1):
            found = self.origin.get(path[:end])
            if found is not None:
                return found + path[end:]
        return path


class _Validator:
    def __init__(self, lines: Lines, workflow_type: WorkflowType) -> None:
        self.lines = lines
        self.type = workflow_type

    def fail(self, message: str, path: Path, step: str | None = None) -> NoReturn:
        raise WorkflowDocumentError(message, line=self.lines.line(path), step=step)

    def _known_keys(self, raw: dict[str, Any], known: tuple[str, ...], path: Path, what: str, step: str | None) -> None:
        for key in raw:
            if key not in known:
                self.fail(f"unknown {what} field '{key}'{_did_you_mean(key, known)}", (*path, key), step)

    # --- document -------------------------------------------------------------------------------

    def document(self, data: Any) -> WorkflowDocument:
        if data is None:
            raise WorkflowDocumentError("the document is empty")
        if not isinstance(data, dict):
            self.fail(f"the document must be a mapping with schemaVersion and steps, not {_describe(data)}", ())
        self._known_keys(data, DOCUMENT_KEYS, (), "document", None)
        self._schema_version(data)
        name = self._text(data, "name", (), None, max_chars=None)
        description = self._text(data, "description", (), None)
        parameters = self._parameters(data.get("parameters"))
        steps = self._steps(data, parameters)
        outputs = self._outputs(data.get("outputs"), parameters, steps)
        return WorkflowDocument(
            name=name,
            description=description,
            schema_version=SCHEMA_VERSION,
            parameters=parameters,
            steps=steps,
            outputs=outputs,
            type=self.type,
        )

    def _schema_version(self, data: dict[str, Any]) -> None:
        if "schemaVersion" not in data:
            self.fail("schemaVersion is required (use 1.0)", ())
        version = data["schemaVersion"]
        # YAML reads an unquoted 1.0 as a float; both spellings mean the one supported version.
        if not (version == 1.0 and not isinstance(version, bool | int)) and version != SCHEMA_VERSION:
            self.fail(f"schemaVersion must be 1.0, not {version!r}", ("schemaVersion",))

    def _text(
        self,
        raw: dict[str, Any],
        key: str,
        path: Path,
        step: str | None,
        max_chars: int | None = MAX_DESCRIPTION_CHARS,
    ) -> str:
        value = raw.get(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            self.fail(f"{key} must be a string, not {_describe(value)}", (*path, key), step)
        if max_chars is not None and len(value) > max_chars:
            self.fail(f"{key} is longer than {max_chars} characters", (*path, key), step)
        return value

    # --- parameters -----------------------------------------------------------------------------

    def _parameters(self, raw: Any) -> tuple[Parameter, ...]:
        path: Path = ("parameters",)
        if raw is None:
            return ()
        if not isinstance(raw, list):
            self.fail("parameters must be a list of {name, type, default, description}", path)
        if len(raw) > MAX_PARAMETERS:
            self.fail(f"a workflow may declare at most {MAX_PARAMETERS} parameters, not {len(raw)}", path)
        params: dict[str, Parameter] = {}
        for index, item in enumerate(raw):
            param = self._parameter(item, (*path, index))
            if param.name in params:
                self.fail(f"parameter '{param.name}' is declared twice", (*path, index, "name"))
            params[param.name] = param
        return tuple(params.values())

    def _parameter(self, raw: Any, path: Path) -> Parameter:
        if not isinstance(raw, dict) or "name" not in raw:
            self.fail(
                "each parameter must be a mapping with a 'name' (workflow parameters are a list of "
                "{name, type, default, description}, unlike the one-key maps of component documents)",
                path,
            )
        self._known_keys(raw, PARAMETER_KEYS, path, "parameter", None)
        name = raw["name"]
        if not isinstance(name, str) or not name or "\x00" in name or len(name) > MAX_PARAMETER_NAME_CHARS:
            self.fail(f"parameter names must be 1 to {MAX_PARAMETER_NAME_CHARS} characters", (*path, "name"))
        type_name = raw.get("type", ParameterType.STRING.value)
        try:
            ptype = ParameterType(type_name)
        except ValueError:
            self.fail(
                f"parameter '{name}' has type {type_name!r}; use one of: {', '.join(t.value for t in ParameterType)}",
                (*path, "type"),
            )
        default = None
        if "default" in raw:
            default = self._default(name, ptype, raw["default"], (*path, "default"))
        description = self._text(raw, "description", path, None)
        return Parameter(name=name, type=ptype, default=default, description=description)

    def _default(self, name: str, ptype: ParameterType, value: Any, path: Path) -> ParameterValue:
        ok = {
            ParameterType.STRING: isinstance(value, str),
            ParameterType.INTEGER: isinstance(value, int) and not isinstance(value, bool),
            ParameterType.BOOLEAN: isinstance(value, bool),
            ParameterType.STRING_LIST: isinstance(value, list) and all(isinstance(v, str) for v in value),
        }[ptype]
        if not ok:
            hint = " (quote it to make it a string)" if ptype is ParameterType.STRING else ""
            wanted = {
                ParameterType.STRING: "a string",
                ParameterType.INTEGER: "an integer",
                ParameterType.BOOLEAN: "true or false",
                ParameterType.STRING_LIST: "a list of strings",
            }[ptype]
            self.fail(
                f"the default of {ptype.value} parameter '{name}' must be {wanted}, not {_describe(value)}{hint}",
                path,
            )
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and len(item) > MAX_PARAMETER_VALUE_CHARS:
                self.fail(
                    f"the default of parameter '{name}' is longer than {MAX_PARAMETER_VALUE_CHARS} characters",
                    path,
                )
        return value

    # --- steps ----------------------------------------------------------------------------------

    def _steps(self, data: dict[str, Any], parameters: tuple[Parameter, ...]) -> tuple[Step, ...]:
        path: Path = ("steps",)
        raw = data.get("steps")
        if raw is None:
            self.fail("steps is required: a list of at least one step", path if "steps" in data else ())
        if not isinstance(raw, list) or not raw:
            self.fail("steps must be a list of at least one step", path)
        if len(raw) > MAX_STEPS:
            self.fail(f"a workflow may have at most {MAX_STEPS} steps, not {len(raw)}", (*path, MAX_STEPS))
        params = {p.name: p.type for p in parameters}
        all_names = tuple(s["name"] for s in raw if isinstance(s, dict) and isinstance(s.get("name"), str))
        earlier: dict[str, str] = {}
        first_line: dict[str, int | None] = {}
        steps: list[Step] = []
        for index, item in enumerate(raw):
            step_path = (*path, index)
            scope = Scope(self.type, dict(earlier), all_names, params)
            step = self._step(item, step_path, scope)
            if step.name in earlier:
                self.fail(
                    f"step name '{step.name}' is already used by the step on line {first_line[step.name]}",
                    (*step_path, "name"),
                    step.name,
                )
            earlier[step.name] = step.action
            first_line[step.name] = step.line
            steps.append(step)
        self._distribution_kind(steps, path)
        return tuple(steps)

    def _step(self, raw: Any, path: Path, scope: Scope) -> Step:
        if not isinstance(raw, dict):
            self.fail(f"each step must be a mapping with name and action, not {_describe(raw)}", path)
        name = raw.get("name")
        label = name if isinstance(name, str) else None
        # Unknown keys first: a step with ``Name:`` should hear about the spelling, not a missing name.
        self._known_keys(raw, STEP_KEYS, path, "step", label)
        if name is None:
            self.fail("the step has no name", path)
        if not isinstance(name, str) or not NAME_RE.match(name):
            self.fail(
                f"step name {name!r} must start with a letter and have 2 to 100 letters, digits, '-' or '_'",
                (*path, "name"),
                label,
            )
        spec = self._action(raw, path, name)
        scope = Scope(scope.workflow_type, scope.earlier_steps, scope.all_steps, scope.parameters, name)
        return Step(
            name=name,
            action=spec.name,
            description=self._text(raw, "description", path, name),
            inputs=self._inputs(raw, path, name, spec, scope),
            if_=self._if(raw, path, name, scope),
            on_failure=self._on_failure(raw, path, name),
            rollback_enabled=self._rollback(raw, path, name, scope),
            timeout_seconds=self._timeout(raw, path, name, spec),
            wait_seconds=self._wait(raw, path, name),
            line=self.lines.line(path),
        )

    def _action(self, raw: dict[str, Any], path: Path, step: str) -> ActionSpec:
        if "action" not in raw:
            self.fail("the step has no action", path, step)
        action = raw["action"]
        at = (*path, "action")
        if not isinstance(action, str) or not NAME_RE.match(action):
            self.fail(f"action {action!r} is not a valid action name", at, step)
        spec = ACTIONS.get(action)
        if spec is None:
            self.fail(f"unknown action '{action}'{_did_you_mean(action, ACTIONS)}", at, step)
        if self.type not in spec.stages:
            allowed = " and ".join(s.value for s in sorted(spec.stages, key=list(WorkflowType).index))
            self.fail(f"action '{action}' cannot be used in a {self.type.value} workflow (only in {allowed})", at, step)
        return spec

    def _on_failure(self, raw: dict[str, Any], path: Path, step: str) -> OnFailure:
        value = raw.get("onFailure", OnFailure.ABORT.value)
        try:
            return OnFailure(value)
        except ValueError:
            self.fail(f"onFailure must be Abort or Continue, not {value!r}", (*path, "onFailure"), step)

    def _rollback(self, raw: dict[str, Any], path: Path, step: str, scope: Scope) -> bool | str:
        value = raw.get("rollbackEnabled", True)
        at = (*path, "rollbackEnabled")
        if isinstance(value, bool):
            return value
        if is_path(value):
            vtype = self._reference(value, scope, at, step, "rollbackEnabled")
            if vtype.is_list or vtype is ValueType.OBJECT:
                self.fail(f"rollbackEnabled refers to '{value}', which holds a {vtype}, not a boolean", at, step)
            return str(value).strip()
        self.fail(f"rollbackEnabled must be true, false or a variable, not {value!r}", at, step)

    def _timeout(self, raw: dict[str, Any], path: Path, step: str, spec: ActionSpec) -> int:
        if "timeoutSeconds" not in raw:
            return spec.default_timeout
        value = raw["timeoutSeconds"]
        at = (*path, "timeoutSeconds")
        if not isinstance(value, int) or isinstance(value, bool):
            self.fail(f"timeoutSeconds must be a whole number of seconds, not {_describe(value)}", at, step)
        if not 1 <= value <= spec.max_timeout:
            self.fail(
                f"timeoutSeconds must be between 1 and {spec.max_timeout} ({_human(spec.max_timeout)}, "
                f"the most {spec.name} allows), not {value}",
                at,
                step,
            )
        return value

    def _wait(self, raw: dict[str, Any], path: Path, step: str) -> int:
        value = raw.get("waitSeconds", 0)
        at = (*path, "waitSeconds")
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_WAIT_SECONDS:
            self.fail(f"waitSeconds must be a whole number from 0 to {MAX_WAIT_SECONDS}, not {value!r}", at, step)
        return value

    def _distribution_kind(self, steps: list[Step], path: Path) -> None:
        container = [i for i, s in enumerate(steps) if s.action in CONTAINER_DISTRIBUTION_ACTIONS]
        ami = [i for i, s in enumerate(steps) if s.action in AMI_DISTRIBUTION_ACTIONS]
        if container and ami:
            second = max(container[0], ami[0])
            self.fail(
                "a workflow distributes either a container image (DistributeContainerImage) or an AMI "
                "(DistributeImage, ModifyImageAttributes, ApplyImageConfigurations), not both",
                (*path, second, "action"),
                steps[second].name,
            )

    # --- variables ------------------------------------------------------------------------------

    def _reference(self, text: str, scope: Scope, at: Path, step: str | None, where: str) -> ValueType:
        try:
            return reference_type(parse_path(text), scope)
        except ValueError as e:
            message = str(e)
            joiner = " " if message.startswith("refers") else ": "
            self.fail(f"{where}{joiner}{message}", at, step)

    # --- inputs ---------------------------------------------------------------------------------

    def _inputs(self, raw: dict[str, Any], path: Path, step: str, spec: ActionSpec, scope: Scope) -> dict[str, Any]:
        inputs = raw.get("inputs")
        at = (*path, "inputs")
        if inputs is None:
            inputs = {}
        if not isinstance(inputs, dict):
            self.fail(f"inputs must be a mapping of input names to values, not {_describe(inputs)}", at, step)
        holders = _Placeholders()
        instance = self._checkable(inputs, (), (), holders, scope, step, at)
        problems = []
        for error in Draft202012Validator(spec.inputs).iter_errors(instance):
            if self._beyond_static_check(error, holders):
                continue
            message, where = self._input_message(error, holders, spec)
            # A missing input is often explained by a misspelt one, so it is reported last.
            rank = (error.validator == "required", self.lines.line((*at, *where)) or 0)
            problems.append((rank, message, where))
        if problems:
            _, message, where = min(problems, key=lambda p: p[0])
            self.fail(message, (*at, *where), step)
        return inputs

    def _checkable(
        self, value: Any, written: Path, checked: Path, holders: _Placeholders, scope: Scope, step: str, at: Path
    ) -> Any:
        """A copy of the inputs for the schema check: ``key.$`` becomes ``key`` holding a sample value of
        the variable's type, so the schema sees the shape the step will get at run time."""
        holders.origin[checked] = written
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            for key, item in value.items():
                if key.endswith(DYNAMIC_SUFFIX) and len(key) > len(DYNAMIC_SUFFIX):
                    base = key[: -len(DYNAMIC_SUFFIX)]
                    if base in value:
                        shown = _display((*written, key))
                        self.fail(f"input '{shown}' and '{base}' are both given", (*at, *written, key), step)
                    holders.origin[(*checked, base)] = (*written, key)
                    out[base] = self._variable(item, (*written, key), (*checked, base), holders, scope, step, at)
                else:
                    out[key] = self._checkable(item, (*written, key), (*checked, key), holders, scope, step, at)
            return out
        if isinstance(value, list):
            return [
                self._checkable(item, (*written, i), (*checked, i), holders, scope, step, at)
                for i, item in enumerate(value)
            ]
        if isinstance(value, str) and self._interpolated(value, written, scope, step, at):
            holders.types[checked] = (ValueType.STRING, value)
        return value

    def _interpolated(self, text: str, written: Path, scope: Scope, step: str, at: Path) -> bool:
        found = interpolations(text)
        for variable in found:
            self._reference(variable, scope, (*at, *written), step, f"input '{_display(written)}'")
        return bool(found)

    def _variable(
        self, value: Any, written: Path, checked: Path, holders: _Placeholders, scope: Scope, step: str, at: Path
    ) -> Any:
        """The value of a ``key.$`` input: a variable, a list of them, or a string with ``{{ }}`` in it."""
        holders.origin[checked] = written
        if isinstance(value, list):
            return [
                self._variable(item, (*written, i), (*checked, i), holders, scope, step, at)
                for i, item in enumerate(value)
            ]
        where = f"input '{_display(written)}'"
        if is_path(value):
            vtype = self._reference(value, scope, (*at, *written), step, where)
            holders.types[checked] = (vtype, value.strip())
            return _SAMPLES[vtype]
        # One published sample writes ``input.$: |`` around a JSON string with {{ }} inside; accepted.
        if isinstance(value, str) and self._interpolated(value, written, scope, step, at):
            holders.types[checked] = (ValueType.STRING, value)
            return value
        self.fail(
            f"{where} ends in '.$', so its value must be a variable such as '$.parameters.name' "
            f"(or a list of them), not {value!r}",
            (*at, *written),
            step,
        )

    @staticmethod
    def _beyond_static_check(error: ValidationError, holders: _Placeholders) -> bool:
        """Whether a schema error is about a variable's content, which only the run can tell.

        Only a mismatch of shape (list or mapping against scalar) is certain before the run.
        """
        at = tuple(error.absolute_path)
        for end in range(len(at), -1, -1):
            found = holders.types.get(at[:end])
            if found is None:
                continue
            vtype = found[0]
            if end != len(at) or error.validator != "type" or vtype is ValueType.ANY:
                return True
            expected = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
            scalar = vtype in (ValueType.STRING, ValueType.INTEGER, ValueType.BOOLEAN)
            return scalar and any(t in _SCALARS for t in expected)
        return False

    @staticmethod
    def _input_message(error: ValidationError, holders: _Placeholders, spec: ActionSpec) -> tuple[str, Path]:
        """An author-facing message for a schema error, and the written path it is about."""
        checked = tuple(error.absolute_path)
        written = holders.written(checked)
        name = _display(written)
        kind = error.validator
        # jsonschema types these loosely (they may be "unset"); for the validators below they are set.
        rule: Any = error.validator_value
        schema: Any = error.schema
        instance: Any = error.instance
        if kind == "required":
            present = instance if isinstance(instance, dict) else {}
            missing = next(k for k in rule if k not in present)
            if not written:
                return f"{spec.name} requires input '{missing}'", written
            return f"input '{name}' requires '{missing}'", written
        if kind == "additionalProperties":
            known = list(schema.get("properties", {}))
            extra = next(k for k in instance if k not in known)
            key_path = holders.written((*checked, extra))
            shown = str(key_path[-1])
            if not written:
                return (
                    f"{spec.name} has no input '{shown}'{_did_you_mean(extra, known)}; "
                    f"its inputs are: {', '.join(known)}",
                    key_path,
                )
            return f"input '{name}' has no field '{shown}'{_did_you_mean(extra, known)}", key_path
        if kind == "type":
            expected: list[str] = rule if isinstance(rule, list) else [rule]
            wanted = " or ".join(_JSON_NAMES.get(t, t) for t in expected)
            held = holders.types.get(checked)
            if held is not None:
                vtype, variable = held
                if "{{" in variable:
                    return (
                        f"input '{name}' is a string with {{{{ }}}} variables in it, but it must be {wanted}",
                        written,
                    )
                return f"input '{name}' refers to '{variable}', which holds a {vtype}, but it must be {wanted}", written
            return f"input '{name}' must be {wanted}, not {_describe(instance)}", written
        if kind == "enum":
            choices = ", ".join(repr(c) for c in rule)
            return f"input '{name}' must be one of {choices}, not {instance!r}", written
        if kind == "maxLength":
            return f"input '{name}' is longer than {rule} characters", written
        if kind == "maxProperties":
            return f"input '{name}' has more than {rule} entries", written
        if kind == "minItems":
            return f"input '{name}' needs at least {rule} item(s)", written
        return f"input '{name}': {error.message}", written

    # --- conditions -----------------------------------------------------------------------------

    def _if(self, raw: dict[str, Any], path: Path, step: str, scope: Scope) -> Condition | None:
        if "if" not in raw:
            return None
        value = raw["if"]
        at = (*path, "if")
        # Both a mapping and a one-item list are seen in published documents.
        if isinstance(value, list):
            if len(value) != 1:
                self.fail("'if' takes exactly one statement at its top level (combine more with and/or)", at, step)
            return self._condition(value[0], (*at, 0), 0, step, scope)
        return self._condition(value, at, 0, step, scope)

    def _condition(self, raw: Any, at: Path, depth: int, step: str, scope: Scope) -> Condition:
        if depth > MAX_CONDITION_DEPTH:
            self.fail(f"conditions may nest at most {MAX_CONDITION_DEPTH} levels deep", at, step)
        if not isinstance(raw, dict):
            self.fail(
                "a condition must be a mapping such as {stringEquals: 'AMI', value: '$.imagebuilder.imageType'}",
                at,
                step,
            )
        operators = [k for k in raw if k != "value"]
        if len(operators) != 1:
            found = f"found {', '.join(operators)}" if operators else "found none"
            self.fail(f"a condition needs exactly one operator ({', '.join(OPERATORS)}); {found}", at, step)
        op = operators[0]
        if op not in OPERATORS:
            self.fail(f"unknown condition operator '{op}'{_did_you_mean(op, OPERATORS)}", (*at, op), step)
        if op in BRANCHES or op == "not":
            if "value" in raw:
                self.fail(f"'value' belongs to a comparison, not to '{op}'", (*at, "value"), step)
            return self._branch(op, raw[op], (*at, op), depth, step, scope)
        return self._comparison(op, raw, at, step, scope)

    def _branch(self, op: str, children: Any, at: Path, depth: int, step: str, scope: Scope) -> Condition:
        if op == "not":
            if isinstance(children, list) and len(children) == 1:
                return Condition("not", (self._condition(children[0], (*at, 0), depth + 1, step, scope),))
            return Condition("not", (self._condition(children, at, depth + 1, step, scope),))
        if not isinstance(children, list) or not 1 <= len(children) <= MAX_BRANCHES:
            self.fail(f"'{op}' takes a list of 1 to {MAX_BRANCHES} conditions", at, step)
        return Condition(
            op, tuple(self._condition(c, (*at, i), depth + 1, step, scope) for i, c in enumerate(children))
        )

    def _comparison(self, op: str, raw: dict[str, Any], at: Path, step: str, scope: Scope) -> Condition:
        operand = raw[op]
        if op == "booleanEquals" and not isinstance(operand, bool):
            self.fail(f"booleanEquals compares with true or false, not {operand!r}", (*at, op), step)
        if op.startswith("number") and not _is_number(operand):
            self.fail(f"{op} compares with a number, not {operand!r}", (*at, op), step)
        if op == "stringEquals" and not isinstance(operand, str | int | float | bool):
            self.fail(f"stringEquals compares with a string, not {_describe(operand)}", (*at, op), step)
        if "value" not in raw:
            example = "$.parameters.name"
            self.fail(f"'{op}' needs a 'value' to compare with, usually a variable such as '{example}'", at, step)
        value = raw["value"]
        value_at = (*at, "value")
        if is_path(value):
            self._reference(value, scope, value_at, step, "condition value")
            value = value.strip()
        elif isinstance(value, str):
            for variable in interpolations(value):
                self._reference(variable, scope, value_at, step, "condition value")
        elif not isinstance(value, int | float | bool):
            wrong = _describe(value)
            self.fail(f"a condition's value must be a variable or a plain value, not {wrong}", value_at, step)
        return Condition(op, operand=operand, value=value)

    # --- outputs --------------------------------------------------------------------------------

    def _outputs(self, raw: Any, params: tuple[Parameter, ...], steps: tuple[Step, ...]) -> tuple[Output, ...]:
        path: Path = ("outputs",)
        if raw is None:
            return ()
        if not isinstance(raw, list):
            self.fail("outputs must be a list of {name, value}", path)
        if len(raw) > MAX_OUTPUTS:
            self.fail(f"a workflow may have at most {MAX_OUTPUTS} outputs, not {len(raw)}", path)
        scope = Scope(
            self.type,
            {s.name: s.action for s in steps},
            tuple(s.name for s in steps),
            {p.name: p.type for p in params},
        )
        outputs: dict[str, Output] = {}
        for index, item in enumerate(raw):
            at = (*path, index)
            if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
                self.fail("each output must be a mapping with a name and a value", at)
            self._known_keys(item, OUTPUT_KEYS, at, "output", None)
            name, value = item["name"], item.get("value")
            if name in outputs:
                self.fail(f"output '{name}' is declared twice", (*at, "name"))
            if not isinstance(value, str) or not is_path(value):
                example = "$.stepOutputs.Step.imageId"
                self.fail(f"the value of output '{name}' must be a variable such as '{example}'", (*at, "value"))
            self._reference(value, scope, (*at, "value"), None, f"output '{name}'")
            outputs[name] = Output(name, value.strip())
        return tuple(outputs.values())


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int | float) or (isinstance(value, str) and NUMBER_RE.match(value) is not None)


def _human(seconds: int) -> str:
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds % size == 0:
            amount = seconds // size
            return f"{amount} {unit[:-1] if amount == 1 else unit}"
    return f"{seconds} seconds"
