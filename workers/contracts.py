"""The data that crosses Temporal between the build workflow and the executor workers.

Every activity takes one frozen dataclass and returns one, so fields can be added without
breaking running histories. Nothing large travels here: component documents, logs and disks
are files in the blob store, named by reference.

No ``from __future__ import annotations``: Temporal's converter resolves a dataclass's type
hints on every decode, and string annotations make each step's decode a compile per field.
"""

from dataclasses import dataclass, field
from typing import Any

#: Task queue of the control worker: the build workflows and the activities that touch the database.
CONTROL_QUEUE = "imagebuilder-control"


def pool_queue(executor: str) -> str:
    """Any worker that has this executor takes tasks from here (launching new instances)."""
    return f"imagebuilder-{executor}"


def host_queue(executor: str, host_id: str) -> str:
    """The one worker holding an instance; every step on that instance goes here."""
    return f"imagebuilder-{executor}@{host_id}"


@dataclass(frozen=True)
class ComponentRef:
    """A resolved component of a recipe, in recipe order."""

    arn: str
    name: str
    #: Blob-store reference of the component document ("documents/<sha256>.yaml").
    document: str
    #: Parameter values given in the recipe (name -> values), each a list of strings on the wire.
    parameters: dict[str, list[str]] = field(default_factory=dict)
    phases: tuple[str, ...] = ()


@dataclass(frozen=True)
class BuildContext:
    """What every step of one build knows: a snapshot taken when the build started."""

    image_arn: str
    image_name: str
    version: str
    build_number: int
    image_type: str  # "DOCKER" or "AMI"
    platform: str
    executor: str  # "docker", "libvirt", ...
    #: The recipe (ContainerRecipe or ImageRecipe shape) as it was at CreateImage time.
    recipe: dict[str, Any]
    infrastructure: dict[str, Any]
    distribution: dict[str, Any] | None
    components: tuple[ComponentRef, ...]
    #: Where the parent image comes from: a local image reference or a blob-store disk.
    parent_image: str
    #: Blob-store folder for this build's logs ("logs/<image>/<version>/<build>").
    log_prefix: str
    #: The registry images are pushed to (host:port), from the worker's or the server's settings.
    registry: str = ""


@dataclass(frozen=True)
class Artifact:
    """The image a build stage produced, and where it lives."""

    image_ref: str  # a docker image id, or a blob-store disk path
    #: The task queue that can reach it: a host queue for host-local images, else a pool queue.
    queue: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StepRequest:
    context: BuildContext
    workflow_type: str  # BUILD, TEST or DISTRIBUTION
    workflow_execution_id: str
    step_execution_id: str
    step_name: str
    action: str
    #: The step's inputs with every `.$` reference resolved.
    inputs: dict[str, Any]
    #: The image built so far (set in the test and distribution stages).
    artifact: Artifact | None = None
    timeout_seconds: int = 0


@dataclass(frozen=True)
class StepResult:
    outputs: dict[str, Any] = field(default_factory=dict)
    #: Set by steps that start an instance: the host queue that now holds it.
    instance_queue: str | None = None
    #: Set by the step that produced the stage's image.
    artifact: Artifact | None = None
    #: Set by distribution steps: what the image record lists as outputResources.
    output_resources: dict[str, Any] | None = None
    #: Blob-store reference of this step's log folder.
    log_ref: str = ""
    message: str = ""


@dataclass(frozen=True)
class CleanupRequest:
    """Terminate what a build left, whatever state it is in (idempotent)."""

    context: BuildContext
    instance_ids: tuple[str, ...]
    remove_artifacts: bool = False
    artifact: Artifact | None = None
    #: A failed build whose infrastructure configuration says terminateInstanceOnFailure: false
    #: keeps its instances for debugging (`imagebuilder instances remove` ends them).
    keep_instances: bool = False


@dataclass(frozen=True)
class CleanupResult:
    removed: tuple[str, ...] = ()
