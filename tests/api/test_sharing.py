"""Sharing through resource policies, with a real boto3 client per account: each policy type
(component, image, image recipe, container recipe) makes the resource readable and listable by
the account it names and usable where Image Builder uses it (a component in a recipe, an image
as a parent); putting a policy without the account revokes it; a distribution's launchPermission
shares the output image; the grammar is checked."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.api.conftest import ACCOUNT, OTHER_ACCOUNT, Server, error_code
from tests.api.test_images import image_record, put_records
from tests.api.test_recipes import DOCKERFILE, PLAIN

HELLO = "arn:aws:imagebuilder:us-east-1:aws:component/hello-world-linux/x.x.x"


def policy(arn: str, *actions: str, account: str = OTHER_ACCOUNT) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": [account]},
                    "Action": [f"imagebuilder:{a}" for a in actions],
                    "Resource": [arn],
                }
            ],
        }
    )


def refused(call: Any, **kw: Any) -> ClientError:
    with pytest.raises(ClientError) as exc:
        call(**kw)
    return exc.value


@pytest.fixture(scope="module")
def owner(server: Server) -> Any:
    return server.client(ACCOUNT)


@pytest.fixture(scope="module")
def other(server: Server) -> Any:
    return server.client(OTHER_ACCOUNT)


def test_a_shared_component_is_readable_listed_and_usable_until_revoked(owner: Any, other: Any) -> None:
    arn = owner.create_component(name="shared-comp", semanticVersion="1.0.0", platform="Linux", data=PLAIN)[
        "componentBuildVersionArn"
    ]
    version_arn = arn.rsplit("/", 1)[0]
    assert refused(other.get_component, componentBuildVersionArn=arn)
    owner.put_component_policy(componentArn=arn, policy=policy(arn, "GetComponent", "ListComponents"))

    assert other.get_component(componentBuildVersionArn=arn)["component"]["owner"] == ACCOUNT
    assert (
        other.get_component(componentBuildVersionArn=version_arn.rsplit("/", 1)[0] + "/x.x.x")["component"]["arn"]
        == arn
    )
    shared = other.list_components(owner="Shared")["componentVersionList"]
    assert [c["arn"] for c in shared] == [version_arn]
    assert arn not in {c["arn"] for c in other.list_components()["componentVersionList"]}
    recipe = other.create_image_recipe(
        name="uses-shared", semanticVersion="1.0.0", parentImage="debian-12", components=[{"componentArn": arn}]
    )["imageRecipeArn"]
    assert recipe.split(":")[4] == OTHER_ACCOUNT
    # Shared is read-only: the other account can neither change, delete nor re-share it.
    for call, kw in (
        (other.delete_component, {"componentBuildVersionArn": arn}),
        (other.put_component_policy, {"componentArn": arn, "policy": policy(arn, "GetComponent")}),
        (other.get_component_policy, {"componentArn": arn}),
        (other.tag_resource, {"resourceArn": arn, "tags": {"mine": "no"}}),
    ):
        assert error_code(refused(call, **kw)) in ("ForbiddenException", "InvalidParameterException")

    # Revoked: a new policy without the account.
    owner.put_component_policy(componentArn=arn, policy=policy(arn, "GetComponent", account="999999999999"))
    assert "does not exist" in str(refused(other.get_component, componentBuildVersionArn=arn))
    assert other.list_components(owner="Shared")["componentVersionList"] == []
    err = refused(
        other.create_image_recipe,
        name="uses-revoked",
        semanticVersion="1.0.0",
        parentImage="debian-12",
        components=[{"componentArn": arn}],
    )
    assert "does not exist" in str(err)


def test_get_without_list_is_not_listed(owner: Any, other: Any) -> None:
    arn = owner.create_component(name="get-only", semanticVersion="1.0.0", platform="Linux", data=PLAIN)[
        "componentBuildVersionArn"
    ]
    owner.put_component_policy(componentArn=arn, policy=policy(arn, "GetComponent"))
    assert other.get_component(componentBuildVersionArn=arn)["component"]["arn"] == arn
    assert arn.rsplit("/", 1)[0] not in {
        c["arn"] for c in other.list_components(owner="Shared")["componentVersionList"]
    }


def test_a_shared_image_is_a_parent_for_another_account(server: Server, owner: Any, other: Any) -> None:
    put_records(server, [image_record("golden", "1.0.0", 1, "AVAILABLE")])
    arn = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image/golden/1.0.0/1"
    child = {"name": "child", "semanticVersion": "1.0.0", "parentImage": arn, "components": [{"componentArn": HELLO}]}
    assert "does not name an image that exists" in str(refused(other.create_image_recipe, **child))
    owner.put_image_policy(imageArn=arn, policy=policy(arn, "GetImage", "ListImages"))
    assert other.get_image(imageBuildVersionArn=arn)["image"]["arn"] == arn
    assert [i["arn"] for i in other.list_images(owner="Shared")["imageVersionList"]] == [arn.rsplit("/", 1)[0]]
    assert other.create_image_recipe(**child)["imageRecipeArn"].split(":")[4] == OTHER_ACCOUNT
    assert error_code(refused(other.delete_image, imageBuildVersionArn=arn)) in ("ForbiddenException",)
    owner.put_image_policy(imageArn=arn, policy=policy(arn, "GetImage", account="999999999999"))
    assert refused(other.get_image, imageBuildVersionArn=arn)
    assert refused(other.create_image_recipe, **{**child, "semanticVersion": "1.0.1"})


def test_shared_recipes(owner: Any, other: Any) -> None:
    image_recipe = owner.create_image_recipe(
        name="shared-recipe", semanticVersion="1.0.0", parentImage="debian-12", components=[{"componentArn": HELLO}]
    )["imageRecipeArn"]
    container_recipe = owner.create_container_recipe(
        name="shared-container",
        semanticVersion="1.0.0",
        containerType="DOCKER",
        parentImage="debian:bookworm",
        targetRepository={"service": "ECR", "repositoryName": "shared/app"},
        dockerfileTemplateData=DOCKERFILE,
        components=[{"componentArn": HELLO}],
    )["containerRecipeArn"]
    assert refused(other.get_image_recipe, imageRecipeArn=image_recipe)
    assert refused(other.get_container_recipe, containerRecipeArn=container_recipe)
    owner.put_image_recipe_policy(
        imageRecipeArn=image_recipe, policy=policy(image_recipe, "GetImageRecipe", "ListImageRecipes")
    )
    owner.put_container_recipe_policy(
        containerRecipeArn=container_recipe,
        policy=policy(container_recipe, "GetContainerRecipe", "ListContainerRecipes"),
    )
    assert other.get_image_recipe(imageRecipeArn=image_recipe)["imageRecipe"]["owner"] == ACCOUNT
    assert other.get_container_recipe(containerRecipeArn=container_recipe)["containerRecipe"]["arn"] == container_recipe
    assert [r["arn"] for r in other.list_image_recipes(owner="Shared")["imageRecipeSummaryList"]] == [image_recipe]
    assert [r["arn"] for r in other.list_container_recipes(owner="Shared")["containerRecipeSummaryList"]] == [
        container_recipe
    ]
    assert image_recipe not in {r["arn"] for r in other.list_image_recipes()["imageRecipeSummaryList"]}
    assert error_code(refused(other.delete_image_recipe, imageRecipeArn=image_recipe)) == "ForbiddenException"
    owner.put_image_recipe_policy(
        imageRecipeArn=image_recipe, policy=policy(image_recipe, "GetImageRecipe", account="999999999999")
    )
    assert refused(other.get_image_recipe, imageRecipeArn=image_recipe)
    assert other.list_image_recipes(owner="Shared")["imageRecipeSummaryList"] == []


def test_launch_permission_shares_the_output_image(server: Server, other: Any) -> None:
    def distributed(name: str, status: str, users: list[str]) -> Any:
        dist = {
            "distributions": [
                {"region": "us-east-1", "amiDistributionConfiguration": {"launchPermission": {"userIds": users}}},
                {"region": "eu-west-1", "amiDistributionConfiguration": {"launchPermission": {"userIds": ["1" * 12]}}},
            ]
        }
        return image_record(name, "1.0.0", 1, status, distributionConfiguration=dist)

    put_records(
        server,
        [
            distributed("launchable", "AVAILABLE", [OTHER_ACCOUNT]),
            distributed("still-building", "BUILDING", [OTHER_ACCOUNT]),
            distributed("for-someone-else", "AVAILABLE", ["111122223333"]),
        ],
    )
    prefix = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image"
    assert other.get_image(imageBuildVersionArn=f"{prefix}/launchable/1.0.0/1")["image"]["state"]["status"] == (
        "AVAILABLE"
    )
    shared = {i["arn"] for i in other.list_images(owner="Shared")["imageVersionList"]}
    assert f"{prefix}/launchable/1.0.0" in shared
    assert not {f"{prefix}/still-building/1.0.0", f"{prefix}/for-someone-else/1.0.0"} & shared
    assert refused(other.get_image, imageBuildVersionArn=f"{prefix}/still-building/1.0.0/1")
    assert refused(other.get_image, imageBuildVersionArn=f"{prefix}/for-someone-else/1.0.0/1")


BAD_POLICIES = [
    ("not json", "{nope", "not valid JSON"),
    ("deny", {"Effect": "Deny", "Principal": {"AWS": [OTHER_ACCOUNT]}, "Action": "imagebuilder:GetComponent"},
     "only Allow"),
    ("everyone", {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "imagebuilder:GetComponent"},
     "not an account id"),
    ("a user", {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{OTHER_ACCOUNT}:user/bob"},
                "Action": "imagebuilder:GetComponent"}, "whole accounts"),
    ("service principal", {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                           "Action": "imagebuilder:GetComponent"}, "Principal must be"),
    ("another type's action", {"Effect": "Allow", "Principal": {"AWS": OTHER_ACCOUNT},
                               "Action": "imagebuilder:GetImage"}, "cannot be granted on a component"),
    ("a write action", {"Effect": "Allow", "Principal": {"AWS": OTHER_ACCOUNT},
                        "Action": "imagebuilder:DeleteComponent"}, "cannot be granted"),
    ("condition", {"Effect": "Allow", "Principal": {"AWS": OTHER_ACCOUNT}, "Action": "imagebuilder:GetComponent",
                   "Condition": {"Bool": {"aws:SecureTransport": "true"}}}, "Condition is not supported"),
    ("another resource", {"Effect": "Allow", "Principal": {"AWS": OTHER_ACCOUNT}, "Action": "imagebuilder:GetComponent",
                          "Resource": "arn:aws:imagebuilder:us-east-1:123456789012:component/other/1.0.0/1"},
     "does not name"),
]  # fmt: skip


@pytest.mark.parametrize("case", BAD_POLICIES, ids=[c[0] for c in BAD_POLICIES])
def test_policies_outside_the_grammar_are_refused(owner: Any, case: tuple[str, Any, str]) -> None:
    _, statement, words = case
    arn = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:component/grammar/1.0.0/1"
    try:
        owner.get_component(componentBuildVersionArn=arn)
    except ClientError:
        owner.create_component(name="grammar", semanticVersion="1.0.0", platform="Linux", data=PLAIN)
    text = statement if isinstance(statement, str) else json.dumps({"Version": "2012-10-17", "Statement": [statement]})
    err = refused(owner.put_component_policy, componentArn=arn, policy=text)
    assert error_code(err) == "InvalidParameterValueException" and words in str(err), err
