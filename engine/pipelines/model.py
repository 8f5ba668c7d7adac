"""Inputs and results of the image pipeline run workflow and its activities."""

from __future__ import annotations

from dataclasses import dataclass

from engine.builds.model import BuildInput

RUN_WORKFLOW = "ImagePipelineRun"
#: Start conditions (Schedule.pipelineExecutionStartCondition).
MATCH_ONLY = "EXPRESSION_MATCH_ONLY"
DEPENDENCY_UPDATES = "EXPRESSION_MATCH_AND_DEPENDENCY_UPDATES_AVAILABLE"
#: Consecutive failed scheduled runs that disable a pipeline without an autoDisablePolicy.
DEFAULT_FAILURE_COUNT = 5


@dataclass(frozen=True)
class PipelineRunInput:
    """A run of a pipeline: a schedule tick (build None: the run decides and prepares), or
    StartImagePipelineExecution (the API prepared the build and returned its image ARN)."""

    pipeline_arn: str
    build: BuildInput | None = None


@dataclass(frozen=True)
class PipelineTick:
    pipeline_arn: str
    run_id: str  # the run's workflow id: a retried activity finds the image it already made


@dataclass(frozen=True)
class PipelineDecision:
    """Whether a tick builds: the prepared build, or why not (skipped, or failed to start)."""

    build: BuildInput | None
    reason: str = ""
    failed: bool = False


@dataclass(frozen=True)
class PipelineRunOutcome:
    pipeline_arn: str
    run_id: str
    scheduled: bool
    status: str  # AVAILABLE, FAILED or CANCELLED
    image_arn: str = ""
    reason: str = ""


@dataclass(frozen=True)
class PipelineRunResult:
    status: str  # AVAILABLE, FAILED, CANCELLED or SKIPPED
    image_arn: str = ""
    reason: str = ""
    disabled: bool = False  # this run's failure disabled the pipeline
