"""CollectImageMetadata for container images: the package inventory of the image a Docker
instance built (or tests), as ListImagePackages shows it and the scanners read it.

The package databases are read as files from a created, never started, container of the image
(`docker cp` semantics): that works for images without a shell or without dpkg-query (distroless
keeps /var/lib/dpkg/status.d/), costs no process start, and reads exactly what dpkg-query would.
Only RPM's database is a binary format, so for RPM images `rpm -qa` runs in a container.

The inventory goes to the blob store as JSON ``{"osVersion", "os": {id, versionId, codename},
"packages": [{"packageName", "packageVersion", "sourceName", "sourceVersion"}]}``; the source
fields are what Debian and OSV advisories name (a source package builds several binaries).
"""

from __future__ import annotations

import io
import json
import os
import posixpath
import tarfile
import tempfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import docker.errors

from workers.contracts import StepRequest, StepResult
from workers.errors import InfrastructureError, StepFailed

if TYPE_CHECKING:
    from workers.executors.docker import DockerExecutor

RPM_QUERY = "%{NAME}\\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\\t%{SOURCERPM}\\n"


@dataclass(frozen=True)
class Inventory:
    os_version: str
    os: dict[str, str]
    packages: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps({"osVersion": self.os_version, "os": self.os, "packages": self.packages})


def collect_image_metadata(executor: DockerExecutor, request: StepRequest) -> StepResult:
    """The step: inventory of the instance's image into the blob store."""
    state = executor._state(request)
    image = state.artifact_image or state.test_image
    if not image:
        raise StepFailed(
            f"instance {state.instance_id} holds no image yet: CollectImageMetadata runs after ExecuteComponents"
        )
    client = executor.client
    try:
        container = client.containers.create(image, entrypoint=["/nonexistent"], command=[], labels=state.labels)
    except docker.errors.APIError as exc:
        raise InfrastructureError(f"the docker engine could not open image {image[:19]}: {exc}") from exc
    executor._track(state, containers=[container.id])
    try:
        inventory = inventory_of(client, container)
    finally:
        executor._remove_containers([container.id])
    ctx = request.context
    ref = f"images/{_slug(ctx.image_name)}/{ctx.version}/{ctx.build_number}/packages.json"
    _write_atomic(executor.settings.blobs.path(ref), inventory.to_json())
    return StepResult(
        outputs={"osVersion": inventory.os_version, "packagesRef": ref},
        message=f"{len(inventory.packages)} packages on {inventory.os_version}",
    )


def inventory_of(client: docker.DockerClient, container: Any) -> Inventory:
    """The packages of a created container's image, from whichever package database it has."""
    os_fields = parse_os_release(_os_release(container))
    pretty = os_fields.get("PRETTY_NAME") or " ".join(
        p for p in (os_fields.get("NAME", "Linux"), os_fields.get("VERSION_ID", "")) if p
    )
    os_info = {
        "id": os_fields.get("ID", ""),
        "versionId": os_fields.get("VERSION_ID", ""),
        "codename": os_fields.get("VERSION_CODENAME", ""),
    }
    packages: list[dict[str, str]] | None = None
    status = _read_files(container, "/var/lib/dpkg/status")
    distroless = _read_files(container, "/var/lib/dpkg/status.d")
    if status or distroless:
        packages = [p for text in status.values() for p in parse_dpkg_status(text)]
        packages += [p for text in distroless.values() for p in parse_dpkg_status(text, require_installed=False)]
    elif apk := _read_files(container, "/lib/apk/db/installed"):
        packages = parse_apk_installed(next(iter(apk.values())))
    else:
        packages = _rpm_packages(client, container)
    if packages is None:
        raise StepFailed(
            f"no package database in the image (looked for dpkg, apk and rpm); {pretty or 'unknown OS'} "
            "has no inventory to collect"
        )
    unique = {(p["packageName"], p["packageVersion"]): p for p in packages}
    return Inventory(pretty, os_info, [unique[k] for k in sorted(unique)])


