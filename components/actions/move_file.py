"""MoveFile: move files; ``*`` in the source's last segment selects several into a folder."""

from __future__ import annotations

from typing import Any

from components.actions._files import transfer_files
from components.actions._target import Shell
from components.actions.base import ActionContext, ActionResult

NAME = "MoveFile"
PLATFORMS = frozenset({"Linux", "Windows", "macOS"})


def run(ctx: ActionContext, inputs: Any) -> ActionResult:
    transfer_files(Shell(ctx, NAME), inputs, "mv")
    return ActionResult()
