"""Lookups every handler needs: which accounts a caller sees, getting a resource by ARN
(resolving x.x.x wildcards to the newest build), and owner filters on lists."""

from __future__ import annotations

from typing import Any

from engine.api import errors
from engine.api.context import RequestContext
from engine.api.errors import ApiError
from engine.resources import arns, versions
from engine.store import Record, Tx

OWNERS = ("Self", "Shared", "Amazon", "ThirdParty", "AWSMarketplace")


def visible_accounts(ctx: RequestContext) -> list[str]:
    """Accounts whose resources the caller may read: its own and the managed ones."""
    return [ctx.account, arns.MANAGED_ACCOUNT]


def owner_accounts(ctx: RequestContext, owner: str | None, default: str = "Self") -> list[str]:
    """The `owner` member of List operations as accounts to search."""
    owner = owner or default
    if owner == "Self":
        return [ctx.account]
    if owner == "Amazon":
        return [arns.MANAGED_ACCOUNT]
    # Shared: resources other accounts shared through a resource policy (accounts are a
    # later feature, so nothing is shared with anyone yet). No third-party publishers exist.
    return []


def check_region(ctx: RequestContext, arn: arns.Arn) -> None:
    _check_region(ctx.region, arn)


def _check_region(region: str, arn: arns.Arn) -> None:
    if arn.region != region:
        raise errors.not_found(f"{arn} is in region {arn.region}; this endpoint serves {region}")


def get_plain(ctx: RequestContext, kind: str, arn_text: str) -> Record:
    """A non-versioned resource (configurations, pipelines, lifecycle policies) by its ARN."""
    return lookup_plain(ctx.tx, ctx.region, visible_accounts(ctx), kind, arn_text)


def lookup_plain(tx: Tx, region: str, accounts: list[str], kind: str, arn_text: str) -> Record:
    """get_plain for callers without a request context (a build started from Temporal)."""
    arn = arns.parse(arn_text, kind)
    _check_region(region, arn)
    rec = tx.get(arn_text, kind)
    if rec is None or rec.account not in accounts:
        raise errors.not_found(f"{kind} {arn_text} does not exist")
    return rec


def resolve(ctx: RequestContext, kind: str, arn_text: str, *, allow_wildcard: bool = True) -> Record:
    """A versioned resource by its build ARN, its version ARN (newest build) or a wildcard
    version ARN like .../1.x.x (newest matching version, newest build)."""
    return lookup(ctx.tx, ctx.region, visible_accounts(ctx), kind, arn_text, allow_wildcard=allow_wildcard)


def lookup(
    tx: Tx, region: str, accounts: list[str], kind: str, arn_text: str, *, allow_wildcard: bool = True
) -> Record:
    """resolve for callers without a request context (a build started from Temporal)."""
    arn = arns.parse(arn_text, kind)
    _check_region(region, arn)
    if arn.account not in accounts:
        raise errors.not_found(f"{kind} {arn_text} does not exist")
    if arn.build is not None:
        rec = tx.get(str(arn), kind)
        if rec is None:
            raise errors.not_found(f"{kind} {arn_text} does not exist")
        return rec
    if not arn.version:
        raise errors.bad_parameter(f"{arn_text} names no version; give x.x.x for the newest")
    if versions.is_wildcard(arn.version) and not allow_wildcard:
        raise errors.bad_parameter(f"{arn_text}: a wildcard version is not accepted here")
    candidates = [
        r
        for r in tx.find(kind, accounts=[arn.account], name=arn.name)
        if (r.version == arn.version or versions.matches(arn.version, r.version)) and _usable(r)
    ]
    if not candidates:
        raise errors.not_found(f"no {kind} matches {arn_text}")
    return max(candidates, key=lambda r: (versions.key(r.version), r.build))


def _usable(rec: Record) -> bool:
    """Wildcards resolve only to resources that are not deprecated, disabled or deleted."""
    state = rec.body.get("state") or {}
    status = state.get("status") if isinstance(state, dict) else None
    return status in (None, "ACTIVE", "AVAILABLE")


def public(body: dict[str, Any]) -> dict[str, Any]:
    """A stored body without internal keys (those start with an underscore)."""
    return {k: v for k, v in body.items() if not k.startswith("_")}


def owned(ctx: RequestContext, rec: Record) -> Record:
    """The record, if the caller's account owns it: others' and managed resources are read-only."""
    if rec.account != ctx.account:
        raise ApiError("ForbiddenException", f"{rec.arn} is not owned by this account")
    return rec


def refuse_if_used(arn: str, users: list[str], by: str = "image pipeline(s)") -> None:
    """ResourceDependencyException naming (up to five of) what still uses the resource."""
    if users:
        raise ApiError(
            "ResourceDependencyException", f"{arn} is used by {by} {', '.join(users[:5])}; change or delete them first"
        )
