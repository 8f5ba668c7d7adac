"""The distribution stage of machine images: AMIs per region, launch permissions, disk exports.

On-prem a "region" is a storage location: each distribution target gets its own AMI, an
identifier of ours (``ami-`` and 17 hex digits, stable for an image, region and account) naming a
hard link of the captured disk under the image's folder in the image store
(``images/<name>/<version>/<build>/amis/<region>/<ami-id>.qcow2``), so a later build can use it
as a parent and deleting the image folder removes every copy. s3ExportConfiguration converts the
region's disk into VMDK, RAW or VHD (workers/disk_export.py). Everything written is listed in
the image folder (``distribution.json``) so a failed or cancelled build's cleanup finds it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any

from workers.contracts import BuildContext, StepRequest, StepResult
from workers.disk_export import ExportError, export_disk, remove_export
from workers.disk_import import ACCEPTED, DiskImportError, local_source, to_qcow2
from workers.errors import InfrastructureError, StepFailed
from workers.executors.base import ExecutorSettings

RECORD = "distribution.json"


def image_folder_of(ctx: BuildContext) -> str:
    """Where an image's disk, manifest, inventory and AMI copies live in the image store."""
    slug = re.sub(r"[^a-z0-9._-]+", "-", ctx.image_name.lower()).strip("-._") or "image"
    return f"images/{slug}/{ctx.version}/{ctx.build_number}"


def image_folder(request: StepRequest) -> str:
    return image_folder_of(request.context)


def ami_id(image_arn: str, region: str, account: str) -> str:
    return "ami-" + hashlib.sha256(f"{image_arn}|{region}|{account}".encode()).hexdigest()[:17]


def _region_of(image_arn: str) -> str:
    return image_arn.split(":")[3]


def _account_of(image_arn: str) -> str:
    return image_arn.split(":")[4]


def _targets(request: StepRequest) -> list[dict[str, Any]]:
    """The distribution configuration's entries, or one for the build's own region."""
    dist = request.context.distribution or {}
    entries = [d for d in dist.get("distributions") or [] if d.get("region")]
    return entries or [{"region": _region_of(request.context.image_arn)}]


def _expand(template: str, request: StepRequest) -> str:
    """The {{ imagebuilder:buildDate }} and {{ imagebuilder:buildVersion }} placeholders AMI names take."""
    ctx = request.context
    values = {"buildDate": time.strftime("%Y-%m-%dT%H-%M-%SZ", time.gmtime()), "buildVersion": str(ctx.build_number)}
    for key, value in values.items():
        for spelling in (f"{{{{ imagebuilder:{key} }}}}", f"{{{{imagebuilder:{key}}}}}"):
            template = template.replace(spelling, value)
    return template


def _record(settings: ExecutorSettings, request: StepRequest) -> tuple[Path, dict[str, Any]]:
    path = settings.blobs.fetch(f"{image_folder(request)}/{RECORD}", missing_ok=True)
    data = json.loads(path.read_text()) if path.is_file() else {"amis": [], "exports": []}
    return path, data


