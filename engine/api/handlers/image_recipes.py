"""Image recipes: create, get, list, delete and resource policies.

Recipes are immutable and versioned without a build number (image-recipe/NAME/VERSION, as
the model's ImageRecipeArn pattern has it): one name and version is one recipe.
"""

from __future__ import annotations

from typing import Any

from engine.api import errors
from engine.api.context import RequestContext
from engine.api.errors import ApiError
from engine.api.registry import operation
from engine.resources import arns, filters, paging, policies, recipes
from engine.resources.common import listed, owned, public, refuse_if_used, resolve
from engine.store import Record
from engine.store.db import now_iso

KIND = "image-recipe"
DEFAULT_PLATFORM = "Linux"


def _check_instance_configuration(extra: dict[str, Any] | None, platform: str) -> None:
    if extra and extra.get("systemsManagerAgent") is not None and platform == "Windows":
        raise errors.invalid(
            "additionalInstanceConfiguration.systemsManagerAgent applies to Linux and macOS build instances only; "
            "this recipe builds a Windows image"
        )


@operation("CreateImageRecipe")
def create_image_recipe(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    name = params["name"]
    norm = arns.normalize_name(name)
    version = recipes.assign_version(ctx, KIND, norm, params["semanticVersion"])
    existing = ctx.tx.find(KIND, accounts=[ctx.account], name=norm, version=version)
    if existing:
        raise ApiError(
            "ResourceAlreadyExistsException",
            f"image recipe {name} {version} already exists ({existing[0].arn}); recipes cannot change, "
            "create a new version instead",
        )
    parent = recipes.parent_image(ctx, params["parentImage"], expect_type="AMI")
    # A free-form parent tells us nothing about the OS: the components decide, else Linux.
    platform = recipes.check_components(ctx, params.get("components"), parent.platform) or DEFAULT_PLATFORM
    recipes.check_block_devices(params.get("blockDeviceMappings"))
    _check_instance_configuration(params.get("additionalInstanceConfiguration"), platform)
    arn = arns.build(ctx.region, ctx.account, KIND, name, version)
    body: dict[str, Any] = {
        "arn": arn,
        "type": "AMI",
        "name": name,
        "description": params.get("description"),
        "platform": platform,
        "owner": ctx.account,
        "version": version,
        "components": params.get("components"),
        "parentImage": params["parentImage"],
        "blockDeviceMappings": params.get("blockDeviceMappings"),
        "tags": params.get("tags") or {},
        "workingDirectory": params.get("workingDirectory"),
        "additionalInstanceConfiguration": params.get("additionalInstanceConfiguration"),
        "amiTags": params.get("amiTags"),
        "amiWatermarks": params.get("amiWatermarks"),
        "dateCreated": now_iso(),
        # What the parent resolved to at create time; builds resolve wildcards again.
        "_parentImageArn": parent.image_arn,
        "_parentOsVersion": parent.os_version,
    }
    created = body["dateCreated"]
    ctx.tx.insert(
        Record(arn=arn, kind=KIND, account=ctx.account, name=norm, version=version, body=body, created=created)
    )
    return {
        "clientToken": params["clientToken"],
        "imageRecipeArn": arn,
        "latestVersionReferences": recipes.latest_references(arn),
    }


@operation("GetImageRecipe")
def get_image_recipe(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    rec = resolve(ctx, KIND, params["imageRecipeArn"])
    return {"imageRecipe": public(rec.body), "latestVersionReferences": recipes.latest_references(rec.arn)}


def _summary(rec: Record) -> dict[str, Any]:
    b = rec.body
    return {
        "arn": rec.arn,
        "name": b["name"],
        "platform": b.get("platform"),
        "owner": b.get("owner"),
        "parentImage": b.get("parentImage"),
        "dateCreated": rec.created,
        "tags": b.get("tags"),
        "_norm": rec.name,
    }


# The filters ListImageRecipes documents: name, parentImage, platform.
_FILTERS: dict[str, filters.Getter] = {
    "name": lambda i: [i["name"], i["_norm"]],
    "parentImage": lambda i: i.get("parentImage"),
    "platform": lambda i: i.get("platform"),
}


@operation("ListImageRecipes")
def list_image_recipes(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    records = listed(ctx, KIND, params.get("owner"))
    entries = filters.apply([_summary(r) for r in records], params.get("filters"), _FILTERS)
    chunk, token = paging.page(entries, params)
    return {"imageRecipeSummaryList": chunk, "nextToken": token}


def _own(ctx: RequestContext, arn_text: str) -> Record:
    return owned(ctx, resolve(ctx, KIND, arn_text, allow_wildcard=False))


@operation("DeleteImageRecipe")
def delete_image_recipe(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    rec = _own(ctx, params["imageRecipeArn"])
    users = recipes.pipelines_using(ctx, "imageRecipeArn", rec.arn, versioned=True)
    refuse_if_used(rec.arn, users)
    ctx.tx.delete(rec.arn)
    return {"imageRecipeArn": rec.arn}


@operation("PutImageRecipePolicy")
def put_image_recipe_policy(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    rec = _own(ctx, params["imageRecipeArn"])
    policies.put(ctx, rec, params["policy"])
    return {"imageRecipeArn": rec.arn}


@operation("GetImageRecipePolicy")
def get_image_recipe_policy(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    return {"policy": policies.get(ctx, resolve(ctx, KIND, params["imageRecipeArn"], allow_wildcard=False))}
