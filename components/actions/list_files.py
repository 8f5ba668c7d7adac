"""ListFiles: list the files in folders (optionally recursive, optionally by name pattern).

Output ``files`` is one sorted list of paths across all the step's entries.
"""

from __future__ import annotations

from typing import Any

from components.actions._target import Shell, entries, flag, q
from components.actions.base import ActionContext, ActionFailed, ActionResult

NAME = "ListFiles"
PLATFORMS = frozenset({"Linux", "Windows", "macOS"})


def run(ctx: ActionContext, inputs: Any) -> ActionResult:
    sh = Shell(ctx, NAME)
    files: list[str] = []
    for item in entries(inputs):
        path = str(item["path"])
        if not sh.test("-d", path):
            raise ActionFailed(f"{NAME}: folder {path} does not exist")
        script = f"find {q(path)}"
        if not flag(item.get("recursive"), False):
            script += " -maxdepth 1"
        script += " -type f"
        if item.get("fileNamePattern"):
            script += f" -name {q(str(item['fileNamePattern']))}"
        # printf with NUL separators: POSIX, and safe for any file name.
        script += " -exec printf '%s\\0' {} +"
        out = sh.check(script, f"cannot list {path}").stdout
        files += sorted(p.decode("utf-8", "replace") for p in out.split(b"\0") if p)
    for path in files:
        ctx.log.stdout(f"{path}\n".encode())
    return ActionResult({"files": files})
