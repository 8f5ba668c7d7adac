"""SetFolderPermissions: change the permissions of folders, recursively unless ``recursive: false``."""

from __future__ import annotations

from typing import Any

from components.actions._target import Shell, entries, flag
from components.actions.base import ActionContext, ActionFailed, ActionResult
from components.actions.create_file import apply_attributes

NAME = "SetFolderPermissions"
PLATFORMS = frozenset({"Linux", "macOS"})


def run(ctx: ActionContext, inputs: Any) -> ActionResult:
    sh = Shell(ctx, NAME)
    for item in entries(inputs):
        path = str(item["path"])
        if not sh.test("-d", path):
            raise ActionFailed(f"{NAME}: {path} does not exist")
        recursive = flag(item.get("recursive"), True)
        apply_attributes(sh, path, {"permissions": item["permissions"]}, recursive=recursive)
        ctx.log.info(f"set permissions of {path}")
    return ActionResult()
