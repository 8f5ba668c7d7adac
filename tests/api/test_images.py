"""Images through real boto3 clients: the records builds leave (get, list, build versions,
packages, policies, delete) and the build operations, which validate fully and then answer
ServiceUnavailable until the build orchestration exists.

Builds cannot run yet, so image records are written straight into the server's store, the
way the build workflow will write them.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from engine.store import Record, Store
from tests.api.conftest import ACCOUNT, Server, check_output, error_code

ARN = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}"
MANAGED = "arn:aws:imagebuilder:us-east-1:aws"
POLICY = (
    '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["111122223333"]},'
    '"Action":["imagebuilder:GetImage"],"Resource":["*"]}]}'
)
BUILD_WF = """name: custom-build
schemaVersion: 1.0
parameters:
  - name: size
    type: integer
    default: 8
steps:
  - name: Launch
    action: LaunchInstance
    inputs:
      waitFor: ssmAgent
  - name: Capture
    action: CreateImage
    inputs:
      instanceId.$: $.stepOutputs.Launch.instanceId
"""
DOCKERFILE = (
    "FROM {{{ imagebuilder:parentImage }}}\n{{{ imagebuilder:environments }}}\n{{{ imagebuilder:components }}}\n"
)
TEST_WF = """name: custom-test
schemaVersion: 1.0
steps:
  - name: Launch
    action: LaunchInstance
    inputs:
      waitFor: ssmAgent
"""


def store_of(server: Server) -> Store:
    return Store(f"sqlite:///{server.data_dir.resolve() / 'imagebuilder.sqlite'}")


def put_records(server: Server, records: list[Record]) -> None:
    """Write records into the running server's store, as the build workflow will."""
    store = store_of(server)
    try:
        with store.transaction(write=True) as tx:
            for rec in records:
                tx.insert(rec)
    finally:
        store.dispose()


def image_record(
    name: str,
    version: str,
    build: int,
    status: str,
    *,
    account: str = ACCOUNT,
    image_type: str = "AMI",
    parent: str | None = None,
    **extra: Any,
) -> Record:
    region_account = f"arn:aws:imagebuilder:us-east-1:{account}"
    arn = f"{region_account}:image/{name}/{version}/{build}"
    body: dict[str, Any] = {
        "arn": arn,
        "name": name,
        "type": image_type,
        "version": f"{version}/{build}",
        "platform": "Linux",
        "osVersion": "Debian 12",
        "state": {"status": status},
        "owner": "Amazon" if account == "aws" else account,
        "buildType": "USER_INITIATED",
        "imageSource": "AMAZON_MANAGED" if account == "aws" else "CUSTOM",
        "tags": {},
        **extra,
    }
    return Record(
        arn=arn, kind="image", account=account, name=name, version=version, build=build, body=body, parent=parent
    )


def fails(call: Any, **kw: Any) -> ClientError:
    with pytest.raises(ClientError) as exc:
        call(**kw)
    return exc.value


def missing(err: ClientError) -> bool:
    return error_code(err) in ("InvalidRequestException", "ResourceNotFoundException") and (
        "does not exist" in str(err) or "no image matches" in str(err)
    )


def unavailable(err: ClientError, operation: str) -> bool:
    return error_code(err) == "ServiceUnavailableException" and f"{operation} is not available yet" in str(err)


@pytest.fixture(scope="module")
def images(server: Server) -> dict[str, str]:
    packages = [{"packageName": f"pkg-{i}", "packageVersion": f"1.{i}"} for i in range(30)]
    records = [
        image_record("web", "1.0.0", 1, "AVAILABLE", _packages=packages),
        image_record("web", "1.0.0", 2, "BUILDING"),
        image_record("web", "1.1.0", 1, "FAILED", state={"status": "FAILED", "reason": "component failed"}),
        image_record("app", "2.0.0", 1, "AVAILABLE", image_type="DOCKER"),
        image_record("doomed", "1.0.0", 1, "AVAILABLE"),
        image_record("ubuntu-22", "1.0.0", 1, "AVAILABLE", account="aws"),
        image_record("ubuntu-20", "1.0.0", 1, "DEPRECATED", account="aws"),
    ]
    put_records(server, records)
    return {f"{r.name}/{r.version}/{r.build}": r.arn for r in records}


