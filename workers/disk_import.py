"""Disk imports (ImportVmImage, ImportDiskImage): a VMDK, VHD, VHDX, RAW or qcow2 file becomes a
flattened qcow2 in the image store, ready to be a parent image.

Where a disk may come from is deliberately narrow, because the worker reads it as root: an
``s3://bucket/key`` URI (a folder of the export directory, or the S3-compatible endpoint when
one is configured: an export can be imported back by its own URI), or a path inside the import
directory. A disk that names a backing file is refused: it could make qemu-img read any file on
the host into the new image.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ACCEPTED = {"vmdk": "VMDK", "vpc": "VHD", "vhdx": "VHDX", "raw": "RAW", "qcow2": "QCOW2"}


class DiskImportError(Exception):
    """The source is not there, not allowed, or not a disk; the message says which."""


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


@contextmanager
def local_source(source: str, export_dir: Path, import_dir: Path, s3_endpoint_url: str = "") -> Iterator[Path]:
    """The source as a local file for the time of the import (a download is removed afterwards)."""
    if source.startswith("s3://"):
        bucket, _, key = source.removeprefix("s3://").partition("/")
        if not bucket or not key or ".." in key.split("/"):
            raise DiskImportError(f"{source} does not name an object (s3://bucket/key)")
        if not s3_endpoint_url:
            path = export_dir / bucket / key
            if not _inside(path, export_dir) or not path.is_file():
                raise DiskImportError(f"{source} does not exist (looked in {export_dir / bucket})")
            yield path
            return
        with tempfile.TemporaryDirectory(prefix="imagebuilder-import.", dir=export_dir.parent) as tmp:
            local = Path(tmp) / "source"
            _download(bucket, key, local, s3_endpoint_url)
            yield local
        return
    path = Path(source) if os.path.isabs(source) else import_dir / source
    if not _inside(path, import_dir):
        raise DiskImportError(f"{source} is outside the import directory {import_dir}; put the disk there or use s3://")
    if not path.is_file():
        raise DiskImportError(f"{source} does not exist in the import directory {import_dir}")
    yield path


def _fixed_vhd(path: Path) -> bool:
    """A fixed VHD is raw data plus a 512-byte footer ("conectix"); qemu-img's probe reads only the
    start of a file, so it would take one for RAW (and import the footer as disk data)."""
    size = path.stat().st_size
    if size < 512:
        return False
    with open(path, "rb") as f:
        f.seek(size - 512)
        return f.read(8) == b"conectix"


def inspect(path: Path) -> dict[str, Any]:
    forced = ["-f", "vpc"] if _fixed_vhd(path) else []
    done = subprocess.run(["qemu-img", "info", *forced, "--output=json", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        raise DiskImportError(f"{path.name} is not a disk image qemu-img can read: {done.stderr.strip()}")
    info: dict[str, Any] = json.loads(done.stdout)
    if info.get("format") not in ACCEPTED:
        raise DiskImportError(f"{path.name} is {info.get('format')}, not one of {', '.join(ACCEPTED.values())}")
    if info.get("backing-filename") or info.get("full-backing-filename"):
        raise DiskImportError(f"{path.name} names a backing file; import a standalone disk")
    return info


def to_qcow2(path: Path, dest: Path) -> dict[str, Any]:
    """Convert (flattened, compressed nowhere) into dest; returns qemu-img's view of the source."""
    info = inspect(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".part")
    argv = ["qemu-img", "convert", "-f", info["format"], "-O", "qcow2", str(path), str(partial)]
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        partial.unlink(missing_ok=True)
        raise DiskImportError(f"qemu-img convert failed: {done.stderr.strip()}")
    partial.chmod(0o644)
    os.replace(partial, dest)
    return info


def _download(bucket: str, key: str, dest: Path, endpoint: str) -> None:
    import botocore.exceptions

    from workers.disk_export import s3_client

    try:
        body = s3_client(endpoint).get_object(Bucket=bucket, Key=key)["Body"]
        with open(dest, "wb") as f:
            while chunk := body.read(1 << 20):
                f.write(chunk)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise DiskImportError(f"s3://{bucket}/{key} could not be read from {endpoint}: {exc}") from exc
