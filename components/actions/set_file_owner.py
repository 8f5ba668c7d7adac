"""SetFileOwner: change the owner (and group) of files."""

from __future__ import annotations

from typing import Any

from components.actions._target import Shell, entries
from components.actions.base import ActionContext, ActionFailed, ActionResult
from components.actions.create_file import apply_attributes

NAME = "SetFileOwner"
PLATFORMS = frozenset({"Linux", "macOS"})


def run(ctx: ActionContext, inputs: Any) -> ActionResult:
    sh = Shell(ctx, NAME)
    for item in entries(inputs):
        path = str(item["path"])
        if not sh.test("-f", path):
            raise ActionFailed(f"{NAME}: {path} does not exist")
        apply_attributes(sh, path, {"owner": item["owner"], "group": item.get("group")}, recursive=False)
        ctx.log.info(f"set owner of {path}")
    return ActionResult()
