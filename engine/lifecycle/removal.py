"""What a DELETE action removes besides the image record's state.

Machine images: each AMI is a disk under the image's folder in the image store
(``images/<name>/<version>/<build>/amis/<region>/<ami-id>.qcow2``) and may have disk exports
(``outputResources._exports``: a local file, or an object behind an S3-compatible endpoint).
When no AMI is kept by an exclusion rule, the whole image folder goes (captured disk, manifest,
package list, distribution record).

Container images: each image URI is a tag in a registry (v2 API). A tag cannot be deleted on
its own there; its manifest is deleted by digest, which removes every tag of that manifest. So
a manifest that a live image still names (a moving tag like ``latest`` now pointing at a newer
build, or two builds with identical content) is left alone and reported SKIPPED. Tags of the
image in the local Docker engine are removed as well, when one is reachable.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from workers.blobstore import BlobStore

log = logging.getLogger(__name__)
TIMEOUT = 30
MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    )
)


@dataclass(frozen=True)
class Outcome:
    """One associated resource: an AMI id or an image URI."""

    resource_id: str
    status: str  # SUCCESS, SKIPPED or FAILED
    reason: str = ""
    region: str = ""


def slug(name: str) -> str:
    """How the libvirt executor names image folders."""
    return re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-._") or "image"


def image_folder(body: dict[str, Any]) -> str:
    version, _, build = str(body.get("version") or "").partition("/")
    return f"images/{slug(str(body.get('name') or ''))}/{version}/{build}"


# --- machine images ----------------------------------------------------------------------------


def _remove_export(export: dict[str, Any]) -> str:
    """Remove one export; what was removed, for the record."""
    location = str(export.get("location") or "")
    if location.startswith(("http://", "https://")):
        import botocore.session

        uri = str(export.get("uri") or "")
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        endpoint = location[: location.index(f"/{bucket}/{key}")] if f"/{bucket}/{key}" in location else ""
        s3 = botocore.session.get_session().create_client("s3", endpoint_url=endpoint, region_name="us-east-1")
        s3.delete_object(Bucket=bucket, Key=key)
        return uri
    if location:
        Path(location).unlink(missing_ok=True)
    return location


def remove_machine_image(blobs: BlobStore, body: dict[str, Any], keep: dict[str, str]) -> list[Outcome]:
    """Delete the image's AMIs (except those in `keep`: id -> why) and its exports."""
    outcomes: list[Outcome] = []
    outputs = body.get("outputResources") or {}
    for ami in outputs.get("amis") or []:
        image_id, region = str(ami.get("image") or ""), str(ami.get("region") or "")
        if image_id in keep:
            outcomes.append(Outcome(image_id, "SKIPPED", keep[image_id], region))
            continue
        try:
            if ami.get("_disk"):
                blobs.path(str(ami["_disk"])).unlink(missing_ok=True)
                blobs.unpublish(str(ami["_disk"]))  # a fleet's shared store holds a copy too
            outcomes.append(Outcome(image_id, "SUCCESS", "deregistered: its disk was removed", region))
        except (OSError, ValueError) as exc:
            outcomes.append(Outcome(image_id, "FAILED", f"its disk could not be removed: {exc}", region))
    for export in outputs.get("_exports") or []:
        try:
            _remove_export(export)
        except Exception as exc:
            outcomes.append(Outcome(str(export.get("uri")), "FAILED", f"export not removed: {exc}"))
    if not keep:
        try:
            folder = blobs.path(image_folder(body))
            if folder.is_dir():
                shutil.rmtree(folder)
            blobs.unpublish(image_folder(body))
        except (OSError, ValueError) as exc:
            outcomes.append(Outcome(image_folder(body), "FAILED", f"image folder not removed: {exc}"))
    return outcomes


