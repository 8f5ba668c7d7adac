"""Lookups every handler needs: which resources a caller sees, getting a resource by ARN
(resolving x.x.x wildcards to the newest build), and owner filters on lists.

Isolation rule: a caller reads its own account's resources, the managed ones (account ``aws``)
and those another account shared with it (engine/resources/policies.py); it changes only its
own. Anything else does not exist as far as the caller can tell (ResourceNotFoundException, or
the error the operation declares instead); a shared resource it tries to change is Forbidden.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from engine.api import errors
from engine.api.context import RequestContext
from engine.api.errors import ApiError
from engine.resources import arns, policies, versions
from engine.store import Record, Tx
from engine.store.tables import resources

OWNERS = ("Self", "Shared", "Amazon", "ThirdParty", "AWSMarketplace")


def visible_accounts(ctx: RequestContext) -> list[str]:
    """Accounts whose resources the caller may read in full: its own and the managed ones.
    (Single resources of other accounts may be shared with it too: see ``readable``.)"""
    return [ctx.account, arns.MANAGED_ACCOUNT]


def readable(rec: Record, accounts: list[str], verb: int = policies.GET) -> bool:
    """Whether a reader whose own accounts are ``accounts`` may read (or list) the record."""
    if rec.account in accounts:
        return True
    return policies.shared_with(rec, [a for a in accounts if a != arns.MANAGED_ACCOUNT], verb)


def owner_accounts(ctx: RequestContext, owner: str | None, default: str = "Self") -> list[str]:
    """The `owner` member of List operations as accounts to search, for kinds nobody can share
    (workflows); shareable kinds use ``listing``."""
    owner = owner or default
    if owner == "Self":
        return [ctx.account]
    if owner == "Amazon":
        return [arns.MANAGED_ACCOUNT]
    return []  # Shared: nothing of this kind can be shared; no third-party publishers exist


def listing(
    ctx: RequestContext, kind: str, owner: str | None, default: str = "Self"
) -> tuple[list[str], Callable[[Record], bool]]:
    """The `owner` member of List operations: the accounts to search and which of their
    records to keep. Shared means resources of other accounts shared with the caller."""
    owner = owner or default
    if owner != "Shared":
        return owner_accounts(ctx, owner, default), lambda rec: True
    return sharing_accounts(ctx, kind), lambda rec: readable(rec, [ctx.account], policies.LIST)


def listed(ctx: RequestContext, kind: str, owner: str | None, default: str = "Self") -> list[Record]:
    """The records a List operation with this `owner` shows, oldest version first."""
    accounts, keep = listing(ctx, kind, owner, default)
    return [r for r in ctx.tx.find(kind, accounts=accounts) if keep(r)] if accounts else []


def sharing_accounts(ctx: RequestContext, kind: str) -> list[str]:
    """Other accounts with resources of this kind that carry a policy or a launch permission:
    the candidates for owner=Shared (the policy itself is checked per record)."""
    if kind not in policies.ACTIONS:
        return []
    c = resources.c
    marks = [c.body.like('%"_policy":%')]
    if kind == "image":
        marks.append(c.body.like('%"launchPermission":%'))
    q = (
        sa.select(c.account)
        .distinct()
        .where(c.kind == kind, c.account.not_in([ctx.account, arns.MANAGED_ACCOUNT]), sa.or_(*marks))
    )
    return sorted(str(a) for (a,) in ctx.tx.conn.execute(q))


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
    if arn.account not in accounts and kind not in policies.ACTIONS:
        raise errors.not_found(f"{kind} {arn_text} does not exist")
    if arn.build is not None:
        rec = tx.get(str(arn), kind)
        if rec is None or not readable(rec, accounts):
            raise errors.not_found(f"{kind} {arn_text} does not exist")
        return rec
    if not arn.version:
        raise errors.bad_parameter(f"{arn_text} names no version; give x.x.x for the newest")
    if versions.is_wildcard(arn.version) and not allow_wildcard:
        raise errors.bad_parameter(f"{arn_text}: a wildcard version is not accepted here")
    candidates = [
        r
        for r in tx.find(kind, accounts=[arn.account], name=arn.name)
        if (r.version == arn.version or versions.matches(arn.version, r.version))
        and _usable(r)
        and readable(r, accounts)
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
