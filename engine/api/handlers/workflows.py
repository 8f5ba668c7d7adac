"""Workflows: create (inline data or uri), get, list, build versions, delete; and the checks
that CreateImage and image pipelines apply to the workflows they attach."""

from __future__ import annotations

import hashlib
from typing import Any

from engine import documents
from engine.api import errors
from engine.api.context import RequestContext
from engine.api.errors import ApiError
from engine.api.registry import operation
from engine.resources import arns, filters, paging, versions
from engine.resources.common import owner_accounts, public, resolve
from engine.store import Record
from engine.workflow_docs import WorkflowDocument, WorkflowDocumentError, bind_parameters, parse_workflow
from engine.workflow_docs.runtime import parameter_details

KIND = "workflow"
#: The ARN type segment for each workflow type: workflow/build/NAME/...
TYPE_PATHS = {"BUILD": "workflow/build", "TEST": "workflow/test", "DISTRIBUTION": "workflow/distribution"}
MAX_WORKFLOWS = 10


def latest_references(version_arn: str, version: str) -> dict[str, str]:
    """Wildcard ARNs that always name the newest version overall and within this version's
    major, minor and patch (LatestVersionReferences)."""
    base = version_arn.rsplit("/", 1)[0]
    major, minor, patch = version.split(".")
    return {
        "latestVersionArn": f"{base}/x.x.x",
        "latestMajorVersionArn": f"{base}/{major}.x.x",
        "latestMinorVersionArn": f"{base}/{major}.{minor}.x",
        "latestPatchVersionArn": f"{base}/{major}.{minor}.{patch}",
    }


def parse_document(text: str, workflow_type: str, *, inline: bool) -> WorkflowDocument:
    try:
        # Documents from a uri may exceed the 16,000 characters inline data is limited to.
        return parse_workflow(text, workflow_type, max_chars=None if not inline else 16_000)
    except WorkflowDocumentError as exc:
        raise errors.invalid(f"the workflow document is not valid: {exc}") from None


def store_version(
    ctx: RequestContext,
    *,
    account: str,
    name: str,
    version: str,
    workflow_type: str,
    data: str,
    doc: WorkflowDocument,
    description: str | None = None,
    change_description: str | None = None,
    kms_key_id: str | None = None,
    tags: dict[str, str] | None = None,
    owner: str | None = None,
) -> Record:
    """A new build of a workflow version. Used by CreateWorkflow and by the managed seeding."""
    norm = arns.normalize_name(name)
    build_no = ctx.tx.next_build(KIND, account, norm, version)
    arn = arns.build(ctx.region, account, TYPE_PATHS[workflow_type], name, version, build_no)
    body: dict[str, Any] = {
        "arn": arn,
        "name": name,
        "version": version,
        "description": description,
        "changeDescription": change_description,
        "type": workflow_type,
        "owner": owner or account,
        "data": data,
        "kmsKeyId": kms_key_id,
        "tags": tags or {},
        "parameters": parameter_details(doc) or None,
        "_digest": hashlib.sha256(data.encode()).hexdigest(),
    }
    return ctx.tx.insert(
        Record(arn=arn, kind=KIND, account=account, name=norm, version=version, build=build_no, body=body)
    )