@pytest.fixture(scope="module")
def deps(ib: Any) -> dict[str, str]:
    """A recipe, an infrastructure and a distribution configuration, and workflows."""
    recipe = ib.create_image_recipe(name="base", semanticVersion="1.0.0", parentImage="debian-12-x86_64")
    container = ib.create_container_recipe(
        name="app",
        semanticVersion="1.0.0",
        containerType="DOCKER",
        parentImage="debian:bookworm",
        targetRepository={"service": "ECR", "repositoryName": "team/app"},
        dockerfileTemplateData=DOCKERFILE,
    )
    infra = ib.create_infrastructure_configuration(name="hosts", instanceProfileName="builder")
    dist = ib.create_distribution_configuration(
        name="out",
        distributions=[
            {"region": "us-east-1", "amiDistributionConfiguration": {"name": "img {{ imagebuilder:buildDate }}"}}
        ],
    )
    build = ib.create_workflow(name="custom-build", semanticVersion="1.0.0", type="BUILD", data=BUILD_WF)
    test = ib.create_workflow(name="custom-test", semanticVersion="1.0.0", type="TEST", data=TEST_WF)
    return {
        "recipe": recipe["imageRecipeArn"],
        "container": container["containerRecipeArn"],
        "infra": infra["infrastructureConfigurationArn"],
        "dist": dist["distributionConfigurationArn"],
        "build": build["workflowBuildVersionArn"],
        "test": test["workflowBuildVersionArn"],
    }


def test_get_image(ib: Any, images: dict[str, str]) -> None:
    got = ib.get_image(imageBuildVersionArn=images["web/1.0.0/1"])
    check_output("GetImage", got)
    image = got["image"]
    assert image["arn"] == images["web/1.0.0/1"] and image["state"]["status"] == "AVAILABLE"
    assert image["version"] == "1.0.0/1" and "_packages" not in image
    assert got["latestVersionReferences"]["latestVersionArn"] == f"{ARN}:image/web/x.x.x"
    # A version ARN names its newest build, whatever its state; a wildcard only usable images.
    assert ib.get_image(imageBuildVersionArn=f"{ARN}:image/web/1.0.0")["image"]["arn"].endswith("/1.0.0/2")
    assert ib.get_image(imageBuildVersionArn=f"{ARN}:image/web/x.x.x")["image"]["arn"] == images["web/1.0.0/1"]
    managed = ib.get_image(imageBuildVersionArn=f"{MANAGED}:image/ubuntu-22/x.x.x")["image"]
    assert managed["arn"] == f"{MANAGED}:image/ubuntu-22/1.0.0/1" and managed["imageSource"] == "AMAZON_MANAGED"
    assert missing(fails(ib.get_image, imageBuildVersionArn=f"{ARN}:image/nothing/1.0.0/1"))
    assert missing(fails(ib.get_image, imageBuildVersionArn=f"{ARN}:image/web/3.0.0"))


def test_list_images(ib: Any, images: dict[str, str]) -> None:
    page = ib.list_images()
    check_output("ListImages", page)
    own = {(i["name"], i["version"]) for i in page["imageVersionList"]}
    assert {("web", "1.0.0"), ("web", "1.1.0"), ("app", "2.0.0")} <= own
    assert all(i["arn"].count("/") == 2 for i in page["imageVersionList"])  # version ARNs
    by_name = ib.list_images(byName=True, filters=[{"name": "name", "values": ["web"]}])["imageVersionList"]
    assert [i["version"] for i in by_name] == ["1.1.0"]
    docker = ib.list_images(filters=[{"name": "type", "values": ["DOCKER"]}])["imageVersionList"]
    assert [i["name"] for i in docker] == ["app"]
    amazon = ib.list_images(owner="Amazon")["imageVersionList"]
    # debian-12 and debian-12-container are the offline parent images the server registers at start.
    assert sorted(i["name"] for i in amazon) == ["debian-12", "debian-12-container", "ubuntu-22"]
    with_deprecated = ib.list_images(owner="Amazon", includeDeprecated=True)["imageVersionList"]
    assert {i["name"] for i in with_deprecated} == {"ubuntu-20", "ubuntu-22", "debian-12", "debian-12-container"}
    parent = ib.get_image(imageBuildVersionArn=f"{MANAGED}:image/debian-12-container/x.x.x")["image"]
    assert parent["type"] == "DOCKER" and parent["state"]["status"] == "AVAILABLE"
    assert all(i["owner"] == "Amazon" for i in amazon)
    assert parent["outputResources"]["containers"][0]["imageUris"] == ["imagebuilder/debian:12"]
    assert parent["osVersion"] == "Debian 12" and parent["platform"] == "Linux"
    first = ib.list_images(maxResults=1)
    assert len(first["imageVersionList"]) == 1 and first["nextToken"]


