"""Load YAML while remembering where each mapping, sequence and key started.

Error messages must point at a line, so the loader builds ``YDict`` / ``YList`` (plain dict
and list subclasses, so jsonschema and json treat them as usual) that carry line numbers.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from components.errors import DocumentError, DocumentInvalid


class YDict(dict[Any, Any]):
    """A mapping plus the 1-based line it starts on and the line of each key."""

    line: int = 0
    key_lines: dict[Any, int]


class YList(list[Any]):
    """A sequence plus the 1-based line it starts on and the line of each item."""

    line: int = 0
    item_lines: list[int]


# YAML 1.1 reads `permissions: 0700` as the octal int 448; documents mean the string "0700"
# (the spec says the value is a string), so leading-zero integers keep their source text.
_LEADING_ZERO_INT = re.compile(r"^0[0-9_]+$")


class LineLoader(yaml.SafeLoader):
    def construct_yaml_int(self, node: ScalarNode) -> Any:
        text = str(self.construct_scalar(node))
        if _LEADING_ZERO_INT.match(text):
            return text
        return super().construct_yaml_int(node)

    def construct_ydict(self, node: MappingNode) -> YDict:
        self.flatten_mapping(node)
        result = YDict()
        result.line = node.start_mark.line + 1
        result.key_lines = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, "a mapping key must be a plain value", key_node.start_mark
                ) from None
            if key in result:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            result[key] = self.construct_object(value_node, deep=True)
            result.key_lines[key] = key_node.start_mark.line + 1
        return result

    def construct_ylist(self, node: SequenceNode) -> YList:
        result = YList(self.construct_object(child, deep=True) for child in node.value)
        result.line = node.start_mark.line + 1
        result.item_lines = [child.start_mark.line + 1 for child in node.value]
        return result


LineLoader.add_constructor("tag:yaml.org,2002:int", LineLoader.construct_yaml_int)
LineLoader.add_constructor("tag:yaml.org,2002:map", LineLoader.construct_ydict)
LineLoader.add_constructor("tag:yaml.org,2002:seq", LineLoader.construct_ylist)


def line_of(value: Any, default: int | None = None) -> int | None:
    """The line a parsed mapping or sequence starts on (scalars carry none)."""
    return getattr(value, "line", None) or default


def key_line(mapping: Any, key: Any, default: int | None = None) -> int | None:
    lines = getattr(mapping, "key_lines", None)
    if lines and key in lines:
        return int(lines[key])
    return line_of(mapping, default)


def item_line(sequence: Any, index: int, default: int | None = None) -> int | None:
    lines = getattr(sequence, "item_lines", None)
    if lines and 0 <= index < len(lines):
        return int(lines[index])
    return line_of(sequence, default)


def load_yaml(text: str, file: str) -> Any:
    """Parse one YAML document; syntax errors become a DocumentInvalid with the line."""
    try:
        loader = LineLoader(text)
        try:
            node: Node | None = loader.get_single_node()
            return None if node is None else loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or "invalid YAML"
        context = f" ({exc.context})" if exc.context else ""
        raise DocumentInvalid([DocumentError(file, line, f"YAML syntax error: {problem}{context}")]) from None
    except yaml.YAMLError as exc:
        raise DocumentInvalid([DocumentError(file, None, f"YAML syntax error: {exc}")]) from None