@operation("CreateWorkflow")
def create_workflow(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    data, uri = params.get("data"), params.get("uri")
    if (data is None) == (uri is None):
        raise ApiError("InvalidParameterCombinationException", "give exactly one of data and uri")
    text = str(data) if data is not None else documents.fetch_uri(str(uri), ctx.config.s3_endpoint_url or None)
    name, version, wtype = params["name"], params["semanticVersion"], params["type"]
    versions.check(version)
    doc = parse_document(text, wtype, inline=data is not None)
    norm = arns.normalize_name(name)
    digest = hashlib.sha256(text.encode()).hexdigest()
    existing = ctx.tx.find(KIND, accounts=[ctx.account], name=norm, version=version)
    for rec in existing:
        # One name is one workflow: its type is part of every build's ARN.
        if rec.body.get("type") != wtype:
            raise ApiError(
                "ResourceInUseException",
                f"workflow {name} {version} already exists as a {rec.body.get('type')} workflow ({rec.arn})",
            )
    if existing and existing[-1].body.get("_digest") == digest:
        raise ApiError(
            "ResourceAlreadyExistsException",
            f"workflow {name} {version} already exists with this content: {existing[-1].arn}",
        )
    rec = store_version(
        ctx,
        account=ctx.account,
        name=name,
        version=version,
        workflow_type=wtype,
        data=text,
        doc=doc,
        description=params.get("description"),
        change_description=params.get("changeDescription"),
        kms_key_id=params.get("kmsKeyId"),
        tags=params.get("tags"),
    )
    return {
        "clientToken": params["clientToken"],
        "workflowBuildVersionArn": rec.arn,
        "latestVersionReferences": latest_references(arns.parse(rec.arn).version_arn(), version),
    }


@operation("GetWorkflow")
def get_workflow(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    rec = resolve(ctx, KIND, params["workflowBuildVersionArn"])
    return {
        "workflow": {**public(rec.body), "dateCreated": rec.created},
        "latestVersionReferences": latest_references(arns.parse(rec.arn).version_arn(), rec.version),
    }


_FILTERS: dict[str, filters.Getter] = {
    "name": lambda i: i["name"],
    "version": lambda i: i.get("version"),
    "description": lambda i: i.get("description"),
    "type": lambda i: i.get("type"),
}


@operation("ListWorkflows")
def list_workflows(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    owner = params.get("owner") or "Self"
    if owner in ("Shared", "ThirdParty"):
        raise errors.invalid(f"owner {owner} is not accepted for workflows; use Self or Amazon")
    newest: dict[tuple[str, str, str], Record] = {}
    for rec in ctx.tx.find(KIND, accounts=owner_accounts(ctx, owner)):  # oldest first: the last build wins
        newest[(rec.account, rec.name, rec.version)] = rec
    entries = [
        {
            "arn": arns.parse(r.arn).version_arn(),
            "name": r.body["name"],
            "version": r.version,
            "description": r.body.get("description"),
            "type": r.body.get("type"),
            "owner": r.body.get("owner"),
            "dateCreated": r.created,
        }
        for r in newest.values()
    ]
    if params.get("byName"):
        if any(f.get("name") == "version" for f in params.get("filters") or []):
            raise errors.invalid("byName cannot be combined with the version filter")
        by_name: dict[tuple[str, str], dict[str, Any]] = {}
        for e in entries:  # ordered by version, so the newest version of each name stays
            by_name[(e["owner"], e["name"])] = e
        entries = list(by_name.values())
    entries = filters.apply(entries, params.get("filters"), _FILTERS)
    chunk, token = paging.page(entries, params)
    return {"workflowVersionList": chunk, "nextToken": token}


@operation("ListWorkflowBuildVersions")
def list_workflow_build_versions(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    version_arn = params.get("workflowVersionArn")
    if version_arn:
        arn = arns.parse(version_arn, KIND)
        if arn.account not in (ctx.account, arns.MANAGED_ACCOUNT):
            records = []
        else:
            records = [
                r
                for r in ctx.tx.find(KIND, accounts=[arn.account], name=arn.name)
                if (r.version == arn.version or versions.matches(arn.version, r.version))
                and arns.parse(r.arn).type == arn.type
            ]
    else:
        records = ctx.tx.find(KIND, accounts=[ctx.account])
    summaries = [
        {
            "arn": r.arn,
            "name": r.body["name"],
            "version": r.version,
            "description": r.body.get("description"),
            "changeDescription": r.body.get("changeDescription"),
            "type": r.body.get("type"),
            "owner": r.body.get("owner"),
            "state": r.body.get("state"),
            "dateCreated": r.created,
            "tags": r.body.get("tags"),
        }
        for r in records
    ]
    chunk, token = paging.page(summaries, params)
    return {"workflowSummaryList": chunk, "nextToken": token}


@operation("DeleteWorkflow")
def delete_workflow(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    rec = resolve(ctx, KIND, params["workflowBuildVersionArn"], allow_wildcard=False)
    if rec.account != ctx.account:
        raise ApiError("ForbiddenException", f"{rec.arn} is managed by Image Builder and cannot be deleted")
    users = workflow_users(ctx, rec)
    if users:
        raise ApiError("ResourceDependencyException", f"{rec.arn} is used by image pipeline {', '.join(users[:5])}")
    ctx.tx.delete(rec.arn)
    return {"workflowBuildVersionArn": rec.arn}


def references(ref_text: str, rec: Record) -> bool:
    """Does a workflow ARN (build, version or wildcard) name this workflow build?"""
    try:
        ref = arns.parse(ref_text)
    except ApiError:
        return False
    if ref.kind != KIND or ref.name != rec.name or ref.account != rec.account:
        return False
    if ref.build is not None and ref.build != rec.build:
        return False
    return ref.version == rec.version or versions.matches(ref.version, rec.version)


def workflow_users(ctx: RequestContext, rec: Record) -> list[str]:
    return [
        p.arn
        for p in ctx.tx.find("image-pipeline", accounts=[ctx.account])
        if any(references(w.get("workflowArn", ""), rec) for w in p.body.get("workflows") or [])
    ]


# --- workflows attached to an image build or a pipeline -----------------------------------------


def check_workflow_configurations(
    ctx: RequestContext, configs: list[dict[str, Any]] | None, execution_role: str | None
) -> None:
    """Each attached workflow must resolve and take the parameters given; the stage rules
    (one BUILD, one DISTRIBUTION, at most ten, parallel groups and onFailure on TEST only)
    hold; an execution role comes with them."""
    if not configs:
        return
    if len(configs) > MAX_WORKFLOWS:
        raise errors.invalid(f"at most {MAX_WORKFLOWS} workflows can be attached; got {len(configs)}")
    if not execution_role:
        raise errors.invalid("an executionRole is required when you provide workflows")
    counts: dict[str, int] = {}
    for i, config in enumerate(configs):
        where = f"workflows[{i}] ({config['workflowArn']})"
        arn = arns.parse(config["workflowArn"], KIND)
        rec = resolve(ctx, KIND, config["workflowArn"])
        wtype = str(rec.body.get("type"))
        if TYPE_PATHS[wtype] != arn.type:
            raise errors.invalid(f"{where}: the workflow is a {wtype} workflow, not {arn.type.split('/')[1]}")
        counts[wtype] = counts.get(wtype, 0) + 1
        if wtype != "TEST":
            for member in ("parallelGroup", "onFailure"):
                if config.get(member) is not None:
                    raise errors.invalid(f"{where}: {member} applies to TEST workflows only")
        given: dict[str, list[str]] = {}
        for p in config.get("parameters") or []:
            if p["name"] in given:
                raise errors.invalid(f"{where}: parameter {p['name']!r} is given twice")
            given[p["name"]] = list(p["value"])
        try:
            doc = parse_workflow(str(rec.body["data"]), wtype, max_chars=None)
            bind_parameters(doc, given)
        except WorkflowDocumentError as exc:
            raise errors.invalid(f"{where}: {exc}") from None
    for wtype in ("BUILD", "DISTRIBUTION"):
        if counts.get(wtype, 0) > 1:
            raise errors.invalid(f"at most one {wtype} workflow can be attached; got {counts[wtype]}")
