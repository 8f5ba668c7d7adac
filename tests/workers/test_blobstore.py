"""The local blob store (the embedded default): synchronization points are no-ops, so a single
host behaves as it always did; store_url picks the backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from workers.blobstore import BlobStore, open_blob_store
from workers.blobstore_s3 import S3BlobStore


def test_documents_are_stored_once_by_content(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "store")
    ref = blobs.put_document("name: a\n")
    assert ref.startswith("documents/") and ref.endswith(".yaml") and len(ref.split("/")[1]) == 64 + 5
    assert blobs.put_document("name: a\n") == ref
    assert blobs.read_text(ref) == "name: a\n"
    assert sorted(p.name for p in (tmp_path / "store" / "documents").iterdir()) == [ref.split("/")[1]]


def test_sync_points_do_nothing_locally(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "store")
    folder = blobs.folder("logs/web/1.0.0/1/build/Step")
    (folder / "console.log").write_text("hi\n")
    blobs.publish("logs/web/1.0.0/1/build/Step")
    blobs.publish("images/never/written.qcow2")  # nothing to publish to: no error, as before
    assert blobs.fetch("logs/web/1.0.0/1/build/Step/console.log") == folder / "console.log"
    assert blobs.fetch("images/missing/disk.qcow2") == blobs.path("images/missing/disk.qcow2")
    blobs.unpublish("logs/web")
    assert (folder / "console.log").read_text() == "hi\n"  # the local copy is the caller's to remove
    assert blobs.location("logs/x") == str(tmp_path.resolve() / "store" / "logs" / "x")
    with pytest.raises(ValueError, match="outside the store"):
        blobs.fetch("../etc/passwd")


def test_store_url_picks_the_backend(tmp_path: Path) -> None:
    default = open_blob_store(tmp_path / "cache")
    assert type(default) is BlobStore and default.root == tmp_path / "cache"
    shared = open_blob_store(tmp_path / "cache", str(tmp_path / "nfs"))
    assert type(shared) is BlobStore and shared.root == tmp_path / "nfs"
    assert open_blob_store(tmp_path / "cache", f"file://{tmp_path}/nfs2").root == tmp_path / "nfs2"
    s3 = open_blob_store(tmp_path / "cache", "s3://golden/fleet/a/", "http://127.0.0.1:9000")
    assert isinstance(s3, S3BlobStore) and (s3.bucket, s3.prefix, s3.root) == ("golden", "fleet/a", tmp_path / "cache")
    assert s3.location("documents/x.yaml") == "s3://golden/fleet/a/documents/x.yaml"
    with pytest.raises(ValueError, match="neither a directory nor s3://bucket/prefix"):
        open_blob_store(tmp_path / "cache", "http://minio:9000/golden")
    with pytest.raises(ValueError, match="names no bucket"):
        open_blob_store(tmp_path / "cache", "s3:///prefix")