def _save(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def distribute_image(settings: ExecutorSettings, request: StepRequest) -> StepResult:
    if request.artifact is None:
        raise StepFailed("there is no image to distribute: the build stage produced none")
    source = settings.blobs.fetch(request.artifact.image_ref, missing_ok=True)
    if not source.is_file():
        raise StepFailed(f"the captured disk {request.artifact.image_ref} is gone")
    ctx = request.context
    record_path, record = _record(settings, request)
    distributed, amis = [], []
    for target in _targets(request):
        region = str(target["region"])
        ami_conf = target.get("amiDistributionConfiguration") or {}
        name = _expand(str(ami_conf.get("name") or f"{ctx.image_name} {{{{ imagebuilder:buildDate }}}}"), request)
        accounts = [_account_of(ctx.image_arn), *(ami_conf.get("targetAccountIds") or [])]
        for account in dict.fromkeys(accounts):
            image_id = ami_id(ctx.image_arn, region, account)
            ref = f"{image_folder(request)}/amis/{region}/{image_id}.qcow2"
            disk = settings.blobs.path(ref)
            disk.parent.mkdir(parents=True, exist_ok=True)
            if not disk.exists():
                try:
                    os.link(source, disk)  # same store, same bytes: a copy costs nothing
                except OSError as exc:
                    raise InfrastructureError(f"could not place {ref}: {exc}") from exc
            entry = {"region": region, "accountId": account, "imageId": image_id, "disk": ref}
            distributed.append(entry)
            amis.append(
                {
                    "region": region,
                    "image": image_id,
                    "name": name,
                    "description": ami_conf.get("description") or f"{ctx.image_name} {ctx.version}/{ctx.build_number}",
                    "state": {"status": "AVAILABLE"},
                    "accountId": account,
                    "_disk": ref,
                }
            )
            settings.blobs.publish(ref, same_as=request.artifact.image_ref)  # a server-side copy on S3
            if ref not in record["amis"]:
                record["amis"].append(ref)
    _save(record_path, record)
    settings.blobs.publish(f"{image_folder(request)}/{RECORD}")
    return StepResult(
        outputs={"distributedImages": distributed},
        output_resources={"amis": amis},
        message="; ".join(f"{d['imageId']} in {d['region']} for {d['accountId']}" for d in distributed),
    )


def modify_image_attributes(settings: ExecutorSettings, request: StepRequest) -> StepResult:
    """Launch permissions are what the distribution configuration says; kept beside the image for
    the API's sharing rules (which read them from the image's distribution configuration)."""
    granted: dict[str, dict[str, Any]] = {}
    for target in _targets(request):
        permission = (target.get("amiDistributionConfiguration") or {}).get("launchPermission") or {}
        if permission:
            granted[str(target["region"])] = permission
    path = settings.blobs.path(f"{image_folder(request)}/launch-permissions.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    _save(path, granted)
    settings.blobs.publish(f"{image_folder(request)}/launch-permissions.json")
    users = sorted({u for p in granted.values() for u in p.get("userIds") or []})
    return StepResult(
        outputs={"launchPermissions": granted},
        message=f"launch permission for {', '.join(users)}" if users else "no launch permissions to apply",
    )


def apply_image_configurations(settings: ExecutorSettings, request: StepRequest) -> StepResult:
    """s3ExportConfiguration: the region's AMI converted and placed in the bucket. (Launch
    templates, SSM parameters and fast launch have no on-prem counterpart; they are ignored.)"""
    if settings.export_dir is None:
        raise InfrastructureError("this worker has no export directory configured")
    distributed = request.inputs.get("distributedImages") or []
    by_region = {str(d.get("region")): d for d in distributed if isinstance(d, dict)}
    record_path, record = _record(settings, request)
    exports = []
    for target in _targets(request):
        conf = target.get("s3ExportConfiguration")
        if not conf:
            continue
        region = str(target["region"])
        image = by_region.get(region)
        if image is None:
            raise StepFailed(f"no distributed image in {region} to export (distributedImages lists none)")
        try:
            done = export_disk(
                settings.blobs.fetch(str(image["disk"])),
                str(conf.get("diskImageFormat")),
                str(conf.get("s3Bucket")),
                str(conf.get("s3Prefix") or ""),
                str(image["imageId"]),
                settings.export_dir,
                settings.s3_endpoint_url,
            )
        except ExportError as exc:
            raise StepFailed(str(exc)) from None
        exports.append(
            {"region": region, "format": done.format, "uri": done.uri, "location": done.location,
             "size": done.size, "sha256": done.sha256}
        )  # fmt: skip
        record["exports"].append(done.uri)
        _save(record_path, record)
        settings.blobs.publish(f"{image_folder(request)}/{RECORD}")
    return StepResult(
        outputs={"exports": exports},
        output_resources={"_exports": exports} if exports else None,
        message="; ".join(f"{e['format']} {e['uri']} ({e['size']} bytes)" for e in exports) or "nothing to export",
    )


def remove_distribution(settings: ExecutorSettings, folder: str) -> list[str]:
    """Exports a failed or cancelled build made (its AMI links go with the image folder)."""
    path = settings.blobs.fetch(f"{folder}/{RECORD}", missing_ok=True)
    if not path.is_file() or settings.export_dir is None:
        return []
    removed = []
    for uri in json.loads(path.read_text()).get("exports") or []:
        try:
            if remove_export(uri, settings.export_dir, settings.s3_endpoint_url):
                removed.append(uri)
        except Exception as exc:  # best effort: one unreachable export must not stop cleanup
            removed.append(f"{uri} (not removed: {exc})")
    return removed


def import_image(settings: ExecutorSettings, request: StepRequest) -> StepResult:
    """ImportVmImage/ImportDiskImage: the named disk, converted into the image store as the new
    image's disk, with its AMI in the image's region (so recipes can use it as a parent)."""
    ctx = request.context
    source = str(request.inputs.get("source") or "")
    export_dir = settings.export_dir or settings.state_dir / "exports"
    import_dir = settings.import_dir or settings.state_dir / "imports"
    folder = image_folder_of(ctx)
    disk = settings.blobs.path(f"{folder}/disk.qcow2")
    try:
        with local_source(source, export_dir, import_dir, settings.s3_endpoint_url) as path:
            info = to_qcow2(path, disk)
    except DiskImportError as exc:
        raise StepFailed(str(exc)) from None
    region, account = _region_of(ctx.image_arn), _account_of(ctx.image_arn)
    image_id = ami_id(ctx.image_arn, region, account)
    ref = f"{folder}/amis/{region}/{image_id}.qcow2"
    settings.blobs.path(ref).parent.mkdir(parents=True, exist_ok=True)
    os.link(disk, settings.blobs.path(ref))
    manifest = {
        "imageArn": ctx.image_arn,
        "path": f"{folder}/disk.qcow2",
        "format": "qcow2",
        "importedFrom": source,
        "sourceFormat": info["format"],
        "virtualSize": info["virtual-size"],
    }
    _save(settings.blobs.path(f"{folder}/manifest.json"), manifest)
    settings.blobs.publish(folder)
    ami = {"region": region, "image": image_id, "name": ctx.image_name, "description": f"imported from {source}",
           "state": {"status": "AVAILABLE"}, "accountId": account, "_disk": ref}  # fmt: skip
    return StepResult(
        outputs={"imageId": image_id, "sourceFormat": info["format"]},
        output_resources={"amis": [ami]},
        message=f"imported {source} ({ACCEPTED[info['format']]}, {info['virtual-size']} bytes virtual) as {image_id}",
    )
