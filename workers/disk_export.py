"""Disk exports: a captured qcow2 converted with qemu-img into what other hypervisors import, then
put where the distribution configuration's s3ExportConfiguration says.

VMDK is written stream-optimized (what VMware and OVF import take), VHD as fixed-size (what
Hyper-V and Azure require), RAW as is. The destination bucket is a folder on the worker
(<export_dir>/<bucket>/<prefix>/) unless an S3-compatible endpoint is configured, in which case
the file is uploaded there (multipart, so disks larger than one request fit) and the local copy
removed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: diskImageFormat -> (qemu-img format, its options, file extension).
FORMATS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "RAW": ("raw", (), "raw"),
    "VMDK": ("vmdk", ("-o", "subformat=streamOptimized"), "vmdk"),
    # force_size: the VHD's size is the disk's, not rounded to Microsoft's CHS geometry.
    "VHD": ("vpc", ("-o", "subformat=fixed,force_size=on"), "vhd"),
}
PART_SIZE = 64 << 20


class ExportError(Exception):
    """The conversion or the upload failed; the message says which and why."""


@dataclass(frozen=True)
class Export:
    format: str
    uri: str  # s3://bucket/key, as the user named the destination
    location: str  # where it is: a local path, or the endpoint URL + key
    size: int
    sha256: str


def convert(source: Path, disk_format: str, dest: Path) -> None:
    """qemu-img convert into dest (written under a temporary name, renamed when complete)."""
    if disk_format not in FORMATS:
        raise ExportError(f"diskImageFormat {disk_format!r} is not one of {', '.join(FORMATS)}")
    fmt, options, _ = FORMATS[disk_format]
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".part")
    argv = ["qemu-img", "convert", "-O", fmt, *options, str(source), str(partial)]
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        partial.unlink(missing_ok=True)
        raise ExportError(f"qemu-img convert to {disk_format} failed: {done.stderr.strip()}")
    os.replace(partial, dest)


def export_disk(
    source: Path,
    disk_format: str,
    bucket: str,
    prefix: str,
    name: str,
    export_dir: Path,
    s3_endpoint_url: str = "",
) -> Export:
    """Convert `source` and place it as s3://bucket/prefix/name.<ext>."""
    ext = FORMATS[disk_format][2] if disk_format in FORMATS else "img"
    key = "/".join(p for p in (prefix.strip("/"), f"{name}.{ext}") if p)
    if ".." in key.split("/") or bucket == ".." or "/" in bucket:
        raise ExportError(f"s3Bucket {bucket!r} / s3Prefix {prefix!r} do not name a place inside a bucket")
    local = export_dir / bucket / key
    convert(source, disk_format, local)
    size, digest = local.stat().st_size, _sha256(local)
    uri = f"s3://{bucket}/{key}"
    if not s3_endpoint_url:
        return Export(disk_format, uri, str(local), size, digest)
    try:
        _upload(local, bucket, key, s3_endpoint_url)
    finally:
        local.unlink(missing_ok=True)
    return Export(disk_format, uri, f"{s3_endpoint_url.rstrip('/')}/{bucket}/{key}", size, digest)


def remove_export(uri: str, export_dir: Path, s3_endpoint_url: str = "") -> bool:
    """Delete an export (lifecycle DELETE); True when something was removed."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if s3_endpoint_url:
        s3_client(s3_endpoint_url).delete_object(Bucket=bucket, Key=key)
        return True
    path = export_dir / bucket / key
    existed = path.exists()
    path.unlink(missing_ok=True)
    return existed


def s3_client(endpoint: str) -> Any:
    import botocore.session

    # Credentials come from the worker's environment (AWS_ACCESS_KEY_ID, ...), as any S3 tool's do.
    return botocore.session.get_session().create_client("s3", endpoint_url=endpoint, region_name="us-east-1")


def _upload(path: Path, bucket: str, key: str, endpoint: str) -> None:
    import botocore.exceptions

    s3 = s3_client(endpoint)
    try:
        upload = s3.create_multipart_upload(Bucket=bucket, Key=key)
        parts = []
        try:
            with open(path, "rb") as f:
                number = 1
                while chunk := f.read(PART_SIZE):
                    done = s3.upload_part(
                        Bucket=bucket, Key=key, UploadId=upload["UploadId"], PartNumber=number, Body=chunk
                    )
                    parts.append({"ETag": done["ETag"], "PartNumber": number})
                    number += 1
            s3.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
            )
        except BaseException:
            s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload["UploadId"])
            raise
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise ExportError(f"upload to {endpoint} s3://{bucket}/{key} failed: {exc}") from exc


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
