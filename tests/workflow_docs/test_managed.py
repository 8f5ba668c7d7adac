"""Our managed workflows pass our own validator, behave as documented, and travel as Temporal payloads."""

from __future__ import annotations

import pytest
from jsonschema import Draft202012Validator
from temporalio.converter import DataConverter

from engine.workflow_docs import ACTIONS, WorkflowDocument, WorkflowType, evaluate_condition, parse_workflow
from engine.workflow_docs.managed import DEFAULTS, MANAGED_WORKFLOWS, managed_workflow


def test_the_documented_managed_workflows_are_all_there() -> None:
    assert {(w.name, w.type) for w in MANAGED_WORKFLOWS} == {
        ("build-image", WorkflowType.BUILD),
        ("build-container", WorkflowType.BUILD),
        ("express-build-image", WorkflowType.BUILD),
        ("express-build-container", WorkflowType.BUILD),
        ("test-image", WorkflowType.TEST),
        ("test-container", WorkflowType.TEST),
        ("express-test-image", WorkflowType.TEST),
        ("distribute-image", WorkflowType.DISTRIBUTION),
        ("distribute-container", WorkflowType.DISTRIBUTION),
    }
    for workflow in MANAGED_WORKFLOWS:
        assert (workflow.owner, workflow.version) == ("Amazon", "1.0.0")
        assert workflow.description
    assert managed_workflow("test-image").arn("us-west-2") == (
        "arn:aws:imagebuilder:us-west-2:aws:workflow/test/test-image/1.0.0/1"
    )


@pytest.mark.parametrize("workflow", MANAGED_WORKFLOWS, ids=lambda w: w.name)
def test_managed_workflow_validates(workflow: object) -> None:
    from engine.workflow_docs.managed import ManagedWorkflow

    assert isinstance(workflow, ManagedWorkflow)
    parsed = parse_workflow(workflow.text(), workflow.type)
    assert parsed.name == workflow.name
    assert parsed.type is workflow.type
    assert parsed == workflow.document()


def test_defaults_name_managed_workflows_of_the_right_stage() -> None:
    for stages in DEFAULTS.values():
        for stage, name in stages.items():
            assert managed_workflow(name).type is stage


def test_build_image_steps_follow_the_image_type_and_platform() -> None:
    doc = managed_workflow("build-image").document()

    def runs(image_type: str, platform: str) -> list[str]:
        ctx = {"imagebuilder": {"imageType": image_type, "platform": platform, "collectImageMetadata": False}}
        return [s.name for s in doc.steps if evaluate_condition(s.if_, ctx)]

    assert runs("AMI", "Linux") == [
        "LaunchBuildInstance",
        "ApplyBuildComponents",
        "RunSanitizeScript",
        "CreateOutputAMI",
        "TerminateBuildInstance",
    ]
    assert "RunSysPrepScript" in runs("AMI", "Windows")
    assert "RunSanitizeScript" not in runs("AMI", "Windows")
    assert doc.step("TerminateBuildInstance").on_failure.value == "Continue"
    assert [o.name for o in doc.outputs] == ["ImageId"]


def test_container_build_hands_its_instance_to_distribution() -> None:
    build = managed_workflow("build-container").document()
    assert [o.name for o in build.outputs] == ["InstanceId"]
    assert "TerminateInstance" not in {s.action for s in build.steps}
    distribute = managed_workflow("distribute-container").document()
    assert distribute.steps[0].inputs == {"instanceId.$": "$.workflowOutputs.InstanceId"}
    assert distribute.steps[-1].action == "TerminateInstance"


def test_express_variants_only_wait_for_running() -> None:
    for name in ("express-build-image", "express-build-container", "express-test-image"):
        launch = managed_workflow(name).document().steps[0]
        assert launch.inputs["healthCheck"] == "RUNNING"
    assert "CollectImageMetadata" not in {s.action for s in managed_workflow("express-build-image").document().steps}
    express_test = managed_workflow("express-test-image").document()
    assert "CollectImageScanFindings" not in {s.action for s in express_test.steps}


@pytest.mark.parametrize("name", ["build-image", "test-image", "distribute-image", "distribute-container"])
def test_documents_round_trip_through_temporal_payloads(name: str) -> None:
    doc = managed_workflow(name).document()
    converter = DataConverter.default.payload_converter
    payloads = converter.to_payloads([doc])
    [back] = converter.from_payloads(payloads, [WorkflowDocument])
    assert back == doc


@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_action_schemas_are_valid_json_schema(action: str) -> None:
    spec = ACTIONS[action]
    Draft202012Validator.check_schema(spec.inputs)
    assert 0 < spec.default_timeout <= spec.max_timeout
