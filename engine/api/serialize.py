"""Response shaping: only members the output shape defines, in the wire types it says."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from botocore.model import Shape


def shape_output(shape: Shape | None, value: Any) -> Any:
    if shape is None or value is None:
        return value
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            return None
        out: dict[str, Any] = {}
        for key, member in shape.members.items():
            v = value.get(key)
            if v is None:
                continue
            shaped = shape_output(member, v)
            if shaped is not None:
                out[key] = shaped
        return out
    if kind == "list":
        return [shape_output(shape.member, v) for v in value]
    if kind == "map":
        return {k: shape_output(shape.value, v) for k, v in value.items()}
    if kind == "timestamp":
        # rest-json bodies carry timestamps as epoch seconds.
        if isinstance(value, str):
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        return value
    return value
