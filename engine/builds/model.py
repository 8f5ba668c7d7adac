"""Inputs, results and records of the image build workflow (one frozen dataclass each).

No ``from __future__ import annotations`` here: Temporal's converter resolves a dataclass's
type hints on every decode, and string annotations make that a compile per field.
"""

from dataclasses import dataclass, field
from typing import Any

from engine.workflow_docs import WorkflowDocument
from workers.contracts import BuildContext

WORKFLOW_NAME = "ImageBuild"


def workflow_id(image_arn: str) -> str:
    """Readable and unique per image build version: 'image/hello/1.0.0/1' from its ARN."""
    return "image/" + image_arn.split(":image/", 1)[1]


@dataclass(frozen=True)
class WorkflowRun:
    """One workflow document attached to a build, with its parameters."""

    arn: str
    type: str  # BUILD, TEST or DISTRIBUTION
    document: WorkflowDocument
    parameters: dict[str, list[str]] = field(default_factory=dict)
    parallel_group: str | None = None
    on_failure: str | None = None  # TEST only: CONTINUE or ABORT


@dataclass(frozen=True)
class BuildInput:
    context: BuildContext
    workflows: tuple[WorkflowRun, ...]
    #: `$.imagebuilder.*` system variables.
    system: dict[str, Any]
    account: str
    tests_enabled: bool = True


@dataclass(frozen=True)
class BuildResult:
    status: str
    reason: str = ""
    output_resources: dict[str, Any] | None = None


@dataclass(frozen=True)
class ImageStateUpdate:
    image_arn: str
    status: str
    reason: str = ""
    output_resources: dict[str, Any] | None = None
    failure_context: dict[str, Any] | None = None
    #: Blob-store reference of the package inventory a CollectImageMetadata step wrote (JSON
    #: {"osVersion", "packages": [{"packageName", "packageVersion"}, ...]}): read into the image
    #: record (ListImagePackages, osVersion) when the image becomes AVAILABLE.
    packages_ref: str = ""


@dataclass(frozen=True)
class ExecutionRecord:
    """A workflow execution or a step execution, as the API's Get/List operations show it."""

    kind: str  # "workflow-execution" or "workflow-step-execution"
    id: str
    parent: str  # image ARN for workflow executions, workflow execution id for steps
    account: str
    body: dict[str, Any]


@dataclass(frozen=True)
class BuildWrite:
    """One write of a build's progress: an execution record (a partial update of one) or the
    image's state."""

    record: ExecutionRecord | None = None
    image_state: ImageStateUpdate | None = None


@dataclass(frozen=True)
class RecordBatch:
    """What the build wrote since its last batch, in the order it wrote them."""

    writes: tuple[BuildWrite, ...] = ()


@dataclass(frozen=True)
class StepActionSignal:
    """SendWorkflowStepAction, delivered to the waiting build as a signal."""

    step_execution_id: str
    action: str  # RESUME or STOP
    reason: str = ""
