"""Account isolation with two real boto3 clients, one per account: each family of resources
made by one account is invisible to the other (Get, List, Update, Delete, tags, policies all
answer as if it did not exist), ARNs carry the caller's account, owner filters mean what they
say, and execution roles and instance profiles are held to the caller's account."""

# ruff: noqa: E501  (the table of calls reads best one call a line)
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from engine.api.auth.keys import read_keys_file, write_keys_file
from tests.api.conftest import ACCOUNT, OTHER_ACCOUNT, Server, error_code
from tests.api.test_images import image_record, put_records
from tests.api.test_lifecycle import DETAILS, SELECTION
from tests.api.test_recipes import DOCKERFILE, PLAIN

ROLE = f"arn:aws:iam::{ACCOUNT}:role/builder"
NOT_THERE = {"ResourceNotFoundException", "InvalidRequestException", "InvalidParameterValueException"}
WORKFLOW = """name: w
schemaVersion: 1.0
steps:
  - name: Wait
    action: WaitForAction
"""


@pytest.fixture(scope="module")
def mine(server: Server) -> dict[str, str]:
    """One resource of each family, made by the first account."""
    ib = server.client(ACCOUNT)
    comp = ib.create_component(name="iso-comp", semanticVersion="1.0.0", platform="Linux", data=PLAIN)
    recipe = ib.create_image_recipe(
        name="iso-recipe",
        semanticVersion="1.0.0",
        parentImage="debian-12",
        components=[{"componentArn": comp["componentBuildVersionArn"]}],
    )
    container = ib.create_container_recipe(
        name="iso-container",
        semanticVersion="1.0.0",
        containerType="DOCKER",
        parentImage="debian:bookworm",
        targetRepository={"service": "ECR", "repositoryName": "iso/app"},
        dockerfileTemplateData=DOCKERFILE,
        components=[{"componentArn": comp["componentBuildVersionArn"]}],
    )
    infra = ib.create_infrastructure_configuration(name="iso-infra", instanceProfileName="builder")
    dist = ib.create_distribution_configuration(
        name="iso-dist",
        distributions=[
            {"region": "us-east-1", "amiDistributionConfiguration": {"name": "iso {{ imagebuilder:buildDate }}"}}
        ],
    )
    workflow = ib.create_workflow(name="iso-wf", semanticVersion="1.0.0", type="BUILD", data=WORKFLOW)
    lifecycle = ib.create_lifecycle_policy(
        name="iso-lifecycle",
        executionRole=ROLE,
        resourceType="AMI_IMAGE",
        policyDetails=DETAILS,
        resourceSelection=SELECTION,
    )
    put_records(server, [image_record("iso-image", "1.0.0", 1, "AVAILABLE")])
    return {
        "component": comp["componentBuildVersionArn"],
        "recipe": recipe["imageRecipeArn"],
        "container": container["containerRecipeArn"],
        "infra": infra["infrastructureConfigurationArn"],
        "dist": dist["distributionConfigurationArn"],
        "workflow": workflow["workflowBuildVersionArn"],
        "lifecycle": lifecycle["lifecyclePolicyArn"],
        "image": f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image/iso-image/1.0.0/1",
    }


def test_arns_carry_the_callers_account(server: Server, mine: dict[str, str]) -> None:
    assert all(arn.split(":")[4] == ACCOUNT for arn in mine.values())
    theirs = server.client(OTHER_ACCOUNT).create_component(
        name="iso-comp", semanticVersion="1.0.0", platform="Linux", data=PLAIN
    )["componentBuildVersionArn"]
    # The same name and version in another account is another resource, build 1 of its own.
    assert theirs == f"arn:aws:imagebuilder:us-east-1:{OTHER_ACCOUNT}:component/iso-comp/1.0.0/1"


