"""Seed the built-in (Amazon-managed) components, workflows and parent images into the store at
server start.

They live in the reserved account "aws", so their ARNs read like Image Builder's own
(arn:aws:imagebuilder:REGION:aws:component/update-linux/1.0.0/1) and callers list them with
owner Amazon. Seeding is idempotent: a document already stored with the same content is left
alone, a changed document becomes a new build of the same version (what CreateComponent and
CreateWorkflow do), so references that pin an older build keep working.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy.exc

from engine.api.context import RequestContext
from engine.api.errors import ApiError
from engine.resources import arns
from engine.settings import Config
from engine.store import Record, Store, Tx
from workers.parent_images import DEFAULT_TAG

log = logging.getLogger("imagebuilder.managed")

OWNER = "Amazon"


#: The offline Debian base (`imagebuilder parent-image bootstrap`, deploy/host-setup.sh) as a
#: managed container image, so recipes can name it by ARN like one of Image Builder's own.
PARENT_IMAGE_NAME = "debian-12-container"
PARENT_IMAGE_VERSION = "12.0.0"
#: The offline bootable Debian qcow2 (`imagebuilder parent-image bootstrap --vm`) as a managed
#: machine image; each libvirt worker makes or reuses it from its cache when a build needs it.
VM_PARENT_IMAGE_NAME = "debian-12"
VM_PARENT_DISK = "vm-parent:debian-12"


def parent_image_arn(region: str, name: str = PARENT_IMAGE_NAME) -> str:
    """The version-wildcard ARN users write as a recipe's parentImage."""
    return arns.build(region, arns.MANAGED_ACCOUNT, "image", name, "x.x.x")


@dataclass(frozen=True)
class Seeded:
    components: list[str]
    workflows: list[str]
    images: list[str] = field(default_factory=list)


def _ctx(config: Config, store: Store, tx: Tx) -> RequestContext:
    from engine.api.services import Services

    return RequestContext(
        operation="SeedManagedResources",
        account=arns.MANAGED_ACCOUNT,
        region=config.region,
        tx=tx,
        config=config,
        services=Services(config=config, store=store),
        request_id=str(uuid.uuid4()),
    )


def _current(tx: Tx, kind: str, name: str, version: str) -> Record | None:
    found = tx.find(kind, accounts=[arns.MANAGED_ACCOUNT], name=arns.normalize_name(name), version=version)
    return found[-1] if found else None


def _component_sources() -> list[tuple[str, str, str, str]]:
    """(name, version, platform, text) of each built-in component; none if the package is absent."""
    try:
        from components.managed import managed_components
    except ImportError:
        return []
    return [(c.name, c.version, c.platform, c.data()) for c in managed_components()]


def _workflow_sources() -> list[tuple[str, str, str, str, str]]:
    """(name, version, type, description, text) of each managed workflow."""
    try:
        from engine.workflow_docs.managed import MANAGED_WORKFLOWS
    except ImportError:
        return []
    return [(w.name, w.version, w.type.value, w.description, w.text()) for w in MANAGED_WORKFLOWS]


def _seed_components(ctx: RequestContext) -> list[str]:
    from engine.api.handlers.components import create_version

    created = []
    for name, version, platform, text in _component_sources():
        current = _current(ctx.tx, "component", name, version)
        if current is not None and current.body.get("_digest") == hashlib.sha256(text.encode()).hexdigest():
            continue
        try:
            arn = create_version(ctx, {"name": name, "semanticVersion": version, "platform": platform}, text, None)
        except ApiError as exc:
            # A broken built-in must not keep the API from starting; it is simply not offered.
            log.error("managed component %s is not valid and was not loaded: %s", name, exc.message)
            continue
        rec = ctx.tx.get(arn)
        assert rec is not None
        ctx.tx.update(rec.with_body({**rec.body, "owner": OWNER}))
        created.append(arn)
    return created


