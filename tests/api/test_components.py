"""Components through real boto3 clients: create, versions, wildcards, import, policies, delete."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.api.conftest import ACCOUNT, check_output, error_code

DOC = """name: hello
schemaVersion: 1.0
parameters:
  - Greeting:
      type: string
      default: hi
      description: what to say
phases:
  - name: build
    steps:
      - name: Hello
        action: ExecuteBash
        inputs:
          commands: ["echo {{ Greeting }}"]
"""
PREFIX = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:component"


def missing(exc: Exception) -> bool:
    """Get* operations without ResourceNotFoundException in the model answer InvalidRequest."""
    return error_code(exc) in ("ResourceNotFoundException", "InvalidRequestException") and "does not" in str(exc)


def create(ib: Any, name: str, version: str = "1.0.0", data: str = DOC, **kw: Any) -> str:
    r = ib.create_component(name=name, semanticVersion=version, platform="Linux", data=data, **kw)
    check_output("CreateComponent", r)
    arn: str = r["componentBuildVersionArn"]
    return arn


def test_create_get_and_normalized_names(ib: Any) -> None:
    arn = create(ib, "Hello World", description="greets")
    assert arn == f"{PREFIX}/hello-world/1.0.0/1"
    got = ib.get_component(componentBuildVersionArn=arn)
    check_output("GetComponent", got)
    comp = got["component"]
    assert comp["name"] == "Hello World" and comp["data"] == DOC and comp["type"] == "BUILD"
    assert comp["parameters"] == [
        {"name": "Greeting", "type": "string", "defaultValue": ["hi"], "description": "what to say"}
    ]
    # Same content under a name that normalizes the same: already exists.
    with pytest.raises(ClientError) as exc:
        create(ib, "hello_world")
    assert error_code(exc.value) == "ResourceInUseException"
    # Changed content: a new build of the same version.
    assert create(ib, "hello_world", data=DOC + "\n# v2\n") == f"{PREFIX}/hello-world/1.0.0/2"


def test_wildcards_resolve_to_newest(ib: Any) -> None:
    for v in ("1.0.0", "1.2.0", "1.10.0", "2.0.0"):
        create(ib, "wild", v)
    newest = ib.get_component(componentBuildVersionArn=f"{PREFIX}/wild/1.x.x")["component"]
    assert newest["version"] == "1.10.0"
    assert ib.get_component(componentBuildVersionArn=f"{PREFIX}/wild/x.x.x")["component"]["version"] == "2.0.0"
    with pytest.raises(ClientError) as exc:
        ib.get_component(componentBuildVersionArn=f"{PREFIX}/wild/3.x.x")
    assert error_code(exc.value) == "InvalidRequestException" and "no component matches" in str(exc.value)


def test_bad_documents_and_versions(ib: Any) -> None:
    bad = DOC.replace("ExecuteBash", "ExecuteNothing")
    with pytest.raises(ClientError) as exc:
        create(ib, "bad-doc", data=bad)
    assert error_code(exc.value) == "InvalidRequestException"
    assert "ExecuteNothing" in str(exc.value) and ":11:" in str(exc.value)
    with pytest.raises(ClientError) as exc:
        create(ib, "bad-version", version="01.0.0")
    assert error_code(exc.value) in ("InvalidVersionNumberException", "InvalidRequestException")
    with pytest.raises(ClientError) as exc:
        ib.create_component(name="both", semanticVersion="1.0.0", platform="Linux", data=DOC, uri="/tmp/x")
    assert error_code(exc.value) == "InvalidParameterCombinationException"


def test_uri_and_import(ib: Any, tmp_path: Any) -> None:
    doc = tmp_path / "c.yaml"
    doc.write_text(DOC)
    arn = ib.create_component(name="from-uri", semanticVersion="1.0.0", platform="Linux", uri=f"file://{doc}")[
        "componentBuildVersionArn"
    ]
    assert ib.get_component(componentBuildVersionArn=arn)["component"]["data"] == DOC
    r = ib.import_component(
        name="imported", semanticVersion="1.0.0", type="TEST", format="SHELL", platform="Linux", data="echo ok"
    )
    check_output("ImportComponent", r)
    comp = ib.get_component(componentBuildVersionArn=r["componentBuildVersionArn"])["component"]
    assert comp["type"] == "TEST" and "echo ok" in comp["data"] and "name: test" in comp["data"]
    again = ib.import_component(
        name="imported", semanticVersion="1.0.0", type="TEST", format="SHELL", platform="Linux", data="echo ok"
    )
    assert again["componentBuildVersionArn"].endswith("/1.0.0/2")


def test_list_filters_and_pages(ib: Any) -> None:
    for i in range(7):
        create(ib, f"paged-{i}", data=DOC + f"# {i}\n")
    seen: list[str] = []
    token = None
    while True:
        kw: dict[str, Any] = {"maxResults": 3, "filters": [{"name": "platform", "values": ["Linux"]}]}
        if token:
            kw["nextToken"] = token
        page = ib.list_components(**kw)
        check_output("ListComponents", page)
        seen += [c["name"] for c in page["componentVersionList"]]
        token = page.get("nextToken")
        if not token:
            break
    assert {f"paged-{i}" for i in range(7)} <= set(seen)
    assert len(seen) == len(set(zip(seen, range(len(seen)), strict=True)))
    with pytest.raises(ClientError) as exc:
        ib.list_components(nextToken="garbage")
    assert error_code(exc.value) == "InvalidPaginationTokenException"
    with pytest.raises(ClientError) as exc:
        ib.list_components(filters=[{"name": "colour", "values": ["red"]}])
    assert error_code(exc.value) == "InvalidRequestException"


def test_idempotency_and_dry_run(ib: Any) -> None:
    a = ib.create_component(name="idem", semanticVersion="1.0.0", platform="Linux", data=DOC, clientToken="tok-1")
    b = ib.create_component(name="idem", semanticVersion="1.0.0", platform="Linux", data=DOC, clientToken="tok-1")
    assert a["componentBuildVersionArn"] == b["componentBuildVersionArn"]
    with pytest.raises(ClientError) as exc:
        ib.create_component(name="idem", semanticVersion="2.0.0", platform="Linux", data=DOC, clientToken="tok-1")
    assert error_code(exc.value) == "IdempotentParameterMismatchException"
    with pytest.raises(ClientError) as exc:
        ib.create_component(name="dry", semanticVersion="1.0.0", platform="Linux", data=DOC, dryRun=True)
    assert error_code(exc.value) == "DryRunOperationException"
    with pytest.raises(ClientError) as exc:
        ib.get_component(componentBuildVersionArn=f"{PREFIX}/dry/1.0.0/1")
    assert missing(exc.value)


def test_policy_tags_and_delete(ib: Any) -> None:
    arn = create(ib, "shared")
    policy = (
        '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["111122223333"]},'
        '"Action":["imagebuilder:GetComponent"],"Resource":["' + arn + '"]}]}'
    )
    check_output("PutComponentPolicy", ib.put_component_policy(componentArn=arn, policy=policy))
    assert ib.get_component_policy(componentArn=arn)["policy"] == policy
    with pytest.raises(ClientError) as exc:
        ib.put_component_policy(componentArn=arn, policy="{not json")
    assert error_code(exc.value) == "InvalidParameterValueException"
    ib.tag_resource(resourceArn=arn, tags={"team": "infra", "env": "dev"})
    ib.untag_resource(resourceArn=arn, tagKeys=["env"])
    assert ib.list_tags_for_resource(resourceArn=arn)["tags"] == {"team": "infra"}
    check_output("DeleteComponent", ib.delete_component(componentBuildVersionArn=arn))
    with pytest.raises(ClientError) as exc:
        ib.get_component(componentBuildVersionArn=arn)
    assert missing(exc.value)
    with pytest.raises(ClientError) as exc:
        ib.list_tags_for_resource(resourceArn=arn)
    assert error_code(exc.value) == "ResourceNotFoundException"


def test_pages_collapse_builds_at_any_page_size(ib: Any) -> None:
    """Builds of one version straddling a page boundary still list once, as the newest build."""
    for name, version, n in (
        ("grp-a", "1.0.0", 3),
        ("grp-a", "1.1.0", 1),
        ("grp-b", "2.0.0", 2),
        ("grp-c", "1.0.0", 1),
    ):
        for i in range(n):
            create(ib, name, version, data=DOC + f"# {name} {version} {i}\n")
    want = {("grp-a", "1.0.0"), ("grp-a", "1.1.0"), ("grp-b", "2.0.0"), ("grp-c", "1.0.0")}
    for size in (1, 2, 3, 25):
        seen: list[tuple[str, str]] = []
        token = None
        while True:
            kw: dict[str, Any] = {
                "maxResults": size,
                "filters": [{"name": "name", "values": ["grp-a", "grp-b", "grp-c"]}],
            }
            if token:
                kw["nextToken"] = token
            page = ib.list_components(**kw)
            assert len(page["componentVersionList"]) <= size
            seen += [(c["name"], c["version"]) for c in page["componentVersionList"]]
            token = page.get("nextToken")
            if not token:
                break
        assert sorted(seen) == sorted(want), (size, seen)
    newest = ib.list_components(byName=True, filters=[{"name": "name", "values": ["grp-a"]}])["componentVersionList"]
    assert [(c["name"], c["version"]) for c in newest] == [("grp-a", "1.1.0")]
