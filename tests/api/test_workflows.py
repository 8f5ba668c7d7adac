"""Workflows through real boto3 clients: create, build versions, listing, managed workflows, delete."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from engine import managed, settings
from engine.store import Store
from tests.api.conftest import ACCOUNT, check_output, error_code

DOC = """name: my-build
description: a build workflow
schemaVersion: 1.0
parameters:
  - name: waitForApproval
    type: boolean
    default: false
    description: pause before capture
steps:
  - name: Launch
    action: LaunchInstance
    onFailure: Abort
    inputs:
      waitFor: ssmAgent
  - name: Build
    action: ExecuteComponents
    inputs:
      instanceId.$: $.stepOutputs.Launch.instanceId
  - name: Capture
    action: CreateImage
    inputs:
      instanceId.$: $.stepOutputs.Launch.instanceId
  - name: Terminate
    action: TerminateInstance
    onFailure: Continue
    inputs:
      instanceId.$: $.stepOutputs.Launch.instanceId
outputs:
  - name: ImageId
    value: $.stepOutputs.Capture.imageId
"""
PREFIX = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:workflow"
MANAGED = "arn:aws:imagebuilder:us-east-1:aws:workflow"


def create(ib: Any, name: str, version: str = "1.0.0", data: str = DOC, wtype: str = "BUILD", **kw: Any) -> str:
    r = ib.create_workflow(name=name, semanticVersion=version, type=wtype, data=data, **kw)
    check_output("CreateWorkflow", r)
    arn: str = r["workflowBuildVersionArn"]
    return arn


def missing(exc: Exception) -> bool:
    text = str(exc)
    return error_code(exc) == "InvalidRequestException" and ("does not exist" in text or "no workflow" in text)


def test_create_get_and_new_builds(ib: Any) -> None:
    r = ib.create_workflow(
        name="My Build", semanticVersion="1.2.3", type="BUILD", data=DOC, description="d", tags={"team": "infra"}
    )
    check_output("CreateWorkflow", r)
    arn = r["workflowBuildVersionArn"]
    assert arn == f"{PREFIX}/build/my-build/1.2.3/1"
    assert r["latestVersionReferences"] == {
        "latestVersionArn": f"{PREFIX}/build/my-build/x.x.x",
        "latestMajorVersionArn": f"{PREFIX}/build/my-build/1.x.x",
        "latestMinorVersionArn": f"{PREFIX}/build/my-build/1.2.x",
        "latestPatchVersionArn": f"{PREFIX}/build/my-build/1.2.3",
    }
    got = ib.get_workflow(workflowBuildVersionArn=arn)
    check_output("GetWorkflow", got)
    wf = got["workflow"]
    assert wf["name"] == "My Build" and wf["type"] == "BUILD" and wf["data"] == DOC and wf["owner"] == ACCOUNT
    assert wf["tags"] == {"team": "infra"} and wf["dateCreated"]
    assert wf["parameters"] == [
        {"name": "waitForApproval", "type": "boolean", "defaultValue": ["false"], "description": "pause before capture"}
    ]
    # Identical content under a name that normalizes the same: already exists.
    with pytest.raises(ClientError) as exc:
        create(ib, "my_build", "1.2.3")
    assert error_code(exc.value) == "ResourceInUseException" and "already exists" in str(exc.value)
    # Changed content: a new build of the same version, and the version ARN resolves to it.
    assert create(ib, "my_build", "1.2.3", data=DOC + "# v2\n") == f"{PREFIX}/build/my-build/1.2.3/2"
    newest = ib.get_workflow(workflowBuildVersionArn=f"{PREFIX}/build/my-build/1.2.3")["workflow"]
    assert newest["arn"].endswith("/1.2.3/2")
    assert ib.get_workflow(workflowBuildVersionArn=f"{PREFIX}/build/my-build/x.x.x")["workflow"]["version"] == "1.2.3"
    # One name is one workflow type.
    with pytest.raises(ClientError) as exc:
        create(ib, "my-build", "1.2.3", wtype="TEST", data=DOC.replace("CreateImage", "RunCommand"))
    assert error_code(exc.value) in ("ResourceInUseException", "InvalidRequestException")


def test_invalid_documents(ib: Any) -> None:
    with pytest.raises(ClientError) as exc:
        create(ib, "bad", data=DOC.replace("ExecuteComponents", "ExecuteNothing"))
    assert error_code(exc.value) == "InvalidRequestException" and "ExecuteNothing" in str(exc.value)
    assert "line" in str(exc.value)
    # DistributeImage is a distribution-stage action.
    with pytest.raises(ClientError) as exc:
        create(ib, "bad-stage", data=DOC + "  - name: Ship\n    action: DistributeImage\n")
    assert error_code(exc.value) == "InvalidRequestException"
    with pytest.raises(ClientError) as exc:
        ib.create_workflow(name="both", semanticVersion="1.0.0", type="BUILD", data=DOC, uri="/tmp/x.yaml")
    assert error_code(exc.value) == "InvalidParameterCombinationException"
    with pytest.raises(ClientError) as exc:
        ib.create_workflow(name="neither", semanticVersion="1.0.0", type="BUILD")
    assert error_code(exc.value) == "InvalidParameterCombinationException"
    with pytest.raises(ClientError) as exc:
        create(ib, "bad-version", version="1.0.01")
    assert error_code(exc.value) in ("InvalidVersionNumberException", "InvalidRequestException")


def test_uri(ib: Any, tmp_path: Any) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(DOC)
    arn = ib.create_workflow(name="from-uri", semanticVersion="1.0.0", type="BUILD", uri=f"file://{path}")[
        "workflowBuildVersionArn"
    ]
    assert ib.get_workflow(workflowBuildVersionArn=arn)["workflow"]["data"] == DOC
    with pytest.raises(ClientError) as exc:
        ib.create_workflow(name="nowhere", semanticVersion="1.0.0", type="BUILD", uri=f"file://{tmp_path}/none")
    assert error_code(exc.value) == "InvalidRequestException" and "cannot read" in str(exc.value)


def test_list_and_build_versions(ib: Any) -> None:
    for v in ("1.0.0", "1.1.0", "2.0.0"):
        create(ib, "listed", v)
    create(ib, "listed", "1.1.0", data=DOC + "# second build\n")
    page = ib.list_workflows(filters=[{"name": "name", "values": ["listed"]}])
    check_output("ListWorkflows", page)
    assert sorted(w["version"] for w in page["workflowVersionList"]) == ["1.0.0", "1.1.0", "2.0.0"]
    assert all(w["arn"].count("/") == 3 for w in page["workflowVersionList"])  # version ARNs, no build
    by_name = ib.list_workflows(byName=True, filters=[{"name": "name", "values": ["listed"]}])
    assert [w["version"] for w in by_name["workflowVersionList"]] == ["2.0.0"]
    with pytest.raises(ClientError) as exc:
        ib.list_workflows(byName=True, filters=[{"name": "version", "values": ["1.0.0"]}])
    assert error_code(exc.value) == "InvalidRequestException"
    typed = ib.list_workflows(filters=[{"name": "type", "values": ["TEST"]}])["workflowVersionList"]
    assert all(w["type"] == "TEST" for w in typed)
    builds = ib.list_workflow_build_versions(workflowVersionArn=f"{PREFIX}/build/listed/1.x.x")
    check_output("ListWorkflowBuildVersions", builds)
    assert [w["arn"].split("/", 3)[3] for w in builds["workflowSummaryList"]] == [
        "1.0.0/1",
        "1.1.0/1",
        "1.1.0/2",
    ]
    everything = ib.list_workflow_build_versions(maxResults=2)
    assert len(everything["workflowSummaryList"]) == 2 and everything["nextToken"]
    with pytest.raises(ClientError) as exc:
        ib.list_workflows(owner="Shared")
    assert error_code(exc.value) == "InvalidRequestException"


def test_managed_workflows(ib: Any) -> None:
    listed = ib.list_workflows(owner="Amazon")
    check_output("ListWorkflows", listed)
    names = {w["name"]: w for w in listed["workflowVersionList"]}
    assert {"build-image", "test-image", "build-container", "distribute-image"} <= set(names)
    assert names["test-image"]["type"] == "TEST" and names["build-image"]["owner"] == "Amazon"
    assert names["build-image"]["arn"] == f"{MANAGED}/build/build-image/1.0.0"
    got = ib.get_workflow(workflowBuildVersionArn=f"{MANAGED}/build/build-image/x.x.x")["workflow"]
    assert got["owner"] == "Amazon" and "LaunchInstance" in got["data"]
    builds = ib.list_workflow_build_versions(workflowVersionArn=f"{MANAGED}/test/test-image/x.x.x")
    assert [w["arn"] for w in builds["workflowSummaryList"]] == [f"{MANAGED}/test/test-image/1.0.0/1"]
    # The caller's own list does not include them.
    own = ib.list_workflows()["workflowVersionList"]
    assert all(w["owner"] == ACCOUNT for w in own)
    with pytest.raises(ClientError) as exc:
        ib.delete_workflow(workflowBuildVersionArn=f"{MANAGED}/build/build-image/1.0.0/1")
    assert error_code(exc.value) == "ForbiddenException"


def test_idempotency_and_dry_run(ib: Any) -> None:
    a = ib.create_workflow(name="idem", semanticVersion="1.0.0", type="BUILD", data=DOC, clientToken="wf-1")
    b = ib.create_workflow(name="idem", semanticVersion="1.0.0", type="BUILD", data=DOC, clientToken="wf-1")
    assert a["workflowBuildVersionArn"] == b["workflowBuildVersionArn"]
    with pytest.raises(ClientError) as exc:
        ib.create_workflow(name="idem", semanticVersion="2.0.0", type="BUILD", data=DOC, clientToken="wf-1")
    assert error_code(exc.value) == "IdempotentParameterMismatchException"
    with pytest.raises(ClientError) as exc:
        ib.create_workflow(name="dry", semanticVersion="1.0.0", type="BUILD", data=DOC, dryRun=True)
    assert error_code(exc.value) == "DryRunOperationException"
    with pytest.raises(ClientError) as exc:
        ib.get_workflow(workflowBuildVersionArn=f"{PREFIX}/build/dry/1.0.0/1")
    assert missing(exc.value)


def test_delete(ib: Any) -> None:
    arn = create(ib, "doomed")
    check_output("DeleteWorkflow", ib.delete_workflow(workflowBuildVersionArn=arn))
    with pytest.raises(ClientError) as exc:
        ib.get_workflow(workflowBuildVersionArn=arn)
    assert missing(exc.value)
    with pytest.raises(ClientError) as exc:
        ib.delete_workflow(workflowBuildVersionArn=arn)
    assert missing(exc.value)


def test_managed_components(ib: Any) -> None:
    listed = ib.list_components(owner="Amazon")
    check_output("ListComponents", listed)
    names = {c["name"] for c in listed["componentVersionList"]}
    assert {"update-linux", "reboot-linux", "hello-world-linux"} <= names
    assert all(c["owner"] == "Amazon" for c in listed["componentVersionList"])
    comp = ib.get_component(componentBuildVersionArn="arn:aws:imagebuilder:us-east-1:aws:component/update-linux/x.x.x")
    assert comp["component"]["arn"] == "arn:aws:imagebuilder:us-east-1:aws:component/update-linux/1.0.0/1"
    assert "UpdateOS" in comp["component"]["data"] and comp["component"]["owner"] == "Amazon"
    assert all(c["owner"] != "Amazon" for c in ib.list_components()["componentVersionList"])


def test_seeding_is_idempotent_and_versions_changes(tmp_path: Path) -> None:
    config = replace(settings.load(), data_dir=tmp_path, database_url="")
    store = Store(config.db_url)
    store.migrate()
    try:
        first = managed.seed(config, store)
        assert first.components and first.workflows
        assert first.images == [
            f"arn:aws:imagebuilder:{config.region}:aws:image/debian-12-container/12.0.0/1",
            f"arn:aws:imagebuilder:{config.region}:aws:image/debian-12/12.0.0/1",
        ]
        again = managed.seed(config, store)
        assert again.components == [] and again.workflows == [] and again.images == []
        # A stored managed document that differs from the shipped one (as after an upgrade)
        # gets a new build; the old build stays for references that pin it.
        old = f"arn:aws:imagebuilder:{config.region}:aws:workflow/build/build-image/1.0.0/1"
        with store.transaction(write=True) as tx:
            rec = tx.get(old)
            assert rec is not None
            tx.update(rec.with_body({**rec.body, "_digest": "older"}))
        upgraded = managed.seed(config, store)
        assert upgraded.workflows == [old[:-1] + "2"] and upgraded.components == []
        with store.transaction() as tx:
            assert tx.get(old) is not None
    finally:
        store.dispose()
