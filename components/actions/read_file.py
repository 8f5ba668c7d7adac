"""ReadFile: read a file into the step output ``content``.

With several entries the contents are joined with newlines, as awstoe joins loop outputs.
"""

from __future__ import annotations

from typing import Any

from components.actions._encoding import codec
from components.actions._target import Shell, entries, flag
from components.actions.base import ActionContext, ActionFailed, ActionResult

NAME = "ReadFile"
PLATFORMS = frozenset({"Linux", "Windows", "macOS"})


def run(ctx: ActionContext, inputs: Any) -> ActionResult:
    sh = Shell(ctx, NAME)
    contents: list[str] = []
    for item in entries(inputs):
        path = str(item["path"])
        if not sh.test("-f", path):
            raise ActionFailed(f"{NAME}: {path} does not exist or is not a file")
        try:
            text = ctx.target.read_file(path).decode(codec(item.get("encoding")))
        except UnicodeDecodeError as exc:
            encoding = item.get("encoding") or "utf8"
            raise ActionFailed(f"{NAME}: {path} is not valid {encoding}: {exc}") from exc
        if flag(item.get("printFileContent"), False):
            ctx.log.stdout(text.encode())
        contents.append(text)
    return ActionResult({"content": "\n".join(contents)})
