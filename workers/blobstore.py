"""Files that builds share between processes: component documents, logs, disk images.

References are paths relative to the store root ("documents/<sha256>.yaml"), so the same
reference works on every host. Every process works on local files under its root; where the
files are shared is the backend's business:

- ``BlobStore``: the root is the store. The embedded default (``<data_dir>/store``), or a
  shared filesystem path that every host mounts (``store_url`` = a path).
- ``S3BlobStore`` (workers/blobstore_s3.py): the root is this host's cache of an S3-compatible
  bucket (``store_url`` = ``s3://bucket/prefix``), synchronized at explicit points: ``fetch``
  before reading what another host may have written, ``publish`` after writing what other hosts
  need. On the local backend both are no-ops, so the single-host stack behaves as it always did.

docs/STORAGE.md has the layout, who reads and writes what, and the checksums.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


class BlobStoreError(OSError):
    """The shared store could not be read or written; the message says what and where."""


class BlobMissing(BlobStoreError, FileNotFoundError):
    """No host has published the reference (an OSError, so readers that tolerate a missing file still do)."""


class BlobChecksumMismatch(BlobStoreError):
    """What arrived is not what was published: the local copy is left untouched."""


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path(self, ref: str) -> Path:
        """The local file of a reference, as it is now on this host (no synchronization)."""
        p = (self.root / ref).resolve()
        if not p.is_relative_to(self.root.resolve()):
            raise ValueError(f"blob reference {ref!r} points outside the store")
        return p

    def location(self, ref: str) -> str:
        """Where a person or another tool finds the reference: a path here, a URL for shared stores."""
        return str(self.path(ref))

    # -- synchronization points: no-ops when the root is the store itself ----------------------

    def fetch(self, ref: str, missing_ok: bool = False) -> Path:
        """The local file (or folder) of a reference, brought here first if another host wrote it."""
        return self.path(ref)

    def publish(self, ref: str, same_as: str = "") -> None:
        """Make a file or a whole folder written here visible to every host. `same_as` names a
        reference with the same bytes (a hard link), which a remote store can copy in place."""
        self.path(ref)

    def unpublish(self, ref: str) -> None:
        """Remove a file or folder from the shared store (the local copy is the caller's)."""
        self.path(ref)

    def check(self) -> None:
        """Fail early, with the reason, when the store cannot be used from this host."""

    # -- conveniences built on the above -------------------------------------------------------

    def put_document(self, text: str, suffix: str = ".yaml") -> str:
        """Store text by content, published; the same document is stored once."""
        digest = hashlib.sha256(text.encode()).hexdigest()
        ref = f"documents/{digest}{suffix}"
        target = self.path(ref)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            # Write then rename, so a reader never sees half a document.
            fd, tmp = tempfile.mkstemp(dir=target.parent)
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(tmp, target)
        self.publish(ref)
        return ref

    def read_text(self, ref: str) -> str:
        return self.fetch(ref).read_text()

    def folder(self, ref: str) -> Path:
        p = self.path(ref)
        p.mkdir(parents=True, exist_ok=True)
        return p


def open_blob_store(cache: Path, store_url: str = "", s3_endpoint_url: str = "") -> BlobStore:
    """The store a process uses, from the settings: empty `store_url` is the local `cache`
    directory itself, a path is a (shared) directory, ``s3://bucket/prefix`` an object store at
    `s3_endpoint_url` (AWS's default endpoint when empty) cached in `cache`."""
    if not store_url:
        return BlobStore(cache)
    if store_url.startswith("s3://"):
        from workers.blobstore_s3 import S3BlobStore

        return S3BlobStore.from_url(cache, store_url, s3_endpoint_url)
    if "://" in store_url and not store_url.startswith("file://"):
        raise ValueError(f"store_url {store_url!r} is neither a directory nor s3://bucket/prefix")
    return BlobStore(Path(store_url.removeprefix("file://")))
