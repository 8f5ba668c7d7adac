"""Image pipelines through real boto3 clients: create with schedules, get, list, update,
delete, the images a pipeline built, manual starts, and workflows pipelines keep in use."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.api.conftest import ACCOUNT, Server, check_output, error_code
from tests.api.test_images import BUILD_WF, DOCKERFILE, fails, image_record, put_records

ARN = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}"
MANAGED = "arn:aws:imagebuilder:us-east-1:aws"
ROLE = "arn:aws:iam::123456789012:role/builder"


@pytest.fixture(scope="module")
def deps(ib: Any) -> dict[str, str]:
    recipe = ib.create_image_recipe(name="base", semanticVersion="1.0.0", parentImage="debian-12-x86_64")
    ib.create_image_recipe(name="base", semanticVersion="1.1.0", parentImage="debian-12-x86_64")
    infra = ib.create_infrastructure_configuration(name="hosts", instanceProfileName="builder")
    dist = ib.create_distribution_configuration(
        name="out",
        distributions=[
            {"region": "us-east-1", "amiDistributionConfiguration": {"name": "img {{ imagebuilder:buildDate }}"}}
        ],
    )
    build = ib.create_workflow(name="pipeline-build", semanticVersion="1.0.0", type="BUILD", data=BUILD_WF)
    return {
        "recipe": recipe["imageRecipeArn"],
        "infra": infra["infrastructureConfigurationArn"],
        "dist": dist["distributionConfigurationArn"],
        "build": build["workflowBuildVersionArn"],
    }


def create(ib: Any, deps: dict[str, str], name: str, **kw: Any) -> str:
    kw.setdefault("imageRecipeArn", deps["recipe"])
    kw.setdefault("infrastructureConfigurationArn", deps["infra"])
    r = ib.create_image_pipeline(name=name, **kw)
    check_output("CreateImagePipeline", r)
    arn: str = r["imagePipelineArn"]
    return arn


def test_create_get_list(ib: Any, deps: dict[str, str]) -> None:
    arn = create(
        ib,
        deps,
        "Nightly Web",
        description="nightly",
        distributionConfigurationArn=deps["dist"],
        schedule={"scheduleExpression": "cron(0 2 ? * MON-FRI *)", "timezone": "Europe/Berlin"},
        executionRole=ROLE,
        workflows=[{"workflowArn": deps["build"], "parameters": [{"name": "size", "value": ["4"]}]}],
        tags={"team": "web"},
        imageTags={"built-by": "pipeline"},
    )
    assert arn == f"{ARN}:image-pipeline/nightly-web"
    got = ib.get_image_pipeline(imagePipelineArn=arn)
    check_output("GetImagePipeline", got)
    p = got["imagePipeline"]
    assert p["name"] == "Nightly Web" and p["platform"] == "Linux" and p["status"] == "ENABLED"
    assert p["schedule"] == {
        "scheduleExpression": "cron(0 2 ? * MON-FRI *)",
        "timezone": "Europe/Berlin",
        "pipelineExecutionStartCondition": "EXPRESSION_MATCH_AND_DEPENDENCY_UPDATES_AVAILABLE",
    }
    assert p["imageTestsConfiguration"] == {"imageTestsEnabled": True, "timeoutMinutes": 720}
    assert p["enhancedImageMetadataEnabled"] is True and p["consecutiveFailures"] == 0
    assert p["workflows"][0]["workflowArn"] == deps["build"] and p["tags"] == {"team": "web"}
    assert p["dateCreated"] and p["imageTags"] == {"built-by": "pipeline"}

    err = fails(
        ib.create_image_pipeline,
        name="nightly_web",
        imageRecipeArn=deps["recipe"],
        infrastructureConfigurationArn=deps["infra"],
    )
    assert error_code(err) == "ResourceAlreadyExistsException"

    create(ib, deps, "manual-only", status="DISABLED")
    listed = ib.list_image_pipelines()
    check_output("ListImagePipelines", listed)
    assert {p["name"] for p in listed["imagePipelineList"]} >= {"Nightly Web", "manual-only"}
    disabled = ib.list_image_pipelines(filters=[{"name": "status", "values": ["DISABLED"]}])["imagePipelineList"]
    assert [p["name"] for p in disabled] == ["manual-only"]
    by_dist = ib.list_image_pipelines(filters=[{"name": "distributionConfigurationArn", "values": [deps["dist"]]}])
    assert [p["arn"] for p in by_dist["imagePipelineList"]] == [arn]


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("cron(0 2 * * *)", "6 fields"),
        ("cron(0 2 * * MON *)", "exactly one of day-of-month and day-of-week"),
        ("cron(0 25 ? * MON *)", "not a hour"),
        ("cron(0 2 ? * FRI#7 *)", "week of the month"),
        ("rate(1 days)", "rate(1 day)"),
        ("rate(3 day)", "rate(3 days)"),
        ("rate(2 weeks)", "minute(s), hour(s) or day(s)"),
        ("daily", "use cron("),
    ],
)
def test_schedule_expressions_are_checked(ib: Any, deps: dict[str, str], expression: str, message: str) -> None:
    err = fails(
        ib.create_image_pipeline,
        name="scheduled",
        imageRecipeArn=deps["recipe"],
        infrastructureConfigurationArn=deps["infra"],
        schedule={"scheduleExpression": expression},
    )
    assert error_code(err) == "InvalidRequestException" and message in str(err), err


def test_valid_schedules_and_timezone(ib: Any, deps: dict[str, str]) -> None:
    for i, expression in enumerate(
        [
            "rate(1 hour)",
            "rate(12 hours)",
            "cron(0 8 1 * ? *)",
            "cron(30 22 ? * tue#2 *)",
            "cron(0/15 * L * ? 2025-2030)",
        ]
    ):
        create(ib, deps, f"sched-{i}", schedule={"scheduleExpression": expression})
    err = fails(
        ib.create_image_pipeline,
        name="bad-tz",
        imageRecipeArn=deps["recipe"],
        infrastructureConfigurationArn=deps["infra"],
        schedule={"scheduleExpression": "rate(1 day)", "timezone": "Mars/Olympus"},
    )
    assert error_code(err) == "InvalidRequestException" and "IANA" in str(err)


def test_references_must_exist(ib: Any, deps: dict[str, str]) -> None:
    err = fails(ib.create_image_pipeline, name="refs", infrastructureConfigurationArn=deps["infra"])
    assert error_code(err) == "InvalidRequestException" and "exactly one" in str(err)
    err = fails(
        ib.create_image_pipeline,
        name="refs",
        imageRecipeArn=f"{ARN}:image-recipe/none/1.0.0",
        infrastructureConfigurationArn=deps["infra"],
    )
    assert error_code(err) == "InvalidRequestException" and "none" in str(err)
    err = fails(
        ib.create_image_pipeline,
        name="refs",
        imageRecipeArn=deps["recipe"],
        infrastructureConfigurationArn=f"{ARN}:infrastructure-configuration/none",
    )
    assert error_code(err) == "InvalidRequestException" and "does not exist" in str(err)
    err = fails(
        ib.create_image_pipeline,
        name="refs",
        imageRecipeArn=deps["recipe"],
        infrastructureConfigurationArn=deps["infra"],
        workflows=[{"workflowArn": deps["build"]}],
    )
    assert error_code(err) == "InvalidRequestException" and "executionRole" in str(err)


def test_update(ib: Any, deps: dict[str, str]) -> None:
    arn = create(ib, deps, "updated", description="first", schedule={"scheduleExpression": "rate(1 day)"})
    r = ib.update_image_pipeline(
        imagePipelineArn=arn,
        imageRecipeArn=f"{ARN}:image-recipe/base/1.x.x",
        infrastructureConfigurationArn=deps["infra"],
        description="second",
        status="DISABLED",
        schedule={
            "scheduleExpression": "cron(0 4 ? * SUN *)",
            "pipelineExecutionStartCondition": "EXPRESSION_MATCH_ONLY",
        },
        imageTestsConfiguration={"imageTestsEnabled": False},
    )
    check_output("UpdateImagePipeline", r)
    p = ib.get_image_pipeline(imagePipelineArn=arn)["imagePipeline"]
    assert p["description"] == "second" and p["status"] == "DISABLED"
    assert p["imageRecipeArn"] == f"{ARN}:image-recipe/base/1.x.x"
    assert p["schedule"]["pipelineExecutionStartCondition"] == "EXPRESSION_MATCH_ONLY"
    assert p["schedule"]["timezone"] == "UTC"
    assert p["imageTestsConfiguration"] == {"imageTestsEnabled": False, "timeoutMinutes": 720}
    err = fails(
        ib.update_image_pipeline,
        imagePipelineArn=arn,
        imageRecipeArn=deps["recipe"],
        infrastructureConfigurationArn=deps["infra"],
        schedule={"scheduleExpression": "rate(0 days)"},
    )
    assert error_code(err) == "InvalidRequestException"
    container = ib.create_container_recipe(
        name="switch",
        semanticVersion="1.0.0",
        containerType="DOCKER",
        parentImage="debian:bookworm",
        targetRepository={"service": "ECR", "repositoryName": "team/app"},
        dockerfileTemplateData=DOCKERFILE,
    )["containerRecipeArn"]
    err = fails(
        ib.update_image_pipeline,
        imagePipelineArn=arn,
        containerRecipeArn=container,
        infrastructureConfigurationArn=deps["infra"],
    )
    assert error_code(err) == "InvalidRequestException" and "same kind of recipe" in str(err)
    err = fails(
        ib.update_image_pipeline,
        imagePipelineArn=f"{ARN}:image-pipeline/none",
        imageRecipeArn=deps["recipe"],
        infrastructureConfigurationArn=deps["infra"],
    )
    assert error_code(err) == "InvalidRequestException" and "does not exist" in str(err)


def test_pipeline_images_start_and_delete(ib: Any, server: Server, deps: dict[str, str]) -> None:
    arn = create(ib, deps, "producer")
    put_records(
        server,
        [
            image_record("base", "1.0.0", 1, "AVAILABLE", parent=arn, sourcePipelineArn=arn),
            image_record("base", "1.0.0", 2, "FAILED", parent=arn, sourcePipelineArn=arn),
            image_record("base", "1.1.0", 1, "AVAILABLE"),  # built by hand, not by the pipeline
        ],
    )
    page = ib.list_image_pipeline_images(imagePipelineArn=arn)
    check_output("ListImagePipelineImages", page)
    assert [i["version"] for i in page["imageSummaryList"]] == ["1.0.0/1", "1.0.0/2"]
    only = ib.list_image_pipeline_images(imagePipelineArn=arn, filters=[{"name": "version", "values": ["1.1.0"]}])
    assert only["imageSummaryList"] == []
    err = fails(ib.list_image_pipeline_images, imagePipelineArn=f"{ARN}:image-pipeline/none")
    assert error_code(err) == "ResourceNotFoundException"

    err = fails(ib.start_image_pipeline_execution, imagePipelineArn=f"{ARN}:image-pipeline/none")
    assert error_code(err) == "ResourceNotFoundException"
    err = fails(ib.start_image_pipeline_execution, imagePipelineArn=arn)
    assert error_code(err) == "ServiceUnavailableException" and "StartImagePipelineExecution" in str(err)

    check_output("DeleteImagePipeline", ib.delete_image_pipeline(imagePipelineArn=arn))
    err = fails(ib.get_image_pipeline, imagePipelineArn=arn)
    assert error_code(err) == "InvalidRequestException" and "does not exist" in str(err)
    # The images it built stay.
    assert ib.get_image(imageBuildVersionArn=f"{ARN}:image/base/1.0.0/1")["image"]["sourcePipelineArn"] == arn


def test_workflows_in_use_cannot_be_deleted(ib: Any, deps: dict[str, str]) -> None:
    wf = ib.create_workflow(name="kept", semanticVersion="1.0.0", type="BUILD", data=BUILD_WF)[
        "workflowBuildVersionArn"
    ]
    pipeline = create(
        ib,
        deps,
        "uses-kept",
        executionRole=ROLE,
        workflows=[
            {"workflowArn": f"{ARN}:workflow/build/kept/x.x.x"},
            {"workflowArn": f"{MANAGED}:workflow/test/test-image/x.x.x"},
        ],
    )
    err = fails(ib.delete_workflow, workflowBuildVersionArn=wf)
    assert error_code(err) == "ResourceDependencyException" and pipeline in str(err)
    ib.delete_image_pipeline(imagePipelineArn=pipeline)
    ib.delete_workflow(workflowBuildVersionArn=wf)


def test_idempotency_and_dry_run(ib: Any, deps: dict[str, str]) -> None:
    a = create(ib, deps, "idem-pipe", clientToken="pipe-1")
    assert create(ib, deps, "idem-pipe", clientToken="pipe-1") == a
    err = fails(
        ib.create_image_pipeline,
        name="idem-pipe-2",
        imageRecipeArn=deps["recipe"],
        infrastructureConfigurationArn=deps["infra"],
        clientToken="pipe-1",
    )
    assert error_code(err) == "IdempotentParameterMismatchException"
    err = fails(
        ib.create_image_pipeline,
        name="dry-pipe",
        imageRecipeArn=deps["recipe"],
        infrastructureConfigurationArn=deps["infra"],
        dryRun=True,
    )
    assert error_code(err) == "DryRunOperationException"
    assert ib.list_image_pipelines(filters=[{"name": "name", "values": ["dry-pipe"]}])["imagePipelineList"] == []
    with pytest.raises(ClientError):
        ib.get_image_pipeline(imagePipelineArn=f"{ARN}:image-pipeline/dry-pipe")
