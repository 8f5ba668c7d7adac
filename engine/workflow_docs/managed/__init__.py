"""Our AWS-managed workflows: the defaults a build uses when it names none, listed with owner Amazon.

Written from the documented behaviour of the managed workflows (stages, step actions, express
variants); each is an ordinary document in this folder and passes ``parse_workflow``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from engine.workflow_docs.model import WorkflowDocument, WorkflowType
from engine.workflow_docs.parser import parse_workflow

OWNER = "Amazon"
VERSION = "1.0.0"
#: Managed resources live in the reserved "aws" account in their ARNs.
ACCOUNT = "aws"
HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class ManagedWorkflow:
    name: str
    type: WorkflowType
    description: str
    path: Path
    version: str = VERSION
    owner: str = OWNER

    def arn(self, region: str, partition: str = "aws") -> str:
        """The build-version ARN (build 1) of this workflow in a region."""
        kind = self.type.value.lower()
        return f"arn:{partition}:imagebuilder:{region}:{ACCOUNT}:workflow/{kind}/{self.name}/{self.version}/1"

    def text(self) -> str:
        return self.path.read_text(encoding="utf-8")

    def document(self) -> WorkflowDocument:
        return _parse(self.name)


def _managed(name: str, wtype: WorkflowType, description: str) -> ManagedWorkflow:
    return ManagedWorkflow(name, wtype, description, HERE / f"{name}.yaml")


MANAGED_WORKFLOWS: tuple[ManagedWorkflow, ...] = (
    _managed("build-image", WorkflowType.BUILD, "Default build workflow for images"),
    _managed("build-container", WorkflowType.BUILD, "Default build workflow for container images"),
    _managed(
        "express-build-image",
        WorkflowType.BUILD,
        "Faster image build: no instance status checks, no metadata collection",
    ),
    _managed(
        "express-build-container",
        WorkflowType.BUILD,
        "Faster container image build: no instance status checks",
    ),
    _managed("test-image", WorkflowType.TEST, "Default test workflow for images"),
    _managed("test-container", WorkflowType.TEST, "Default test workflow for container images"),
    _managed(
        "express-test-image",
        WorkflowType.TEST,
        "Faster image test: no instance status checks, no scan findings collection",
    ),
    _managed("distribute-image", WorkflowType.DISTRIBUTION, "Default distribution workflow for images"),
    _managed(
        "distribute-container",
        WorkflowType.DISTRIBUTION,
        "Default distribution workflow for container images",
    ),
)

BY_NAME: dict[str, ManagedWorkflow] = {w.name: w for w in MANAGED_WORKFLOWS}

#: What a build runs when it attaches no workflows, by image kind ("AMI" for machine images,
#: "DOCKER" for container images) and stage.
DEFAULTS: dict[str, dict[WorkflowType, str]] = {
    "AMI": {
        WorkflowType.BUILD: "build-image",
        WorkflowType.TEST: "test-image",
        WorkflowType.DISTRIBUTION: "distribute-image",
    },
    "DOCKER": {
        WorkflowType.BUILD: "build-container",
        WorkflowType.TEST: "test-container",
        WorkflowType.DISTRIBUTION: "distribute-container",
    },
}


def managed_workflow(name: str) -> ManagedWorkflow:
    """Look a managed workflow up by name; KeyError if there is none."""
    return BY_NAME[name]


@cache
def _parse(name: str) -> WorkflowDocument:
    workflow = BY_NAME[name]
    return parse_workflow(workflow.text(), workflow.type)


__all__ = ["DEFAULTS", "MANAGED_WORKFLOWS", "OWNER", "VERSION", "ManagedWorkflow", "managed_workflow"]
