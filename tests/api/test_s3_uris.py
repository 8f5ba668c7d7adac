"""Documents fetched from an S3-compatible store (`uri: s3://bucket/key`) by the server.

moto's standalone server stands in for the object store: real S3 cannot exist offline, and
moto speaks the S3 protocol over HTTP, so the server's botocore client is exercised for real.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.api.conftest import Server, error_code, start_server, stop_server
from tests.api.test_components import DOC


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, s3_endpoint: str) -> Iterator[Server]:
    env = {
        "IMAGEBUILDER_S3_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    srv = start_server(tmp_path_factory.mktemp("api-s3"), env=env)
    yield srv
    stop_server(srv)


def test_component_and_dockerfile_from_s3(ib: Any, s3_endpoint: str) -> None:
    s3 = boto3.client(
        "s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test"
    )
    s3.create_bucket(Bucket="docs")
    s3.put_object(Bucket="docs", Key="components/hello.yaml", Body=DOC.encode())
    dockerfile = (
        "FROM {{{ imagebuilder:parentImage }}}\n{{{ imagebuilder:environments }}}\n{{{ imagebuilder:components }}}\n"
    )
    s3.put_object(Bucket="docs", Key="Dockerfile", Body=dockerfile.encode())
    arn = ib.create_component(
        name="from-s3", semanticVersion="1.0.0", platform="Linux", uri="s3://docs/components/hello.yaml"
    )["componentBuildVersionArn"]
    assert ib.get_component(componentBuildVersionArn=arn)["component"]["data"] == DOC
    recipe = ib.create_container_recipe(
        name="s3-recipe",
        semanticVersion="1.0.0",
        containerType="DOCKER",
        parentImage="imagebuilder/debian:12",
        targetRepository={"service": "ECR", "repositoryName": "s3/recipe"},
        dockerfileTemplateUri="s3://docs/Dockerfile",
        components=[{"componentArn": arn}],
    )["containerRecipeArn"]
    got = ib.get_container_recipe(containerRecipeArn=recipe)["containerRecipe"]
    assert got["dockerfileTemplateData"] == dockerfile
    with pytest.raises(ClientError) as exc:
        ib.create_component(name="missing-s3", semanticVersion="1.0.0", platform="Linux", uri="s3://docs/nope.yaml")
    assert error_code(exc.value) == "InvalidRequestException" and "s3://docs/nope.yaml" in str(exc.value)
