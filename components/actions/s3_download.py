"""S3Download: download S3 objects (one key, or every key under ``prefix/*``) to the target.

The engine lists and signs, the target downloads (see ``_s3``). As in awstoe, destination
folders must already exist, a prefix brings at most 1,000 objects (keeping their relative
paths), and objects already downloaded stay if a later one fails.
"""

from __future__ import annotations

import posixpath
from typing import Any

from components.actions._s3 import client, list_keys, owner_headers, presign, split_uri
from components.actions._target import Shell, entries, flag, q
from components.actions._transfer import fetch
from components.actions.base import ActionContext, ActionFailed, ActionResult

NAME = "S3Download"
PLATFORMS = frozenset({"Linux", "Windows", "macOS"})


def run(ctx: ActionContext, inputs: Any) -> ActionResult:
    sh = Shell(ctx, NAME)
    s3 = client(ctx)
    for item in entries(inputs):
        bucket, key = split_uri(NAME, str(item["source"]))
        destination = str(item["destination"])
        owner = item.get("expectedBucketOwner")
        overwrite = flag(item.get("overwrite"), True)
        if key.endswith("*"):
            prefix = key[:-1]
            if not sh.test("-d", destination):
                raise ActionFailed(f"{NAME}: destination folder {destination} does not exist")
            keys = list_keys(NAME, s3, bucket, prefix, owner)
            if not keys:
                raise ActionFailed(f"{NAME}: no objects under s3://{bucket}/{prefix}")
            pairs = [(k, posixpath.join(destination, k[len(prefix) :].lstrip("/"))) for k in keys]
        else:
            if not key:
                raise ActionFailed(f"{NAME}: {item['source']} names no object")
            path = destination
            if destination.endswith(("/", "\\")) or sh.test("-d", destination):
                path = posixpath.join(destination, posixpath.basename(key))
            parent = posixpath.dirname(path) or "."
            if not sh.test("-d", parent):
                raise ActionFailed(f"{NAME}: destination folder {parent} does not exist")
            pairs = [(key, path)]
        for object_key, path in pairs:
            if not overwrite and sh.test("-e", path):
                raise ActionFailed(f"{NAME}: {path} already exists and overwrite is false")
            sh.check(f"mkdir -p -- {q(posixpath.dirname(path) or '.')}", f"cannot create a folder for {path}")
            url = presign(NAME, s3, "get_object", bucket, object_key, owner)
            fetch(sh, url, path, headers=owner_headers(owner))
            ctx.log.info(f"downloaded s3://{bucket}/{object_key} to {path}")
    return ActionResult()
