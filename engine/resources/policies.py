"""Resource policies (Put*/Get*Policy): stored as given, checked for the IAM policy shape.
Enforcing them across accounts arrives with accounts and authentication."""

from __future__ import annotations

import json

from engine.api import errors
from engine.api.context import RequestContext
from engine.store import Record


def check_policy(policy: str) -> None:
    try:
        doc = json.loads(policy)
    except ValueError:
        raise errors.bad_parameter("the policy is not valid JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("Statement"), list | dict):
        raise errors.bad_parameter("the policy must be a JSON object with a Statement list (IAM policy grammar)")
    statements = doc["Statement"] if isinstance(doc["Statement"], list) else [doc["Statement"]]
    for i, st in enumerate(statements):
        if not isinstance(st, dict):
            raise errors.bad_parameter(f"policy Statement {i} is not an object")
        if st.get("Effect") not in ("Allow", "Deny"):
            raise errors.bad_parameter(f"policy Statement {i} needs Effect Allow or Deny")
        if "Action" not in st or "Principal" not in st:
            raise errors.bad_parameter(f"policy Statement {i} needs Principal and Action")


def put(ctx: RequestContext, rec: Record, policy: str) -> None:
    """Store a resource policy on a resource the caller owns (Put*Policy)."""
    from engine.resources.common import owned

    owned(ctx, rec)
    check_policy(policy)
    ctx.tx.update(rec.with_body({**rec.body, "_policy": policy}))


def get(rec: Record) -> str:
    """A resource's policy (Get*Policy); not found when none was put."""
    policy = rec.body.get("_policy")
    if policy is None:
        raise errors.not_found(f"{rec.arn} has no resource policy")
    return str(policy)
