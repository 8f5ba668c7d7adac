"""SetFileEncoding: re-encode text files in place.

The current encoding is taken from a byte-order mark, else UTF-8. The file is rewritten
through ``cat >`` so it keeps its inode, owner and permissions.
"""

from __future__ import annotations

from typing import Any

from components.actions._encoding import codec, decode_any
from components.actions._target import Shell, entries, q
from components.actions.base import ActionContext, ActionFailed, ActionResult

NAME = "SetFileEncoding"
PLATFORMS = frozenset({"Linux", "Windows", "macOS"})


def run(ctx: ActionContext, inputs: Any) -> ActionResult:
    sh = Shell(ctx, NAME)
    for item in entries(inputs):
        path = str(item["path"])
        if not sh.test("-f", path):
            raise ActionFailed(f"{NAME}: {path} does not exist or is not a file")
        data = decode_any(ctx.target.read_file(path)).encode(codec(item.get("encoding")))
        sh.check(f"cat > {q(path)}", f"cannot rewrite {path}", stdin=data)
        ctx.log.info(f"re-encoded {path} as {item.get('encoding') or 'utf8'}")
    return ActionResult()
