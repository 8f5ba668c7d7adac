"""parse_workflow: good documents become the expected model; bad ones fail at the right line and step."""

from __future__ import annotations

import textwrap

import pytest

from engine.workflow_docs import (
    Condition,
    OnFailure,
    Output,
    Parameter,
    ParameterType,
    WorkflowDocumentError,
    WorkflowType,
    parse_workflow,
)


def doc(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


LAUNCH = """\
  - name: Launch
    action: LaunchInstance
    inputs:
      waitFor: ssmAgent
"""


def test_full_document_becomes_the_model() -> None:
    parsed = parse_workflow(
        doc(
            """
            name: sample
            description: A sample.
            schemaVersion: "1.0"
            parameters:
              - name: waitAtEnd
                type: boolean
                default: true
                description: Pause before the end.
              - name: tags
                type: stringList
                default: [a, b]
              - name: count
                type: integer
                default: 3
              - name: topic
            steps:
              - name: Launch
                action: LaunchInstance
                description: Start it.
                timeoutSeconds: 600
                waitSeconds: 5
                inputs:
                  waitFor: ssmAgent
                  instanceTypesOverride: [m5.large, m5.xlarge]
              - name: Build
                action: ExecuteComponents
                rollbackEnabled: false
                inputs:
                  instanceId.$: $.stepOutputs.Launch.instanceId
              - name: Capture
                action: CreateImage
                if:
                  - stringEquals: AMI
                    value: $.imagebuilder.imageType
                inputs:
                  instanceId.$: "$.stepOutputs.Launch.instanceId"
              - name: Pause
                action: WaitForAction
                onFailure: Continue
                rollbackEnabled: $.parameters.waitAtEnd
                if:
                  and:
                    - booleanEquals: true
                      value: $.parameters.waitAtEnd
                    - not:
                        numberLessThan: 2
                        value: $.parameters.count
                inputs:
                  snsTopicArn.$: $.parameters.topic
                  payload: "image {{ $.stepOutputs.Capture.imageId }} is ready"
            outputs:
              - name: ImageId
                value: $.stepOutputs.Capture.imageId
            """
        ),
        "BUILD",
    )
    assert parsed.name == "sample"
    assert parsed.type is WorkflowType.BUILD
    assert parsed.schema_version == "1.0"
    assert parsed.parameters == (
        Parameter("waitAtEnd", ParameterType.BOOLEAN, True, "Pause before the end."),
        Parameter("tags", ParameterType.STRING_LIST, ["a", "b"]),
        Parameter("count", ParameterType.INTEGER, 3),
        Parameter("topic", ParameterType.STRING, None),
    )
    assert parsed.parameter("topic").required
    launch, build, capture, pause = parsed.steps
    assert (launch.timeout_seconds, launch.wait_seconds, launch.line) == (600, 5, 17)
    assert launch.inputs == {"waitFor": "ssmAgent", "instanceTypesOverride": ["m5.large", "m5.xlarge"]}
    assert build.timeout_seconds == 720 * 60  # the action's default
    assert build.rollback_enabled is False
    assert build.inputs == {"instanceId.$": "$.stepOutputs.Launch.instanceId"}
    assert capture.if_ == Condition("stringEquals", operand="AMI", value="$.imagebuilder.imageType")
    assert pause.on_failure is OnFailure.CONTINUE
    assert pause.rollback_enabled == "$.parameters.waitAtEnd"
    assert pause.if_ == Condition(
        "and",
        (
            Condition("booleanEquals", operand=True, value="$.parameters.waitAtEnd"),
            Condition("not", (Condition("numberLessThan", operand=2, value="$.parameters.count"),)),
        ),
    )
    assert parsed.outputs == (Output("ImageId", "$.stepOutputs.Capture.imageId"),)


@pytest.mark.parametrize(
    ("text", "wtype"),
    [
        # the smallest document
        ("schemaVersion: 1.0\nsteps:\n" + LAUNCH, "TEST"),
        # JSON is YAML too
        (
            '{"schemaVersion": "1.0", "steps": [{"name": "Launch", "action": "LaunchInstance",'
            ' "inputs": {"waitFor": "ssmAgent"}}]}',
            "DISTRIBUTION",
        ),
        # a list of variables under a nested .$ key, and an index into a list output
        (
            "schemaVersion: 1.0\nparameters:\n  - {name: p, type: string, default: x}\nsteps:\n"
            + LAUNCH
            + doc(
                """
                  - name: Run
                    action: RunCommand
                    inputs:
                      instanceId.$: $.stepOutputs.Launch.instanceId
                      documentName: AWS-RunShellScript
                      parameters:
                        commands.$: [$.parameters.p, $.imagebuilder.imageName]
                outputs:
                  - {name: First, value: "$.stepOutputs.Run.output[0]"}
                """
            ),
            "BUILD",
        ),
        # workflowOutputs are there in TEST and DISTRIBUTION; {{ imagebuilder:buildDate }} is not a variable
        (
            doc(
                """
                schemaVersion: 1.0
                steps:
                  - name: Copy
                    action: DistributeImage
                    inputs:
                      distributions:
                        - region: eu-west-1
                          name: "out-{{ imagebuilder:buildDate }}"
                          amiTags: {From: "{{ $.workflowOutputs.ImageId }}"}
                  - name: Share
                    action: ModifyImageAttributes
                    inputs:
                      distributedImages.$: $.stepOutputs.Copy.distributedImages
                      attributes:
                        - region: eu-west-1
                          launchPermission: {userIds: ["123456789012"]}
                """
            ),
            "DISTRIBUTION",
        ),
        # dates stay strings (inputs must be JSON); the prose's $.imageBuilder spelling is accepted
        (
            "schemaVersion: 1.0\nsteps:\n"
            + doc(
                """
                  - name: Wait
                    action: WaitForAction
                    if: {stringEquals: Linux, value: $.imageBuilder.Platform}
                    inputs:
                      payload: 2024-01-01
                """
            ),
            "BUILD",
        ),
        # the longest timeouts an action allows
        ("schemaVersion: 1.0\nsteps:\n  - {name: Wait, action: WaitForAction, timeoutSeconds: 604800}", "TEST"),
    ],
)
def test_good_documents(text: str, wtype: str) -> None:
    parse_workflow(text, wtype)


def test_dates_stay_strings() -> None:
    parsed = parse_workflow(
        "schemaVersion: 1.0\nsteps:\n  - {name: W1, action: WaitForAction, inputs: {payload: 2024-01-01}}", "BUILD"
    )
    assert parsed.steps[0].inputs == {"payload": "2024-01-01"}


STEPS_HEADER = "schemaVersion: 1.0\nsteps:\n" + LAUNCH  # Launch is on line 3, its inputs end on line 6

# (document, workflow type, line, step, words the message must contain)
BAD: list[tuple[str, str, int | None, str | None, str]] = [
    # --- the document as a whole
    ("", "BUILD", None, None, "the document is empty"),
    ("- a\n- b\n", "BUILD", 1, None, "must be a mapping"),
    ("steps: [\n", "BUILD", 2, None, "not valid YAML"),
    ("a: 1\n---\nb: 2\n", "BUILD", 2, None, "not valid YAML"),
    ("steps:\n" + LAUNCH, "BUILD", 1, None, "schemaVersion is required"),
    ("schemaVersion: 2.0\nsteps:\n" + LAUNCH, "BUILD", 1, None, "schemaVersion must be 1.0"),
    ("schemaVersion: 1\nsteps:\n" + LAUNCH, "BUILD", 1, None, "schemaVersion must be 1.0"),
    ("schemaVersion: 1.0\n", "BUILD", 1, None, "steps is required"),
    ("schemaVersion: 1.0\nsteps: []\n", "BUILD", 2, None, "at least one step"),
    (STEPS_HEADER + "step: []\n", "BUILD", 7, None, "unknown document field 'step' (did you mean 'steps'?)"),
    ("schemaVersion: 1.0\nschemaVersion: 1.0\nsteps:\n" + LAUNCH, "BUILD", 2, None, "appears twice"),
    ("schemaVersion: 1.0\n1: x\nsteps:\n" + LAUNCH, "BUILD", 1, None, "is not a string"),
    (STEPS_HEADER, "SHIPPING", None, None, "unknown workflow type"),
    # --- parameters
    (
        "schemaVersion: 1.0\nparameters:\n  - foo:\n      type: string\nsteps:\n" + LAUNCH,
        "BUILD",
        3,
        None,
        "must be a mapping with a 'name'",
    ),
    (
        "schemaVersion: 1.0\nparameters:\n  - name: p\n    type: list\nsteps:\n" + LAUNCH,
        "BUILD",
        4,
        None,
        "parameter 'p' has type 'list'",
    ),
    (
        "schemaVersion: 1.0\nparameters:\n  - name: p\n    type: integer\n    default: '3'\nsteps:\n" + LAUNCH,
        "BUILD",
        5,
        None,
        "the default of integer parameter 'p' must be an integer, not a string",
    ),
    (
        "schemaVersion: 1.0\nparameters:\n  - name: p\n    type: boolean\n    default: 'yes'\nsteps:\n" + LAUNCH,
        "BUILD",
        5,
        None,
        "must be true or false",
    ),
    (
        "schemaVersion: 1.0\nparameters:\n  - name: p\n    default: 5\nsteps:\n" + LAUNCH,
        "BUILD",
        4,
        None,
        "quote it",
    ),
    (
        "schemaVersion: 1.0\nparameters:\n  - name: p\n    type: stringList\n    default: [a, 1]\nsteps:\n" + LAUNCH,
        "BUILD",
        5,
        None,
        "a list of strings",
    ),
    (
        "schemaVersion: 1.0\nparameters:\n  - name: p\n  - name: p\nsteps:\n" + LAUNCH,
        "BUILD",
        4,
        None,
        "parameter 'p' is declared twice",
    ),
    (
        "schemaVersion: 1.0\nparameters:\n  - name: p\n    defualt: x\nsteps:\n" + LAUNCH,
        "BUILD",
        4,
        None,
        "unknown parameter field 'defualt' (did you mean 'default'?)",
    ),
    (
        "schemaVersion: 1.0\nparameters:\n" + "".join(f"  - name: p{i}\n" for i in range(26)) + "steps:\n" + LAUNCH,
        "BUILD",
        2,
        None,
        "at most 25 parameters",
    ),
    # --- steps
    (
        "schemaVersion: 1.0\nsteps:\n" + "".join(f"  - {{name: W{i}, action: WaitForAction}}\n" for i in range(16)),
        "BUILD",
        18,
        None,
        "at most 15 steps",
    ),
    ("schemaVersion: 1.0\nsteps:\n  - action: WaitForAction\n", "BUILD", 3, None, "the step has no name"),
    (
        "schemaVersion: 1.0\nsteps:\n  - Name: Wait\n    action: WaitForAction\n",
        "BUILD",
        3,
        None,
        "unknown step field 'Name' (did you mean 'name'?)",
    ),
    (
        "schemaVersion: 1.0\nsteps:\n  - name: 1st\n    action: WaitForAction\n",
        "BUILD",
        3,
        "1st",
        "must start with a letter",
    ),
    (
        "schemaVersion: 1.0\nsteps:\n  - name: Has space\n    action: WaitForAction\n",
        "BUILD",
        3,
        "Has space",
        "step name 'Has space'",
    ),
    ("schemaVersion: 1.0\nsteps:\n  - name: NoAction\n", "BUILD", 3, "NoAction", "the step has no action"),
    (
        "schemaVersion: 1.0\nsteps:\n  - name: Launch\n    action: LaunchInstances\n",
        "BUILD",
        4,
        "Launch",
        "unknown action 'LaunchInstances' (did you mean 'LaunchInstance'?)",
    ),
    (
        STEPS_HEADER + "  - name: Launch\n    action: WaitForAction\n",
        "BUILD",
        7,
        "Launch",
        "step name 'Launch' is already used by the step on line 3",
    ),
    (
        STEPS_HEADER + "  - name: Copy\n    action: DistributeImage\n",
        "BUILD",
        8,
        "Copy",
        "action 'DistributeImage' cannot be used in a BUILD workflow (only in DISTRIBUTION)",
    ),
    (
        STEPS_HEADER + "  - name: Scan\n    action: CollectImageScanFindings\n    inputs: {instanceId: i-1}\n",
        "DISTRIBUTION",
        8,
        "Scan",
        "cannot be used in a DISTRIBUTION workflow (only in TEST)",
    ),
    (
        STEPS_HEADER + "  - name: Run\n    action: ExecuteComponents\n    inputs: {instanceId: i-1}\n",
        "DISTRIBUTION",
        8,
        "Run",
        "only in BUILD and TEST",
    ),
    (
        STEPS_HEADER + "  - name: Wait\n    action: WaitForAction\n    timeoutInSeconds: 60\n",
        "BUILD",
        9,
        "Wait",
        "unknown step field 'timeoutInSeconds' (did you mean 'timeoutSeconds'?)",
    ),
    (
        STEPS_HEADER + "  - name: Wait\n    action: WaitForAction\n    onFailure: Ignore\n",
        "BUILD",
        9,
        "Wait",
        "onFailure must be Abort or Continue, not 'Ignore'",
    ),
    (
        STEPS_HEADER + "  - name: Wait\n    action: WaitForAction\n    rollbackEnabled: sometimes\n",
        "BUILD",
        9,
        "Wait",
        "rollbackEnabled must be true, false or a variable",
    ),
    (
        STEPS_HEADER + "  - name: Wait\n    action: WaitForAction\n    rollbackEnabled: $.parameters.nope\n",
        "BUILD",
        9,
        "Wait",
        "rollbackEnabled refers to parameter 'nope', which the document does not declare",
    ),
    (
        STEPS_HEADER + "  - name: Wait\n    action: WaitForAction\n    timeoutSeconds: 604801\n",
        "BUILD",
        9,
        "Wait",
        "timeoutSeconds must be between 1 and 604800 (7 days, the most WaitForAction allows), not 604801",
    ),
    (
        "schemaVersion: 1.0\nsteps:\n  - name: Launch\n    action: LaunchInstance\n    timeoutSeconds: 43201\n"
        "    inputs: {waitFor: ssmAgent}\n",
        "BUILD",
        5,
        "Launch",
        "between 1 and 43200 (12 hours",
    ),
    (
        STEPS_HEADER + "  - name: Wait\n    action: WaitForAction\n    timeoutSeconds: '60'\n",
        "BUILD",
        9,
        "Wait",
        "timeoutSeconds must be a whole number of seconds, not a string",
    ),
    (
        STEPS_HEADER + "  - name: Wait\n    action: WaitForAction\n    timeoutSeconds: 0\n",
        "BUILD",
        9,
        "Wait",
        "between 1 and",
    ),
    (
        STEPS_HEADER + "  - name: Wait\n    action: WaitForAction\n    waitSeconds: 3601\n",
        "BUILD",
        9,
        "Wait",
        "waitSeconds must be a whole number from 0 to 3600",
    ),
    (
        STEPS_HEADER + "  - name: Wait\n    action: WaitForAction\n    description: " + "x" * 1025 + "\n",
        "BUILD",
        9,
        "Wait",
        "description is longer than 1024 characters",
    ),
    # --- inputs against the action's schema
    (
        "schemaVersion: 1.0\nsteps:\n  - name: Launch\n    action: LaunchInstance\n",
        "BUILD",
        3,
        "Launch",
        "LaunchInstance requires input 'waitFor'",
    ),
    (
        "schemaVersion: 1.0\nsteps:\n  - name: Launch\n    action: LaunchInstance\n    inputs:\n      waitFor: ssm\n",
        "BUILD",
        6,
        "Launch",
        "input 'waitFor' must be one of 'ssmAgent', not 'ssm'",
    ),
    (
        STEPS_HEADER + "  - name: Build\n    action: ExecuteComponents\n    inputs:\n      instanceID: i-1\n",
        "BUILD",
        10,
        "Build",
        "ExecuteComponents has no input 'instanceID' (did you mean 'instanceId'?); its inputs are: instanceId",
    ),
    (
        STEPS_HEADER + "  - name: Build\n    action: ExecuteComponents\n    inputs: [instanceId]\n",
        "BUILD",
        9,
        "Build",
        "inputs must be a mapping",
    ),
    (
        STEPS_HEADER + "  - name: Stop\n    action: TerminateInstance\n    inputs:\n      instanceId: i-1\n"
        "      waitForTermination: 'no'\n",
        "BUILD",
        11,
        "Stop",
        "input 'waitForTermination' must be a boolean, not a string",
    ),
    (
        "schemaVersion: 1.0\nsteps:\n  - name: Copy\n    action: DistributeImage\n    inputs:\n"
        "      distributions:\n        - name: x\n",
        "DISTRIBUTION",
        7,
        "Copy",
        "input 'distributions[0]' requires 'region'",
    ),
    (
        "schemaVersion: 1.0\nsteps:\n  - name: Copy\n    action: DistributeImage\n  - name: Conf\n"
        "    action: ApplyImageConfigurations\n    inputs:\n"
        "      distributedImages.$: $.stepOutputs.Copy.distributedImages\n"
        "      configurations:\n        - region: r\n          s3ExportConfiguration:\n            roleName: r\n"
        "            diskImageFormat: QCOW2\n            s3Bucket: b\n",
        "DISTRIBUTION",
        13,
        "Conf",
        "input 'configurations[0].s3ExportConfiguration.diskImageFormat' must be one of 'VMDK', 'RAW', 'VHD'",
    ),
    (
        "schemaVersion: 1.0\nsteps:\n  - name: Wait\n    action: WaitForAction\n    inputs:\n      payload: '"
        + "x" * 16385
        + "'\n",
        "BUILD",
        6,
        "Wait",
        "input 'payload' is longer than 16384 characters",
    ),
    (
        "schemaVersion: 1.0\nsteps:\n  - name: Copy\n    action: DistributeImage\n  - name: Push\n"
        "    action: DistributeContainerImage\n    inputs: {instanceId: i-1}\n",
        "DISTRIBUTION",
        6,
        "Push",
        "either a container image (DistributeContainerImage) or an AMI",
    ),
    # --- variables
    (
        "schemaVersion: 1.0\nsteps:\n" + LAUNCH + "  - name: Build\n    action: ExecuteComponents\n    inputs:\n"
        "      instanceId.$: $.stepOutputs.Foo.instanceId\n",
        "BUILD",
        10,
        "Build",
        "input 'instanceId.$' refers to step 'Foo', which is not an earlier step (there is no step of that name)",
    ),
    (
        "schemaVersion: 1.0\nsteps:\n  - name: Build\n    action: ExecuteComponents\n    inputs:\n"
        "      instanceId.$: $.stepOutputs.LaunchBuildInstance.instanceId\n  - name: LaunchBuildInstance\n"
        "    action: LaunchInstance\n    inputs: {waitFor: ssmAgent}\n",
        "BUILD",
        6,
        "Build",
        "input 'instanceId.$' refers to step 'LaunchBuildInstance', which is not an earlier step "
        "('LaunchBuildInstance' runs later)",
    ),
    (
        "schemaVersion: 1.0\nsteps:\n  - name: Self\n    action: TerminateInstance\n    inputs:\n"
        "      instanceId.$: $.stepOutputs.Self.status\n",
        "BUILD",
        6,
        "Self",
        "(a step cannot use its own outputs)",
    ),
    (
        STEPS_HEADER + "  - name: Build\n    action: ExecuteComponents\n    inputs:\n"
        "      instanceId.$: $.stepOutputs.Launch.imageId\n",
        "BUILD",
        10,
        "Build",
        "refers to output 'imageId' of step 'Launch', but LaunchInstance produces only: instanceId",
    ),
    (
        STEPS_HEADER
        + "  - name: Stop\n    action: TerminateInstance\n    inputs: {instanceId.$: $.stepOutputs.Launch.instanceId}\n"
        "  - name: Wait\n    action: WaitForAction\n    inputs: {payload.$: $.stepOutputs.Stop.status}\n",
        "BUILD",
        12,
        "Wait",
        "refers to output 'status' of step 'Stop', but TerminateInstance produces no outputs",
    ),
    (
        STEPS_HEADER
        + "  - name: Build\n    action: ExecuteComponents\n    inputs:\n      instanceId.$: $.parameters.id\n",
        "BUILD",
        10,
        "Build",
        "input 'instanceId.$' refers to parameter 'id', which the document does not declare",
    ),
    (
        STEPS_HEADER
        + "  - name: Build\n    action: ExecuteComponents\n    inputs:\n      instanceId.$: $.imagebuilder.vmId\n",
        "BUILD",
        10,
        "Build",
        "refers to '$.imagebuilder.vmId', which is not a system variable",
    ),
    (
        STEPS_HEADER
        + "  - name: Build\n    action: ExecuteComponents\n    inputs:\n      instanceId.$: $.workflowOutputs.X\n",
        "BUILD",
        10,
        "Build",
        "a BUILD workflow runs first, so there is none",
    ),
    (
        STEPS_HEADER
        + "  - name: Build\n    action: ExecuteComponents\n    inputs:\n      instanceId.$: $.steps.Launch.id\n",
        "BUILD",
        10,
        "Build",
        "uses unknown node 'steps'",
    ),
    (
        STEPS_HEADER + "  - name: Build\n    action: ExecuteComponents\n    inputs:\n      instanceId.$: i-123\n",
        "BUILD",
        10,
        "Build",
        "input 'instanceId.$' ends in '.$', so its value must be a variable",
    ),
    (
        STEPS_HEADER
        + "  - name: Build\n    action: ExecuteComponents\n    inputs:\n      instanceId.$: $.stepOutputs.Launch\n",
        "BUILD",
        10,
        "Build",
        "must name an output of step 'Launch'",
    ),
    (
        STEPS_HEADER + "  - name: Build\n    action: ExecuteComponents\n    inputs:\n"
        "      instanceId.$: $.stepOutputs.Launch.instanceId[0]\n",
        "BUILD",
        10,
        "Build",
        "indexes [0] into a string, which is not a list",
    ),
    (
        STEPS_HEADER
        + "  - name: Run\n    action: RunCommand\n    inputs:\n      instanceId.$: $.stepOutputs.Launch.instanceId\n"
        "      documentName: AWS-RunShellScript\n  - name: Build\n    action: ExecuteComponents\n    inputs:\n"
        "      instanceId.$: $.stepOutputs.Run.output\n",
        "BUILD",
        15,
        "Build",
        "input 'instanceId.$' refers to '$.stepOutputs.Run.output', which holds a list of strings, "
        "but it must be a string",
    ),
    (
        STEPS_HEADER + "  - name: Build\n    action: ExecuteComponents\n    inputs:\n"
        "      instanceId.$: $.stepOutputs.Launch.instanceId\n      instanceId: i-1\n",
        "BUILD",
        10,
        "Build",
        "input 'instanceId.$' and 'instanceId' are both given",
    ),
    (
        STEPS_HEADER + "  - name: Wait\n    action: WaitForAction\n    inputs:\n"
        "      payload: 'launched {{ $.stepOutputs.Launched.instanceId }}'\n",
        "BUILD",
        10,
        "Wait",
        "input 'payload' refers to step 'Launched', which is not an earlier step",
    ),
    (
        STEPS_HEADER.replace(
            "      waitFor: ssmAgent\n",
            "      waitFor: ssmAgent\n      instanceTypesOverride: '{{ $.imagebuilder.imageName }}'\n",
        ),
        "BUILD",
        7,
        "Launch",
        "input 'instanceTypesOverride' is a string with {{ }} variables in it, but it must be a list",
    ),
    # --- conditions
    (
        STEPS_HEADER + "  - name: Wait\n    action: WaitForAction\n    if:\n      stringEqual: AMI\n"
        "      value: $.imagebuilder.imageType\n",
        "BUILD",
        10,
        "Wait",
        "unknown condition operator 'stringEqual' (did you mean 'stringEquals'?)",
    ),
    (
        STEPS_HEADER + "  - name: Wait\n    action: WaitForAction\n    if:\n      stringEquals: AMI\n",
        "BUILD",
        9,
        "Wait",
        "'stringEquals' needs a 'value' to compare with",
    ),
    (
        STEPS_HEADER + "  - name: Wait\n    action: WaitForAction\n    if:\n      booleanEquals: 'true'\n"
        "      value: $.imagebuilder.collectImageMetadata\n",
        "BUILD",
        10,
        "Wait",
        "booleanEquals compares with true or false, not 'true'",
    ),
    (
        STEPS_HEADER + "  - name: Wait\n    action: WaitForAction\n    if:\n      numberGreaterThan: many\n"
        "      value: $.imagebuilder.imageBuildNumber\n",
        "BUILD",
        10,
        "Wait",
        "numberGreaterThan compares with a number, not 'many'",
    ),
    (
        STEPS_HEADER + "  - name: Wait\n    action: WaitForAction\n    if:\n      and:\n        - stringEquals: a\n"
        "          value: b\n        - stringEquals: c\n          value: $.stepOutputs.Wait.action\n",
        "BUILD",
        14,
        "Wait",
        "condition value refers to step 'Wait', which is not an earlier step (a step cannot use its own outputs)",
    ),
    (
        STEPS_HEADER + "  - name: Wait\n    action: WaitForAction\n    if:\n      and: []\n",
        "BUILD",
        10,
        "Wait",
        "'and' takes a list of 1 to 10 conditions",
    ),
    (
        STEPS_HEADER
        + "  - name: Wait\n    action: WaitForAction\n    if:\n      stringEquals: a\n      booleanEquals: true\n"
        "      value: x\n",
        "BUILD",
        9,
        "Wait",
        "a condition needs exactly one operator",
    ),
    (
        STEPS_HEADER + "  - name: Wait\n    action: WaitForAction\n    if:\n      not:\n        not:\n          not:\n"
        "            not:\n              not:\n                stringEquals: a\n                value: b\n",
        "BUILD",
        14,
        "Wait",
        "conditions may nest at most 4 levels deep",
    ),
    (
        STEPS_HEADER + "  - name: Wait\n    action: WaitForAction\n    if:\n      - stringEquals: a\n        value: b\n"
        "      - stringEquals: a\n        value: b\n",
        "BUILD",
        9,
        "Wait",
        "'if' takes exactly one statement at its top level",
    ),
    # --- outputs
    (
        STEPS_HEADER + "outputs:\n  - name: ImageId\n    value: $.stepOutputs.Launch.imageId\n",
        "BUILD",
        9,
        None,
        "output 'ImageId' refers to output 'imageId' of step 'Launch'",
    ),
    (
        STEPS_HEADER + "outputs:\n  - name: ImageId\n    value: ami-123\n",
        "BUILD",
        9,
        None,
        "the value of output 'ImageId' must be a variable",
    ),
    (
        STEPS_HEADER + "outputs:\n  - {name: A, value: $.stepOutputs.Launch.instanceId}\n"
        "  - {name: A, value: $.stepOutputs.Launch.instanceId}\n",
        "BUILD",
        9,
        None,
        "output 'A' is declared twice",
    ),
]


@pytest.mark.parametrize(("text", "wtype", "line", "step", "words"), BAD, ids=[b[4][:60] for b in BAD])
def test_bad_documents(text: str, wtype: str, line: int | None, step: str | None, words: str) -> None:
    with pytest.raises(WorkflowDocumentError) as caught:
        parse_workflow(text, wtype, max_chars=None)  # one case is a payload beyond the inline limit
    error = caught.value
    assert words in error.message
    assert (error.line, error.step) == (line, step)


def test_error_text_names_line_and_step() -> None:
    text = (
        STEPS_HEADER
        + "  - name: Build\n    action: ExecuteComponents\n    inputs:\n"
        + "      instanceId.$: $.stepOutputs.Foo.instanceId\n"
    )
    with pytest.raises(WorkflowDocumentError) as caught:
        parse_workflow(text, "BUILD")
    assert str(caught.value).startswith(
        "line 10, step 'Build': input 'instanceId.$' refers to step 'Foo', which is not an earlier step"
    )


def test_size_limit() -> None:
    padding = "# " + "x" * 16_000 + "\n"
    with pytest.raises(WorkflowDocumentError, match="the limit is 16000"):
        parse_workflow(padding + STEPS_HEADER, "BUILD")
    assert parse_workflow(padding + STEPS_HEADER, "BUILD", max_chars=None).steps[0].name == "Launch"


def test_alias_bomb_is_refused() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for level in "bcdefgh":
        previous = chr(ord(level) - 1)
        bomb += f"{level}: &{level} [" + ", ".join([f"*{previous}"] * 10) + "]\n"
    with pytest.raises(WorkflowDocumentError, match="too large"):
        parse_workflow(bomb + STEPS_HEADER, "BUILD")


def test_deep_nesting_is_refused() -> None:
    with pytest.raises(WorkflowDocumentError, match="nested too deeply"):
        parse_workflow("schemaVersion: 1.0\nx: " + "[" * 5000 + "]" * 5000 + "\n", "BUILD")
