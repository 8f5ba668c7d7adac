"""Rules image and container recipes share: recipe versions (with x auto-increment), the
parent image, component lists and their parameters, block devices, latest-version ARNs and
the pipelines that keep a recipe or configuration from being deleted."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from components.managed import managed_component
from engine import documents
from engine.api import errors
from engine.api.context import RequestContext
from engine.api.errors import ApiError
from engine.resources import arns, versions
from engine.resources.common import resolve

#: Statuses that mean a component or image may not be newly referenced.
_RETIRED = frozenset({"DEPRECATED", "DISABLED", "DELETED"})
_NO_IMAGE = frozenset({"FAILED", "CANCELLED", "DELETED"})
_DOCKER_NAME = re.compile(r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$")


def assign_version(ctx: RequestContext, kind: str, norm_name: str, requested: str) -> str:
    """The version a new recipe gets. A concrete version is used as is. The model's pattern
    also takes x wildcards (CloudFormation samples create recipes as `1.0.x`): the first x
    becomes one more than the highest existing version with the same fixed prefix (or 0),
    and the x's after it become 0, so every create makes a new version."""
    if not versions.is_wildcard(requested):
        versions.check(requested)
        return requested
    parts = requested.split(".")
    first_x = parts.index("x")
    if any(p != "x" for p in parts[first_x:]):
        raise ApiError(
            "InvalidVersionNumberException",
            f"semantic version {requested!r}: every node after the first x must be x as well (e.g. 1.x.x)",
        )
    prefix = parts[:first_x]
    versions.check(".".join([*prefix, *["0"] * (3 - first_x)]))  # the fixed nodes must be valid numbers
    highest = -1
    for rec in ctx.tx.find(kind, accounts=[ctx.account], name=norm_name):
        have = rec.version.split(".")
        if have[:first_x] == prefix:
            highest = max(highest, int(have[first_x]))
    if highest + 1 > versions.MAX_PART:
        raise ApiError("InvalidVersionNumberException", f"no version is left to assign for {requested!r}")
    return ".".join([*prefix, str(highest + 1), *["0"] * (2 - first_x)])


def latest_references(version_arn: str) -> dict[str, str]:
    """LatestVersionReferences: wildcard ARNs that always name the newest version overall and
    within this version's major, minor and patch levels."""
    arn = arns.parse(version_arn)
    major, minor, patch = arn.version.split(".")

    def at(version: str) -> str:
        return str(arns.Arn(arn.region, arn.account, arn.type, arn.name, version))

    return {
        "latestVersionArn": at("x.x.x"),
        "latestMajorVersionArn": at(f"{major}.x.x"),
        "latestMinorVersionArn": at(f"{major}.{minor}.x"),
        "latestPatchVersionArn": at(f"{major}.{minor}.{patch}"),
    }


@dataclass(frozen=True)
class ParentImage:
    """What the API knows about a parent image when the recipe is created."""

    reference: str
    #: The Image Builder image the reference resolved to, or None for a free-form reference.
    image_arn: str | None = None
    platform: str | None = None
    os_version: str | None = None
    image_type: str | None = None


def parent_image(ctx: RequestContext, reference: str, *, expect_type: str) -> ParentImage:
    """An Image Builder image ARN (x.x.x wildcards allowed) must name an image that exists
    and is of the recipe's kind (AMI for image recipes, DOCKER for container recipes).
    Anything else (a managed parent image name or path, an AMI id, `ssm:...`, a registry
    image URI) is a free-form local reference that the build resolves when it launches."""
    reference = reference.strip()
    if not reference:
        raise errors.invalid("parentImage must not be empty")
    if not reference.startswith("arn:"):
        return ParentImage(reference)
    if ":imagebuilder:" not in reference.split("/", 1)[0]:
        raise errors.invalid(f"parentImage {reference!r} is an ARN but not an Image Builder image ARN")
    arn = arns.parse(reference)
    if arn.kind != "image":
        raise errors.invalid(f"parentImage {reference!r} is a {arn.kind} ARN; give an image ARN")
    try:
        rec = resolve(ctx, "image", reference)
    except ApiError as exc:
        raise errors.invalid(f"parentImage {reference!r} does not name an image that exists: {exc.message}") from None
    body = rec.body
    status = (body.get("state") or {}).get("status")
    if status in _NO_IMAGE:
        raise errors.invalid(f"parentImage {rec.arn} is {status} and cannot be built on")
    image_type = body.get("type")
    if image_type and image_type != expect_type:
        what = "a container image" if image_type == "DOCKER" else "a machine image"
        raise errors.invalid(f"parentImage {rec.arn} is {what}; this recipe needs a {expect_type} parent")
    return ParentImage(reference, rec.arn, body.get("platform"), body.get("osVersion"), image_type)


@dataclass(frozen=True)
class ComponentRef:
    arn: str
    owner: str
    name: str
    platform: str | None
    parameters: tuple[dict[str, Any], ...]


def _managed_component(ctx: RequestContext, arn: arns.Arn) -> ComponentRef | None:
    """Built-in components that ship with the engine, for when the store holds no copy."""
    found = managed_component(arn.name)
    if found is None or not (arn.version == found.version or versions.matches(arn.version, found.version)):
        return None
    if arn.build not in (None, 1):
        return None
    summary = documents.summarize_component(found.data(), found.name)
    build_arn = str(arns.Arn(ctx.region, arns.MANAGED_ACCOUNT, "component", found.name, found.version, 1))
    return ComponentRef(build_arn, arns.MANAGED_ACCOUNT, found.name, found.platform, summary.parameters)


