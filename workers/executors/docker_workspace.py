"""Docker "instances": build workspaces on this host, each a folder with a state file.

A workspace is what LaunchInstance makes for the docker executor: ``<state_dir>/instances/<id>/``
with ``state.json`` listing the containers and images the instance made, so a restarted worker
still knows what to remove. Everything the executor creates in the engine also carries the
instance's labels, so cleanup finds it even when the folder is gone.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

INSTANCE_LABEL = "imagebuilder.instance"
IMAGE_ARN_LABEL = "imagebuilder.image-arn"
PURPOSE_LABEL = "imagebuilder.purpose"


def new_instance_id() -> str:
    return f"i-{secrets.token_hex(8)}"


def instance_labels(instance_id: str, image_arn: str, purpose: str) -> dict[str, str]:
    return {INSTANCE_LABEL: instance_id, IMAGE_ARN_LABEL: image_arn, PURPOSE_LABEL: purpose}


@dataclass
class InstanceState:
    instance_id: str
    purpose: str  # "build" or "test"
    image_arn: str
    created: float = field(default_factory=time.time)
    #: The image a test instance tests (a docker image id).
    test_image: str = ""
    #: The image ExecuteComponents produced on a build instance.
    artifact_image: str = ""
    #: Set once the artifact was pushed: TerminateInstance then keeps it.
    pushed: list[str] = field(default_factory=list)
    containers: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InstanceState:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


class Workspaces:
    """The instance folders under ``<state_dir>/instances``."""

    def __init__(self, state_dir: Path) -> None:
        self.root = state_dir / "instances"

    def folder(self, instance_id: str) -> Path:
        if not instance_id.startswith("i-") or "/" in instance_id or instance_id in ("i-.", "i-.."):
            raise ValueError(f"not an instance id: {instance_id!r}")
        return self.root / instance_id

    def create(self, purpose: str, image_arn: str) -> InstanceState:
        instance_id = new_instance_id()
        state = InstanceState(
            instance_id=instance_id,
            purpose=purpose,
            image_arn=image_arn,
            labels=instance_labels(instance_id, image_arn, purpose),
        )
        self.folder(instance_id).mkdir(parents=True)
        self.save(state)
        return state

    def load(self, instance_id: str) -> InstanceState | None:
        try:
            data = json.loads((self.folder(instance_id) / "state.json").read_text())
        except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
            return None
        return InstanceState.from_json(data)

    def save(self, state: InstanceState) -> None:
        folder = self.folder(state.instance_id)
        folder.mkdir(parents=True, exist_ok=True)
        # Write then rename: a crash mid-write must not lose what we know about the instance.
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".state-")
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(state), f, indent=2)
        os.replace(tmp, folder / "state.json")

    def remove(self, instance_id: str) -> bool:
        folder = self.folder(instance_id)
        existed = folder.exists()
        shutil.rmtree(folder, ignore_errors=True)
        return existed

    def ids(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and p.name.startswith("i-"))
