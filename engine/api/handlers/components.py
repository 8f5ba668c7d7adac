"""Components: create (inline data, uri, import from a shell script), get, list, delete,
build versions and resource policies."""

from __future__ import annotations

from typing import Any

from engine import documents
from engine.api.context import RequestContext
from engine.api.errors import ApiError
from engine.api.registry import operation
from engine.resources import arns, filters, paging, policies, versions
from engine.resources.common import listing, owned, public, readable, refuse_if_used, resolve, visible_accounts
from engine.store import Record

KIND = "component"


def _document(ctx: RequestContext, params: dict[str, Any]) -> str:
    data, uri = params.get("data"), params.get("uri")
    if (data is None) == (uri is None):
        raise ApiError("InvalidParameterCombinationException", "give exactly one of data and uri")
    if uri is not None:
        return documents.fetch_uri(uri, ctx.config.s3_endpoint_url or None)
    assert data is not None
    return str(data)


def create_version(ctx: RequestContext, params: dict[str, Any], data: str, component_type: str | None) -> str:
    """Store a component build; the same name and version with other content is a new build,
    with identical content it already exists."""
    name, version = params["name"], params["semanticVersion"]
    versions.check(version)
    summary = documents.summarize_component(data, name)
    if component_type is None:
        component_type = "TEST" if set(summary.phases) <= {"test"} else "BUILD"
    norm = arns.normalize_name(name)
    existing = ctx.tx.find(KIND, accounts=[ctx.account], name=norm, version=version)
    for rec in existing:
        if rec.body.get("_digest") == summary.digest and ctx.operation == "CreateComponent":
            raise ApiError(
                "ResourceAlreadyExistsException",
                f"component {name} {version} already exists with this content: {rec.arn}",
            )
    build_no = ctx.tx.next_build(KIND, ctx.account, norm, version)
    arn = arns.build(ctx.region, ctx.account, KIND, name, version, build_no)
    body: dict[str, Any] = {
        "arn": arn,
        "name": name,
        "version": version,
        "description": params.get("description"),
        "changeDescription": params.get("changeDescription"),
        "type": component_type,
        "platform": params["platform"],
        "supportedOsVersions": params.get("supportedOsVersions"),
        "state": {"status": "ACTIVE"},
        "parameters": list(summary.parameters) or None,
        "owner": ctx.account,
        "data": data,
        "kmsKeyId": params.get("kmsKeyId"),
        "encrypted": True,
        "tags": params.get("tags") or {},
        "obfuscate": False,
        "_digest": summary.digest,
    }
    ctx.tx.insert(
        Record(arn=arn, kind=KIND, account=ctx.account, name=norm, version=version, build=build_no, body=body)
    )
    return arn