def parse_os_release(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key and not key.startswith("#"):
            out[key] = value.strip().strip('"').strip("'")
    return out


def parse_dpkg_status(text: str, require_installed: bool = True) -> list[dict[str, str]]:
    """Packages of a dpkg status file (or one distroless status.d entry, which has no Status)."""
    packages = []
    for paragraph in text.split("\n\n"):
        fields: dict[str, str] = {}
        last = ""
        for line in paragraph.splitlines():
            if line[:1] in (" ", "\t"):
                if last:
                    fields[last] += "\n" + line.strip()
                continue
            key, sep, value = line.partition(":")
            if sep:
                last = key.strip()
                fields[last] = value.strip()
        name, version = fields.get("Package"), fields.get("Version")
        if not name or not version:
            continue
        status = fields.get("Status", "")
        if require_installed and status.split()[-1:] != ["installed"]:
            continue  # removed but its config files kept ("deinstall ok config-files"), half-installed, ...
        # "Source: name" or "Source: name (version)" when the source version differs (binNMUs).
        source, _, source_version = fields.get("Source", name).partition(" ")
        packages.append(
            {
                "packageName": name,
                "packageVersion": version,
                "sourceName": source,
                "sourceVersion": source_version.strip("()") or version,
            }
        )
    return packages


def parse_apk_installed(text: str) -> list[dict[str, str]]:
    packages = []
    for paragraph in text.split("\n\n"):
        fields = dict(line.split(":", 1) for line in paragraph.splitlines() if len(line) > 2 and line[1] == ":")
        if fields.get("P") and fields.get("V"):
            packages.append(
                {
                    "packageName": fields["P"],
                    "packageVersion": fields["V"],
                    "sourceName": fields.get("o", fields["P"]),
                    "sourceVersion": fields["V"],
                }
            )
    return packages


def _rpm_packages(client: docker.DockerClient, created: Any) -> list[dict[str, str]] | None:
    """`rpm -qa` in a container of the same image, or None when the image has no rpm."""
    image = created.attrs.get("Image") or created.image.id
    labels = created.labels
    try:
        output = client.containers.run(
            image, entrypoint=["rpm"], command=["-qa", "--qf", RPM_QUERY], labels=labels, remove=True, stderr=False
        )
    except (docker.errors.ContainerError, docker.errors.APIError):
        return None  # no rpm binary in the image (or not an RPM system)
    packages = []
    for line in output.decode(errors="replace").splitlines():
        name, _, rest = line.partition("\t")
        version, _, source_rpm = rest.partition("\t")
        if not name or not version:
            continue
        version = version.removeprefix("0:")
        packages.append(
            {
                "packageName": name,
                "packageVersion": version,
                "sourceName": _rpm_source_name(source_rpm) or name,
                "sourceVersion": version,
            }
        )
    return packages


def _rpm_source_name(source_rpm: str) -> str:
    """'openssl-3.0.7-27.el9.src.rpm' -> 'openssl' (name is everything before version-release)."""
    parts = source_rpm.removesuffix(".src.rpm").rsplit("-", 2)
    return parts[0] if len(parts) == 3 else ""


def _os_release(container: Any) -> str:
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        files = _read_files(container, path, follow=True)
        if files:
            return next(iter(files.values()))
    return ""


def _read_files(container: Any, path: str, follow: bool = False) -> dict[str, str]:
    """Regular files at ``path`` (a file, or a folder's files) as text; {} when absent. With
    ``follow``, one symlink at ``path`` is followed (Debian's /etc/os-release is one)."""
    try:
        stream, _ = container.get_archive(path)
    except docker.errors.NotFound:
        return {}
    data = b"".join(stream)
    out: dict[str, str] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            if member.issym() and follow and not out:
                target = posixpath.normpath(posixpath.join(posixpath.dirname(path), member.linkname))
                return _read_files(container, target)
            if member.isfile():
                f = tar.extractfile(member)
                if f is not None:
                    out[member.name] = f.read().decode("utf-8", errors="replace")
    return out


def _slug(name: str) -> str:
    from workers.executors.docker import _slug as slug

    return slug(name)


def _write_atomic(path: Any, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".packages-")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
