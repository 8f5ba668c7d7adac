"""The step actions a workflow document may use: one row per action, with a JSON Schema for its inputs.

This table is the single source for validation (stage, inputs, timeouts, the outputs later steps may
refer to) and for the interpreter (default timeouts, which actions roll back). Figures are the
documented ones (newest step-action page); times are seconds.

Input schemas are strict at the top level (a misspelt input is an error, not silently ignored) and
lenient inside nested EC2-shaped objects, whose members we don't all model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from engine.workflow_docs.model import WorkflowType

B, T, D = WorkflowType.BUILD, WorkflowType.TEST, WorkflowType.DISTRIBUTION
MINUTE, HOUR, DAY = 60, 3600, 86400

#: Payloads for SNS/Lambda and Step Functions are capped at 16 KiB.
MAX_PAYLOAD_CHARS = 16 * 1024


class ValueType(StrEnum):
    """What a ``$.…`` variable holds, as far as validation can know before the run."""

    STRING = "string"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    STRING_LIST = "list of strings"
    OBJECT_LIST = "list of objects"
    OBJECT = "object"
    ANY = "value of unknown type"

    @property
    def is_list(self) -> bool:
        return self in (ValueType.STRING_LIST, ValueType.OBJECT_LIST)

    @property
    def item(self) -> ValueType:
        """The type of one element, for ``[n]`` indexing."""
        return {ValueType.STRING_LIST: ValueType.STRING, ValueType.OBJECT_LIST: ValueType.OBJECT}.get(
            self, ValueType.ANY
        )


@dataclass(frozen=True)
class ActionSpec:
    name: str
    stages: frozenset[WorkflowType]
    default_timeout: int
    max_timeout: int
    inputs: dict[str, Any]  # JSON Schema (draft 2020-12) for the step's ``inputs``
    outputs: dict[str, ValueType] = field(default_factory=dict)
    #: Whether the action undoes itself when a later step fails and the workflow rolls back.
    rollback: bool = False


def _obj(props: dict[str, Any], required: tuple[str, ...] = (), strict: bool = True) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        schema["required"] = list(required)
    if strict:
        schema["additionalProperties"] = False
    return schema


STR: dict[str, Any] = {"type": "string"}
BOOL: dict[str, Any] = {"type": "boolean"}
STR_LIST: dict[str, Any] = {"type": "array", "items": STR}
INSTANCE = {"instanceId": STR}

#: What the SSM-document actions return. Only RunCommand documents ``output`` as a list (one entry per
#: plugin); for the others its shape is not documented, so it is left untyped.
_SSM_OUTPUTS = {"runCommandId": ValueType.STRING, "status": ValueType.STRING, "output": ValueType.ANY}

_DISTRIBUTED_IMAGES = {"type": "array", "items": {"type": "object"}}
_REGION_ITEM_REQUIRED = ("region",)

_ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec(
        "LaunchInstance",
        frozenset({B, T, D}),
        75 * MINUTE,
        12 * HOUR,
        _obj(
            {
                "waitFor": {"enum": ["ssmAgent"]},
                "imageIdOverride": STR,
                "instanceTypesOverride": {"type": "array", "items": STR, "minItems": 1},
                "healthCheck": {"enum": ["RUNNING", "STATUS_CHECK_PASSED"]},
            },
            required=("waitFor",),
        ),
        {"instanceId": ValueType.STRING},
        rollback=True,  # terminates the instance, unless the infrastructure keeps it on failure
    ),
    ActionSpec(
        "BootstrapInstanceForContainer",
        frozenset({B, T, D}),
        60 * MINUTE,
        12 * HOUR,
        _obj(INSTANCE, ("instanceId",)),
        _SSM_OUTPUTS,
    ),
    ActionSpec(
        "ExecuteComponents",
        frozenset({B, T}),
        720 * MINUTE,
        24 * HOUR,
        _obj(INSTANCE, ("instanceId",)),
        _SSM_OUTPUTS,
    ),
    ActionSpec(
        # The prose says "build only", the stage matrix marks all three; the matrix is followed.
        "CollectImageMetadata",
        frozenset({B, T, D}),
        30 * MINUTE,
        12 * HOUR,
        _obj(INSTANCE, ("instanceId",)),
        {"osVersion": ValueType.STRING, "associationId": ValueType.STRING},
        rollback=True,  # removes the inventory association it created
    ),
    ActionSpec(
        "CollectImageScanFindings",
        frozenset({T}),
        120 * MINUTE,
        12 * HOUR,
        _obj(INSTANCE, ("instanceId",)),
        _SSM_OUTPUTS,
    ),
    ActionSpec(
        "RunSysPrep", frozenset({B, T, D}), 60 * MINUTE, 12 * HOUR, _obj(INSTANCE, ("instanceId",)), _SSM_OUTPUTS
    ),
    ActionSpec(
        "SanitizeInstance",
        frozenset({B, T, D}),
        60 * MINUTE,
        12 * HOUR,
        _obj(INSTANCE, ("instanceId",)),
        _SSM_OUTPUTS,
    ),
    ActionSpec(
        "CreateImage",
        frozenset({B, T, D}),
        720 * MINUTE,
        3 * DAY,
        _obj(INSTANCE, ("instanceId",)),
        {"imageId": ValueType.STRING},
    ),
    ActionSpec(
        "CreateImageFromIso",
        frozenset({B, T, D}),
        720 * MINUTE,
        12 * HOUR,
        _obj(INSTANCE, ("instanceId",)),
        {"amiName": ValueType.STRING, "snapshotId": ValueType.STRING, "architecture": ValueType.STRING},
    ),
    ActionSpec(
        "RegisterImage",
        frozenset({B, T, D}),
        540 * MINUTE,
        12 * HOUR,
        _obj(
            {
                "architecture": {"enum": ["i386", "x86_64", "arm64", "x86_64_mac", "arm64_mac"]},
                "blockDeviceMapping": {"type": "array", "items": {"type": "object"}},
                "bootMode": {"enum": ["legacy-bios", "uefi", "uefi-preferred"]},
                "description": STR,
                "enaSupport": BOOL,
                "imageLocation": STR,
                "imdsSupport": {"enum": ["v2.0"]},
                "includeSnapshotTags": BOOL,
                "kernelId": STR,
                "ramdiskId": STR,
                "rootDeviceName": STR,
                "sriovNetSupport": STR,
                "tpmSupport": {"enum": ["v2.0"]},
                "uefiData": STR,
                "virtualizationType": {"enum": ["hvm", "paravirtual"]},
            }
        ),
        {"imageId": ValueType.STRING},
    ),
    ActionSpec(
        "RunCommand",
        frozenset({B, T, D}),
        720 * MINUTE,
        12 * HOUR,
        _obj(
            {
                "instanceId": STR,
                "documentName": STR,
                "documentVersion": STR,
                "parameters": {"type": "object", "additionalProperties": STR_LIST},
            },
            ("instanceId", "documentName"),
        ),
        {"runCommandId": ValueType.STRING, "status": ValueType.STRING, "output": ValueType.STRING_LIST},
    ),
    ActionSpec(
        "WaitForSSMAgent",
        frozenset({B, T, D}),
        60 * MINUTE,
        3 * HOUR,
        _obj(INSTANCE, ("instanceId",)),
        # An older revision of the docs capitalised the output; both names are accepted.
        {"status": ValueType.STRING, "Status": ValueType.STRING},
    ),
    ActionSpec(
        "WaitForAction",
        frozenset({B, T, D}),
        3 * DAY,
        7 * DAY,
        _obj(
            {
                "snsTopicArn": STR,
                "lambdaFunctionName": STR,
                "payload": {"type": "string", "maxLength": MAX_PAYLOAD_CHARS},
            }
        ),
        {"action": ValueType.STRING, "reason": ValueType.STRING},
    ),
    ActionSpec(
        "ExecuteStateMachine",
        frozenset({B, T, D}),
        6 * HOUR,
        24 * HOUR,
        _obj(
            {"stateMachineArn": STR, "input": {"type": "string", "maxLength": MAX_PAYLOAD_CHARS}},
            ("stateMachineArn",),
        ),
        {"executionArn": ValueType.STRING, "output": ValueType.STRING},
    ),
    ActionSpec(
        "TerminateInstance",
        frozenset({B, T, D}),
        30 * MINUTE,
        12 * HOUR,
        _obj({"instanceId": STR, "waitForTermination": BOOL}, ("instanceId",)),
    ),
    ActionSpec(
        "DistributeImage",
        frozenset({D}),
        360 * MINUTE,
        12 * HOUR,
        _obj(
            {
                "distributions": {
                    "type": "array",
                    "minItems": 1,
                    "items": _obj(
                        {
                            "region": STR,
                            "name": STR,
                            "description": STR,
                            "targetAccountIds": STR_LIST,
                            "amiTags": {"type": "object", "maxProperties": 50, "additionalProperties": STR},
                            "kmsKeyId": STR,
                        },
                        _REGION_ITEM_REQUIRED,
                        strict=False,
                    ),
                }
            }
        ),
        {"distributedImages": ValueType.OBJECT_LIST},
    ),
    ActionSpec(
        "ModifyImageAttributes",
        frozenset({D}),
        120 * MINUTE,
        3 * HOUR,
        _obj(
            {
                "distributedImages": _DISTRIBUTED_IMAGES,
                "attributes": {
                    "type": "array",
                    "items": _obj(
                        {
                            "region": STR,
                            "launchPermission": _obj(
                                {
                                    "userIds": STR_LIST,
                                    "userGroups": STR_LIST,
                                    "organizationArns": STR_LIST,
                                    "organizationalUnitArns": STR_LIST,
                                }
                            ),
                        },
                        _REGION_ITEM_REQUIRED,
                        strict=False,
                    ),
                },
            },
            ("distributedImages",),
        ),
        {"modifiedImages": ValueType.OBJECT_LIST},
    ),
    ActionSpec(
        "ApplyImageConfigurations",
        frozenset({D}),
        360 * MINUTE,
        12 * HOUR,
        _obj(
            {
                "distributedImages": _DISTRIBUTED_IMAGES,
                "configurations": {
                    "type": "array",
                    "items": _obj(
                        {
                            "region": STR,
                            "licenseConfigurationArns": STR_LIST,
                            "launchTemplateConfigurations": {
                                "type": "array",
                                "items": _obj(
                                    {"launchTemplateId": STR, "accountId": STR, "setDefaultVersion": BOOL},
                                    ("launchTemplateId",),
                                ),
                            },
                            "s3ExportConfiguration": _obj(
                                {
                                    "roleName": STR,
                                    "diskImageFormat": {"enum": ["VMDK", "RAW", "VHD"]},
                                    "s3Bucket": STR,
                                    "s3Prefix": STR,
                                },
                                ("roleName", "diskImageFormat", "s3Bucket"),
                            ),
                            "fastLaunchConfigurations": {"type": "array", "items": {"type": "object"}},
                            "ssmParameterConfigurations": {
                                "type": "array",
                                "items": _obj(
                                    {
                                        "amiAccountId": STR,
                                        "parameterName": STR,
                                        "dataType": {"enum": ["text", "aws:ec2:image"]},
                                    },
                                    ("parameterName",),
                                ),
                            },
                        },
                        _REGION_ITEM_REQUIRED,
                        strict=False,
                    ),
                },
            },
            ("distributedImages",),
        ),
        {"configuredImages": ValueType.OBJECT_LIST},
    ),
    ActionSpec(
        "DistributeContainerImage",
        frozenset({D}),
        120 * MINUTE,
        12 * HOUR,
        _obj(INSTANCE, ("instanceId",)),
        {
            "status": ValueType.STRING,
            "succeededRegions": ValueType.STRING_LIST,
            "failedRegions": ValueType.STRING_LIST,
        },
    ),
)

ACTIONS: dict[str, ActionSpec] = {spec.name: spec for spec in _ACTIONS}

#: A distribution workflow distributes either a container image or an AMI, never both.
AMI_DISTRIBUTION_ACTIONS = frozenset({"DistributeImage", "ModifyImageAttributes", "ApplyImageConfigurations"})
CONTAINER_DISTRIBUTION_ACTIONS = frozenset({"DistributeContainerImage"})
