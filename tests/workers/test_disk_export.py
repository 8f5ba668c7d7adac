"""Disk exports and imports with real qemu-img, to a bucket folder and to an S3-compatible server.

moto's standalone server stands in for MinIO/Ceph RGW (no real object store exists offline; moto
speaks the S3 protocol over HTTP on loopback, so the multipart upload and the download are real).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import boto3
import pytest

from workers.disk_export import ExportError, export_disk, remove_export
from workers.disk_import import DiskImportError, local_source, to_qcow2


def info(path: Path, fmt: str = "") -> dict[str, object]:
    forced = ["-f", fmt] if fmt else []  # a fixed VHD probes as raw: it has only a footer
    argv = ["qemu-img", "info", *forced, "--output=json", str(path)]
    out = subprocess.run(argv, check=True, capture_output=True, text=True)
    data: dict[str, object] = json.loads(out.stdout)
    return data


def same_content(a: Path, b: Path) -> bool:
    return subprocess.run(["qemu-img", "compare", "-q", str(a), str(b)]).returncode == 0


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A 64 MiB qcow2 with recognizable data at its start, middle and end."""
    raw = tmp_path / "src.raw"
    with open(raw, "wb") as f:
        f.truncate(64 << 20)
        for offset in (0, 32 << 20, (64 << 20) - 4096):
            f.seek(offset)
            f.write(b"golden-image-factory" * 200)
    disk = tmp_path / "src.qcow2"
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(disk)], check=True)
    return disk


@pytest.mark.parametrize(
    ("fmt", "qemu_format", "ext"), [("VMDK", "vmdk", "vmdk"), ("RAW", "raw", "raw"), ("VHD", "vpc", "vhd")]
)
def test_export_to_a_bucket_folder(source: Path, tmp_path: Path, fmt: str, qemu_format: str, ext: str) -> None:
    done = export_disk(source, fmt, "golden", "exports/2026/", "ami-0123", tmp_path / "buckets")
    path = tmp_path / "buckets" / "golden" / "exports" / "2026" / f"ami-0123.{ext}"
    assert done.uri == f"s3://golden/exports/2026/ami-0123.{ext}" and done.location == str(path)
    details = info(path, qemu_format)
    assert details["format"] == qemu_format and details["virtual-size"] == 64 << 20
    if fmt == "VMDK":
        assert details["format-specific"]["data"]["create-type"] == "streamOptimized"  # type: ignore[index]
    if fmt == "VHD":
        assert path.stat().st_size == (64 << 20) + 512  # fixed: the whole disk plus a footer
    assert subprocess.run(["qemu-img", "compare", "-q", "-F", qemu_format, str(source), str(path)]).returncode == 0
    assert done.size == path.stat().st_size and len(done.sha256) == 64
    assert remove_export(done.uri, tmp_path / "buckets") and not path.exists()


def test_bad_exports_say_why(source: Path, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="not one of RAW, VMDK, VHD"):
        export_disk(source, "OVA", "b", "", "ami-1", tmp_path)
    with pytest.raises(ExportError, match="inside a bucket"):
        export_disk(source, "RAW", "b", "../../etc", "ami-1", tmp_path)
    with pytest.raises(ExportError, match="qemu-img convert to RAW failed"):
        export_disk(tmp_path / "missing.qcow2", "RAW", "b", "", "ami-1", tmp_path)


def test_export_to_s3_and_import_back(
    source: Path, tmp_path: Path, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="exports")
    monkeypatch.setattr("workers.disk_export.PART_SIZE", 5 << 20)  # several parts even for a small disk

    done = export_disk(source, "VMDK", "exports", "vm", "ami-0abc", tmp_path / "buckets", s3_endpoint)
    assert done.uri == "s3://exports/vm/ami-0abc.vmdk" and done.location.startswith(s3_endpoint)
    assert not (tmp_path / "buckets" / "exports" / "vm" / "ami-0abc.vmdk").exists(), "the local copy is not kept"
    head = s3.head_object(Bucket="exports", Key="vm/ami-0abc.vmdk")
    assert head["ContentLength"] == done.size

    imported = tmp_path / "store" / "disk.qcow2"
    with local_source(done.uri, tmp_path / "buckets", tmp_path / "imports", s3_endpoint) as path:
        assert to_qcow2(path, imported)["format"] == "vmdk"
    # A fixed VHD (only a footer) is recognized as VHD, not imported as RAW with its footer.
    vhd = export_disk(source, "VHD", "golden", "", "ami-0vhd", tmp_path / "buckets")
    with local_source(vhd.uri, tmp_path / "buckets", tmp_path / "imports") as path:
        assert to_qcow2(path, tmp_path / "from-vhd.qcow2")["format"] == "vpc"
    assert info(tmp_path / "from-vhd.qcow2")["virtual-size"] == 64 << 20
    assert info(imported)["format"] == "qcow2" and same_content(source, imported)

    assert remove_export(done.uri, tmp_path / "buckets", s3_endpoint)
    assert s3.list_objects_v2(Bucket="exports").get("KeyCount") == 0
    with (
        pytest.raises(DiskImportError, match="could not be read"),
        local_source(done.uri, tmp_path / "buckets", tmp_path / "imports", s3_endpoint),
    ):
        pass


def test_imports_read_only_from_the_allowed_places(source: Path, tmp_path: Path) -> None:
    imports, exports = tmp_path / "imports", tmp_path / "buckets"
    imports.mkdir()
    (imports / "ok.qcow2").write_bytes(source.read_bytes())
    with local_source("ok.qcow2", exports, imports) as path:
        to_qcow2(path, tmp_path / "out.qcow2")
    assert same_content(source, tmp_path / "out.qcow2")
    for outside in (str(source), "../src.qcow2", "/etc/shadow"):
        with pytest.raises(DiskImportError, match="outside the import directory"):
            local_source(outside, exports, imports).__enter__()
    with pytest.raises(DiskImportError, match="does not exist"):
        local_source("s3://golden/none.vmdk", exports, imports).__enter__()
    # A disk that names a backing file could pull any host file into the image: refused.
    overlay = imports / "overlay.qcow2"
    argv = ["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(source), "-F", "qcow2", str(overlay)]
    subprocess.run(argv, check=True)
    with pytest.raises(DiskImportError, match="backing file"), local_source("overlay.qcow2", exports, imports) as path:
        to_qcow2(path, tmp_path / "never.qcow2")
    assert not (tmp_path / "never.qcow2").exists()
