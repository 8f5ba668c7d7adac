"""Load YAML with the line of every key and list item, so errors can point at the author's text.

PyYAML's SafeLoader is used in two passes over one composed node graph: the first records
``path -> line`` (a path is the tuple of keys and list indexes from the root), the second constructs
ordinary Python data. Keeping the lines beside the data (rather than in dict subclasses) keeps the
data plain and JSON-compatible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import yaml

from engine.workflow_docs.errors import WorkflowDocumentError

Path = tuple[str | int, ...]

#: Guards against alias bombs and pathological nesting; real documents are far below both.
MAX_NODES = 20_000
MAX_DEPTH = 64


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that keeps timestamps as the strings the author wrote (inputs must stay JSON)."""


_LineLoader.add_constructor("tag:yaml.org,2002:timestamp", yaml.SafeLoader.construct_yaml_str)  # type: ignore[type-var]


@dataclass(frozen=True)
class Lines:
    """Where each key and list item starts (1-based); lookups fall back to the nearest parent."""

    by_path: dict[Path, int]

    def line(self, path: Path) -> int | None:
        for end in range(len(path), -1, -1):
            found = self.by_path.get(path[:end])
            if found is not None:
                return found
        return None


def load_yaml(text: str) -> tuple[Any, Lines]:
    """Parse one YAML document into plain data plus its ``Lines``; raise WorkflowDocumentError."""
    loader = _LineLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, Lines({})
        lines: dict[Path, int] = {(): node.start_mark.line + 1}
        _record(node, (), lines, [0])
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problem = e.problem or e.context or "unreadable"
        raise WorkflowDocumentError(
            f"the document is not valid YAML: {problem}", line=mark.line + 1 if mark else None
        ) from None
    except yaml.YAMLError as e:
        raise WorkflowDocumentError(f"the document is not valid YAML: {e}") from None
    except RecursionError:
        raise WorkflowDocumentError("the document is nested too deeply") from None
    finally:
        loader.dispose()
    found = Lines(lines)
    _check_json(data, (), found)
    return data, found


def _record(node: yaml.Node, path: Path, lines: dict[Path, int], count: list[int]) -> None:
    count[0] += 1
    if count[0] > MAX_NODES:
        raise WorkflowDocumentError("the document is too large once YAML aliases are expanded")
    if len(path) > MAX_DEPTH:
        raise WorkflowDocumentError("the document is nested too deeply", line=node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                _record(value_node, path, lines, count)
                continue
            key = key_node.value
            line = key_node.start_mark.line + 1
            # PyYAML silently keeps the last of two equal keys; an author almost never means that.
            if key in seen:
                raise WorkflowDocumentError(f"key '{key}' appears twice in the same mapping", line=line)
            seen.add(key)
            lines[(*path, key)] = line
            _record(value_node, (*path, key), lines, count)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*path, index)] = item.start_mark.line + 1
            _record(item, (*path, index), lines, count)


def _check_json(value: Any, path: Path, lines: Lines) -> None:
    """Reject what YAML can express but JSON (and so a Temporal payload) cannot."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise WorkflowDocumentError(
                    f"key {key!r} is not a string (YAML reads it as {type(key).__name__}); quote it",
                    line=lines.line(path),
                )
            _check_json(item, (*path, key), lines)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_json(item, (*path, index), lines)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise WorkflowDocumentError("numbers must be finite", line=lines.line(path))
    elif value is not None and not isinstance(value, str | int | bool):
        raise WorkflowDocumentError(
            f"values of type {type(value).__name__} are not allowed (only JSON types)", line=lines.line(path)
        )
