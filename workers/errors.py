"""The errors steps raise, and how each maps onto Temporal's retry policy.

A user's mistake (a failing component, a bad Dockerfile, a missing parent image) will fail the
same way every time: non-retryable. Trouble with the infrastructure (a Docker engine that
restarts, a guest that doesn't answer yet) may pass: retryable.
"""

from __future__ import annotations

from temporalio.exceptions import ApplicationError


class StepFailed(ApplicationError):
    """The step ran and failed because of what it was given. Not retried."""

    def __init__(self, message: str, *, log_ref: str = "") -> None:
        super().__init__(message, {"log_ref": log_ref}, type="StepFailed", non_retryable=True)


class InfrastructureError(ApplicationError):
    """The executor host had trouble; the same request may succeed if retried."""

    def __init__(self, message: str) -> None:
        super().__init__(message, type="InfrastructureError", non_retryable=False)


class NotSupported(ApplicationError):
    """The action has no meaning on this executor (e.g. CreateImage for containers)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, type="NotSupported", non_retryable=True)


class NoCapacity(ApplicationError):
    """This host has no room for the instance now (vCPUs, memory, disk or concurrent builds).

    Retryable: another host, or this one once a build ends, may take it. The build workflow
    waits and dispatches the launch again (engine/builds/workflow.py), so the wait is bounded
    there and the error's own retries do not use up the launch's attempts for real failures.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, type="NoCapacity", non_retryable=False)
