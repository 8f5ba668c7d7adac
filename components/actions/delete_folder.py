"""DeleteFolder: delete folders; one that is not empty needs ``force: true``."""

from __future__ import annotations

from typing import Any

from components.actions._target import Shell, entries, flag, q
from components.actions.base import ActionContext, ActionFailed, ActionResult

NAME = "DeleteFolder"
PLATFORMS = frozenset({"Linux", "Windows", "macOS"})


def run(ctx: ActionContext, inputs: Any) -> ActionResult:
    sh = Shell(ctx, NAME)
    for item in entries(inputs):
        path = str(item["path"])
        if not sh.test("-d", path):
            raise ActionFailed(f"{NAME}: folder {path} does not exist")
        if flag(item.get("force"), False):
            sh.check(f"rm -rf -- {q(path)}", f"cannot delete {path}")
        elif sh.sh(f"rmdir -- {q(path)}").exit_code != 0:
            raise ActionFailed(f"{NAME}: {path} is not empty; set force: true to delete its contents too")
        ctx.log.info(f"deleted folder {path}")
    return ActionResult()
