"""The blob store on an S3-compatible object store (MinIO, Ceph RGW, AWS S3), for a fleet.

Each host keeps working on local files (QEMU and qemu-img need them) under its cache root; the
bucket holds the same tree under a prefix: reference ``logs/web/1.0.0/1/build/Step/console.log``
is object ``<prefix>/logs/web/1.0.0/1/build/Step/console.log``. Every object carries the sha256
of its bytes as user metadata (``x-amz-meta-sha256``); a fetch verifies it before the file
replaces anything local. What this host knows about each synchronized file (its sha256, size,
mtime and inode when last fetched or published) is kept beside the cache in ``.sync/``, so an
unchanged file is neither hashed nor sent again, and a content-addressed document
(``documents/<sha256>.*``, never rewritten) is fetched once.

Only botocore is used (a runtime dependency already): multipart uploads above `part_size`,
server-side copies for hard links (AMIs are links of the captured disk), streaming downloads.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from workers.blobstore import BlobChecksumMismatch, BlobMissing, BlobStore, BlobStoreError

PART_SIZE = 64 << 20
#: The largest object a single CopyObject may write; above it copies go part by part.
COPY_LIMIT = 5 << 30
CHUNK = 1 << 20
SYNC_DIR = ".sync"
#: Files of one folder sent at once.
FOLDER_CONCURRENCY = 8
#: References under here are named by their content and never change: fetched once.
IMMUTABLE = ("documents/",)


class S3BlobStore(BlobStore):
    def __init__(
        self,
        root: Path,
        bucket: str,
        prefix: str = "",
        endpoint_url: str = "",
        part_size: int = PART_SIZE,
        copy_limit: int = COPY_LIMIT,
    ) -> None:
        super().__init__(root)
        if not bucket or "/" in bucket:
            raise ValueError(f"store bucket {bucket!r} is not a bucket name")
        self.bucket = bucket
        self.prefix = "/".join(p for p in prefix.split("/") if p)
        self.endpoint_url = endpoint_url
        self.part_size = max(part_size, 5 << 20)  # S3's smallest part (except the last)
        self.copy_limit = copy_limit
        self._client: Any = None
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, root: Path, url: str, endpoint_url: str = "") -> S3BlobStore:
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if not bucket:
            raise ValueError(f"store_url {url!r} names no bucket (s3://bucket/prefix)")
        return cls(root, bucket, prefix, endpoint_url)

    # -- names --------------------------------------------------------------------------------

    def path(self, ref: str) -> Path:
        p = super().path(ref)
        if p.relative_to(self.root.resolve()).parts[:1] in ((), (SYNC_DIR,)):
            raise ValueError(f"blob reference {ref!r} names the cache's own bookkeeping")
        return p

    def _ref(self, ref: str) -> str:
        """The normalized reference ("a/./b" -> "a/b"): one object per file, whatever the spelling."""
        return self.path(ref).relative_to(self.root.resolve()).as_posix()

    def key(self, ref: str) -> str:
        ref = self._ref(ref)
        return f"{self.prefix}/{ref}" if self.prefix else ref

    def location(self, ref: str) -> str:
        return f"s3://{self.bucket}/{self.key(ref)}"

    def _where(self, ref: str) -> str:
        return f"{self.location(ref)} (endpoint {self.endpoint_url or 'AWS default'})"

    # -- the client ---------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                import botocore.config
                import botocore.session

                session = botocore.session.get_session()
                # Credentials and region: the standard AWS chain (env, ~/.aws, instance role).
                config = botocore.config.Config(
                    signature_version="s3v4",
                    # Path-style works with every S3-compatible server and needs no wildcard DNS.
                    s3={"addressing_style": "path"} if self.endpoint_url else {},
                    retries={"mode": "standard", "max_attempts": 5},
                    # Our own sha256 protects the bytes; the newer CRC headers some servers reject.
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                    max_pool_connections=16,
                )
                self._client = session.create_client(
                    "s3",
                    endpoint_url=self.endpoint_url or None,
                    region_name=session.get_config_variable("region") or "us-east-1",
                    config=config,
                )
            return self._client

    def _error(self, what: str, ref: str, exc: Exception) -> BlobStoreError:
        return BlobStoreError(f"could not {what} {self._where(ref)}: {exc}")

    def check(self) -> None:
        import botocore.exceptions

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise BlobStoreError(
                f"the image store s3://{self.bucket} at {self.endpoint_url or 'the AWS default endpoint'} "
                f"is not usable from this host: {exc}"
            ) from None

    # -- what this host knows about its files ---------------------------------------------------

    def _record_path(self, ref: str) -> Path:
        return self.root / SYNC_DIR / (self._ref(ref) + ".json")

    def _known_sha256(self, ref: str, local: Path) -> str:
        """The sha256 last fetched or published for this file, if the file has not changed since."""
        try:
            record = json.loads(self._record_path(ref).read_text())
            st = local.stat()
        except (OSError, ValueError):
            return ""
        now = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ino": st.st_ino}
        same = all(record.get(k) == v for k, v in now.items())
        return str(record.get("sha256") or "") if same else ""

    def _remember(self, ref: str, local: Path, sha256: str) -> None:
        st = local.stat()
        record = {"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "ino": st.st_ino}
        target = self._record_path(ref)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".")
        with os.fdopen(fd, "w") as f:
            json.dump(record, f)
        os.replace(tmp, target)

    def _sha256_of(self, ref: str, local: Path) -> str:
        known = self._known_sha256(ref, local)
        return known or _sha256(local)

    # -- publish --------------------------------------------------------------------------------

    def publish(self, ref: str, same_as: str = "") -> None:
        local = self.path(ref)
        if local.is_dir():
            # Hard links in the folder (AMIs of the disk) are copied in place once their first name is up.
            first: dict[tuple[int, int], str] = {}
            links: list[tuple[str, str]] = []
            for sub in self._local_files(local):
                st = self.path(sub).stat()
                if (st.st_dev, st.st_ino) in first:
                    links.append((sub, first[(st.st_dev, st.st_ino)]))
                else:
                    first[(st.st_dev, st.st_ino)] = sub
            # A step's log folder is many small files: a request's latency, not bandwidth, is the cost.
            with ThreadPoolExecutor(max_workers=FOLDER_CONCURRENCY) as pool:
                list(pool.map(lambda sub: self._publish_file(sub, self.path(sub)), first.values()))
            for sub, source in links:
                self._publish_file(sub, self.path(sub), source)
        elif local.is_file():
            self._publish_file(ref, local, same_as)
        else:
            raise BlobMissing(f"nothing to publish at {ref}: {local} does not exist")

    def _local_files(self, folder: Path) -> Iterator[str]:
        root = self.root.resolve()
        for dirpath, _, names in os.walk(folder):
            for name in sorted(names):
                if name.endswith(".part"):  # still being written (our writers rename when complete)
                    continue
                yield (Path(dirpath) / name).relative_to(root).as_posix()

    def _publish_file(self, ref: str, local: Path, same_as: str = "") -> None:
        import botocore.exceptions

        if self._known_sha256(ref, local):
            return  # the store has exactly this file already (we fetched or published it)
        source = self.path(same_as) if same_as else None
        copied_sha = self._known_sha256(same_as, source) if source is not None and source.is_file() else ""
        try:
            if copied_sha and os.path.samefile(source, local):  # type: ignore[arg-type]
                self._copy(same_as, ref, copied_sha, local.stat().st_size)
                self._remember(ref, local, copied_sha)
                return
            digest = self._sha256_of(ref, local)
            size = local.stat().st_size
            if size <= self.part_size:
                with open(local, "rb") as f:
                    self.client.put_object(
                        Bucket=self.bucket, Key=self.key(ref), Body=f, ContentLength=size, Metadata={"sha256": digest}
                    )
            else:
                self._upload_parts(ref, local, digest)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise self._error("publish to", ref, exc) from None
        self._remember(ref, local, digest)

    def _upload_parts(self, ref: str, local: Path, digest: str) -> None:
        key = self.key(ref)
        upload = self.client.create_multipart_upload(Bucket=self.bucket, Key=key, Metadata={"sha256": digest})
        upload_id = upload["UploadId"]
        try:
            parts = []
            with open(local, "rb") as f:
                number = 1
                while chunk := f.read(self.part_size):
                    done = self.client.upload_part(
                        Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=chunk
                    )
                    parts.append({"ETag": done["ETag"], "PartNumber": number})
                    number += 1
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            # No half-uploaded parts left to bill for or to confuse a later listing.
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise

    def _copy(self, source_ref: str, ref: str, digest: str, size: int) -> None:
        """A server-side copy: a hard link's bytes do not travel a second time."""
        source = {"Bucket": self.bucket, "Key": self.key(source_ref)}
        key = self.key(ref)
        if size <= self.copy_limit:
            self.client.copy_object(
                Bucket=self.bucket, Key=key, CopySource=source, MetadataDirective="REPLACE", Metadata={"sha256": digest}
            )
            return
        upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=key, Metadata={"sha256": digest})[
            "UploadId"
        ]
        try:
            parts = []
            for number, start in enumerate(range(0, size, self.part_size), start=1):
                end = min(start + self.part_size, size) - 1
                done = self.client.upload_part_copy(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource=source,
                    CopySourceRange=f"bytes={start}-{end}",
                )
                parts.append({"ETag": done["CopyPartResult"]["ETag"], "PartNumber": number})
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise

    # -- fetch ----------------------------------------------------------------------------------

    def fetch(self, ref: str, missing_ok: bool = False) -> Path:
        import botocore.exceptions

        local = self.path(ref)
        if local.is_file() and self._ref(ref).startswith(IMMUTABLE):
            return local
        try:
            head = self._head(ref)
            if head is not None:
                self._fetch_file(ref, local, head)
                return local
            subrefs = list(self._remote_files(ref))
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise self._error("fetch", ref, exc) from None
        if subrefs:  # a folder: each of its files
            for sub in subrefs:
                self.fetch(sub)
            return local
        if missing_ok:
            return local
        raise BlobMissing(f"{self._where(ref)} does not exist: no host has published {ref}")

    def _head(self, ref: str) -> dict[str, Any] | None:
        import botocore.exceptions

        try:
            head: dict[str, Any] = self.client.head_object(Bucket=self.bucket, Key=self.key(ref))
            return head
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def _remote_files(self, ref: str) -> Iterator[str]:
        folder = self.key(ref) + "/"
        skip = len(self.prefix) + 1 if self.prefix else 0
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=folder):
            for obj in page.get("Contents") or []:
                yield str(obj["Key"])[skip:]

    def _fetch_file(self, ref: str, local: Path, head: dict[str, Any]) -> None:
        published = str((head.get("Metadata") or {}).get("sha256") or "")
        if published and local.is_file():
            known = self._known_sha256(ref, local)
            if known == published:
                return
            if not known and _sha256(local) == published:  # a copy made before this host synchronized
                self._remember(ref, local, published)
                return
        local.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=local.parent, prefix=f".{local.name}.")
        digest = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as f:
                # IfMatch: the bytes are those of the object we just looked at, not a newer one.
                body = self.client.get_object(Bucket=self.bucket, Key=self.key(ref), IfMatch=head["ETag"])["Body"]
                while chunk := body.read(CHUNK):
                    digest.update(chunk)
                    f.write(chunk)
            got = digest.hexdigest()
            expected = published or _named_digest(self._ref(ref))
            if expected and got != expected:
                raise BlobChecksumMismatch(
                    f"{self._where(ref)} is damaged: its bytes have sha256 {got}, it was published as {expected}"
                )
            os.chmod(tmp, 0o644)  # readable by QEMU's user, as the files this host writes are
            os.replace(tmp, local)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._remember(ref, local, got)

    # -- removal --------------------------------------------------------------------------------

    def unpublish(self, ref: str) -> None:
        import botocore.exceptions

        try:
            keys = [self.key(ref)] + [self.key(sub) for sub in self._remote_files(ref)]
            for start in range(0, len(keys), 1000):
                batch = [{"Key": k} for k in keys[start : start + 1000]]
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise self._error("remove", ref, exc) from None
        records = self._record_path(ref)
        records.unlink(missing_ok=True)
        folder = records.with_suffix("")
        if folder.is_dir():
            import shutil

            shutil.rmtree(folder, ignore_errors=True)


def _named_digest(ref: str) -> str:
    """A content-addressed document's name is its sha256: check that when there is no metadata."""
    if not ref.startswith(IMMUTABLE):
        return ""
    stem = ref.rsplit("/", 1)[-1].split(".", 1)[0]
    return stem if len(stem) == 64 else ""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
