"""Container recipes: create, get, list, delete and resource policies.

Like image recipes they are immutable and versioned without a build number. The Dockerfile
template is read once (inline or from a uri) and stored; its placeholders are expanded by
the container build (see docs on `{{{ imagebuilder:parentImage }}}` and friends).
"""

from __future__ import annotations

import re
from typing import Any

from engine import documents
from engine.api import errors
from engine.api.context import RequestContext
from engine.api.errors import ApiError
from engine.api.registry import operation
from engine.resources import arns, filters, paging, policies, recipes
from engine.resources.common import listed, owned, public, refuse_if_used, resolve
from engine.store import Record
from engine.store.db import now_iso

KIND = "container-recipe"
DEFAULT_PLATFORM = "Linux"
MAX_TEMPLATE = 16000  # what dockerfileTemplateData takes inline; a uri may not bring more

PLACEHOLDERS = ("parentImage", "environments", "components")
_PLACEHOLDER = re.compile(r"\{\{\{\s*imagebuilder:([A-Za-z0-9_]+)\s*\}\}\}")
_FROM = re.compile(r"^\s*FROM\s+\S", re.IGNORECASE | re.MULTILINE)


def _template(ctx: RequestContext, params: dict[str, Any]) -> str:
    data, uri = params.get("dockerfileTemplateData"), params.get("dockerfileTemplateUri")
    if (data is None) == (uri is None):
        # CreateContainerRecipe declares no InvalidParameterCombinationException.
        raise errors.invalid("give exactly one of dockerfileTemplateData and dockerfileTemplateUri")
    if uri is not None:
        text = documents.fetch_uri(uri, ctx.config.s3_endpoint_url or None)
        if not text.strip():
            raise errors.invalid(f"the Dockerfile template at {uri} is empty")
        if len(text) > MAX_TEMPLATE:
            raise errors.invalid(f"the Dockerfile template at {uri} is {len(text)} characters; at most {MAX_TEMPLATE}")
        return text
    assert data is not None
    return str(data)


def check_template(template: str, has_components: bool) -> None:
    """The template must build FROM something; only the documented placeholders may appear;
    components run only where the template stages (environments) and then runs them."""
    found = [m.group(1) for m in _PLACEHOLDER.finditer(template)]
    unknown = sorted({p for p in found if p not in PLACEHOLDERS})
    if unknown:
        raise errors.invalid(
            f"the Dockerfile template uses unknown placeholder(s) {', '.join('imagebuilder:' + u for u in unknown)}; "
            f"known: {', '.join('{{{ imagebuilder:' + p + ' }}}' for p in PLACEHOLDERS)}"
        )
    if not _FROM.search(template):
        raise errors.invalid(
            "the Dockerfile template has no FROM instruction; start it with FROM {{{ imagebuilder:parentImage }}}"
        )
    if "components" in found:
        if "environments" not in found:
            raise errors.invalid(
                "the Dockerfile template runs {{{ imagebuilder:components }}} but never stages them: "
                "put {{{ imagebuilder:environments }}} before it"
            )
        if found.index("environments") > found.index("components"):
            raise errors.invalid(
                "in the Dockerfile template {{{ imagebuilder:environments }}} must come before "
                "{{{ imagebuilder:components }}}"
            )
    elif has_components:
        raise errors.invalid(
            "the recipe has components but its Dockerfile template has no {{{ imagebuilder:components }}} "
            "placeholder, so they would never run"
        )


