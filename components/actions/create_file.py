"""CreateFile: create files with content, and optionally owner, group and permissions.

With ``overwrite: false`` an existing file fails the step rather than being silently kept, so
a document never goes on believing it wrote content that is not there.
"""

from __future__ import annotations

import posixpath
from typing import Any

from components.actions._encoding import codec
from components.actions._target import Shell, entries, flag, mode, q
from components.actions.base import ActionContext, ActionFailed, ActionResult

NAME = "CreateFile"
PLATFORMS = frozenset({"Linux", "Windows", "macOS"})


def run(ctx: ActionContext, inputs: Any) -> ActionResult:
    sh = Shell(ctx, NAME)
    for item in entries(inputs):
        path = str(item["path"])
        if sh.test("-d", path):
            raise ActionFailed(f"{NAME}: {path} is a folder")
        if not flag(item.get("overwrite"), True) and sh.test("-e", path):
            raise ActionFailed(f"{NAME}: {path} already exists and overwrite is false")
        data = str(item.get("content") or "").encode(codec(item.get("encoding")))
        parent = posixpath.dirname(path) or "."
        sh.check(f"mkdir -p -- {q(parent)}", f"cannot create folder {parent}")
        # Write through stdin so the bytes arrive unchanged on every target kind.
        sh.check(f"cat > {q(path)}", f"cannot write {path}", stdin=data)
        apply_attributes(sh, path, item, recursive=False)
        ctx.log.info(f"created {path} ({len(data)} bytes)")
    return ActionResult()


def apply_attributes(sh: Shell, path: str, item: dict[str, Any], *, recursive: bool) -> None:
    """chown/chgrp/chmod from the owner, group and permissions inputs (shared with folders)."""
    r = "-R " if recursive else ""
    owner, group = item.get("owner"), item.get("group")
    if owner not in (None, ""):
        spec = f"{owner}:{group}" if group not in (None, "") else str(owner)
        sh.check(f"chown {r}-- {q(spec)} {q(path)}", f"cannot set owner of {path}")
    elif group not in (None, ""):
        sh.check(f"chgrp {r}-- {q(str(group))} {q(path)}", f"cannot set group of {path}")
    if item.get("permissions") not in (None, ""):
        sh.check(f"chmod {r}{mode(item['permissions'])} -- {q(path)}", f"cannot set permissions of {path}")
