"""Lifecycle policies through real boto3 clients: create, get, list, update, delete and the rule checks."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.api.conftest import ACCOUNT, check_output, error_code

ROLE = "arn:aws:iam::123456789012:role/lifecycle"
DETAILS: list[dict[str, Any]] = [
    {
        "action": {"type": "DEPRECATE", "includeResources": {"amis": True}},
        "filter": {"type": "AGE", "value": 30, "unit": "DAYS"},
    },
    {
        "action": {"type": "DELETE", "includeResources": {"amis": True, "snapshots": True}},
        "filter": {"type": "COUNT", "value": 5},
        "exclusionRules": {
            "tagMap": {"keep": "yes"},
            "amis": {"isPublic": True, "lastLaunched": {"value": 7, "unit": "DAYS"}},
        },
    },
]
SELECTION = {"recipes": [{"name": "web", "semanticVersion": "1.x.x"}]}


def create(ib: Any, name: str, **kw: Any) -> str:
    args: dict[str, Any] = {
        "name": name,
        "executionRole": ROLE,
        "resourceType": "AMI_IMAGE",
        "policyDetails": DETAILS,
        "resourceSelection": SELECTION,
        **kw,
    }
    r = ib.create_lifecycle_policy(**args)
    check_output("CreateLifecyclePolicy", r)
    arn: str = r["lifecyclePolicyArn"]
    return arn


def test_create_get_list_update_delete(ib: Any) -> None:
    arn = create(ib, "Keep Five", description="keep five", tags={"team": "infra"})
    assert arn == f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:lifecycle-policy/keep-five"
    got = ib.get_lifecycle_policy(lifecyclePolicyArn=arn)
    check_output("GetLifecyclePolicy", got)
    pol = got["lifecyclePolicy"]
    assert pol["name"] == "Keep Five" and pol["status"] == "ENABLED" and pol["policyDetails"] == DETAILS
    assert pol["resourceSelection"] == SELECTION and pol["tags"] == {"team": "infra"}
    assert pol["dateCreated"] and pol["dateUpdated"]
    with pytest.raises(ClientError) as exc:
        create(ib, "keep_five")
    assert error_code(exc.value) == "ResourceAlreadyExistsException"

    listed = ib.list_lifecycle_policies(filters=[{"name": "status", "values": ["ENABLED"]}])
    check_output("ListLifecyclePolicies", listed)
    assert [p["arn"] for p in listed["lifecyclePolicySummaryList"]] == [arn]
    assert (
        ib.list_lifecycle_policies(filters=[{"name": "resourceType", "values": ["CONTAINER_IMAGE"]}])[
            "lifecyclePolicySummaryList"
        ]
        == []
    )

    updated = ib.update_lifecycle_policy(
        lifecyclePolicyArn=arn,
        executionRole=ROLE,
        resourceType="AMI_IMAGE",
        status="DISABLED",
        policyDetails=DETAILS[:1],
        resourceSelection={"tagMap": {"lifecycle": "managed"}},
    )
    check_output("UpdateLifecyclePolicy", updated)
    pol = ib.get_lifecycle_policy(lifecyclePolicyArn=arn)["lifecyclePolicy"]
    assert pol["status"] == "DISABLED" and len(pol["policyDetails"]) == 1
    assert pol["resourceSelection"] == {"tagMap": {"lifecycle": "managed"}} and pol["tags"] == {"team": "infra"}
    with pytest.raises(ClientError) as exc:
        ib.update_lifecycle_policy(
            lifecyclePolicyArn=arn,
            executionRole=ROLE,
            resourceType="CONTAINER_IMAGE",
            policyDetails=[{"action": {"type": "DELETE"}, "filter": {"type": "COUNT", "value": 2}}],
            resourceSelection=SELECTION,
        )
    assert error_code(exc.value) == "InvalidRequestException" and "cannot change" in str(exc.value)

    check_output("DeleteLifecyclePolicy", ib.delete_lifecycle_policy(lifecyclePolicyArn=arn))
    with pytest.raises(ClientError) as exc:
        ib.get_lifecycle_policy(lifecyclePolicyArn=arn)
    assert error_code(exc.value) == "InvalidRequestException" and "does not exist" in str(exc.value)
    with pytest.raises(ClientError) as exc:
        ib.delete_lifecycle_policy(lifecyclePolicyArn=arn)
    assert error_code(exc.value) == "InvalidRequestException" and "does not exist" in str(exc.value)


def rule(atype: str, ftype: str = "AGE", **kw: Any) -> dict[str, Any]:
    flt: dict[str, Any] = {"type": ftype, "value": 3}
    if ftype == "AGE":
        flt["unit"] = "WEEKS"
    r: dict[str, Any] = {"action": {"type": atype}, "filter": flt}
    for key, value in kw.items():
        if key == "include":
            r["action"]["includeResources"] = value
        elif key == "filter":
            r["filter"] = {**flt, **value}
        else:
            r[key] = value
    return r


@pytest.mark.parametrize(
    ("resource_type", "details", "selection", "message"),
    [
        ("CONTAINER_IMAGE", [rule("DEPRECATE")], SELECTION, "only DELETE"),
        ("CONTAINER_IMAGE", [rule("DELETE", include={"amis": True})], SELECTION, "cannot include AMIs"),
        ("AMI_IMAGE", [rule("DELETE", include={"containers": True})], SELECTION, "cannot include containers"),
        ("AMI_IMAGE", [rule("DISABLE", include={"amis": True, "snapshots": True})], SELECTION, "AMIs only"),
        ("AMI_IMAGE", [rule("DELETE", include={"snapshots": True})], SELECTION, "together with amis"),
        ("AMI_IMAGE", [{"action": {"type": "DELETE"}, "filter": {"type": "AGE", "value": 3}}], SELECTION, "unit"),
        ("AMI_IMAGE", [rule("DEPRECATE", "COUNT")], SELECTION, "COUNT filter"),
        ("AMI_IMAGE", [rule("DELETE", "COUNT", filter={"retainAtLeast": 2})], SELECTION, "only a value"),
        ("AMI_IMAGE", [rule("DISABLE", filter={"retainAtLeast": 2})], SELECTION, "retainAtLeast"),
        ("AMI_IMAGE", [rule("DELETE"), rule("DELETE", "COUNT")], SELECTION, "one rule per action"),
        ("CONTAINER_IMAGE", [rule("DELETE", exclusionRules={"amis": {"isPublic": True}})], SELECTION, "AMI_IMAGE"),
        ("AMI_IMAGE", [rule("DELETE")], {"recipes": SELECTION["recipes"], "tagMap": {"a": "b"}}, "exactly one"),
        ("AMI_IMAGE", [rule("DELETE")], {}, "exactly one"),
        ("AMI_IMAGE", [rule("DELETE")], {"recipes": [{"name": "web", "semanticVersion": "1.x.3"}]}, "wildcards"),
    ],
)
def test_rule_checks(ib: Any, resource_type: str, details: list[dict[str, Any]], selection: Any, message: str) -> None:
    with pytest.raises(ClientError) as exc:
        ib.create_lifecycle_policy(
            name="bad",
            executionRole=ROLE,
            resourceType=resource_type,
            policyDetails=copy.deepcopy(details),
            resourceSelection=selection,
        )
    assert error_code(exc.value) in ("InvalidRequestException", "InvalidParameterCombinationException")
    assert message in str(exc.value)


def test_container_policy_and_aliases(ib: Any) -> None:
    arn = create(
        ib,
        "containers",
        resourceType="CONTAINER_IMAGE",
        policyDetails=[rule("DELETE", include={"containers": True}, filter={"retainAtLeast": 2})],
        resourceSelection={"recipes": [{"name": "app", "semanticVersion": "x.x.x"}]},
    )
    assert ib.get_lifecycle_policy(lifecyclePolicyArn=arn)["lifecyclePolicy"]["resourceType"] == "CONTAINER_IMAGE"


def test_idempotency_and_dry_run(ib: Any) -> None:
    a = create(ib, "idem", clientToken="lc-1")
    assert create(ib, "idem", clientToken="lc-1") == a
    with pytest.raises(ClientError) as exc:
        create(ib, "dry", dryRun=True)
    assert error_code(exc.value) == "DryRunOperationException"
    names = [p["name"] for p in ib.list_lifecycle_policies()["lifecyclePolicySummaryList"]]
    assert "dry" not in names and "idem" in names