@operation("CreateContainerRecipe")
def create_container_recipe(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    name = params["name"]
    norm = arns.normalize_name(name)
    version = recipes.assign_version(ctx, KIND, norm, params["semanticVersion"])
    existing = ctx.tx.find(KIND, accounts=[ctx.account], name=norm, version=version)
    if existing:
        raise ApiError(
            "ResourceAlreadyExistsException",
            f"container recipe {name} {version} already exists ({existing[0].arn}); recipes cannot change, "
            "create a new version instead",
        )
    parent = recipes.parent_image(ctx, params["parentImage"], expect_type="DOCKER")
    override = params.get("platformOverride")
    if parent.image_arn is not None:
        # The parent's own record says what it is; overriding that would only contradict it.
        if override is not None:
            raise errors.invalid("platformOverride applies only to registry parent images, not Image Builder images")
        if params.get("imageOsVersionOverride") is not None:
            raise errors.invalid(
                "imageOsVersionOverride applies only to registry parent images; the OS version comes from "
                f"{parent.image_arn}"
            )
    if override == "macOS":
        raise errors.invalid("container recipes support the Linux and Windows platforms only")
    platform = recipes.check_components(ctx, params.get("components"), override or parent.platform) or DEFAULT_PLATFORM
    repository = params["targetRepository"]
    recipes.check_repository_name(repository["repositoryName"], "targetRepository.repositoryName")
    instance = params.get("instanceConfiguration") or {}
    recipes.check_block_devices(instance.get("blockDeviceMappings"), "instanceConfiguration.blockDeviceMappings")
    template = _template(ctx, params)
    check_template(template, bool(params.get("components")))
    arn = arns.build(ctx.region, ctx.account, KIND, name, version)
    created = now_iso()
    body: dict[str, Any] = {
        "arn": arn,
        "containerType": params["containerType"],
        "name": name,
        "description": params.get("description"),
        "platform": platform,
        "owner": ctx.account,
        "version": version,
        "components": params.get("components"),
        "instanceConfiguration": params.get("instanceConfiguration"),
        "dockerfileTemplateData": template,
        "kmsKeyId": params.get("kmsKeyId"),
        "encrypted": True,
        "parentImage": params["parentImage"],
        "dateCreated": created,
        "tags": params.get("tags") or {},
        "workingDirectory": params.get("workingDirectory"),
        "targetRepository": repository,
        "_parentImageArn": parent.image_arn,
        "_imageOsVersion": params.get("imageOsVersionOverride") or parent.os_version,
    }
    ctx.tx.insert(
        Record(arn=arn, kind=KIND, account=ctx.account, name=norm, version=version, body=body, created=created)
    )
    return {
        "clientToken": params["clientToken"],
        "containerRecipeArn": arn,
        "latestVersionReferences": recipes.latest_references(arn),
    }


@operation("GetContainerRecipe")
def get_container_recipe(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    rec = resolve(ctx, KIND, params["containerRecipeArn"])
    return {"containerRecipe": public(rec.body), "latestVersionReferences": recipes.latest_references(rec.arn)}


def _summary(rec: Record) -> dict[str, Any]:
    b = rec.body
    return {
        "arn": rec.arn,
        "containerType": b.get("containerType"),
        "name": b["name"],
        "platform": b.get("platform"),
        "owner": b.get("owner"),
        "parentImage": b.get("parentImage"),
        "dateCreated": rec.created,
        "instanceImage": (b.get("instanceConfiguration") or {}).get("image"),
        "tags": b.get("tags"),
        "_norm": rec.name,
    }


# The filters ListContainerRecipes documents: containerType, name, parentImage, platform.
_FILTERS: dict[str, filters.Getter] = {
    "containerType": lambda i: i.get("containerType"),
    "name": lambda i: [i["name"], i["_norm"]],
    "parentImage": lambda i: i.get("parentImage"),
    "platform": lambda i: i.get("platform"),
}


@operation("ListContainerRecipes")
def list_container_recipes(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    owner = params.get("owner")
    if owner not in (None, "Self", "Shared", "Amazon"):
        raise errors.invalid(f"owner {owner!r}: container recipes are owned by Self, Shared or Amazon")
    records = listed(ctx, KIND, owner)
    entries = filters.apply([_summary(r) for r in records], params.get("filters"), _FILTERS)
    chunk, token = paging.page(entries, params)
    return {"containerRecipeSummaryList": chunk, "nextToken": token}


def _own(ctx: RequestContext, arn_text: str) -> Record:
    return owned(ctx, resolve(ctx, KIND, arn_text, allow_wildcard=False))


@operation("DeleteContainerRecipe")
def delete_container_recipe(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    rec = _own(ctx, params["containerRecipeArn"])
    users = recipes.pipelines_using(ctx, "containerRecipeArn", rec.arn, versioned=True)
    refuse_if_used(rec.arn, users)
    ctx.tx.delete(rec.arn)
    return {"containerRecipeArn": rec.arn}


@operation("PutContainerRecipePolicy")
def put_container_recipe_policy(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    rec = _own(ctx, params["containerRecipeArn"])
    policies.put(ctx, rec, params["policy"])
    return {"containerRecipeArn": rec.arn}


@operation("GetContainerRecipePolicy")
def get_container_recipe_policy(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    return {"policy": policies.get(ctx, resolve(ctx, KIND, params["containerRecipeArn"], allow_wildcard=False))}