# (family, call on the other account's client with the first account's resources)
CALLS: list[tuple[str, Callable[[Any, dict[str, str]], Any]]] = [
    ("GetComponent", lambda c, m: c.get_component(componentBuildVersionArn=m["component"])),
    ("GetComponent x.x.x", lambda c, m: c.get_component(componentBuildVersionArn=m["component"].rsplit("/", 2)[0] + "/x.x.x")),
    ("DeleteComponent", lambda c, m: c.delete_component(componentBuildVersionArn=m["component"])),
    ("GetComponentPolicy", lambda c, m: c.get_component_policy(componentArn=m["component"])),
    ("PutComponentPolicy", lambda c, m: c.put_component_policy(componentArn=m["component"], policy=_policy(m["component"], "GetComponent"))),
    ("GetImageRecipe", lambda c, m: c.get_image_recipe(imageRecipeArn=m["recipe"])),
    ("DeleteImageRecipe", lambda c, m: c.delete_image_recipe(imageRecipeArn=m["recipe"])),
    ("GetContainerRecipe", lambda c, m: c.get_container_recipe(containerRecipeArn=m["container"])),
    ("DeleteContainerRecipe", lambda c, m: c.delete_container_recipe(containerRecipeArn=m["container"])),
    ("GetInfrastructureConfiguration", lambda c, m: c.get_infrastructure_configuration(infrastructureConfigurationArn=m["infra"])),
    ("UpdateInfrastructureConfiguration", lambda c, m: c.update_infrastructure_configuration(infrastructureConfigurationArn=m["infra"], instanceProfileName="stolen")),
    ("DeleteInfrastructureConfiguration", lambda c, m: c.delete_infrastructure_configuration(infrastructureConfigurationArn=m["infra"])),
    ("GetDistributionConfiguration", lambda c, m: c.get_distribution_configuration(distributionConfigurationArn=m["dist"])),
    ("UpdateDistributionConfiguration", lambda c, m: c.update_distribution_configuration(distributionConfigurationArn=m["dist"], distributions=[{"region": "us-east-1", "amiDistributionConfiguration": {"name": "iso2 {{ imagebuilder:buildDate }}"}}])),
    ("DeleteDistributionConfiguration", lambda c, m: c.delete_distribution_configuration(distributionConfigurationArn=m["dist"])),
    ("GetWorkflow", lambda c, m: c.get_workflow(workflowBuildVersionArn=m["workflow"])),
    ("DeleteWorkflow", lambda c, m: c.delete_workflow(workflowBuildVersionArn=m["workflow"])),
    ("GetLifecyclePolicy", lambda c, m: c.get_lifecycle_policy(lifecyclePolicyArn=m["lifecycle"])),
    ("DeleteLifecyclePolicy", lambda c, m: c.delete_lifecycle_policy(lifecyclePolicyArn=m["lifecycle"])),
    ("GetImage", lambda c, m: c.get_image(imageBuildVersionArn=m["image"])),
    ("DeleteImage", lambda c, m: c.delete_image(imageBuildVersionArn=m["image"])),
    ("GetImagePolicy", lambda c, m: c.get_image_policy(imageArn=m["image"])),
    ("ListImagePackages", lambda c, m: c.list_image_packages(imageBuildVersionArn=m["image"])),
    ("ListTagsForResource", lambda c, m: c.list_tags_for_resource(resourceArn=m["component"])),
    ("TagResource", lambda c, m: c.tag_resource(resourceArn=m["infra"], tags={"owned": "no"})),
    ("CreateImage with their recipe", lambda c, m: c.create_image(imageRecipeArn=m["recipe"], infrastructureConfigurationArn=m["infra"])),
    ("Recipe with their component", lambda c, m: c.create_image_recipe(name="thief", semanticVersion="1.0.0", parentImage="debian-12", components=[{"componentArn": m["component"]}])),
    ("Recipe with their image as parent", lambda c, m: c.create_image_recipe(name="thief2", semanticVersion="1.0.0", parentImage=m["image"], components=[{"componentArn": "arn:aws:imagebuilder:us-east-1:aws:component/hello-world-linux/x.x.x"}])),
]  # fmt: skip


def _policy(arn: str, action: str, account: str = OTHER_ACCOUNT) -> str:
    return (
        '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["' + account + '"]},'
        '"Action":["imagebuilder:' + action + '"],"Resource":["' + arn + '"]}]}'
    )


@pytest.mark.parametrize("case", CALLS, ids=[c[0] for c in CALLS])
def test_another_accounts_resources_do_not_exist(
    server: Server, mine: dict[str, str], case: tuple[str, Callable[[Any, dict[str, str]], Any]]
) -> None:
    _, call = case
    with pytest.raises(ClientError) as exc:
        call(server.client(OTHER_ACCOUNT), mine)
    assert error_code(exc.value) in NOT_THERE, exc.value
    assert "does not exist" in str(exc.value) or "no " in str(exc.value) or "matches" in str(exc.value)
    # ...and it is all still there for its owner.
    ib = server.client(ACCOUNT)
    assert ib.get_component(componentBuildVersionArn=mine["component"])["component"]["arn"] == mine["component"]
    assert (
        ib.get_infrastructure_configuration(infrastructureConfigurationArn=mine["infra"])[
            "infrastructureConfiguration"
        ]["instanceProfileName"]
        == "builder"
    )
    assert "owned" not in ib.list_tags_for_resource(resourceArn=mine["infra"])["tags"]


