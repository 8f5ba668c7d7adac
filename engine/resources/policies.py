"""Resource policies (Put*/Get*Policy) and the sharing they grant.

The grammar is the IAM policy subset Image Builder accepts for sharing: a JSON object with an
optional ``Version`` (2012-10-17 or 2008-10-17) and ``Statement`` (an object or a list); each
statement has ``Effect: Allow``, ``Principal: {"AWS": account ids or arn:aws:iam::ID:root}``,
``Action`` among the resource type's Get and List actions (e.g. imagebuilder:GetComponent,
imagebuilder:ListComponents) and ``Resource`` ARNs (wildcards allowed) that name this resource,
and an optional ``Sid``. Anything else (Deny, Condition, NotAction, "*" principals) is refused
with the reason, rather than stored and silently ignored.

A policy shares one resource build with the accounts it names: the Get action lets them read it
by ARN and use it (a component in their recipes, an image as a parent), the List action shows it
under ``owner=Shared``. Putting a new policy replaces the old one, so revoking is putting a
policy without the account. An image is also shared with the accounts its distribution's
``launchPermission.userIds`` names for this region (read and list), as AWS shares the AMI.
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from engine.api import errors
from engine.api.context import RequestContext
from engine.resources import arns
from engine.store import Record

#: Per shareable kind: the (Get, List) actions a policy may grant.
ACTIONS: dict[str, tuple[str, str]] = {
    "component": ("imagebuilder:GetComponent", "imagebuilder:ListComponents"),
    "image": ("imagebuilder:GetImage", "imagebuilder:ListImages"),
    "image-recipe": ("imagebuilder:GetImageRecipe", "imagebuilder:ListImageRecipes"),
    "container-recipe": ("imagebuilder:GetContainerRecipe", "imagebuilder:ListContainerRecipes"),
}
GET, LIST = 0, 1
_ACCOUNT = re.compile(r"^(?:[0-9]{12}|arn:aws[^:]*:iam::([0-9]{12}):root)$")
_STATEMENT_KEYS = frozenset({"Sid", "Effect", "Principal", "Action", "Resource"})


@dataclass(frozen=True)
class Grant:
    accounts: frozenset[str]
    actions: frozenset[str]
    resources: tuple[str, ...]


def _strings(value: Any, what: str, where: str) -> list[str]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(v, str) and v for v in items):
        raise errors.bad_parameter(f"policy {where}: {what} must be a string or a list of strings")
    return items


def _account_of(principal: str, where: str) -> str:
    m = _ACCOUNT.match(principal)
    if m is None:
        raise errors.bad_parameter(
            f"policy {where}: principal {principal!r} is not an account id or arn:aws:iam::ACCOUNT:root; "
            "resources are shared with whole accounts"
        )
    return m[1] or principal


def parse_policy(policy: str, kind: str | None) -> list[Grant]:
    """Validate a policy for a resource kind (None: any shareable kind) and return what it grants."""
    try:
        doc = json.loads(policy)
    except ValueError:
        raise errors.bad_parameter("the policy is not valid JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("Statement"), list | dict):
        raise errors.bad_parameter("the policy must be a JSON object with a Statement list (IAM policy grammar)")
    extra = set(doc) - {"Version", "Statement", "Id"}
    if extra:
        raise errors.bad_parameter(f"the policy has members Image Builder does not accept: {', '.join(sorted(extra))}")
    if doc.get("Version", "2012-10-17") not in ("2012-10-17", "2008-10-17"):
        raise errors.bad_parameter("the policy Version must be 2012-10-17 (or 2008-10-17)")
    statements = doc["Statement"] if isinstance(doc["Statement"], list) else [doc["Statement"]]
    if not statements:
        raise errors.bad_parameter("the policy has no statements")
    allowed = ACTIONS.get(kind, ()) if kind is not None else tuple(a for pair in ACTIONS.values() for a in pair)
    grants = []
    for i, st in enumerate(statements):
        where = f"Statement {i}"
        if not isinstance(st, dict):
            raise errors.bad_parameter(f"policy {where} is not an object")
        extra = set(st) - _STATEMENT_KEYS
        if extra:
            raise errors.bad_parameter(f"policy {where}: {', '.join(sorted(extra))} is not supported for sharing")
        if st.get("Effect") not in ("Allow", "Deny"):
            raise errors.bad_parameter(f"policy {where} needs Effect Allow or Deny")
        if st["Effect"] != "Allow":
            raise errors.bad_parameter(f"policy {where}: only Allow statements share a resource; remove the Deny")
        if "Action" not in st or "Principal" not in st:
            raise errors.bad_parameter(f"policy {where} needs Principal and Action")
        principal = st["Principal"]
        if not isinstance(principal, dict) or set(principal) != {"AWS"}:
            raise errors.bad_parameter(f'policy {where}: Principal must be {{"AWS": [account ids]}}')
        accounts = frozenset(_account_of(p, where) for p in _strings(principal["AWS"], "Principal.AWS", where))
        actions = _strings(st["Action"], "Action", where)
        for action in actions:
            if action not in allowed:
                raise errors.bad_parameter(
                    f"policy {where}: action {action!r} cannot be granted on a {kind or 'resource'}; "
                    f"use {' and '.join(allowed) or 'none'}"
                )
        resources = tuple(_strings(st.get("Resource", "*"), "Resource", where))
        grants.append(Grant(accounts, frozenset(actions), resources))
    return grants


def check_policy(policy: str, rec: Record | None = None) -> None:
    """Validate a policy; with the record, also that each statement names that resource."""
    grants = parse_policy(policy, rec.kind if rec is not None else None)
    if rec is None:
        return
    names = (rec.arn, arns.parse(rec.arn).version_arn())
    for i, grant in enumerate(grants):
        if not any(fnmatch.fnmatchcase(n, pattern) for pattern in grant.resources for n in names):
            raise errors.bad_parameter(f"policy Statement {i}: Resource does not name {rec.arn}")


@lru_cache(maxsize=1024)
def _grants(policy: str, kind: str) -> tuple[Grant, ...]:
    return tuple(parse_policy(policy, kind))


def shared_with(rec: Record, accounts: list[str], verb: int = GET) -> bool:
    """Whether a policy (or, for an image, its launch permission) shares the record with one of
    the accounts for reading (GET) or listing (LIST)."""
    if rec.kind not in ACTIONS:
        return False
    policy = rec.body.get("_policy")
    if isinstance(policy, str):
        action = ACTIONS[rec.kind][verb]
        for grant in _grants(policy, rec.kind):
            if action in grant.actions and not grant.accounts.isdisjoint(accounts):
                return True
    if rec.kind == "image" and (rec.body.get("state") or {}).get("status") == "AVAILABLE":
        return not launch_permitted(rec).isdisjoint(accounts)
    return False


def launch_permitted(rec: Record) -> frozenset[str]:
    """Accounts an image's distribution (for the image's own region) grants launch permission."""
    region = rec.arn.split(":")[3]
    dist = rec.body.get("distributionConfiguration") or {}
    out: set[str] = set()
    for d in dist.get("distributions") or []:
        if not isinstance(d, dict) or d.get("region") != region:
            continue
        permission = (d.get("amiDistributionConfiguration") or {}).get("launchPermission") or {}
        out.update(str(u) for u in permission.get("userIds") or [])
    return frozenset(out)


def put(ctx: RequestContext, rec: Record, policy: str) -> None:
    """Store a resource policy on a resource the caller owns (Put*Policy)."""
    from engine.resources.common import owned

    owned(ctx, rec)
    check_policy(policy, rec)
    ctx.tx.update(rec.with_body({**rec.body, "_policy": policy}))


def get(ctx: RequestContext, rec: Record) -> str:
    """A resource's policy (Get*Policy), for its owner only: it lists who else may use it."""
    from engine.resources.common import owned

    owned(ctx, rec)
    policy = rec.body.get("_policy")
    if policy is None:
        raise errors.not_found(f"{rec.arn} has no resource policy")
    return str(policy)
