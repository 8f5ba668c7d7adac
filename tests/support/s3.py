"""An S3-compatible endpoint on loopback: moto's standalone server stands in for MinIO or Ceph
RGW (no real object store exists offline; moto speaks the S3 protocol over HTTP, so the botocore
clients under test really send and parse S3 requests)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def s3_server() -> Iterator[str]:
    """The endpoint URL, for the length of the block."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()