@operation("CreateComponent")
def create_component(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    data = _document(ctx, params)
    arn = create_version(ctx, params, data, None)
    return {"clientToken": params["clientToken"], "componentBuildVersionArn": arn}


@operation("ImportComponent")
def import_component(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    script = _document(ctx, params)
    data = documents.shell_to_component(script, params["type"], params["name"])
    arn = create_version(ctx, params, data, params["type"])
    return {"clientToken": params["clientToken"], "componentBuildVersionArn": arn}


@operation("GetComponent")
def get_component(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    rec = resolve(ctx, KIND, params["componentBuildVersionArn"])
    return {"component": public(rec.body)}


def _version_entry(rec: Record) -> dict[str, Any]:
    b = rec.body
    return {
        "arn": arns.parse(rec.arn).version_arn(),
        "name": b["name"],
        "version": b["version"],
        "description": b.get("description"),
        "platform": b.get("platform"),
        "supportedOsVersions": b.get("supportedOsVersions"),
        "type": b.get("type"),
        "owner": b.get("owner"),
        "dateCreated": rec.created,
        "status": (b.get("state") or {}).get("status"),
        "productCodes": b.get("productCodes"),
    }


_FILTERS: dict[str, filters.Getter] = {
    "name": lambda i: i["name"],
    "platform": lambda i: i.get("platform"),
    "supportedOsVersion": lambda i: i.get("supportedOsVersions") or [],
    "type": lambda i: i.get("type"),
    "version": lambda i: i.get("version"),
}


@operation("ListComponents")
def list_components(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """The newest build of each version (of each name, with byName), walked in key order so a
    page costs the same at any depth."""
    accounts, shown = listing(ctx, KIND, params.get("owner"))
    keep = filters.matcher(params.get("filters"), _FILTERS)

    def convert(rec: Record) -> dict[str, Any] | None:
        if not shown(rec):
            return None
        entry = _version_entry(rec)
        return entry if keep(entry) else None

    def group(rec: Record) -> tuple[str, ...]:
        return (rec.account, rec.name) if params.get("byName") else (rec.account, rec.name, rec.version)

    chunk, token = paging.keyset_page(
        lambda after, limit: ctx.tx.scan(KIND, accounts, after, limit), params, convert, group
    )
    return {"componentVersionList": chunk, "nextToken": token}


@operation("ListComponentBuildVersions")
def list_component_build_versions(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    version_arn = params.get("componentVersionArn")
    if version_arn:
        arn = arns.parse(version_arn, KIND)
        records = [
            r
            for r in ctx.tx.find(KIND, accounts=[arn.account], name=arn.name)
            if readable(r, visible_accounts(ctx)) and versions.matches(arn.version, r.version)
        ]
    else:
        records = ctx.tx.find(KIND, accounts=[ctx.account])
    summaries = []
    for rec in records:
        b = rec.body
        summaries.append(
            {
                "arn": rec.arn,
                "name": b["name"],
                "version": b["version"],
                "platform": b.get("platform"),
                "supportedOsVersions": b.get("supportedOsVersions"),
                "state": b.get("state"),
                "type": b.get("type"),
                "owner": b.get("owner"),
                "description": b.get("description"),
                "changeDescription": b.get("changeDescription"),
                "dateCreated": rec.created,
                "tags": b.get("tags"),
                "publisher": b.get("publisher"),
                "obfuscate": b.get("obfuscate"),
            }
        )
    summaries = filters.apply(summaries, params.get("filters"), _FILTERS)
    chunk, token = paging.page(summaries, params)
    return {"componentSummaryList": chunk, "nextToken": token}


@operation("DeleteComponent")
def delete_component(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    arn_text = params["componentBuildVersionArn"]
    rec = owned(ctx, resolve(ctx, KIND, arn_text, allow_wildcard=False))
    refuse_if_used(rec.arn, components_users(ctx, rec), by="recipe(s)")
    ctx.tx.delete(rec.arn)
    return {"componentBuildVersionArn": rec.arn}


def components_users(ctx: RequestContext, rec: Record) -> list[str]:
    """Recipes whose component list names this build, its version or a wildcard matching it."""
    users = []
    for kind in ("image-recipe", "container-recipe"):
        for recipe in ctx.tx.find(kind, accounts=[ctx.account]):
            for comp in recipe.body.get("components") or []:
                ref = arns.parse(comp["componentArn"])
                if ref.name != rec.name or ref.account != rec.account:
                    continue
                if ref.build is not None and ref.build != rec.build:
                    continue
                if ref.version == rec.version or versions.matches(ref.version, rec.version):
                    users.append(recipe.arn)
    return users


@operation("PutComponentPolicy")
def put_component_policy(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    rec = resolve(ctx, KIND, params["componentArn"], allow_wildcard=False)
    policies.put(ctx, rec, params["policy"])
    return {"componentArn": rec.arn}


@operation("GetComponentPolicy")
def get_component_policy(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    return {"policy": policies.get(ctx, resolve(ctx, KIND, params["componentArn"], allow_wildcard=False))}
