"""The `filters` member of List operations: [{name, values}], filters AND, values OR."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from engine.api import errors

Getter = Callable[[dict[str, Any]], Any]
Matcher = Callable[[dict[str, Any]], bool]


def matcher(filters: list[dict[str, Any]] | None, allowed: dict[str, Getter]) -> Matcher:
    """A predicate for entries; ``allowed`` maps filter names to field getters. Unknown filter
    names are the caller's error, raised here before anything is read."""
    checks: list[tuple[Getter, set[str]]] = []
    for f in filters or []:
        name = f.get("name")
        values = {str(v) for v in f.get("values") or []}
        if name not in allowed:
            raise errors.invalid(f"unknown filter {name!r}; this operation filters by: {', '.join(sorted(allowed))}")
        if not values:
            raise errors.invalid(f"filter {name!r} needs at least one value")
        checks.append((allowed[name], values))

    def matches(item: dict[str, Any]) -> bool:
        for get, values in checks:
            got = get(item)
            if isinstance(got, list | tuple | set):
                if not any(str(g) in values for g in got):
                    return False
            elif got is None or str(got) not in values:
                return False
        return True

    return matches


def apply(
    items: Iterable[dict[str, Any]], filters: list[dict[str, Any]] | None, allowed: dict[str, Getter]
) -> list[dict[str, Any]]:
    """Keep items matching every filter."""
    keep = matcher(filters, allowed)
    return [i for i in items if keep(i)]
