"""Image scan findings and their aggregations, and the marketplace lookup (there is none on-prem).

Findings are written by the scan jobs (engine/scanning/jobs.py) as records of kind
"image-scan-finding" (parent = the image build version ARN, body shaped like ImageScanFinding).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.api import errors
from engine.api.context import RequestContext
from engine.api.registry import operation
from engine.resources import arns, filters, paging
from engine.resources.common import public

KIND = "image-scan-finding"


def _vulnerability(f: dict[str, Any]) -> Any:
    return (f.get("packageVulnerabilityDetails") or {}).get("vulnerabilityId")


_FILTERS: dict[str, filters.Getter] = {
    "imageBuildVersionArn": lambda f: f.get("imageBuildVersionArn"),
    "imagePipelineArn": lambda f: f.get("imagePipelineArn"),
    "vulnerabilityId": _vulnerability,
    "severity": lambda f: f.get("severity"),
}


def _findings(ctx: RequestContext, images: list[str] | None = None) -> list[dict[str, Any]]:
    if images is None:
        records = ctx.tx.find(KIND, accounts=[ctx.account])
    else:  # the parent index: one image's findings without reading the account's
        records = [r for arn in dict.fromkeys(images) for r in ctx.tx.find(KIND, accounts=[ctx.account], parent=arn)]
    return [public(r.body) for r in records]


def _image_filter(flts: list[dict[str, Any]] | None) -> list[str] | None:
    for f in flts or []:
        if f.get("name") == "imageBuildVersionArn" and f.get("values"):
            return [str(v) for v in f["values"]]
    return None


@operation("ListImageScanFindings")
def list_image_scan_findings(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    found = filters.apply(_findings(ctx, _image_filter(params.get("filters"))), params.get("filters"), _FILTERS)
    chunk, token = paging.page(found, params)
    return {"findings": chunk, "nextToken": token}


def _counts(findings: list[dict[str, Any]]) -> dict[str, int]:
    severities = [str(f.get("severity") or "").upper() for f in findings]
    return {
        "all": len(findings),
        "critical": severities.count("CRITICAL"),
        "high": severities.count("HIGH"),
        "medium": severities.count("MEDIUM"),
    }


#: Aggregation type -> (response member, key member inside it, key of a finding).
_AGGREGATIONS: dict[str, tuple[str, str, Callable[[dict[str, Any]], Any]]] = {
    "accountId": ("accountAggregation", "accountId", lambda f: f.get("awsAccountId")),
    "imageBuildVersionArn": ("imageAggregation", "imageBuildVersionArn", _FILTERS["imageBuildVersionArn"]),
    "imagePipelineArn": ("imagePipelineAggregation", "imagePipelineArn", _FILTERS["imagePipelineArn"]),
    "vulnerabilityId": ("vulnerabilityIdAggregation", "vulnerabilityId", _vulnerability),
}


@operation("ListImageScanFindingAggregations")
def list_image_scan_finding_aggregations(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """The filter's name is the key findings are grouped by and its values restrict the keys;
    without a filter there is one aggregation for the account."""
    flt = params.get("filter")
    if flt is None:
        findings = _findings(ctx)
        aggregation_type = "accountId"
        groups: dict[str, list[dict[str, Any]]] = {ctx.account: findings} if findings else {}
    else:
        aggregation_type = str(flt.get("name"))
        if aggregation_type not in _AGGREGATIONS:
            raise errors.invalid(
                f"unknown aggregation filter {aggregation_type!r}; use accountId, imageBuildVersionArn, "
                "imagePipelineArn or vulnerabilityId"
            )
        images = [str(v) for v in flt.get("values") or []] if aggregation_type == "imageBuildVersionArn" else None
        findings = _findings(ctx, images or None)
        wanted = set(flt.get("values") or [])
        key_of = _AGGREGATIONS[aggregation_type][2]
        groups = {}
        for f in findings:
            key = key_of(f)
            if key is not None and (not wanted or key in wanted):
                groups.setdefault(str(key), []).append(f)
    member, key_name, _ = _AGGREGATIONS[aggregation_type]
    responses = [{member: {key_name: key, "severityCounts": _counts(group)}} for key, group in sorted(groups.items())]
    chunk, token = paging.page(responses, params)
    return {"aggregationType": aggregation_type, "responses": chunk, "nextToken": token}


@operation("GetMarketplaceResource")
def get_marketplace_resource(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    arns.parse(params["resourceArn"])
    raise errors.invalid(
        f"{params['resourceArn']}: there is no AWS Marketplace on this on-prem Image Builder, so no marketplace "
        "resources can be retrieved; use components you own or the built-in ones (owner Amazon)"
    )
