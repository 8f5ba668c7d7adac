"""Run-time helpers: resolve_inputs, evaluate_condition, parameters and outputs."""

from __future__ import annotations

from typing import Any

import pytest

from engine.workflow_docs import (
    Condition,
    ResolutionError,
    WorkflowDocumentError,
    bind_parameters,
    evaluate_condition,
    parameter_details,
    parse_workflow,
    resolve_inputs,
    resolve_outputs,
    rollback_enabled,
)

DOCUMENT = parse_workflow(
    """\
schemaVersion: 1.0
parameters:
  - {name: prefix, type: string, default: golden}
  - {name: retries, type: integer, default: 2}
  - {name: approve, type: boolean}
  - {name: accounts, type: stringList, default: ["111122223333", "444455556666"]}
steps:
  - name: Launch
    action: LaunchInstance
    inputs: {waitFor: ssmAgent}
  - name: Run
    action: RunCommand
    rollbackEnabled: $.parameters.approve
    inputs:
      instanceId.$: $.stepOutputs.Launch.instanceId
      documentName: AWS-RunShellScript
      parameters:
        commands.$: [$.parameters.prefix, "echo {{ $.imagebuilder.imageName }}"]
        literal: ["$.parameters.prefix"]
  - name: Wait
    action: WaitForAction
    inputs:
      payload: >-
        {"first": "{{ $.stepOutputs.Run.output[0] }}",
        "ok": {{ $.parameters.approve }}, "n": {{ $.parameters.retries }}}
  - name: Copy
    action: DistributeImage
    inputs:
      distributions:
        - region: r1
          targetAccountIds.$: $.parameters.accounts
          amiTags: {Source: "{{ $.workflowOutputs.ImageId }}"}
  - name: Share
    action: ModifyImageAttributes
    inputs:
      distributedImages.$: $.stepOutputs.Copy.distributedImages
outputs:
  - {name: FirstLine, value: "$.stepOutputs.Run.output[0]"}
  - {name: Shared, value: $.stepOutputs.Share.modifiedImages}
""",
    "DISTRIBUTION",
)


def context(**step_outputs: dict[str, Any]) -> dict[str, Any]:
    return {
        "parameters": bind_parameters(DOCUMENT, {"approve": ["TRUE"]}),
        "imagebuilder": {"imageName": "web", "imageType": "AMI", "platform": "Linux", "collectImageMetadata": True},
        "workflowOutputs": {"ImageId": "img-1"},
        "stepOutputs": step_outputs,
    }


def test_bind_parameters_types_values_and_applies_defaults() -> None:
    assert bind_parameters(DOCUMENT, {"approve": ["false"], "retries": ["5"], "accounts": []}) == {
        "prefix": "golden",
        "retries": 5,
        "approve": False,
        "accounts": [],
    }


@pytest.mark.parametrize(
    ("given", "words"),
    [
        ({}, "parameter 'approve' needs a value"),
        ({"approve": ["yes"]}, "boolean parameter 'approve' takes true or false"),
        ({"approve": ["true"], "retries": ["two"]}, "not a whole number"),
        ({"approve": ["true"], "prefix": ["a", "b"]}, "takes exactly one value"),
        ({"approve": ["true"], "nope": ["x"]}, "the workflow has no parameter 'nope'"),
        ({"approve": ["true"], "prefix": ["x" * 1025]}, "longer than 1024"),
    ],
)
def test_bind_parameters_rejects(given: dict[str, list[str]], words: str) -> None:
    with pytest.raises(WorkflowDocumentError, match=words):
        bind_parameters(DOCUMENT, given)


def test_parameter_details_are_the_api_shape() -> None:
    assert parameter_details(DOCUMENT) == [
        {"name": "prefix", "type": "string", "defaultValue": ["golden"]},
        {"name": "retries", "type": "integer", "defaultValue": ["2"]},
        {"name": "approve", "type": "boolean"},
        {"name": "accounts", "type": "stringList", "defaultValue": ["111122223333", "444455556666"]},
    ]


def test_resolve_inputs_whole_values_lists_and_interpolation() -> None:
    ctx = context(Launch={"instanceId": "i-0abc"})
    assert resolve_inputs(DOCUMENT.step("Run"), ctx) == {
        "instanceId": "i-0abc",
        "documentName": "AWS-RunShellScript",
        # a list under a .$ key resolves element by element; without .$ a $. string is literal
        "parameters": {"commands": ["golden", "echo web"], "literal": ["$.parameters.prefix"]},
    }


def test_interpolation_writes_non_strings_as_json() -> None:
    ctx = context(Run={"output": ["line one", "line two"], "status": "Success", "runCommandId": "c-1"})
    resolved = resolve_inputs(DOCUMENT.step("Wait"), ctx)
    assert resolved == {"payload": '{"first": "line one", "ok": true, "n": 2}'}


def test_nested_variables_and_workflow_outputs() -> None:
    resolved = resolve_inputs(DOCUMENT.step("Copy"), context())
    assert resolved == {
        "distributions": [
            {"region": "r1", "targetAccountIds": ["111122223333", "444455556666"], "amiTags": {"Source": "img-1"}}
        ]
    }


def test_resolved_inputs_do_not_share_objects_with_the_context() -> None:
    images = [{"region": "r1", "amiId": "img-2"}]
    ctx = context(Copy={"distributedImages": images})
    resolved = resolve_inputs(DOCUMENT.step("Share"), ctx)
    resolved["distributedImages"][0]["amiId"] = "changed"
    assert images[0]["amiId"] == "img-2"


