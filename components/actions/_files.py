"""What CopyFile/MoveFile and CopyFolder/MoveFolder share: resolve sources, place destinations."""

from __future__ import annotations

import posixpath
from typing import Any

from components.actions._target import Shell, entries, flag, glob_expr, q
from components.actions.base import ActionFailed


def matching_files(sh: Shell, source: str) -> list[str]:
    """The files a source names: itself, or every file its ``*`` pattern matches on the target."""
    if "*" not in posixpath.basename(source):
        if not sh.test("-f", source):
            what = "is a folder" if sh.test("-d", source) else "does not exist"
            raise ActionFailed(f"{sh.action}: source {source} {what}")
        return [source]
    # NUL-separated so any file name survives the trip back.
    script = f'for f in {glob_expr(source)}; do [ -f "$f" ] && printf "%s\\0" "$f"; done; true'
    found = [p.decode() for p in sh.check(script, f"cannot list {source}").stdout.split(b"\0") if p]
    if not found:
        raise ActionFailed(f"{sh.action}: no files match {source}")
    return found


def transfer_files(sh: Shell, inputs: Any, command: str) -> None:
    """CopyFile (``cp``) and MoveFile (``mv``): a trailing ``/`` on the destination means a folder."""
    for item in entries(inputs):
        source, destination = str(item["source"]), str(item["destination"])
        overwrite = flag(item.get("overwrite"), True)
        files = matching_files(sh, source)
        into_folder = destination.endswith(("/", "\\")) or len(files) > 1 or sh.test("-d", destination)
        for path in files:
            target = posixpath.join(destination, posixpath.basename(path)) if into_folder else destination
            if sh.test("-d", target):
                raise ActionFailed(f"{sh.action}: destination {target} is a folder")
            if not overwrite and sh.test("-e", target):
                raise ActionFailed(f"{sh.action}: {target} already exists and overwrite is false")
            parent = posixpath.dirname(target.rstrip("/")) or "."
            sh.check(
                f"mkdir -p -- {q(parent)} && {command} -f -- {q(path)} {q(target)}",
                f"cannot {command} {path} to {target}",
            )
            sh.ctx.log.info(f"{command} {path} -> {target}")


def transfer_folder(sh: Shell, item: dict[str, Any], move: bool) -> None:
    """CopyFolder merges into an existing destination; MoveFolder replaces it."""
    source, destination = str(item["source"]).rstrip("/") or "/", str(item["destination"]).rstrip("/")
    if not sh.test("-d", source):
        raise ActionFailed(f"{sh.action}: source folder {source} does not exist")
    exists = sh.test("-e", destination)
    if exists and not flag(item.get("overwrite"), True):
        raise ActionFailed(f"{sh.action}: {destination} already exists and overwrite is false")
    if exists and not sh.test("-d", destination):
        raise ActionFailed(f"{sh.action}: destination {destination} is not a folder")
    parent = posixpath.dirname(destination) or "."
    if move:
        script = f"mkdir -p -- {q(parent)} && "
        if exists:
            script += f"rm -rf -- {q(destination)} && "
        script += f"mv -- {q(source)} {q(destination)}"
    else:
        # "src/." copies the contents, so an existing destination is merged into, not nested.
        script = f"mkdir -p -- {q(destination)} && cp -Rp -- {q(source + '/.')} {q(destination + '/')}"
    sh.check(script, f"cannot {'move' if move else 'copy'} {source} to {destination}")
    sh.ctx.log.info(f"{'moved' if move else 'copied'} {source} -> {destination}")
