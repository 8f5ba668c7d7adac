"""SetFilePermissions: change the permissions of files."""

from __future__ import annotations

from typing import Any

from components.actions._target import Shell, entries
from components.actions.base import ActionContext, ActionFailed, ActionResult
from components.actions.create_file import apply_attributes

NAME = "SetFilePermissions"
PLATFORMS = frozenset({"Linux", "macOS"})


def run(ctx: ActionContext, inputs: Any) -> ActionResult:
    sh = Shell(ctx, NAME)
    for item in entries(inputs):
        path = str(item["path"])
        if not sh.test("-f", path):
            raise ActionFailed(f"{NAME}: {path} does not exist")
        apply_attributes(sh, path, {"permissions": item["permissions"]}, recursive=False)
        ctx.log.info(f"set permissions of {path}")
    return ActionResult()