def test_missing_step_output_is_a_resolution_error() -> None:
    with pytest.raises(ResolutionError, match=r"\$.stepOutputs has no 'Launch'"):
        resolve_inputs(DOCUMENT.step("Run"), context())
    with pytest.raises(ResolutionError, match=r"has no element \[0\]"):
        resolve_inputs(DOCUMENT.step("Wait"), context(Run={"output": []}))


def test_rollback_enabled_may_be_a_variable() -> None:
    assert rollback_enabled(DOCUMENT.step("Run"), context()) is True
    assert rollback_enabled(DOCUMENT.step("Launch"), context()) is True


def test_outputs_leave_out_what_a_skipped_step_did_not_produce() -> None:
    assert resolve_outputs(DOCUMENT, context(Run={"output": ["ami-9"]})) == {"FirstLine": "ami-9"}


def cmp(op: str, operand: Any, value: Any) -> Condition:
    return Condition(op, operand=operand, value=value)


CTX = {
    "imagebuilder": {"imageType": "AMI", "platform": "Linux", "collectImageMetadata": True, "imageBuildNumber": 3},
    "parameters": {"flag": "true", "size": "10.5", "name": "x", "n": 7},
}


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (None, True),
        (cmp("stringEquals", "AMI", "$.imagebuilder.imageType"), True),
        (cmp("stringEquals", "DOCKER", "$.imagebuilder.imageType"), False),
        # system variables match case-blind, as the docs spell them both ways
        (cmp("stringEquals", "Linux", "$.imagebuilder.Platform"), True),
        # non-strings compare by their text
        (cmp("stringEquals", "true", "$.imagebuilder.collectImageMetadata"), True),
        (cmp("stringEquals", 7, "$.parameters.n"), True),
        (cmp("booleanEquals", True, "$.imagebuilder.collectImageMetadata"), True),
        (cmp("booleanEquals", True, "$.parameters.flag"), True),
        (cmp("booleanEquals", False, "$.parameters.flag"), False),
        (cmp("numberEquals", 3, "$.imagebuilder.imageBuildNumber"), True),
        (cmp("numberGreaterThan", "10", "$.parameters.size"), True),
        (cmp("numberGreaterThanEquals", 10.5, "$.parameters.size"), True),
        (cmp("numberLessThan", 3, "$.imagebuilder.imageBuildNumber"), False),
        (cmp("numberLessThanEquals", 3, "$.imagebuilder.imageBuildNumber"), True),
        (cmp("stringEquals", "x", "{{ $.parameters.name }}"), True),
        (cmp("stringEquals", "literal", "literal"), True),
        (
            Condition(
                "and",
                (
                    cmp("stringEquals", "AMI", "$.imagebuilder.imageType"),
                    Condition("not", (cmp("stringEquals", "Windows", "$.imagebuilder.platform"),)),
                ),
            ),
            True,
        ),
        (
            Condition(
                "or",
                (
                    cmp("stringEquals", "Windows", "$.imagebuilder.platform"),
                    cmp("stringEquals", "macOS", "$.imagebuilder.platform"),
                ),
            ),
            False,
        ),
        # short-circuit: the second branch would not resolve, and is never looked at
        (
            Condition(
                "or",
                (cmp("stringEquals", "AMI", "$.imagebuilder.imageType"), cmp("stringEquals", "x", "$.parameters.nope")),
            ),
            True,
        ),
    ],
)
def test_evaluate_condition(condition: Condition | None, expected: bool) -> None:
    assert evaluate_condition(condition, CTX) is expected


@pytest.mark.parametrize(
    ("condition", "words"),
    [
        (cmp("booleanEquals", True, "$.parameters.name"), "booleanEquals needs a boolean"),
        (cmp("numberEquals", 1, "$.imagebuilder.imageType"), "numberEquals needs a number"),
        (cmp("stringEquals", "x", "$.parameters.nope"), "has no 'nope'"),
    ],
)
def test_evaluate_condition_errors(condition: Condition, words: str) -> None:
    with pytest.raises(ResolutionError, match=words):
        evaluate_condition(condition, CTX)


def test_parsed_conditions_evaluate() -> None:
    parsed = parse_workflow(
        "schemaVersion: 1.0\nsteps:\n  - name: W1\n    action: WaitForAction\n    if:\n      and:\n"
        "        - stringEquals: AMI\n          value: $.imagebuilder.imageType\n"
        "        - booleanEquals: true\n          value: $.imagebuilder.collectImageMetadata\n",
        "BUILD",
    )
    condition = parsed.steps[0].if_
    assert evaluate_condition(condition, CTX) is True
    docker = {"imagebuilder": {**CTX["imagebuilder"], "imageType": "DOCKER"}}
    assert evaluate_condition(condition, docker) is False


def test_typed_values_survive_temporal_payloads() -> None:
    from temporalio.converter import DataConverter

    from engine.workflow_docs import WorkflowDocument

    doc = parse_workflow(
        "schemaVersion: 1.0\nparameters:\n  - {name: b, type: boolean, default: false}\n"
        "  - {name: n, type: integer, default: 1}\nsteps:\n"
        "  - {name: W1, action: WaitForAction, if: {numberEquals: 1.5, value: $.parameters.n}}\n",
        "TEST",
    )
    converter = DataConverter.default.payload_converter
    [back] = converter.from_payloads(converter.to_payloads([doc]), [WorkflowDocument])
    assert back == doc
    assert back.parameters[0].default is False
    assert back.steps[0].if_.operand == 1.5
