"""Infrastructure configurations: where builds and tests run.

On-prem the EC2 words keep their meaning for the executors: instanceTypes name instance
sizes an executor maps to vCPUs and memory, instanceProfileName is the identity the build
runs as, keyPair an SSH key to reach a retained instance, subnet and security groups the
network the executor attaches. Non-versioned: ARN infrastructure-configuration/NAME.
"""

from __future__ import annotations

from typing import Any

from engine.api import errors
from engine.api.context import RequestContext
from engine.api.errors import ApiError
from engine.api.registry import operation
from engine.resources import arns, filters, paging
from engine.resources.common import get_plain, owned, public, refuse_if_used
from engine.resources.recipes import pipelines_using
from engine.store import Record
from engine.store.db import now_iso

KIND = "infrastructure-configuration"
RESERVED_TAG_KEYS = frozenset({"CreatedBy", "Ec2ImageBuilderArn", "Name", "Tags"})

#: Members Update replaces as a whole (omitted ones are removed or reset to their default).
MUTABLE = (
    "description",
    "instanceTypes",
    "instanceProfileName",
    "securityGroupIds",
    "subnetId",
    "logging",
    "keyPair",
    "terminateInstanceOnFailure",
    "terminateInstanceOnCompletion",
    "snsTopicArn",
    "resourceTags",
    "instanceMetadataOptions",
    "placement",
    "parentInstance",
)


def _check(params: dict[str, Any]) -> None:
    if params.get("subnetId") and not params.get("securityGroupIds"):
        raise errors.invalid("subnetId needs securityGroupIds: give one or more security groups for that subnet")
    types = params.get("instanceTypes") or []
    if len(set(types)) != len(types):
        raise errors.invalid("instanceTypes lists an instance type more than once")
    for key in params.get("resourceTags") or {}:
        if key.lower().startswith("aws:") or key in RESERVED_TAG_KEYS:
            raise errors.invalid(
                f"resourceTags key {key!r} is reserved: keys may not start with aws: or be one of "
                f"{', '.join(sorted(RESERVED_TAG_KEYS))}"
            )
    imds = params.get("instanceMetadataOptions") or {}
    if imds.get("httpTokens") not in (None, "optional", "required"):
        # The model's pattern is unanchored; the values are exactly these two.
        raise errors.invalid(
            f"instanceMetadataOptions.httpTokens must be optional or required, not {imds['httpTokens']!r}"
        )
    placement = params.get("placement") or {}
    host_target = [k for k in ("hostId", "hostResourceGroupArn") if placement.get(k)]
    if host_target and placement.get("tenancy") != "host":
        raise errors.invalid(f"placement.{host_target[0]} applies only when placement.tenancy is host")
    if len(host_target) == 2:
        raise errors.invalid("placement takes either hostId or hostResourceGroupArn, not both")


def _fields(params: dict[str, Any]) -> dict[str, Any]:
    fields = {k: params.get(k) for k in MUTABLE}
    # Both default to true (the model's documentation); stored so Get shows what applies.
    for flag in ("terminateInstanceOnFailure", "terminateInstanceOnCompletion"):
        if fields[flag] is None:
            fields[flag] = True
    return fields


@operation("CreateInfrastructureConfiguration")
def create_infrastructure_configuration(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    name = params["name"]
    norm = arns.normalize_name(name)
    existing = ctx.tx.find(KIND, accounts=[ctx.account], name=norm)
    if existing:
        raise ApiError(
            "ResourceAlreadyExistsException",
            f"infrastructure configuration {name!r} already exists ({existing[0].arn}); names are unique per "
            "account and region, ignoring case, spaces and underscores",
        )
    _check(params)
    arn = arns.build(ctx.region, ctx.account, KIND, name)
    created = now_iso()
    body: dict[str, Any] = {
        "arn": arn,
        "name": name,
        **_fields(params),
        "dateCreated": created,
        "tags": params.get("tags") or {},
    }
    ctx.tx.insert(Record(arn=arn, kind=KIND, account=ctx.account, name=norm, body=body, created=created))
    return {"clientToken": params["clientToken"], "infrastructureConfigurationArn": arn}


@operation("GetInfrastructureConfiguration")
def get_infrastructure_configuration(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    rec = get_plain(ctx, KIND, params["infrastructureConfigurationArn"])
    return {"infrastructureConfiguration": public(rec.body)}


def _own(ctx: RequestContext, arn_text: str) -> Record:
    return owned(ctx, get_plain(ctx, KIND, arn_text))


@operation("UpdateInfrastructureConfiguration")
def update_infrastructure_configuration(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    rec = _own(ctx, params["infrastructureConfigurationArn"])
    _check(params)
    # Not a selective update: every mutable member is replaced; name, tags and dates stay.
    body = {**rec.body, **_fields(params), "dateUpdated": now_iso()}
    ctx.tx.update(rec.with_body(body))
    return {"clientToken": params["clientToken"], "infrastructureConfigurationArn": rec.arn}


def _summary(rec: Record) -> dict[str, Any]:
    b = rec.body
    return {
        "arn": rec.arn,
        "name": b["name"],
        "description": b.get("description"),
        "dateCreated": b.get("dateCreated") or rec.created,
        "dateUpdated": b.get("dateUpdated"),
        "resourceTags": b.get("resourceTags"),
        "tags": b.get("tags"),
        "instanceTypes": b.get("instanceTypes"),
        "instanceProfileName": b.get("instanceProfileName"),
        "placement": b.get("placement"),
        "_norm": rec.name,
    }


# ListInfrastructureConfigurations documents one filter: name.
_FILTERS: dict[str, filters.Getter] = {"name": lambda i: [i["name"], i["_norm"]]}


@operation("ListInfrastructureConfigurations")
def list_infrastructure_configurations(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    records = ctx.tx.find(KIND, accounts=[ctx.account])
    entries = filters.apply([_summary(r) for r in records], params.get("filters"), _FILTERS)
    chunk, token = paging.page(entries, params)
    return {"infrastructureConfigurationSummaryList": chunk, "nextToken": token}


@operation("DeleteInfrastructureConfiguration")
def delete_infrastructure_configuration(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    rec = _own(ctx, params["infrastructureConfigurationArn"])
    users = pipelines_using(ctx, "infrastructureConfigurationArn", rec.arn)
    refuse_if_used(rec.arn, users)
    ctx.tx.delete(rec.arn)
    return {"infrastructureConfigurationArn": rec.arn}