def test_list_image_build_versions(ib: Any, images: dict[str, str]) -> None:
    builds = ib.list_image_build_versions(imageVersionArn=f"{ARN}:image/web/1.0.0")
    check_output("ListImageBuildVersions", builds)
    assert [b["arn"] for b in builds["imageSummaryList"]] == [images["web/1.0.0/1"], images["web/1.0.0/2"]]
    assert [b["state"]["status"] for b in builds["imageSummaryList"]] == ["AVAILABLE", "BUILDING"]
    other = ib.list_image_build_versions(imageVersionArn=f"{ARN}:image/web/1.1.0")["imageSummaryList"]
    assert [b["state"] for b in other] == [{"status": "FAILED", "reason": "component failed"}]
    assert ib.list_image_build_versions(imageVersionArn=f"{ARN}:image/none/1.0.0")["imageSummaryList"] == []
    filtered = ib.list_image_build_versions(filters=[{"name": "version", "values": ["1.1.0"]}])["imageSummaryList"]
    assert [b["arn"] for b in filtered] == [images["web/1.1.0/1"]]


def test_packages_and_policy(ib: Any, images: dict[str, str]) -> None:
    page = ib.list_image_packages(imageBuildVersionArn=images["web/1.0.0/1"], maxResults=25)
    check_output("ListImagePackages", page)
    assert len(page["imagePackageList"]) == 25 and page["nextToken"]
    rest = ib.list_image_packages(
        imageBuildVersionArn=images["web/1.0.0/1"], maxResults=25, nextToken=page["nextToken"]
    )
    assert [p["packageName"] for p in rest["imagePackageList"]] == [f"pkg-{i}" for i in range(25, 30)]
    assert ib.list_image_packages(imageBuildVersionArn=images["app/2.0.0/1"])["imagePackageList"] == []
    err = fails(ib.list_image_packages, imageBuildVersionArn=f"{ARN}:image/nothing/1.0.0/1")
    assert error_code(err) == "ResourceNotFoundException"

    arn = images["web/1.0.0/1"]
    err = fails(ib.get_image_policy, imageArn=arn)
    assert error_code(err) == "ResourceNotFoundException" and "no resource policy" in str(err)
    check_output("PutImagePolicy", ib.put_image_policy(imageArn=arn, policy=POLICY))
    got = ib.get_image_policy(imageArn=arn)
    check_output("GetImagePolicy", got)
    assert got["policy"] == POLICY
    err = fails(ib.put_image_policy, imageArn=arn, policy='{"Statement": "nope"}')
    assert error_code(err) == "InvalidParameterValueException"
    err = fails(ib.put_image_policy, imageArn=f"{MANAGED}:image/ubuntu-22/1.0.0/1", policy=POLICY)
    assert error_code(err) == "ForbiddenException"


def test_delete_image(ib: Any, images: dict[str, str]) -> None:
    err = fails(ib.delete_image, imageBuildVersionArn=images["web/1.0.0/2"])
    assert error_code(err) == "ResourceDependencyException" and "CancelImageCreation" in str(err)
    ib.create_image_recipe(name="on-doomed", semanticVersion="1.0.0", parentImage=f"{ARN}:image/doomed/x.x.x")
    err = fails(ib.delete_image, imageBuildVersionArn=images["doomed/1.0.0/1"])
    assert error_code(err) == "ResourceDependencyException" and "on-doomed" in str(err)
    ib.delete_image_recipe(imageRecipeArn=f"{ARN}:image-recipe/on-doomed/1.0.0")
    r = ib.delete_image(imageBuildVersionArn=images["doomed/1.0.0/1"])
    check_output("DeleteImage", r)
    assert r["imageBuildVersionArn"] == images["doomed/1.0.0/1"]
    assert missing(fails(ib.get_image, imageBuildVersionArn=images["doomed/1.0.0/1"]))
    err = fails(ib.delete_image, imageBuildVersionArn=f"{MANAGED}:image/ubuntu-22/1.0.0/1")
    assert error_code(err) == "ForbiddenException"


# --- build operations: validated, then not available yet -----------------------------------------


