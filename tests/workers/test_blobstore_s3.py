"""The blob store on an S3-compatible server: moto's standalone server on loopback stands in for
MinIO / Ceph RGW (the protocol is real HTTP; only the server is a stand-in). Two S3BlobStore
instances with their own cache directories and one bucket are two hosts of a fleet."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.support.s3 import s3_server
from workers.blobstore import BlobChecksumMismatch, BlobMissing, BlobStoreError
from workers.blobstore_s3 import S3BlobStore


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with s3_server() as url:
        yield url


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    # The standard AWS chain is what the store reads; moto accepts any key.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "fleet")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fleet-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture
def s3(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"store-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    return name


def host(tmp_path: Path, name: str, bucket: str, endpoint: str, **kwargs: Any) -> S3BlobStore:
    return S3BlobStore(tmp_path / name, bucket, "fleet", endpoint, **kwargs)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_document_put_on_one_host_is_read_on_another(tmp_path: Path, endpoint: str, bucket: str, s3: Any) -> None:
    a, b = host(tmp_path, "a", bucket, endpoint), host(tmp_path, "b", bucket, endpoint)
    a.check()
    text = "name: hello\nschemaVersion: 1.0\n"
    ref = a.put_document(text)
    head = s3.head_object(Bucket=bucket, Key=f"fleet/{ref}")
    assert head["Metadata"]["sha256"] == sha(text.encode()) == ref.split("/")[1].removesuffix(".yaml")
    assert not b.path(ref).exists()
    assert b.read_text(ref) == text
    assert b.fetch(ref) == b.path(ref) == (tmp_path / "b" / ref).resolve()
    # Content-addressed documents never change: a host that has one does not ask again.
    s3.delete_object(Bucket=bucket, Key=f"fleet/{ref}")
    assert b.read_text(ref) == text
    assert a.location(ref) == f"s3://{bucket}/fleet/{ref}"


def test_a_folder_is_published_and_fetched_under_the_same_keys(
    tmp_path: Path, endpoint: str, bucket: str, s3: Any
) -> None:
    a, b = host(tmp_path, "a", bucket, endpoint), host(tmp_path, "b", bucket, endpoint)
    step = "logs/web/1.0.0/1/build/ApplyBuildComponents"
    files = {
        "console.log": b"step output\n",
        "components/01-motd/detailedoutput.json": b'{"status": "success"}',
        "components/01-motd/application.log": os.urandom(3000),
        "in-progress.part": b"still being written",
    }
    for rel, data in files.items():
        (a.folder(step) / rel).parent.mkdir(parents=True, exist_ok=True)
        (a.folder(step) / rel).write_bytes(data)
    a.publish(step)
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="fleet/")["Contents"]
    published = {rel: data for rel, data in files.items() if not rel.endswith(".part")}
    assert sorted(o["Key"] for o in listed) == sorted(f"fleet/{step}/{rel}" for rel in published)
    for rel, data in published.items():
        assert s3.head_object(Bucket=bucket, Key=f"fleet/{step}/{rel}")["Metadata"]["sha256"] == sha(data)
    assert b.fetch(step) == b.path(step)
    for rel, data in published.items():
        assert (b.path(step) / rel).read_bytes() == data
    assert not (b.path(step) / "in-progress.part").exists()
    # A whole image folder goes away with unpublish.
    a.unpublish("logs/web")
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="fleet/")


def test_a_rewritten_file_reaches_the_other_host_and_an_unchanged_one_is_not_sent_again(
    tmp_path: Path, endpoint: str, bucket: str, s3: Any
) -> None:
    a, b = host(tmp_path, "a", bucket, endpoint), host(tmp_path, "b", bucket, endpoint)
    ref = "images/golden/1.0.0/1/distribution.json"
    a.folder("images/golden/1.0.0/1")
    a.path(ref).write_text('{"amis": []}')
    a.publish(ref)
    assert b.read_text(ref) == '{"amis": []}'
    tmp = a.path(ref).with_name("x.part")
    tmp.write_text('{"amis": ["ami-1"]}')
    os.replace(tmp, a.path(ref))  # how our writers update a file
    a.publish(ref)
    assert b.read_text(ref) == '{"amis": ["ami-1"]}'
    # The store is the truth: what this host changed without publishing is replaced on fetch.
    b.path(ref).write_text("local scribble")
    assert b.read_text(ref) == '{"amis": ["ami-1"]}'
    # Unchanged since it was published: no second upload (the object removed behind the
    # store's back stays removed, which shows nothing was sent).
    s3.delete_object(Bucket=bucket, Key=f"fleet/{ref}")
    a.publish(ref)
    with pytest.raises(BlobMissing):
        a.fetch(ref)


def test_large_files_go_in_parts_and_hard_links_are_copied_in_place(
    tmp_path: Path, endpoint: str, bucket: str, s3: Any
) -> None:
    part = 5 << 20
    a = host(tmp_path, "a", bucket, endpoint, part_size=part, copy_limit=part)
    b = host(tmp_path, "b", bucket, endpoint, part_size=part)
    folder = "images/golden/1.0.0/1"
    data = os.urandom(12 << 20)
    disk = a.folder(folder) / "disk.qcow2"
    disk.write_bytes(data)
    a.publish(folder)
    head = s3.head_object(Bucket=bucket, Key=f"fleet/{folder}/disk.qcow2")
    assert head["ETag"].strip('"').endswith("-3") and head["Metadata"]["sha256"] == sha(data)
    ami = f"{folder}/amis/us-east-1/ami-0123.qcow2"
    a.path(ami).parent.mkdir(parents=True)
    os.link(disk, a.path(ami))
    a.publish(ami, same_as=f"{folder}/disk.qcow2")
    copied = s3.head_object(Bucket=bucket, Key=f"fleet/{ami}")
    # Above copy_limit a copy goes part by part (UploadPartCopy), 3 parts of 5 MiB.
    assert copied["ETag"].strip('"').endswith("-3") and copied["Metadata"]["sha256"] == sha(data)
    assert hashlib.sha256(b.fetch(ami).read_bytes()).hexdigest() == sha(data)
    # Publishing the folder finds a new link by itself (same host, parts too big for a 1-part upload).
    c = host(tmp_path, "a", bucket, endpoint, part_size=16 << 20, copy_limit=part)
    second = f"{folder}/amis/eu-west-1/ami-0456.qcow2"
    a.path(second).parent.mkdir(parents=True)
    os.link(disk, a.path(second))
    c.publish(folder)
    linked = s3.head_object(Bucket=bucket, Key=f"fleet/{second}")
    assert linked["ETag"].strip('"').endswith("-1") and linked["Metadata"]["sha256"] == sha(data)  # a 1-part copy
    assert b.fetch(f"{folder}/disk.qcow2").stat().st_mode & 0o777 == 0o644  # QEMU's user can read it


def test_a_damaged_object_is_refused_and_the_local_copy_kept(
    tmp_path: Path, endpoint: str, bucket: str, s3: Any
) -> None:
    b = host(tmp_path, "b", bucket, endpoint)
    ref = "images/golden/1.0.0/1/manifest.json"
    good = b'{"sha256": "..."}'
    s3.put_object(Bucket=bucket, Key=f"fleet/{ref}", Body=good, Metadata={"sha256": sha(good)})
    assert b.fetch(ref).read_bytes() == good
    # Bytes that are not what was published (bit rot, a partial copy, tampering).
    s3.put_object(Bucket=bucket, Key=f"fleet/{ref}", Body=b'{"sha256": "evil"}', Metadata={"sha256": sha(b"other")})
    with pytest.raises(BlobChecksumMismatch, match=r"is damaged: its bytes have sha256 \w{64}, it was published as"):
        b.fetch(ref)
    assert b.path(ref).read_bytes() == good
    assert [p.name for p in b.path(ref).parent.iterdir()] == ["manifest.json"]  # no partial download left
    # A document without metadata is still checked against its name.
    doc = f"documents/{sha(b'a')}.yaml"
    s3.put_object(Bucket=bucket, Key=f"fleet/{doc}", Body=b"b")
    with pytest.raises(BlobChecksumMismatch):
        b.fetch(doc)
    assert not b.path(doc).exists()


def test_missing_objects_and_unusable_stores_say_what_and_where(tmp_path: Path, endpoint: str, bucket: str) -> None:
    b = host(tmp_path, "b", bucket, endpoint)
    with pytest.raises(BlobMissing, match=rf"s3://{bucket}/fleet/documents/nope.yaml \(endpoint {endpoint}\) does not"):
        b.fetch("documents/nope.yaml")
    with pytest.raises(FileNotFoundError):  # readers that tolerate a missing file still do
        b.read_text("images/x/1.0.0/1/packages.json")
    assert b.fetch("images/x/1.0.0/1/packages.json", missing_ok=True) == b.path("images/x/1.0.0/1/packages.json")
    with pytest.raises(BlobMissing, match="nothing to publish"):
        b.publish("logs/never-written")
    with pytest.raises(ValueError, match="outside the store"):
        b.fetch("../../etc/passwd")
    with pytest.raises(ValueError, match="bookkeeping"):
        b.publish(".sync/documents")
    with pytest.raises(BlobStoreError, match=r"the image store s3://no-such-bucket at http://127.*is not usable"):
        S3BlobStore(tmp_path / "c", "no-such-bucket", "", endpoint).check()
    dead = S3BlobStore(tmp_path / "d", bucket, "", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(BlobStoreError, match=r"could not fetch s3://.*endpoint http://127.0.0.1:9"):
        dead.fetch("documents/x.yaml")
