"""Where a build step's logs are, as the API shows them and the workers ship them.

The API model has no field of its own for a step's log location; the step execution's
``message`` is where AWS puts free text about a step, so that is where it goes:
``logs: <location>`` names the step's folder in the blob store (a path on a local or shared
filesystem store, a URL on an S3 store) and, when the image's infrastructure configuration has
``logging.s3Logs``, ``s3Logs: s3://bucket/prefix/<image>/<version>/<build>/<stage>/<step>/`` names
where the worker copied the folder after the step (interceptors.py, ``ship_step_logs``).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.api.context import RequestContext
    from engine.store import Record
    from workers.blobstore import BlobStore

log = logging.getLogger(__name__)

WORKFLOW_EXECUTION = "workflow-execution"


def image_log_prefix(image_arn: str) -> str:
    """``logs/<name>/<version>/<build>`` of an image build version ARN (the name as ARNs spell it),
    as engine/builds/prepare.py sets BuildContext.log_prefix."""
    name, version, build = image_arn.split(":image/", 1)[1].split("/")[:3]
    return f"logs/{name}/{version}/{build}"


def step_log_ref(log_prefix: str, workflow_type: str, step_name: str) -> str:
    """The step's log folder in the blob store, as workers/activities.py names it."""
    return f"{log_prefix}/{workflow_type.lower()}/{step_name}"


def s3_logs_uri(infrastructure: Mapping[str, Any] | None, image_arn: str, workflow_type: str, step_name: str) -> str:
    """Where a step's logs are copied under the infrastructure configuration's logging.s3Logs
    ("" when it has none): the same layout as the blob store, below the bucket and prefix."""
    s3 = ((infrastructure or {}).get("logging") or {}).get("s3Logs") or {}
    bucket = s3.get("s3BucketName")
    if not bucket:
        return ""
    below = step_log_ref(image_log_prefix(image_arn), workflow_type, step_name).removeprefix("logs/")
    key = "/".join(p for p in (str(s3.get("s3KeyPrefix") or "").strip("/"), below) if p)
    return f"s3://{bucket}/{key}/"


def blob_location(blobs: BlobStore, ref: str) -> str:
    location = getattr(blobs, "location", None)  # shared stores say where a person finds a reference
    return str(location(ref)) if callable(location) else str(blobs.path(ref))


def _has_log_folder(action: str | None) -> bool:
    from workers.executors.base import ACTION_METHODS

    # Every executor step gets a folder; WaitForAction runs in the workflow and writes none.
    return action in ACTION_METHODS


def with_locations(
    item: dict[str, Any], image_arn: str, workflow_type: str, infrastructure: Mapping[str, Any] | None, blobs: BlobStore
) -> dict[str, Any]:
    """A step execution (API shape) whose message names its log folder and s3Logs copy."""
    if not _has_log_folder(item.get("action")) or not item.get("name") or item.get("status") == "SKIPPED":
        return item  # a skipped step never ran, so it has no logs
    message = str(item.get("message") or "")
    parts = [message] if message else []
    if "logs: " not in message:
        ref = step_log_ref(image_log_prefix(image_arn), workflow_type, item["name"])
        parts.append(f"logs: {blob_location(blobs, ref)}")
    uri = s3_logs_uri(infrastructure, image_arn, workflow_type, item["name"])
    if uri and uri not in message:
        parts.append(f"s3Logs: {uri}")
    return {**item, "message": "; ".join(parts)}


def _execution_context(ctx: RequestContext, execution: Record) -> tuple[str, str, Mapping[str, Any] | None]:
    image_arn = str(execution.parent or "")
    image = ctx.tx.get(image_arn, "image") if image_arn else None
    infrastructure = image.body.get("infrastructureConfiguration") if image is not None else None
    return image_arn, str(execution.body.get("type") or ""), infrastructure


def steps_with_locations(ctx: RequestContext, execution: Record, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """ListWorkflowStepExecutions' steps of one workflow execution, with their log locations."""
    image_arn, workflow_type, infrastructure = _execution_context(ctx, execution)
    if ":image/" not in image_arn or not workflow_type:
        return items
    blobs = ctx.services.blobs
    return [with_locations(item, image_arn, workflow_type, infrastructure, blobs) for item in items]


def step_with_locations(ctx: RequestContext, item: dict[str, Any]) -> dict[str, Any]:
    """GetWorkflowStepExecution's answer, with the step's log locations."""
    execution = ctx.tx.get(str(item.get("workflowExecutionId") or ""), WORKFLOW_EXECUTION)
    if execution is None:
        return item
    image_arn, workflow_type, infrastructure = _execution_context(ctx, execution)
    if ":image/" not in image_arn or not workflow_type:
        return item
    return with_locations(item, image_arn, workflow_type, infrastructure, ctx.services.blobs)


def ship_step_logs(folder: Path, uri: str, export_dir: Path, s3_endpoint_url: str = "") -> int:
    """Copy a step's log folder to its s3Logs URI: uploaded to the S3-compatible endpoint when
    one is set, else into ``<export_dir>/<bucket>/<key>`` as disk exports are. Returns the
    number of files copied."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket or bucket in (".", "..") or ".." in key.split("/"):
        raise ValueError(f"s3Logs {uri!r} does not name a place inside a bucket")
    files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
    if s3_endpoint_url:
        from workers.disk_export import s3_client

        s3 = s3_client(s3_endpoint_url)
        for path in files:
            with path.open("rb") as body:
                s3.put_object(Bucket=bucket, Key=key + path.relative_to(folder).as_posix(), Body=body)
    else:
        target = export_dir / bucket / key
        for path in files:
            dest = target / path.relative_to(folder)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest)
    return len(files)