def _component(ctx: RequestContext, arn_text: str) -> ComponentRef:
    arn = arns.parse(arn_text, "component")
    if not arn.version:
        raise errors.invalid(f"component {arn_text} names no version; give one such as 1.0.0, 1.x.x or x.x.x")
    try:
        rec = resolve(ctx, "component", arn_text)
    except ApiError as exc:
        managed = _managed_component(ctx, arn) if arn.account == arns.MANAGED_ACCOUNT else None
        if managed is None:
            raise errors.invalid(f"component {arn_text} does not exist: {exc.message}") from None
        return managed
    status = (rec.body.get("state") or {}).get("status")
    if status in _RETIRED:
        raise errors.invalid(f"component {rec.arn} is {status} and cannot be added to a new recipe")
    return ComponentRef(
        rec.arn, rec.account, rec.name, rec.body.get("platform"), tuple(rec.body.get("parameters") or ())
    )


def check_components(ctx: RequestContext, configs: list[dict[str, Any]] | None, platform: str | None) -> str | None:
    """Every component must exist (wildcards resolve to the newest usable build), appear once,
    run on the recipe's platform and get exactly the parameters it declares, including every
    one without a default. Returns the platform the components agree on (or the given one)."""
    seen: dict[tuple[str, str], str] = {}
    for i, config in enumerate(configs or []):
        ref = _component(ctx, config["componentArn"])
        where = f"components[{i}] {config['componentArn']}"
        if (ref.owner, ref.name) in seen:
            raise errors.invalid(
                f"{where}: component {ref.name} is already in this recipe as {seen[(ref.owner, ref.name)]}; "
                "each component may appear only once, whatever its version"
            )
        seen[(ref.owner, ref.name)] = config["componentArn"]
        if ref.platform:
            if platform is None:
                platform = ref.platform
            elif ref.platform != platform:
                raise errors.invalid(f"{where} is a {ref.platform} component but the recipe builds for {platform}")
        _check_parameters(where, ref, config.get("parameters") or [])
    return platform


def _check_parameters(where: str, ref: ComponentRef, given: list[dict[str, Any]]) -> None:
    declared = {p["name"]: p for p in ref.parameters}
    names = [p["name"] for p in given]
    for name in names:
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise errors.invalid(f"{where}: parameter {name!r} is not declared by {ref.arn} (it declares: {known})")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise errors.invalid(f"{where}: parameter {dupes[0]!r} is given more than once")
    missing = [n for n, p in declared.items() if p.get("defaultValue") is None and n not in names]
    if missing:
        raise errors.invalid(
            f"{where}: {ref.arn} needs a value for parameter(s) without a default: {', '.join(missing)}"
        )


def check_block_devices(mappings: list[dict[str, Any]] | None, what: str = "blockDeviceMappings") -> None:
    """Device names are unique; a suppressed device (noDevice) carries no volume; IOPS and
    throughput only where the volume type takes them."""
    names: set[str] = set()
    for i, m in enumerate(mappings or []):
        where = f"{what}[{i}]"
        device = m.get("deviceName")
        if not device:
            raise errors.invalid(f"{where} needs a deviceName")
        if device in names:
            raise errors.invalid(f"{where}: device {device} is mapped more than once")
        names.add(device)
        ebs = m.get("ebs")
        if "noDevice" in m and (ebs or m.get("virtualName")):
            raise errors.invalid(f"{where}: noDevice suppresses {device}, so it takes no ebs or virtualName")
        if ebs:
            vtype = ebs.get("volumeType")
            if ebs.get("iops") is not None and vtype not in ("io1", "io2", "gp3"):
                raise errors.invalid(
                    f"{where}: iops applies only to io1, io2 and gp3 volumes, not {vtype or 'default'}"
                )
            if ebs.get("throughput") is not None and vtype != "gp3":
                raise errors.invalid(f"{where}: throughput applies only to gp3 volumes")


def check_repository_name(name: str, where: str) -> None:
    """A repository in the configured OCI registry: a name with an optional namespace path,
    never a registry host (the registry is the server's, not the caller's choice)."""
    first = name.split("/", 1)[0]
    if "/" in name and ("." in first or ":" in first or first == "localhost"):
        raise errors.invalid(f"{where}: give the repository name only, without a registry host ({name!r})")
    if not _DOCKER_NAME.match(name):
        raise errors.invalid(
            f"{where}: {name!r} is not a valid repository name (lowercase letters, digits and . _ - separators, "
            "path components joined by /)"
        )


def pipelines_using(ctx: RequestContext, field: str, arn_text: str, *, versioned: bool = False) -> list[str]:
    """Image pipelines of this account whose `field` names this resource (for versioned
    resources also through a wildcard version that matches it)."""
    target = arns.parse(arn_text) if versioned else None
    users = []
    for pipeline in ctx.tx.find("image-pipeline", accounts=[ctx.account]):
        ref = pipeline.body.get(field)
        if not ref:
            continue
        if ref == arn_text:
            users.append(pipeline.arn)
        elif target is not None:
            try:
                other = arns.parse(ref)
            except ApiError:
                continue
            if (other.type, other.account, other.name) == (target.type, target.account, target.name) and (
                versions.matches(other.version, target.version)
            ):
                users.append(pipeline.arn)
    return users
