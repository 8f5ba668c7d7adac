"""S3 on any S3-compatible endpoint, with the bytes moving from or to the target.

The engine holds the S3 credentials (``ctx.s3``) and the target must never see them, yet
the data should not travel through the engine host. So the engine signs: it lists objects
with botocore and makes a short-lived presigned URL per object, and the target fetches or
PUTs that URL with curl/wget. Only the URL (valid for one object, one method) reaches the target.
"""

from __future__ import annotations

from typing import Any

import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from components.actions.base import ActionContext, ActionFailed

#: awstoe downloads at most this many objects for one prefix.
MAX_OBJECTS = 1000
#: Long enough for a slow transfer, short enough that a leaked URL soon stops working.
URL_LIFETIME_SECONDS = 3600


def client(ctx: ActionContext) -> Any:
    s3 = ctx.s3
    session = botocore.session.get_session()
    return session.create_client(
        "s3",
        region_name=s3.region,
        endpoint_url=s3.endpoint_url,
        aws_access_key_id=s3.access_key_id,
        aws_secret_access_key=s3.secret_access_key,
        # Path-style and SigV4 work with every S3-compatible server (MinIO, Ceph RGW, Garage...).
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


def split_uri(action: str, uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key)."""
    if not uri.startswith("s3://"):
        raise ActionFailed(f"{action}: {uri} is not an s3:// URI")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise ActionFailed(f"{action}: {uri} names no bucket")
    return bucket, key


def owner_params(owner: Any) -> dict[str, str]:
    return {"ExpectedBucketOwner": str(owner)} if owner not in (None, "") else {}


def owner_headers(owner: Any) -> dict[str, str]:
    # The header is part of the signature, so the target must send it with the request.
    return {"x-amz-expected-bucket-owner": str(owner)} if owner not in (None, "") else {}


def list_keys(action: str, s3: Any, bucket: str, prefix: str, owner: Any) -> list[str]:
    keys: list[str] = []
    try:
        pages = s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix, **owner_params(owner)
        )
        for page in pages:
            keys += [obj["Key"] for obj in page.get("Contents", []) if not obj["Key"].endswith("/")]
            if len(keys) > MAX_OBJECTS:
                raise ActionFailed(f"{action}: s3://{bucket}/{prefix}* holds more than {MAX_OBJECTS} objects")
    except (ClientError, BotoCoreError) as exc:
        raise ActionFailed(f"{action}: cannot list s3://{bucket}/{prefix}: {exc}") from exc
    return keys


def presign(action: str, s3: Any, method: str, bucket: str, key: str, owner: Any) -> str:
    try:
        url: str = s3.generate_presigned_url(
            method,
            Params={"Bucket": bucket, "Key": key, **owner_params(owner)},
            ExpiresIn=URL_LIFETIME_SECONDS,
        )
    except (ClientError, BotoCoreError) as exc:
        raise ActionFailed(f"{action}: cannot sign a URL for s3://{bucket}/{key}: {exc}") from exc
    return url