def test_create_image_validation(ib: Any, deps: dict[str, str]) -> None:
    base = {"imageRecipeArn": deps["recipe"], "infrastructureConfigurationArn": deps["infra"]}
    err = fails(ib.create_image, infrastructureConfigurationArn=deps["infra"])
    assert error_code(err) == "InvalidRequestException" and "exactly one" in str(err)
    err = fails(ib.create_image, **base, containerRecipeArn=deps["container"])
    assert error_code(err) == "InvalidRequestException" and "exactly one" in str(err)
    err = fails(ib.create_image, **{**base, "imageRecipeArn": f"{ARN}:image-recipe/none/1.0.0"})
    assert error_code(err) == "InvalidRequestException" and "none" in str(err)
    err = fails(ib.create_image, **{**base, "infrastructureConfigurationArn": f"{ARN}:infrastructure-configuration/x"})
    assert error_code(err) == "InvalidRequestException" and "does not exist" in str(err)
    err = fails(ib.create_image, **base, distributionConfigurationArn=f"{ARN}:distribution-configuration/none")
    assert error_code(err) == "InvalidRequestException" and "does not exist" in str(err)
    err = fails(ib.create_image, **base, imageScanningConfiguration={"ecrConfiguration": {"repositoryName": "r"}})
    assert error_code(err) == "InvalidRequestException" and "container recipes only" in str(err)


@pytest.mark.parametrize(
    ("workflows", "role", "message"),
    [
        ([{"workflowArn": "build"}], None, "executionRole is required"),
        ([{"workflowArn": "build", "parameters": [{"name": "colour", "value": ["red"]}]}], "r", "no parameter"),
        ([{"workflowArn": "build", "parameters": [{"name": "size", "value": ["big"]}]}], "r", "whole number"),
        ([{"workflowArn": "build"}, {"workflowArn": "build"}], "r", "at most one BUILD"),
        ([{"workflowArn": "build", "onFailure": "CONTINUE"}], "r", "TEST workflows only"),
        ([{"workflowArn": f"{ARN}:workflow/build/nothing/1.0.0"}], "r", "nothing"),
        ([{"workflowArn": f"{ARN}:workflow/test/custom-build/1.0.0"}], "r", "custom-build"),
        ([{"workflowArn": "test"}] * 11, "r", "at most 10"),
    ],
)
def test_create_image_workflow_checks(
    ib: Any, deps: dict[str, str], workflows: list[dict[str, Any]], role: str | None, message: str
) -> None:
    resolved = [{**w, "workflowArn": deps.get(w["workflowArn"], w["workflowArn"])} for w in workflows]
    kw: dict[str, Any] = {"executionRole": role} if role else {}
    err = fails(
        ib.create_image,
        imageRecipeArn=deps["recipe"],
        infrastructureConfigurationArn=deps["infra"],
        workflows=resolved,
        **kw,
    )
    assert error_code(err) == "InvalidRequestException" and message in str(err), err


def test_create_image_without_temporal_fails_the_record_with_the_reason(ib: Any, deps: dict[str, str]) -> None:
    """No Temporal server runs for the API tests: a valid CreateImage answers ServiceUnavailable
    and the image record it wrote says FAILED and why, rather than staying PENDING."""
    err = fails(
        ib.create_image,
        imageRecipeArn=deps["recipe"],
        infrastructureConfigurationArn=deps["infra"],
        distributionConfigurationArn=deps["dist"],
        executionRole="arn:aws:iam::123456789012:role/builder",
        workflows=[
            {"workflowArn": deps["build"], "parameters": [{"name": "size", "value": ["16"]}]},
            {"workflowArn": deps["test"], "parallelGroup": "a", "onFailure": "CONTINUE"},
            {"workflowArn": f"{MANAGED}:workflow/test/test-image/x.x.x", "parallelGroup": "a"},
        ],
    )
    assert error_code(err) == "ServiceUnavailableException" and "Temporal" in str(err)
    recipe_name = deps["recipe"].split("/")[-2]
    builds = ib.list_image_build_versions(imageVersionArn=f"{ARN}:image/{recipe_name}/1.0.0")["imageSummaryList"]
    assert builds and builds[-1]["state"]["status"] == "FAILED" and "Temporal" in builds[-1]["state"]["reason"]
    err = fails(ib.create_image, containerRecipeArn=deps["container"], infrastructureConfigurationArn=deps["infra"])
    assert error_code(err) == "ServiceUnavailableException"


