"""AppendFile: append content to files that already exist."""

from __future__ import annotations

from typing import Any

from components.actions._encoding import codec
from components.actions._target import Shell, entries, q
from components.actions.base import ActionContext, ActionFailed, ActionResult

NAME = "AppendFile"
PLATFORMS = frozenset({"Linux", "Windows", "macOS"})


def run(ctx: ActionContext, inputs: Any) -> ActionResult:
    sh = Shell(ctx, NAME)
    for item in entries(inputs):
        path = str(item["path"])
        if not sh.test("-f", path):
            raise ActionFailed(f"{NAME}: {path} does not exist")
        data = str(item.get("content") or "").encode(codec(item.get("encoding")))
        sh.check(f"cat >> {q(path)}", f"cannot append to {path}", stdin=data)
        ctx.log.info(f"appended {len(data)} bytes to {path}")
    return ActionResult()
