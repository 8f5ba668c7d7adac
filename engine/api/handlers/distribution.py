"""Distribution configurations: where a build's outputs go, one entry per region.

On-prem the AMI settings name the machine image as registered in the image store, the
container settings a repository in the configured OCI registry, and s3ExportConfiguration
a disk image export (VMDK, RAW or VHD) to an S3-compatible bucket. Non-versioned: ARN
distribution-configuration/NAME.
"""

from __future__ import annotations

import re
from typing import Any

from engine.api import errors
from engine.api.context import RequestContext
from engine.api.errors import ApiError
from engine.api.registry import operation
from engine.resources import arns, filters, paging
from engine.resources.common import get_plain, owned, public, refuse_if_used
from engine.resources.recipes import check_repository_name, pipelines_using
from engine.store import Record
from engine.store.db import now_iso

KIND = "distribution-configuration"
DEFAULT_TIMEOUT_MINUTES = 720  # DistributionConfiguration.timeoutMinutes is required; the model's maximum
_REGION = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_BUILD_DATE = re.compile(r"\{\{\s*imagebuilder:buildDate\s*\}\}")


def _combination(message: str) -> ApiError:
    return ApiError("InvalidParameterCombinationException", message)


def _check_distribution(i: int, d: dict[str, Any], own_account: str) -> None:
    where = f"distributions[{i}] ({d['region']})"
    ami = d.get("amiDistributionConfiguration") or {}
    name = ami.get("name")
    if name is not None and not _BUILD_DATE.search(name):
        # Without it every build would try to register the same image name.
        raise errors.invalid(
            f"{where}: amiDistributionConfiguration.name {name!r} must include {{{{ imagebuilder:buildDate }}}} "
            "so that each build's image gets its own name"
        )
    groups = (ami.get("launchPermission") or {}).get("userGroups") or []
    if any(g != "all" for g in groups):
        # EC2 knows one launch group, "all" (public); anything else would be silently ignored.
        raise errors.invalid(f"{where}: launchPermission.userGroups takes only the group 'all', not {groups}")
    targets = ami.get("targetAccountIds") or []
    if len(set(targets)) != len(targets):
        raise errors.invalid(f"{where}: amiDistributionConfiguration.targetAccountIds lists an account twice")
    container = d.get("containerDistributionConfiguration")
    if container:
        check_repository_name(
            container["targetRepository"]["repositoryName"],
            f"{where}: containerDistributionConfiguration.targetRepository.repositoryName",
        )
    seen_templates: set[str] = set()
    for t in d.get("launchTemplateConfigurations") or []:
        account = t.get("accountId") or own_account
        if account in seen_templates:
            raise errors.invalid(f"{where}: launchTemplateConfigurations has two entries for account {account}")
        seen_templates.add(account)
    seen_fast: set[str] = set()
    for f in d.get("fastLaunchConfigurations") or []:
        template = f.get("launchTemplate") or {}
        if template and bool(template.get("launchTemplateId")) == bool(template.get("launchTemplateName")):
            raise _combination(
                f"{where}: a fastLaunchConfigurations launchTemplate takes exactly one of launchTemplateId "
                "and launchTemplateName"
            )
        account = f.get("accountId") or own_account
        if account in seen_fast:
            raise errors.invalid(f"{where}: fastLaunchConfigurations has two entries for account {account}")
        seen_fast.add(account)
    allowed_accounts = {own_account, *targets}
    seen_params: set[tuple[str, str]] = set()
    for p in d.get("ssmParameterConfigurations") or []:
        account = p.get("amiAccountId") or own_account
        if account not in allowed_accounts:
            raise _combination(
                f"{where}: ssmParameterConfigurations names account {account}, which must also be in "
                "amiDistributionConfiguration.targetAccountIds for this region"
            )
        key = (account, p["parameterName"])
        if key in seen_params:
            raise errors.invalid(f"{where}: SSM parameter {p['parameterName']} is set twice for account {account}")
        seen_params.add(key)