def test_build_steering_operations(ib: Any, images: dict[str, str], deps: dict[str, str]) -> None:
    err = fails(ib.cancel_image_creation, imageBuildVersionArn=images["web/1.0.0/1"])
    assert error_code(err) == "ResourceInUseException" and "AVAILABLE" in str(err)
    err = fails(ib.cancel_image_creation, imageBuildVersionArn=images["web/1.0.0/2"])
    assert error_code(err) == "ServiceUnavailableException" and "Temporal" in str(err)
    assert missing(fails(ib.cancel_image_creation, imageBuildVersionArn=f"{ARN}:image/nothing/1.0.0/1"))

    err = fails(ib.retry_image, imageBuildVersionArn=images["web/1.0.0/1"])
    assert error_code(err) == "ResourceInUseException"
    err = fails(ib.retry_image, imageBuildVersionArn=images["web/1.1.0/1"])
    assert error_code(err) == "InvalidRequestException" and "kept their input" in str(err)

    role = "arn:aws:iam::123456789012:role/r"
    err = fails(
        ib.distribute_image,
        sourceImage=images["web/1.0.0/1"],
        distributionConfigurationArn=f"{ARN}:distribution-configuration/none",
        executionRole=role,
    )
    assert error_code(err) == "ResourceNotFoundException"
    err = fails(
        ib.distribute_image,
        sourceImage=f"{ARN}:image/nothing/1.0.0/1",
        distributionConfigurationArn=deps["dist"],
        executionRole=role,
    )
    assert error_code(err) == "ResourceNotFoundException"
    err = fails(
        ib.distribute_image,
        sourceImage=images["web/1.0.0/1"],
        distributionConfigurationArn=deps["dist"],
        executionRole=role,
    )
    assert unavailable(err, "DistributeImage")

    vm = {"name": "vm", "semanticVersion": "1.0.0", "platform": "Linux"}
    err = fails(ib.import_vm_image, **vm, vmImportTaskId="s3://bucket-only")
    assert error_code(err) == "ClientException" and "s3://bucket/key" in str(err)
    # A valid import is accepted, then the build service (no Temporal behind this test server) is not there.
    err = fails(ib.import_vm_image, **vm, vmImportTaskId="s3://exports/golden.vmdk")
    assert error_code(err) == "ServiceUnavailableException" and "not reachable" in str(err)
    disk = {
        "name": "disk",
        "semanticVersion": "1.0.0",
        "platform": "Linux",
        "osVersion": "Debian 12",
        "uri": "/x.qcow2",
    }
    err = fails(ib.import_disk_image, infrastructureConfigurationArn=f"{ARN}:infrastructure-configuration/none", **disk)
    assert error_code(err) == "ClientException" and "does not exist" in str(err)
    err = fails(ib.import_disk_image, infrastructureConfigurationArn=deps["infra"], **disk)
    assert error_code(err) == "ServiceUnavailableException" and "not reachable" in str(err)


def test_start_resource_state_update(ib: Any, images: dict[str, str]) -> None:
    err = fails(ib.start_resource_state_update, resourceArn=images["web/1.0.0/2"], state={"status": "DEPRECATED"})
    assert error_code(err) == "ResourceInUseException"
    err = fails(ib.start_resource_state_update, resourceArn=images["web/1.1.0/1"], state={"status": "DEPRECATED"})
    assert error_code(err) == "InvalidRequestException" and "only be set to DELETED" in str(err)
    err = fails(ib.start_resource_state_update, resourceArn=images["web/1.0.0/1"], state={"status": "DELETED"})
    assert error_code(err) == "InvalidRequestException" and "includeResources" in str(err)
    err = fails(
        ib.start_resource_state_update, resourceArn=f"{ARN}:image/nothing/1.0.0/1", state={"status": "DISABLED"}
    )
    assert error_code(err) == "ResourceNotFoundException"
    # Valid: the execution is recorded, then the lifecycle workflow cannot start (no Temporal behind this server).
    err = fails(ib.start_resource_state_update, resourceArn=images["web/1.0.0/1"], state={"status": "DEPRECATED"})
    assert error_code(err) == "ServiceUnavailableException" and "not reachable" in str(err)


def test_idempotent_token_does_not_cache_errors(ib: Any, deps: dict[str, str]) -> None:
    # A build that could not start is not remembered as a success: the same token can be used
    # again, and each try is its own (failed) build, never the first one's stored answer.
    for _ in range(2):
        err = fails(
            ib.create_image,
            imageRecipeArn=deps["recipe"],
            infrastructureConfigurationArn=deps["infra"],
            clientToken="ci-1",
        )
        assert error_code(err) == "ServiceUnavailableException" and "Temporal" in str(err)
