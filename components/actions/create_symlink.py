"""CreateSymlink: create symbolic links; ``force`` replaces whatever is at the link's path."""

from __future__ import annotations

from typing import Any

from components.actions._target import Shell, entries, flag, q
from components.actions.base import ActionContext, ActionFailed, ActionResult

NAME = "CreateSymlink"
PLATFORMS = frozenset({"Linux", "macOS"})


def run(ctx: ActionContext, inputs: Any) -> ActionResult:
    sh = Shell(ctx, NAME)
    for item in entries(inputs):
        path, target = str(item["path"]), str(item["target"])
        exists = sh.test("-e", path) or sh.test("-L", path)
        if exists and not flag(item.get("force"), False):
            raise ActionFailed(f"{NAME}: {path} already exists and force is false")
        # -n: a link to a folder is replaced rather than followed into.
        sh.check(f"ln -sfn -- {q(target)} {q(path)}", f"cannot link {path} to {target}")
        ctx.log.info(f"linked {path} -> {target}")
    return ActionResult()
