"""DeleteFile: delete files; ``*`` in the last segment deletes every match."""

from __future__ import annotations

from typing import Any

from components.actions._files import matching_files
from components.actions._target import Shell, entries, q
from components.actions.base import ActionContext, ActionResult

NAME = "DeleteFile"
PLATFORMS = frozenset({"Linux", "Windows", "macOS"})


def run(ctx: ActionContext, inputs: Any) -> ActionResult:
    sh = Shell(ctx, NAME)
    for item in entries(inputs):
        for path in matching_files(sh, str(item["path"])):
            sh.check(f"rm -f -- {q(path)}", f"cannot delete {path}")
            ctx.log.info(f"deleted {path}")
    return ActionResult()
