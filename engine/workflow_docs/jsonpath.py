"""Dynamic variables: ``$.<node>.<name>…`` paths, the ``key.$`` convention and ``{{ $.… }}`` interpolation.

The workflow flavour of JSONPath is small: a root node (stepOutputs, parameters, workflowOutputs,
imagebuilder) followed by ``.name`` and ``[index]`` segments. It is parsed here once, checked
statically by the validator (``reference_type``) and resolved per run (``resolve_path``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.workflow_docs.actions import ACTIONS, ValueType
from engine.workflow_docs.errors import ResolutionError
from engine.workflow_docs.model import ParameterType, WorkflowType

#: The suffix on an input key that makes its value a variable (or a list of them).
DYNAMIC_SUFFIX = ".$"

NODES = ("stepOutputs", "parameters", "workflowOutputs", "imagebuilder")
#: The docs' prose spells the system node ``imageBuilder``; every example writes ``imagebuilder``.
_NODE_ALIASES = {"imageBuilder": "imagebuilder"}

#: System variables (``$.imagebuilder.*``) and what they hold. ``dateTime`` appears in a docs example
#: without being listed; it is accepted.
SYSTEM_VARIABLES: dict[str, ValueType] = {
    "cloudWatchLogGroup": ValueType.STRING,
    "cloudWatchLogStream": ValueType.STRING,
    "collectImageMetadata": ValueType.BOOLEAN,
    "collectImageScanFindings": ValueType.BOOLEAN,
    "dateTime": ValueType.STRING,
    "imageBuildNumber": ValueType.INTEGER,
    "imageId": ValueType.STRING,
    "imageName": ValueType.STRING,
    "imageType": ValueType.STRING,
    "imageVersionNumber": ValueType.STRING,
    "instanceProfileName": ValueType.STRING,
    "platform": ValueType.STRING,
    "s3Logs": ValueType.OBJECT,
    "securityGroups": ValueType.STRING_LIST,
    "sourceImageARN": ValueType.STRING,
    "subnetId": ValueType.STRING,
    "terminateInstanceOnFailure": ValueType.BOOLEAN,
    "workflowPhase": ValueType.STRING,
    "workingDirectory": ValueType.STRING,
}
# Casing drifts between doc pages (``Platform``/``platform``), so system variables match case-blind.
_SYSTEM_BY_LOWER = {name.lower(): name for name in SYSTEM_VARIABLES}

PARAMETER_VALUE_TYPES = {
    ParameterType.STRING: ValueType.STRING,
    ParameterType.INTEGER: ValueType.INTEGER,
    ParameterType.BOOLEAN: ValueType.BOOLEAN,
    ParameterType.STRING_LIST: ValueType.STRING_LIST,
}

_ROOT_RE = re.compile(r"\$\.([A-Za-z]+)")
_SEGMENT_RE = re.compile(r"\.([^.\[\]\s{}]+)|\[(\d+)\]")
_INTERPOLATION_RE = re.compile(r"\{\{\s*(\$\.[^{}]*?)\s*\}\}")


@dataclass(frozen=True)
class VarPath:
    text: str
    node: str
    segments: tuple[str | int, ...]


def is_path(value: Any) -> bool:
    """Whether a string is a whole-value variable (as opposed to a literal or an interpolated string)."""
    return isinstance(value, str) and value.strip().startswith("$.") and "{{" not in value


def interpolations(text: str) -> list[str]:
    """The ``$.…`` paths inside ``{{ }}`` in a string (``{{ imagebuilder:buildDate }}`` is not one)."""
    return [m.group(1) for m in _INTERPOLATION_RE.finditer(text)]


def parse_path(text: str) -> VarPath:
    """Parse ``$.node.name[0]…``; raise ValueError with an author-facing message."""
    stripped = text.strip()
    root = _ROOT_RE.match(stripped)
    if root is None:
        raise ValueError(f"'{text}' is not a variable: it must start with '$.' and a node ({', '.join(NODES)})")
    node = _NODE_ALIASES.get(root.group(1), root.group(1))
    if node not in NODES:
        raise ValueError(f"'{text}' uses unknown node '{root.group(1)}' (known: {', '.join(NODES)})")
    segments: list[str | int] = []
    pos = root.end()
    while pos < len(stripped):
        m = _SEGMENT_RE.match(stripped, pos)
        if m is None:
            raise ValueError(f"'{text}' is not a valid variable: unexpected '{stripped[pos:]}'")
        segments.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
        pos = m.end()
    if not segments or not isinstance(segments[0], str):
        raise ValueError(f"'{text}' must name a {_what(node)} after '$.{node}'")
    return VarPath(stripped, node, tuple(segments))


def _what(node: str) -> str:
    return {
        "stepOutputs": "step and one of its outputs",
        "parameters": "parameter",
        "workflowOutputs": "workflow output",
        "imagebuilder": "system variable",
    }[node]


@dataclass(frozen=True)
class Scope:
    """What a variable at one point of a document may refer to."""

    workflow_type: WorkflowType
    earlier_steps: Mapping[str, str]  # step name -> action, steps before this point, in order
    all_steps: tuple[str, ...]
    parameters: Mapping[str, ParameterType]
    current_step: str | None = None


def reference_type(path: VarPath, scope: Scope) -> ValueType:
    """Check that a variable refers to something that will exist, and return what it will hold.

    Raises ValueError with the author-facing reason when it doesn't.
    """
    head, rest = path.segments[0], path.segments[1:]
    if path.node == "stepOutputs":
        assert isinstance(head, str)
        if head not in scope.earlier_steps:
            if head == scope.current_step:
                why = " (a step cannot use its own outputs)"
            elif head in scope.all_steps:
                why = f" ('{head}' runs later)"
            else:
                why = " (there is no step of that name)"
            raise ValueError(f"refers to step '{head}', which is not an earlier step{why}")
        action = scope.earlier_steps[head]
        if not rest or not isinstance(rest[0], str):
            raise ValueError(f"'{path.text}' must name an output of step '{head}' after the step name")
        outputs = ACTIONS[action].outputs
        output = rest[0]
        if output not in outputs:
            produced = f"produces only: {', '.join(outputs)}" if outputs else "produces no outputs"
            raise ValueError(f"refers to output '{output}' of step '{head}', but {action} {produced}")
        return _descend(path, outputs[output], rest[1:])
    if path.node == "parameters":
        assert isinstance(head, str)
        if head not in scope.parameters:
            raise ValueError(f"refers to parameter '{head}', which the document does not declare")
        return _descend(path, PARAMETER_VALUE_TYPES[scope.parameters[head]], rest)
    if path.node == "imagebuilder":
        assert isinstance(head, str)
        name = _SYSTEM_BY_LOWER.get(head.lower())
        if name is None:
            raise ValueError(
                f"refers to '$.imagebuilder.{head}', which is not a system variable "
                f"(known: {', '.join(SYSTEM_VARIABLES)})"
            )
        return _descend(path, SYSTEM_VARIABLES[name], rest)
    # workflowOutputs: outputs of the workflows that ran before this one in the pipeline.
    if scope.workflow_type is WorkflowType.BUILD:
        raise ValueError(
            f"refers to '{path.text}', an output of an earlier workflow, "
            "but a BUILD workflow runs first, so there is none"
        )
    return _descend(path, ValueType.STRING if head == "ImageId" else ValueType.ANY, rest)


def _descend(path: VarPath, current: ValueType, rest: tuple[str | int, ...]) -> ValueType:
    for segment in rest:
        if isinstance(segment, int):
            if current is ValueType.ANY:
                continue
            if not current.is_list:
                raise ValueError(f"'{path.text}' indexes [{segment}] into a {current}, which is not a list")
            current = current.item
        else:
            if current in (ValueType.ANY, ValueType.OBJECT):
                current = ValueType.ANY
                continue
            raise ValueError(f"'{path.text}' looks up '.{segment}' in a {current}, which has no fields")
    return current


def resolve_path(text: str, context: Mapping[str, Any]) -> Any:
    """The value of a variable in a run's context ``{stepOutputs, parameters, imagebuilder, workflowOutputs}``."""
    try:
        path = parse_path(text)
    except ValueError as e:
        raise ResolutionError(str(e), path=text) from None
    current: Any = context.get(path.node, {})
    where = f"$.{path.node}"
    for index, segment in enumerate(path.segments):
        if isinstance(segment, int):
            if not isinstance(current, list) or segment >= len(current):
                raise ResolutionError(f"'{text}' does not resolve: {where} has no element [{segment}]", path=text)
            current = current[segment]
            where += f"[{segment}]"
            continue
        if not isinstance(current, Mapping):
            raise ResolutionError(f"'{text}' does not resolve: {where} is not an object", path=text)
        key = segment
        if path.node == "imagebuilder" and index == 0 and key not in current:
            key = next((k for k in current if k.lower() == segment.lower()), segment)
        if key not in current:
            raise ResolutionError(f"'{text}' does not resolve: {where} has no '{segment}'", path=text)
        current = current[key]
        where += f".{segment}"
    return current


def stringify(value: Any) -> str:
    """How a value reads inside a string: JSON spelling for everything but strings."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def interpolate(text: str, context: Mapping[str, Any]) -> str:
    """Replace every ``{{ $.… }}`` in a string with its value."""
    return _INTERPOLATION_RE.sub(lambda m: stringify(resolve_path(m.group(1), context)), text)
