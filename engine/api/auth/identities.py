"""What the IAM names in a request mean on-prem, and the checks that hold them to it.

``executionRole`` (CreateImage, image pipelines, lifecycle policies, StartResourceStateUpdate)
is the identity a build's or a lifecycle run's workflows act as. On-prem there is no STS to
assume it through: the workflows act with the caller's account and nothing more (they read only
what that account can read, see ``resolve`` in engine/resources/common.py). So a role is only
accepted when it is the caller's own: a bare role name or ``arn:aws:iam::<caller's account>:role/...``.
Naming another account's role would be a claim to act as that account; it is refused.

``instanceProfileName`` (infrastructure configurations) names the worker pool whose executors
may run the account's builds and tests. The operator says which pools each account may use in
the keys file (``accounts.<id>.instanceProfiles``); an account not listed there may name any pool.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any

from engine.api.auth.verifier import Authenticator, Identity
from engine.api.errors import ApiError

_ROLE_ARN = re.compile(r"^arn:aws[^:]*:iam::(?P<account>[^:]*):role/(?P<name>.+)$")
_PROFILE_OPERATIONS = frozenset({"CreateInfrastructureConfiguration", "UpdateInfrastructureConfiguration"})


def check(auth: Authenticator | None, identity: Identity, operation: str, params: dict[str, Any]) -> None:
    role = params.get("executionRole")
    if isinstance(role, str) and role:
        check_execution_role(identity.account, role)
    profile = params.get("instanceProfileName")
    if operation in _PROFILE_OPERATIONS and isinstance(profile, str) and auth is not None:
        check_instance_profile(auth.instance_profiles(identity.account), identity.account, profile)


def check_execution_role(account: str, role: str) -> None:
    m = _ROLE_ARN.match(role)
    if m and m["account"] != account:
        raise ApiError(
            "InvalidParameterValueException",
            f"executionRole {role} belongs to account {m['account']}; builds of account {account} can only act "
            "as a role of their own account (a role name, or arn:aws:iam::<your account>:role/NAME)",
        )


def check_instance_profile(allowed: tuple[str, ...] | None, account: str, name: str) -> None:
    if allowed is None or any(fnmatch.fnmatchcase(name, pattern) for pattern in allowed):
        return
    raise ApiError(
        "InvalidParameterValueException",
        f"instanceProfileName {name!r} is not a worker pool account {account} may use; "
        f"it may use: {', '.join(allowed) or 'none'}",
    )
