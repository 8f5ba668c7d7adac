"""Infrastructure and distribution configurations through real boto3 clients (and the AWS
CLI once): create, get, list, full-replacement updates, validation, and delete while in use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.api.conftest import ACCOUNT, Server, check_output, error_code

ARN = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}"
OTHER_ACCOUNT = "111122223333"


def fails(call: Any, **kw: Any) -> ClientError:
    with pytest.raises(ClientError) as exc:
        call(**kw)
    return exc.value


def infra(ib: Any, name: str, **kw: Any) -> str:
    kw.setdefault("instanceProfileName", "builder")
    r = ib.create_infrastructure_configuration(name=name, **kw)
    check_output("CreateInfrastructureConfiguration", r)
    arn: str = r["infrastructureConfigurationArn"]
    return arn


def dist(ib: Any, name: str, distributions: list[dict[str, Any]] | None = None, **kw: Any) -> str:
    if distributions is None:
        distributions = [
            {"region": "us-east-1", "amiDistributionConfiguration": {"name": "img {{ imagebuilder:buildDate }}"}}
        ]
    r = ib.create_distribution_configuration(name=name, distributions=distributions, **kw)
    check_output("CreateDistributionConfiguration", r)
    arn: str = r["distributionConfigurationArn"]
    return arn


# --- infrastructure configurations ---------------------------------------------------------


def test_infrastructure_create_get(ib: Any) -> None:
    arn = infra(
        ib,
        "Build Hosts",
        description="kvm hosts",
        instanceTypes=["m5.large", "m5.xlarge"],
        securityGroupIds=["sg-build"],
        subnetId="subnet-lab",
        logging={"s3Logs": {"s3BucketName": "logs", "s3KeyPrefix": "builds/"}},
        keyPair="ops",
        terminateInstanceOnFailure=False,
        snsTopicArn=f"arn:aws:sns:us-east-1:{ACCOUNT}:builds",
        resourceTags={"cost-center": "42"},
        instanceMetadataOptions={"httpTokens": "required", "httpPutResponseHopLimit": 2},
        placement={"tenancy": "dedicated"},
        tags={"team": "platform"},
    )
    assert arn == f"{ARN}:infrastructure-configuration/build-hosts"
    got = ib.get_infrastructure_configuration(infrastructureConfigurationArn=arn)
    check_output("GetInfrastructureConfiguration", got)
    cfg = got["infrastructureConfiguration"]
    assert cfg["name"] == "Build Hosts" and cfg["instanceTypes"] == ["m5.large", "m5.xlarge"]
    assert cfg["terminateInstanceOnFailure"] is False and cfg["terminateInstanceOnCompletion"] is True
    assert cfg["instanceMetadataOptions"] == {"httpTokens": "required", "httpPutResponseHopLimit": 2}
    assert cfg["logging"]["s3Logs"]["s3KeyPrefix"] == "builds/" and cfg["tags"] == {"team": "platform"}
    assert "dateCreated" in cfg and "dateUpdated" not in cfg
    err = fails(ib.create_infrastructure_configuration, name="build_hosts", instanceProfileName="x")
    assert error_code(err) == "ResourceAlreadyExistsException" and "already exists" in str(err)


def test_infrastructure_update_replaces_everything(ib: Any) -> None:
    arn = infra(ib, "replaced", description="first", keyPair="ops", instanceTypes=["t3.small"], tags={"keep": "me"})
    r = ib.update_infrastructure_configuration(
        infrastructureConfigurationArn=arn, instanceProfileName="builder-2", description="second"
    )
    check_output("UpdateInfrastructureConfiguration", r)
    assert r["infrastructureConfigurationArn"] == arn
    cfg = ib.get_infrastructure_configuration(infrastructureConfigurationArn=arn)["infrastructureConfiguration"]
    assert cfg["description"] == "second" and cfg["instanceProfileName"] == "builder-2"
    assert "keyPair" not in cfg and "instanceTypes" not in cfg  # omitted members are removed
    assert cfg["terminateInstanceOnFailure"] is True  # ... or reset to their default
    assert cfg["tags"] == {"keep": "me"} and cfg["name"] == "replaced" and "dateUpdated" in cfg
    err = fails(
        ib.update_infrastructure_configuration,
        infrastructureConfigurationArn=f"{ARN}:infrastructure-configuration/nothing-here",
        instanceProfileName="x",
    )
    assert error_code(err) == "InvalidRequestException" and "does not exist" in str(err)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"subnetId": "subnet-1"}, "needs securityGroupIds"),
        ({"resourceTags": {"Name": "x"}}, "reserved"),
        ({"resourceTags": {"aws:owner": "x"}}, "aws:"),  # the model's key pattern refuses it already
        ({"instanceMetadataOptions": {"httpTokens": "requiredish"}}, "optional or required"),
        ({"placement": {"tenancy": "dedicated", "hostId": "h-1"}}, "tenancy is host"),
        ({"placement": {"tenancy": "host", "hostId": "h-1", "hostResourceGroupArn": "arn:x"}}, "not both"),
        ({"instanceTypes": ["m5.large", "m5.large"]}, "more than once"),
    ],
)
def test_infrastructure_validation(ib: Any, extra: dict[str, Any], message: str) -> None:
    err = fails(ib.create_infrastructure_configuration, name="invalid-infra", instanceProfileName="p", **extra)
    assert error_code(err) == "InvalidRequestException" and message in str(err), err


def test_infrastructure_list_and_delete(ib: Any) -> None:
    made = [infra(ib, f"listed-infra-{i}", instanceTypes=["m5.large"]) for i in range(3)]
    page = ib.list_infrastructure_configurations(maxResults=2)
    check_output("ListInfrastructureConfigurations", page)
    assert len(page["infrastructureConfigurationSummaryList"]) == 2 and page["nextToken"]
    one = ib.list_infrastructure_configurations(filters=[{"name": "name", "values": ["listed-infra-1"]}])
    summaries = one["infrastructureConfigurationSummaryList"]
    assert [s["arn"] for s in summaries] == [made[1]]
    assert summaries[0]["instanceTypes"] == ["m5.large"] and summaries[0]["instanceProfileName"] == "builder"
    err = fails(ib.list_infrastructure_configurations, filters=[{"name": "instanceType", "values": ["m5.large"]}])
    assert error_code(err) == "InvalidRequestException"
    r = ib.delete_infrastructure_configuration(infrastructureConfigurationArn=made[0])
    check_output("DeleteInfrastructureConfiguration", r)
    assert r["infrastructureConfigurationArn"] == made[0]
    err = fails(ib.get_infrastructure_configuration, infrastructureConfigurationArn=made[0])
    assert error_code(err) == "InvalidRequestException" and "does not exist" in str(err)


def test_infrastructure_idempotency_and_dry_run(ib: Any) -> None:
    a = ib.create_infrastructure_configuration(name="idem-infra", instanceProfileName="p", clientToken="inf-1")
    b = ib.create_infrastructure_configuration(name="idem-infra", instanceProfileName="p", clientToken="inf-1")
    assert a["infrastructureConfigurationArn"] == b["infrastructureConfigurationArn"]
    err = fails(ib.create_infrastructure_configuration, name="idem-infra", instanceProfileName="q", clientToken="inf-1")
    assert error_code(err) == "IdempotentParameterMismatchException"
    err = fails(ib.create_infrastructure_configuration, name="dry-infra", instanceProfileName="p", dryRun=True)
    assert error_code(err) == "DryRunOperationException"
    listed = ib.list_infrastructure_configurations(filters=[{"name": "name", "values": ["dry-infra"]}])
    assert listed["infrastructureConfigurationSummaryList"] == []


# --- distribution configurations -----------------------------------------------------------


FULL = [
    {
        "region": "us-east-1",
        "amiDistributionConfiguration": {
            "name": "golden {{ imagebuilder:buildDate }}",
            "description": "golden image",
            "targetAccountIds": [OTHER_ACCOUNT],
            "amiTags": {"os": "debian"},
            "launchPermission": {"userIds": [OTHER_ACCOUNT]},
        },
        "containerDistributionConfiguration": {
            "containerTags": ["latest", "stable"],
            "targetRepository": {"service": "ECR", "repositoryName": "team-a/app"},
        },
        "s3ExportConfiguration": {"roleName": "exporter", "diskImageFormat": "VMDK", "s3Bucket": "images"},
        "launchTemplateConfigurations": [{"launchTemplateId": "lt-0123456789abcdef0", "setDefaultVersion": True}],
        "ssmParameterConfigurations": [
            {"parameterName": "/golden/latest", "dataType": "aws:ec2:image"},
            {"parameterName": "/golden/latest", "amiAccountId": OTHER_ACCOUNT},
        ],
    },
    {
        "region": "eu-west-1",
        "s3ExportConfiguration": {"roleName": "exporter", "diskImageFormat": "RAW", "s3Bucket": "eu-images"},
        "fastLaunchConfigurations": [
            {"enabled": True, "launchTemplate": {"launchTemplateName": "fast"}, "maxParallelLaunches": 6}
        ],
    },
]


def test_distribution_create_get_update(ib: Any) -> None:
    arn = dist(ib, "Golden Outputs", FULL, description="everywhere", tags={"team": "platform"})
    assert arn == f"{ARN}:distribution-configuration/golden-outputs"
    got = ib.get_distribution_configuration(distributionConfigurationArn=arn)
    check_output("GetDistributionConfiguration", got)
    cfg = got["distributionConfiguration"]
    assert cfg["name"] == "Golden Outputs" and cfg["timeoutMinutes"] == 720 and cfg["tags"] == {"team": "platform"}
    assert cfg["distributions"] == FULL
    err = fails(ib.create_distribution_configuration, name="golden_outputs", distributions=FULL)
    assert error_code(err) == "ResourceAlreadyExistsException"
    only_vhd = [
        {"region": "us-east-1", "s3ExportConfiguration": {"roleName": "r", "diskImageFormat": "VHD", "s3Bucket": "b"}}
    ]
    r = ib.update_distribution_configuration(distributionConfigurationArn=arn, distributions=only_vhd)
    check_output("UpdateDistributionConfiguration", r)
    cfg = ib.get_distribution_configuration(distributionConfigurationArn=arn)["distributionConfiguration"]
    assert cfg["distributions"] == only_vhd and "description" not in cfg and "dateUpdated" in cfg
    assert cfg["name"] == "Golden Outputs" and cfg["tags"] == {"team": "platform"}


def ami(name: str = "x {{imagebuilder:buildDate}}", **kw: Any) -> dict[str, Any]:
    return {"name": name, **kw}


@pytest.mark.parametrize(
    ("distributions", "code", "message"),
    [
        ([], "InvalidRequestException", "at least one region"),
        ([{"region": "us-east-1"}, {"region": "us-east-1"}], "InvalidRequestException", "more than once"),
        ([{"region": "US East"}], "InvalidRequestException", "not a region name"),
        (
            [{"region": "us-east-1", "amiDistributionConfiguration": ami(launchPermission={"userGroups": ["admins"]})}],
            "InvalidRequestException",
            "only the group 'all'",
        ),
        (
            [{"region": "us-east-1", "amiDistributionConfiguration": ami("fixed-name")}],
            "InvalidRequestException",
            "buildDate",
        ),
        (
            [
                {
                    "region": "us-east-1",
                    "containerDistributionConfiguration": {
                        "targetRepository": {"service": "ECR", "repositoryName": "reg.example.com:5000/app"}
                    },
                }
            ],
            "InvalidRequestException",
            "registry host",
        ),
        (
            [
                {
                    "region": "us-east-1",
                    "ssmParameterConfigurations": [{"parameterName": "p", "amiAccountId": OTHER_ACCOUNT}],
                }
            ],
            "InvalidParameterCombinationException",
            "targetAccountIds",
        ),
        (
            [
                {
                    "region": "us-east-1",
                    "fastLaunchConfigurations": [
                        {
                            "enabled": True,
                            "launchTemplate": {"launchTemplateId": "lt-0123456789abcdef0", "launchTemplateName": "n"},
                        }
                    ],
                }
            ],
            "InvalidParameterCombinationException",
            "exactly one",
        ),
        (
            [
                {
                    "region": "us-east-1",
                    "launchTemplateConfigurations": [
                        {"launchTemplateId": "lt-0123456789abcdef0"},
                        {"launchTemplateId": "lt-0123456789abcdef1", "accountId": ACCOUNT},
                    ],
                }
            ],
            "InvalidRequestException",
            "two entries",
        ),
    ],
)
def test_distribution_validation(ib: Any, distributions: list[dict[str, Any]], code: str, message: str) -> None:
    err = fails(ib.create_distribution_configuration, name="invalid-dist", distributions=distributions)
    assert error_code(err) == code and message in str(err), err


def test_distribution_list_and_delete(ib: Any) -> None:
    made = [dist(ib, f"listed-dist-{i}") for i in range(3)]
    page = ib.list_distribution_configurations(filters=[{"name": "name", "values": ["listed-dist-0", "listed-dist-2"]}])
    check_output("ListDistributionConfigurations", page)
    summaries = page["distributionConfigurationSummaryList"]
    assert [s["arn"] for s in summaries] == [made[0], made[2]] and summaries[0]["regions"] == ["us-east-1"]
    first = ib.list_distribution_configurations(maxResults=1)
    second = ib.list_distribution_configurations(maxResults=1, nextToken=first["nextToken"])
    assert first["distributionConfigurationSummaryList"] != second["distributionConfigurationSummaryList"]
    err = fails(
        ib.list_distribution_configurations,
        maxResults=1,
        nextToken=first["nextToken"],
        filters=[{"name": "name", "values": ["x"]}],
    )
    assert error_code(err) == "InvalidPaginationTokenException"
    r = ib.delete_distribution_configuration(distributionConfigurationArn=made[1])
    check_output("DeleteDistributionConfiguration", r)
    err = fails(ib.get_distribution_configuration, distributionConfigurationArn=made[1])
    assert "does not exist" in str(err)


def test_distribution_dry_run(ib: Any) -> None:
    err = fails(
        ib.create_distribution_configuration, name="dry-dist", distributions=[{"region": "us-east-1"}], dryRun=True
    )
    assert error_code(err) == "DryRunOperationException"
    assert not ib.list_distribution_configurations(filters=[{"name": "name", "values": ["dry-dist"]}])[
        "distributionConfigurationSummaryList"
    ]


# --- dependencies --------------------------------------------------------------------------


def test_delete_refused_while_a_pipeline_uses_it(ib: Any) -> None:
    infra_arn = infra(ib, "pipeline-infra")
    dist_arn = dist(ib, "pipeline-dist")
    recipe_arn = ib.create_image_recipe(name="pipeline-recipe", semanticVersion="1.0.0", parentImage="debian-12")[
        "imageRecipeArn"
    ]
    pipeline = ib.create_image_pipeline(
        name="uses-everything",
        imageRecipeArn=recipe_arn,
        infrastructureConfigurationArn=infra_arn,
        distributionConfigurationArn=dist_arn,
    )["imagePipelineArn"]
    for call, kw in [
        (ib.delete_infrastructure_configuration, {"infrastructureConfigurationArn": infra_arn}),
        (ib.delete_distribution_configuration, {"distributionConfigurationArn": dist_arn}),
        (ib.delete_image_recipe, {"imageRecipeArn": recipe_arn}),
    ]:
        err = fails(call, **kw)
        assert error_code(err) == "ResourceDependencyException" and pipeline in str(err)
    ib.delete_image_pipeline(imagePipelineArn=pipeline)
    ib.delete_infrastructure_configuration(infrastructureConfigurationArn=infra_arn)
    ib.delete_distribution_configuration(distributionConfigurationArn=dist_arn)
    ib.delete_image_recipe(imageRecipeArn=recipe_arn)


# --- the AWS CLI ---------------------------------------------------------------------------


def aws(server: Server, *args: str) -> dict[str, Any]:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_PAGER": ""}
    env.pop("AWS_PROFILE", None)
    cmd = [sys.executable, "-m", "awscli", "imagebuilder", *args, "--endpoint-url", server.url]
    cmd += ["--region", "us-east-1", "--output", "json"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    out: dict[str, Any] = json.loads(done.stdout) if done.stdout.strip() else {}
    return out


def test_aws_cli(server: Server) -> None:
    created = aws(
        server,
        "create-infrastructure-configuration",
        "--name",
        "cli-infra",
        "--instance-profile-name",
        "builder",
        "--instance-types",
        "m5.large",
    )
    check_output("CreateInfrastructureConfiguration", created)
    arn = created["infrastructureConfigurationArn"]
    got = aws(server, "get-infrastructure-configuration", "--infrastructure-configuration-arn", arn)
    check_output("GetInfrastructureConfiguration", got)
    assert got["infrastructureConfiguration"]["instanceTypes"] == ["m5.large"]
    listed = aws(server, "list-distribution-configurations")
    check_output("ListDistributionConfigurations", listed)
    recipe = aws(
        server,
        "create-image-recipe",
        "--name",
        "cli-recipe",
        "--semantic-version",
        "1.0.x",
        "--parent-image",
        "debian-12",
    )
    check_output("CreateImageRecipe", recipe)
    assert recipe["imageRecipeArn"].endswith("image-recipe/cli-recipe/1.0.0")
    summaries = aws(server, "list-image-recipes", "--filters", "name=name,values=cli-recipe")
    assert [s["arn"] for s in summaries["imageRecipeSummaryList"]] == [recipe["imageRecipeArn"]]