def _seed_workflows(ctx: RequestContext) -> list[str]:
    from engine.api.handlers.workflows import parse_document, store_version

    created = []
    for name, version, wtype, description, text in _workflow_sources():
        current = _current(ctx.tx, "workflow", name, version)
        if current is not None and current.body.get("_digest") == hashlib.sha256(text.encode()).hexdigest():
            continue
        try:
            doc = parse_document(text, wtype, inline=False)
        except ApiError as exc:
            log.error("managed workflow %s is not valid and was not loaded: %s", name, exc.message)
            continue
        rec = store_version(
            ctx,
            account=arns.MANAGED_ACCOUNT,
            name=name,
            version=version,
            workflow_type=wtype,
            data=text,
            doc=doc,
            description=description,
            owner=OWNER,
        )
        created.append(rec.arn)
    return created


def _parent_image_bodies(region: str) -> list[dict[str, Any]]:
    common = {"platform": "Linux", "osVersion": "Debian 12", "state": {"status": "AVAILABLE"}, "owner": OWNER,
              "buildType": "IMPORT", "imageSource": "AMAZON_MANAGED", "tags": {}}  # fmt: skip
    return [
        {
            **common,
            "name": PARENT_IMAGE_NAME,
            "type": "DOCKER",
            "description": "Debian 12 minbase, debootstrapped offline and imported as a Docker image",
            "outputResources": {"containers": [{"region": region, "imageUris": [DEFAULT_TAG]}]},
        },
        {
            **common,
            "name": VM_PARENT_IMAGE_NAME,
            "type": "AMI",
            "description": "Debian 12 with a kernel, systemd, sshd and cloud-init, debootstrapped offline "
            "into a bootable qcow2",
            "outputResources": {
                "amis": [
                    {
                        "region": region,
                        "image": "ami-0debian12offline",
                        "name": "debian-12",
                        "state": {"status": "AVAILABLE"},
                        "accountId": arns.MANAGED_ACCOUNT,
                        "_disk": VM_PARENT_DISK,
                    }
                ]
            },
        },
    ]


def _seed_images(ctx: RequestContext) -> list[str]:
    """The managed parent image records; a changed body becomes a new build of its version."""
    created = []
    for body in _parent_image_bodies(ctx.region):
        name = body["name"]
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        current = _current(ctx.tx, "image", name, PARENT_IMAGE_VERSION)
        if current is not None and current.body.get("_digest") == digest:
            continue
        norm = arns.normalize_name(name)
        build_no = ctx.tx.next_build("image", arns.MANAGED_ACCOUNT, norm, PARENT_IMAGE_VERSION)
        arn = arns.build(ctx.region, arns.MANAGED_ACCOUNT, "image", name, PARENT_IMAGE_VERSION, build_no)
        record = ctx.tx.insert(
            Record(
                arn=arn,
                kind="image",
                account=arns.MANAGED_ACCOUNT,
                name=norm,
                version=PARENT_IMAGE_VERSION,
                build=build_no,
                body={**body, "arn": arn, "version": f"{PARENT_IMAGE_VERSION}/{build_no}", "_digest": digest},
            )
        )
        ctx.tx.update(record.with_body({**record.body, "dateCreated": record.created}))
        created.append(arn)
    return created


def seed(config: Config, store: Store) -> Seeded:
    """Bring the managed resources in the store up to date with the shipped documents."""
    for attempt in range(8):
        try:
            with store.transaction(write=True) as tx:
                ctx = _ctx(config, store, tx)
                result = Seeded(_seed_components(ctx), _seed_workflows(ctx), _seed_images(ctx))
            break
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError):
            # Several server workers start at once; the one that lost the race sees the winner's rows.
            if attempt == 7:
                raise
            time.sleep(0.05 * (attempt + 1))
    loaded = result.components + result.workflows + result.images
    if loaded:
        log.info("managed resources loaded: %s", ", ".join(loaded))
    return result
