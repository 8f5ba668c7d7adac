"""Request validation against the model's shapes: required members, types, lengths,
patterns, enums and list/map sizes. Messages follow AWS's wording so they read familiar:
"1 validation error detected: Value 'x' at 'name' failed to satisfy constraint: ..."
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from botocore.model import Shape, StructureShape

from engine.api.errors import ApiError


@cache
def _pattern(regex: str) -> re.Pattern[str] | None:
    try:
        return re.compile(regex)
    except re.error:  # a Java-only construct; the other constraints still apply
        return None


def _show(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= 100 else text[:97] + "..."


class _Checker:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, path: str, value: Any, constraint: str) -> None:
        self.problems.append(f"Value '{_show(value)}' at '{path}' failed to satisfy constraint: {constraint}")

    def check(self, shape: Shape, value: Any, path: str) -> None:
        kind = shape.type_name
        meta = shape.metadata
        if value is None:
            return
        if kind == "structure":
            if not isinstance(value, dict):
                self.fail(path, value, "Member must be an object")
                return
            assert isinstance(shape, StructureShape)
            for req in shape.required_members:
                if value.get(req) is None:
                    self.problems.append(
                        f"Value null at '{_join(path, req)}' failed to satisfy constraint: Member must not be null"
                    )
            for key, member in shape.members.items():
                if key in value:
                    self.check(member, value[key], _join(path, key))
        elif kind == "list":
            if not isinstance(value, list):
                self.fail(path, value, "Member must be a list")
                return
            self._size(path, value, meta, "Member must have length")
            for i, item in enumerate(value):
                self.check(shape.member, item, f"{path}.{i + 1}.member")
        elif kind == "map":
            if not isinstance(value, dict):
                self.fail(path, value, "Member must be a map")
                return
            self._size(path, value, meta, "Member must have length")
            for k, v in value.items():
                self.check(shape.key, k, f"{path}.key")
                self.check(shape.value, v, f"{path}.{k}")
        elif kind == "string":
            if not isinstance(value, str):
                self.fail(path, value, "Member must be a string")
                return
            self._size(path, value, meta, "Member must have length")
            if shape.enum and value not in shape.enum:
                self.fail(path, value, f"Member must satisfy enum value set: [{', '.join(shape.enum)}]")
            regex = meta.get("pattern")
            if regex and (compiled := _pattern(regex)) is not None and not compiled.search(value):
                self.fail(path, value, f"Member must satisfy regular expression pattern: {regex}")
        elif kind in ("integer", "long"):
            if isinstance(value, bool) or not isinstance(value, int):
                self.fail(path, value, "Member must be an integer")
                return
            if "min" in meta and value < meta["min"]:
                self.fail(path, value, f"Member must have value greater than or equal to {meta['min']}")
            if "max" in meta and value > meta["max"]:
                self.fail(path, value, f"Member must have value less than or equal to {meta['max']}")
        elif kind in ("double", "float"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                self.fail(path, value, "Member must be a number")
        elif kind == "boolean" and not isinstance(value, bool):
            self.fail(path, value, "Member must be a boolean")

    def _size(self, path: str, value: Any, meta: dict[str, Any], what: str) -> None:
        if "min" in meta and len(value) < meta["min"]:
            self.fail(path, value, f"{what} greater than or equal to {meta['min']}")
        if "max" in meta and len(value) > meta["max"]:
            self.fail(path, value, f"{what} less than or equal to {meta['max']}")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def validate(shape: StructureShape | None, params: dict[str, Any]) -> None:
    """Raise InvalidRequestException listing every constraint the request breaks."""
    if shape is None:
        return
    checker = _Checker()
    checker.check(shape, params, "")
    if checker.problems:
        n = len(checker.problems)
        head = f"{n} validation error{'s' if n > 1 else ''} detected: "
        raise ApiError("InvalidRequestException", head + "; ".join(checker.problems[:10]))


def coerce_scalar(shape: Shape, raw: str) -> Any:
    """URI and query-string values arrive as text; give them the type the shape says."""
    kind = shape.type_name
    if kind in ("integer", "long"):
        try:
            return int(raw)
        except ValueError:
            return raw  # validation reports it in AWS's words
    if kind == "boolean":
        return {"true": True, "false": False}.get(raw.lower(), raw)
    return raw
