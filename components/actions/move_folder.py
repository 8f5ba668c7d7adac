"""MoveFolder: move folders; with overwrite an existing destination is replaced."""

from __future__ import annotations

from typing import Any

from components.actions._files import transfer_folder
from components.actions._target import Shell, entries
from components.actions.base import ActionContext, ActionResult

NAME = "MoveFolder"
PLATFORMS = frozenset({"Linux", "Windows", "macOS"})


def run(ctx: ActionContext, inputs: Any) -> ActionResult:
    sh = Shell(ctx, NAME)
    for item in entries(inputs):
        transfer_folder(sh, item, move=True)
    return ActionResult()
