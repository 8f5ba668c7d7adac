"""S3Upload: upload files from the target to S3.

``source`` is a file, a folder (its files; with ``recurse`` its whole tree), or a ``*``
pattern in the last segment. One file goes to the destination key, or under it when the
destination ends with ``/``; several files keep their paths relative to the source folder.
The engine signs one PUT URL per file and the target uploads it (see ``_s3``).
"""

from __future__ import annotations

import posixpath
from typing import Any

from components.actions._s3 import client, owner_headers, presign, split_uri
from components.actions._target import Shell, entries, flag, glob_expr, q
from components.actions._transfer import put
from components.actions.base import ActionContext, ActionFailed, ActionResult

NAME = "S3Upload"
PLATFORMS = frozenset({"Linux", "Windows", "macOS"})


def run(ctx: ActionContext, inputs: Any) -> ActionResult:
    sh = Shell(ctx, NAME)
    s3 = client(ctx)
    for item in entries(inputs):
        bucket, key = split_uri(NAME, str(item["destination"]))
        owner = item.get("expectedBucketOwner")
        files = _sources(sh, str(item["source"]), flag(item.get("recurse"), False))
        if files is None:  # a single file
            source = str(item["source"])
            pairs = [(source, key + posixpath.basename(source) if not key or key.endswith("/") else key)]
        else:
            prefix = key if not key or key.endswith("/") else key + "/"
            pairs = [(path, prefix + rel) for path, rel in files]
        for path, object_key in pairs:
            url = presign(NAME, s3, "put_object", bucket, object_key, owner)
            put(sh, path, url, headers=owner_headers(owner))
            ctx.log.info(f"uploaded {path} to s3://{bucket}/{object_key}")
    return ActionResult()


def _sources(sh: Shell, source: str, recurse: bool) -> list[tuple[str, str]] | None:
    """(path, key suffix) for each file to upload, or None when source is one plain file."""
    depth = "" if recurse else " -maxdepth 1"
    if "*" in posixpath.basename(source):
        # Each match is a file (kept by name) or, with recurse, a folder (kept with its tree).
        script = (
            f'for m in {glob_expr(source)}; do '
            f'if [ -f "$m" ]; then printf "%s\\0" "$m"; '
            f'elif [ -d "$m" ] && [ {int(recurse)} = 1 ]; then find "$m" -type f -exec printf "%s\\0" {{}} +; fi; '
            "done; true"
        )
        base = posixpath.dirname(source)
    elif sh.test("-d", source):
        script = f"find {q(source)}{depth} -type f -exec printf '%s\\0' {{}} +"
        base = source
    elif sh.test("-f", source):
        return None
    else:
        raise ActionFailed(f"{NAME}: source {source} does not exist")
    out = sh.check(script, f"cannot list {source}").stdout
    paths = sorted(p.decode() for p in out.split(b"\0") if p)
    if not paths:
        raise ActionFailed(f"{NAME}: no files match {source}")
    return [(p, posixpath.relpath(p, base or ".")) for p in paths]
