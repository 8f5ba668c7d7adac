"""WebDownload: download http(s) (and file://) URLs on the target, with checksum checks.

The download runs on the target with curl or wget into a temporary file beside the
destination, is verified, and only then renamed into place, so a failed or corrupt download
never leaves a half-written file at the destination. With overwrite and a checksum, an
existing file that already matches is kept and not downloaded again.
"""

from __future__ import annotations

import posixpath
import time
from typing import Any
from urllib.parse import unquote, urlsplit

from components.actions._target import Shell, entries, flag, q
from components.actions._transfer import digest, fetch
from components.actions.base import ActionContext, ActionFailed, ActionResult

NAME = "WebDownload"
PLATFORMS = frozenset({"Linux", "Windows", "macOS"})


def run(ctx: ActionContext, inputs: Any) -> ActionResult:
    sh = Shell(ctx, NAME)
    saved: list[str] = []
    for item in entries(inputs):
        saved.append(_download(sh, item))
    return ActionResult({"destination": "\n".join(saved)})


def _download(sh: Shell, item: dict[str, Any]) -> str:
    source, destination = str(item["source"]), str(item["destination"])
    path = destination
    if destination.endswith(("/", "\\")):
        name = posixpath.basename(unquote(urlsplit(source).path))
        if not name:
            raise ActionFailed(f"{NAME}: no file name in {source}; give a file path as destination")
        path = posixpath.join(destination, name)
    checksum = str(item.get("checksum") or "").strip().lower()
    algorithm = str(item.get("algorithm") or "")
    if sh.test("-e", path):
        if sh.test("-d", path):
            raise ActionFailed(f"{NAME}: destination {path} is a folder")
        if not flag(item.get("overwrite"), True):
            raise ActionFailed(f"{NAME}: {path} already exists and overwrite is false")
        if checksum and digest(sh, algorithm, path) == checksum:
            sh.ctx.log.info(f"{path} already matches the {algorithm} checksum; not downloading")
            return path
    parent = posixpath.dirname(path) or "."
    sh.check(f"mkdir -p -- {q(parent)}", f"cannot create folder {parent}")
    partial = f"{path}.part-{time.time_ns()}"
    try:
        fetch(sh, source, partial, insecure=flag(item.get("ignoreCertificateErrors"), False))
        if checksum:
            actual = digest(sh, algorithm, partial)
            if actual != checksum:
                raise ActionFailed(
                    f"{NAME}: {algorithm} checksum mismatch for {source}: expected {checksum}, got {actual}"
                )
        sh.check(f"mv -f -- {q(partial)} {q(path)}", f"cannot move the download to {path}")
    finally:
        sh.sh(f"rm -f -- {q(partial)}")
    sh.ctx.log.info(f"downloaded {source} to {path}")
    return path
