"""Files that builds share between processes: component documents, logs, disk images.

References are paths relative to the store root ("documents/<sha256>.yaml"), so the same
reference works on every host that mounts the store at its own root. The local directory is
the embedded default; a shared filesystem makes it work across hosts.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path(self, ref: str) -> Path:
        p = (self.root / ref).resolve()
        if not p.is_relative_to(self.root.resolve()):
            raise ValueError(f"blob reference {ref!r} points outside the store")
        return p

    def put_document(self, text: str, suffix: str = ".yaml") -> str:
        """Store text by content; the same document is stored once."""
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
        return ref

    def read_text(self, ref: str) -> str:
        return self.path(ref).read_text()

    def folder(self, ref: str) -> Path:
        p = self.path(ref)
        p.mkdir(parents=True, exist_ok=True)
        return p