LISTS: list[tuple[str, str, str]] = [
    ("list_components", "componentVersionList", "component"),
    ("list_image_recipes", "imageRecipeSummaryList", "recipe"),
    ("list_container_recipes", "containerRecipeSummaryList", "container"),
    ("list_infrastructure_configurations", "infrastructureConfigurationSummaryList", "infra"),
    ("list_distribution_configurations", "distributionConfigurationSummaryList", "dist"),
    ("list_workflows", "workflowVersionList", "workflow"),
    ("list_lifecycle_policies", "lifecyclePolicySummaryList", "lifecycle"),
    ("list_images", "imageVersionList", "image"),
    ("list_component_build_versions", "componentSummaryList", "component"),
    ("list_image_build_versions", "imageSummaryList", "image"),
]


@pytest.mark.parametrize("case", LISTS, ids=[c[0] for c in LISTS])
def test_lists_show_only_the_callers_own(server: Server, mine: dict[str, str], case: tuple[str, str, str]) -> None:
    method, key, family = case
    kwargs: dict[str, Any] = {}
    if method == "list_component_build_versions":
        kwargs = {"componentVersionArn": mine["component"].rsplit("/", 1)[0]}
    if method == "list_image_build_versions":
        kwargs = {"imageVersionArn": mine["image"].rsplit("/", 1)[0]}

    def arns(account: str) -> set[str]:
        return {e["arn"] for e in getattr(server.client(account), method)(**kwargs)[key]}

    own = arns(ACCOUNT)
    assert any(mine[family].startswith(a) for a in own), (own, mine[family])
    assert not any(a.split(":")[4] == ACCOUNT for a in arns(OTHER_ACCOUNT))


def test_owner_filters(server: Server, mine: dict[str, str]) -> None:
    other = server.client(OTHER_ACCOUNT)
    amazon = other.list_components(owner="Amazon")["componentVersionList"]
    assert amazon and all(c["owner"] == "Amazon" for c in amazon)
    assert all(c["owner"] == OTHER_ACCOUNT for c in other.list_components(owner="Self")["componentVersionList"])
    assert other.list_components(owner="Shared")["componentVersionList"] == []
    assert other.list_components(owner="ThirdParty")["componentVersionList"] == []
    assert other.list_images(owner="Shared")["imageVersionList"] == []
    assert other.list_image_recipes(owner="Shared")["imageRecipeSummaryList"] == []


def test_execution_roles_of_another_account_are_refused(server: Server, mine: dict[str, str]) -> None:
    other = server.client(OTHER_ACCOUNT)
    with pytest.raises(ClientError) as exc:
        other.create_lifecycle_policy(
            name="borrowed-role",
            executionRole=ROLE,
            resourceType="AMI_IMAGE",
            policyDetails=DETAILS,
            resourceSelection=SELECTION,
        )
    assert error_code(exc.value) in ("InvalidParameterValueException", "InvalidRequestException")
    assert f"belongs to account {ACCOUNT}" in str(exc.value)
    own_role = f"arn:aws:iam::{OTHER_ACCOUNT}:role/mine"
    for role in (own_role, "just-a-role-name"):
        arn = other.create_lifecycle_policy(
            name=f"own-{role.rsplit('/', 1)[-1]}",
            executionRole=role,
            resourceType="AMI_IMAGE",
            policyDetails=DETAILS,
            resourceSelection=SELECTION,
        )["lifecyclePolicyArn"]
        other.delete_lifecycle_policy(lifecyclePolicyArn=arn)


def test_instance_profiles_are_the_worker_pools_an_account_may_use(server: Server) -> None:
    path = server.data_dir / "auth" / "keys.json"
    before = read_keys_file(path)
    write_keys_file(path, type(before)(before.keys, {OTHER_ACCOUNT: ("pool-b", "gpu-*")}))
    other = server.client(OTHER_ACCOUNT)
    try:
        import time

        time.sleep(1.2)  # the server re-reads the keys file at most once a second
        with pytest.raises(ClientError) as exc:
            other.create_infrastructure_configuration(name="wrong-pool", instanceProfileName="pool-a")
        assert "not a worker pool account" in str(exc.value) and "pool-b, gpu-*" in str(exc.value)
        for name in ("pool-b", "gpu-large"):
            arn = other.create_infrastructure_configuration(name=f"ok-{name}", instanceProfileName=name)[
                "infrastructureConfigurationArn"
            ]
            with pytest.raises(ClientError):
                other.update_infrastructure_configuration(infrastructureConfigurationArn=arn, instanceProfileName="x")
            other.delete_infrastructure_configuration(infrastructureConfigurationArn=arn)
        # An account the file does not list may name any pool.
        server.client(ACCOUNT).create_infrastructure_configuration(name="any-pool", instanceProfileName="pool-a")
    finally:
        write_keys_file(path, before)
