"""CreateFolder: create folders and their parents, with optional owner, group and permissions.

An existing folder is fine unless ``overwrite`` is false; it is never emptied.
"""

from __future__ import annotations

from typing import Any

from components.actions._target import Shell, entries, flag, q
from components.actions.base import ActionContext, ActionFailed, ActionResult
from components.actions.create_file import apply_attributes

NAME = "CreateFolder"
PLATFORMS = frozenset({"Linux", "Windows", "macOS"})


def run(ctx: ActionContext, inputs: Any) -> ActionResult:
    sh = Shell(ctx, NAME)
    for item in entries(inputs):
        path = str(item["path"])
        if sh.test("-e", path):
            if not sh.test("-d", path):
                raise ActionFailed(f"{NAME}: {path} exists and is not a folder")
            if not flag(item.get("overwrite"), True):
                raise ActionFailed(f"{NAME}: {path} already exists and overwrite is false")
        sh.check(f"mkdir -p -- {q(path)}", f"cannot create {path}")
        apply_attributes(sh, path, item, recursive=False)
        ctx.log.info(f"created folder {path}")
    return ActionResult()