def _check(ctx: RequestContext, distributions: list[dict[str, Any]]) -> None:
    if not distributions:
        raise errors.invalid("distributions must name at least one region")
    regions: set[str] = set()
    for i, d in enumerate(distributions):
        region = d["region"]
        if not _REGION.match(region):
            raise errors.invalid(f"distributions[{i}]: {region!r} is not a region name (such as {ctx.region})")
        if region in regions:
            raise errors.invalid(
                f"distributions[{i}]: region {region} appears more than once; give one entry per region"
            )
        regions.add(region)
        _check_distribution(i, d, ctx.account)


@operation("CreateDistributionConfiguration")
def create_distribution_configuration(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    name = params["name"]
    norm = arns.normalize_name(name)
    existing = ctx.tx.find(KIND, accounts=[ctx.account], name=norm)
    if existing:
        raise ApiError(
            "ResourceAlreadyExistsException",
            f"distribution configuration {name!r} already exists ({existing[0].arn}); names are unique per "
            "account and region, ignoring case, spaces and underscores",
        )
    _check(ctx, params["distributions"])
    arn = arns.build(ctx.region, ctx.account, KIND, name)
    created = now_iso()
    body: dict[str, Any] = {
        "arn": arn,
        "name": name,
        "description": params.get("description"),
        "distributions": params["distributions"],
        "timeoutMinutes": DEFAULT_TIMEOUT_MINUTES,
        "dateCreated": created,
        "tags": params.get("tags") or {},
    }
    ctx.tx.insert(Record(arn=arn, kind=KIND, account=ctx.account, name=norm, body=body, created=created))
    return {"clientToken": params["clientToken"], "distributionConfigurationArn": arn}


@operation("GetDistributionConfiguration")
def get_distribution_configuration(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    rec = get_plain(ctx, KIND, params["distributionConfigurationArn"])
    return {"distributionConfiguration": public(rec.body)}


def _own(ctx: RequestContext, arn_text: str) -> Record:
    return owned(ctx, get_plain(ctx, KIND, arn_text))


@operation("UpdateDistributionConfiguration")
def update_distribution_configuration(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    rec = _own(ctx, params["distributionConfigurationArn"])
    _check(ctx, params["distributions"])
    # Not a selective update: description and distributions are replaced as given.
    body = {
        **rec.body,
        "description": params.get("description"),
        "distributions": params["distributions"],
        "dateUpdated": now_iso(),
    }
    ctx.tx.update(rec.with_body(body))
    return {"clientToken": params["clientToken"], "distributionConfigurationArn": rec.arn}


def _summary(rec: Record) -> dict[str, Any]:
    b = rec.body
    return {
        "arn": rec.arn,
        "name": b["name"],
        "description": b.get("description"),
        "dateCreated": b.get("dateCreated") or rec.created,
        "dateUpdated": b.get("dateUpdated"),
        "tags": b.get("tags"),
        "regions": [d["region"] for d in b.get("distributions") or []],
        "_norm": rec.name,
    }


# ListDistributionConfigurations documents one filter: name.
_FILTERS: dict[str, filters.Getter] = {"name": lambda i: [i["name"], i["_norm"]]}


@operation("ListDistributionConfigurations")
def list_distribution_configurations(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    records = ctx.tx.find(KIND, accounts=[ctx.account])
    entries = filters.apply([_summary(r) for r in records], params.get("filters"), _FILTERS)
    chunk, token = paging.page(entries, params)
    return {"distributionConfigurationSummaryList": chunk, "nextToken": token}


@operation("DeleteDistributionConfiguration")
def delete_distribution_configuration(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    rec = _own(ctx, params["distributionConfigurationArn"])
    users = pipelines_using(ctx, "distributionConfigurationArn", rec.arn)
    refuse_if_used(rec.arn, users)
    ctx.tx.delete(rec.arn)
    return {"distributionConfigurationArn": rec.arn}
