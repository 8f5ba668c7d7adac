"""SetFolderOwner: change the owner (and group) of folders, recursively unless ``recursive: false``."""

from __future__ import annotations

from typing import Any

from components.actions._target import Shell, entries, flag
from components.actions.base import ActionContext, ActionFailed, ActionResult
from components.actions.create_file import apply_attributes

NAME = "SetFolderOwner"
PLATFORMS = frozenset({"Linux", "macOS"})


def run(ctx: ActionContext, inputs: Any) -> ActionResult:
    sh = Shell(ctx, NAME)
    for item in entries(inputs):
        path = str(item["path"])
        if not sh.test("-d", path):
            raise ActionFailed(f"{NAME}: {path} does not exist")
        recursive = flag(item.get("recursive"), True)
        apply_attributes(sh, path, {"owner": item["owner"], "group": item.get("group")}, recursive=recursive)
        ctx.log.info(f"set owner of {path}")
    return ActionResult()