# --- container images --------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageRef:
    registry: str
    repository: str
    tag: str

    @classmethod
    def parse(cls, uri: str) -> ImageRef | None:
        head, _, rest = uri.partition("/")
        if not rest or not ("." in head or ":" in head or head == "localhost"):
            return None  # not a registry reference (a local image name)
        repository, _, tag = rest.rpartition(":")
        if not repository or "/" in tag:
            repository, tag = rest, "latest"
        return cls(head, repository, tag)

    def base(self, insecure: Iterable[str]) -> str:
        loopback = self.registry.startswith(("127.", "localhost")) or self.registry in insecure
        return f"{'http' if loopback else 'https'}://{self.registry}/v2/{self.repository}"


class Registry:
    def __init__(self, insecure: Iterable[str] = ()) -> None:
        self.insecure = tuple(i for i in insecure if i)

    def digest(self, ref: ImageRef) -> str | None:
        """The manifest digest a tag points at, or None when the tag does not exist."""
        resp = requests.head(
            f"{ref.base(self.insecure)}/manifests/{ref.tag}", headers={"Accept": MANIFEST_TYPES}, timeout=TIMEOUT
        )
        if resp.status_code == 404:
            return None
        resp.raise_for_status()
        return resp.headers.get("Docker-Content-Digest")

    def delete(self, ref: ImageRef, digest: str) -> bool:
        resp = requests.delete(f"{ref.base(self.insecure)}/manifests/{digest}", timeout=TIMEOUT)
        if resp.status_code == 404:
            return False
        if resp.status_code == 405:
            raise RuntimeError(f"registry {ref.registry} does not allow deletes (storage.delete.enabled)")
        resp.raise_for_status()
        return True


def image_uris(body: dict[str, Any]) -> list[str]:
    return [
        str(uri)
        for container in (body.get("outputResources") or {}).get("containers") or []
        for uri in container.get("imageUris") or []
    ]


def remove_container_image(registry: Registry, body: dict[str, Any], live_uris: Iterable[str]) -> list[Outcome]:
    """Delete the manifests of the image's tags that no live image still names."""
    region = next((str(c.get("region")) for c in (body.get("outputResources") or {}).get("containers") or []), "")
    uris = image_uris(body)
    refs = {uri: ImageRef.parse(uri) for uri in uris}
    repos = {(r.registry, r.repository) for r in refs.values() if r}
    in_use: dict[str, str] = {}  # digest -> a live image URI naming it
    for other in live_uris:
        ref = ImageRef.parse(other)
        if ref is None or (ref.registry, ref.repository) not in repos:
            continue
        try:
            digest = registry.digest(ref)
        except requests.RequestException:
            continue
        if digest:
            in_use.setdefault(digest, other)
    outcomes: list[Outcome] = []
    deleted: set[str] = set()
    for uri, ref in refs.items():
        if ref is None:
            outcomes.append(Outcome(uri, "SKIPPED", "not a registry reference", region))
            continue
        try:
            digest = registry.digest(ref)
            if digest is None:
                outcomes.append(Outcome(uri, "SUCCESS", "the tag was already gone", region))
            elif digest in in_use:
                outcomes.append(Outcome(uri, "SKIPPED", f"the manifest is also {in_use[digest]}, a live image", region))
            else:
                if digest not in deleted:
                    registry.delete(ref, digest)
                    deleted.add(digest)
                outcomes.append(Outcome(uri, "SUCCESS", f"manifest {digest} deleted", region))
        except (requests.RequestException, RuntimeError) as exc:
            outcomes.append(Outcome(uri, "FAILED", f"registry: {exc}", region))
    _untag_locally([u for u, o in zip(uris, outcomes, strict=True) if o.status == "SUCCESS"])
    return outcomes


def _untag_locally(uris: list[str]) -> None:
    """Tags of the image in this host's Docker engine: best effort, as the engine may be elsewhere."""
    if not uris:
        return
    try:
        import docker
        import docker.errors

        client = docker.from_env(timeout=TIMEOUT)
        client.ping()
    except Exception as exc:
        log.info("no local Docker engine to untag %s: %s", uris, exc)
        return
    try:
        for uri in uris:
            try:
                client.images.remove(uri, noprune=False)
            except docker.errors.ImageNotFound:
                pass
            except docker.errors.APIError as exc:
                log.warning("could not remove the local image %s: %s", uri, exc)
    finally:
        client.close()
