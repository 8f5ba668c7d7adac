"""The built-in ("Amazon-managed") component documents that ship with the engine.

Each is a YAML file in this folder; the API lists them with owner Amazon. Their name and
description come from the document itself, so the file is the one source of truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

HERE = Path(__file__).parent
OWNER = "Amazon"
VERSION = "1.0.0"


@dataclass(frozen=True)
class ManagedComponent:
    name: str
    version: str
    platform: str
    description: str
    path: Path
    owner: str = OWNER

    def data(self) -> str:
        """The document text, as GetComponent returns it."""
        return self.path.read_text(encoding="utf-8")


@cache
def managed_components() -> tuple[ManagedComponent, ...]:
    """Every built-in component, sorted by name."""
    found = []
    for path in sorted(HERE.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        found.append(
            ManagedComponent(
                name=path.stem,
                version=VERSION,
                platform="Linux",
                description=" ".join(str(doc.get("description", "")).split()),
                path=path,
            )
        )
    return tuple(found)


def managed_component(name: str) -> ManagedComponent | None:
    return next((c for c in managed_components() if c.name == name), None)
