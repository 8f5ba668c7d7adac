"""ImportVmImage and ImportDiskImage: a disk file becomes a machine image (engine/builds/imports.py).

On-prem there is no EC2 import task: ImportVmImage's `vmImportTaskId` and ImportDiskImage's `uri`
name the disk itself, as `s3://bucket/key` or a path in the workers' import directory.
"""

from __future__ import annotations

from typing import Any

from engine.api import errors
from engine.api.context import RequestContext
from engine.api.handlers.images import start_after_commit
from engine.api.registry import operation
from engine.resources import versions
from engine.resources.common import get_plain


def _source(value: str, field: str) -> str:
    value = value.strip()
    if value.startswith("s3://"):
        bucket, _, key = value.removeprefix("s3://").partition("/")
        if not bucket or not key:
            raise errors.invalid(f"{field} {value!r}: an s3 URI names a bucket and a key (s3://bucket/key)")
    elif not value or "\0" in value:
        raise errors.invalid(f"{field} must name a disk file: s3://bucket/key or a path in the import directory")
    return value


def _import(ctx: RequestContext, params: dict[str, Any], source: str, operation: str) -> str:
    from engine.builds.imports import prepare_import
    from engine.builds.prepare import Caller

    versions.check(params["semanticVersion"])
    caller = Caller(ctx.account, ctx.region, ctx.tx, ctx.services.blobs, ctx.config.registry)
    record, build = prepare_import(caller, params, source, operation)
    if not ctx.dry_run:
        start_after_commit(ctx, build)
    return record.arn


@operation("ImportVmImage")
def import_vm_image(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    arn = _import(ctx, params, _source(params["vmImportTaskId"], "vmImportTaskId"), "ImportVmImage")
    return {"imageArn": arn, "clientToken": params["clientToken"]}


@operation("ImportDiskImage")
def import_disk_image(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    get_plain(ctx, "infrastructure-configuration", params["infrastructureConfigurationArn"])
    arn = _import(ctx, params, _source(params["uri"], "uri"), "ImportDiskImage")
    return {"imageBuildVersionArn": arn, "clientToken": params["clientToken"]}
