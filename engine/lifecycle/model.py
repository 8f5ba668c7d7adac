"""Inputs and results of the lifecycle workflow and its activities (one frozen dataclass each)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

WORKFLOW_NAME = "LifecycleExecution"
KIND = "lifecycle-execution"
#: StartResourceStateUpdate states and the lifecycle actions that reach them.
ACTION_FOR_STATE = {"AVAILABLE": "AVAILABLE", "DEPRECATED": "DEPRECATE", "DISABLED": "DISABLE", "DELETED": "DELETE"}


@dataclass(frozen=True)
class StateUpdate:
    """StartResourceStateUpdate: one image to one state, as the request said."""

    image_arn: str
    status: str  # AVAILABLE, DEPRECATED, DISABLED or DELETED
    include: dict[str, bool] = field(default_factory=dict)
    #: exclusionRules.amis of the request.
    ami_exclusions: dict[str, Any] | None = None
    #: ISO time: DEPRECATED at that moment, not now.
    update_at: str | None = None


@dataclass(frozen=True)
class LifecycleRunRequest:
    """A run of a lifecycle policy (its daily schedule), or a manual state update.

    The schedule's runs carry only the policy; the execution id is made by the run. A manual
    update's execution record exists already (the API made it), so its id is given."""

    account: str
    policy_arn: str = ""
    execution_id: str = ""
    #: Evaluate and report what would be done; write and change nothing.
    dry_run: bool = False
    state_update: StateUpdate | None = None


@dataclass(frozen=True)
class PlanRequest:
    run: LifecycleRunRequest
    execution_id: str
    workflow_id: str
    now: str  # ISO time of the evaluation


@dataclass(frozen=True)
class ImageAction:
    """One image's action in an execution."""

    execution_id: str
    image_arn: str
    action: str  # AVAILABLE, DEPRECATE, DISABLE or DELETE
    reason: str
    include: dict[str, bool] = field(default_factory=dict)
    #: AMIs kept out of the action: (image id, why).
    skipped_amis: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Plan:
    execution_id: str
    actions: tuple[ImageAction, ...] = ()
    #: Why nothing runs (policy deleted or disabled); empty when the plan is to be carried out.
    skip_reason: str = ""


@dataclass(frozen=True)
class ActionResult:
    image_arn: str
    action: str
    status: str  # SUCCESS, FAILED or SKIPPED
    reason: str = ""
    removed: tuple[str, ...] = ()


@dataclass(frozen=True)
class FinishRequest:
    execution_id: str
    status: str  # SUCCESS, FAILED or CANCELLED
    reason: str = ""


@dataclass(frozen=True)
class LifecycleRunResult:
    execution_id: str
    status: str
    actions: tuple[ImageAction, ...] = ()
    results: tuple[ActionResult, ...] = ()
    reason: str = ""
