"""The `filters` member of List operations: [{name, values}], filters AND, values OR."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from engine.api import errors

Getter = Callable[[dict[str, Any]], Any]


def apply(
    items: Iterable[dict[str, Any]], filters: list[dict[str, Any]] | None, allowed: dict[str, Getter]
) -> list[dict[str, Any]]:
    """Keep items matching every filter. ``allowed`` maps filter names to field getters."""
    result = list(items)
    for f in filters or []:
        name = f.get("name")
        values = [str(v) for v in f.get("values") or []]
        if name not in allowed:
            raise errors.invalid(f"unknown filter {name!r}; this operation filters by: {', '.join(sorted(allowed))}")
        if not values:
            raise errors.invalid(f"filter {name!r} needs at least one value")
        get = allowed[name]

        def keep(item: dict[str, Any], get: Getter = get, values: list[str] = values) -> bool:
            got = get(item)
            if isinstance(got, list | tuple | set):
                return any(str(g) in values for g in got)
            return got is not None and str(got) in values

        result = [i for i in result if keep(i)]
    return result
