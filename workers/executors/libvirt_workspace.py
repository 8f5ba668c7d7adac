"""libvirt instance workspaces: ``<root>/<instance id>/`` holding the overlay, the seed ISO, the
ephemeral SSH key and ``state.json``.

The root must be traversable by the QEMU user (libvirt-qemu), which opens the overlay and the
seed: folders are 0755, the overlay and the seed are chowned to that user, the private key stays
root's (0600). state.json is written before the domain is started, so a worker that crashed
mid-launch leaves enough behind for its successor to remove everything.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_ROOT = Path(os.environ.get("IMAGEBUILDER_LIBVIRT_INSTANCES", "/var/lib/imagebuilder/instances"))
QEMU_USER = "libvirt-qemu"


@dataclass
class InstanceState:
    instance_id: str
    purpose: str  # "build" or "test"
    image_arn: str
    domain: str
    parent: str
    overlay: str
    seed: str
    key_path: str
    ssh_port: int
    console_log: str
    created: float = field(default_factory=time.time)
    #: Set once SanitizeInstance ran: the guest has no host keys or login key any more.
    sanitized: bool = False
    #: The blob reference CreateImage captured (kept when the instance is removed).
    image_ref: str = ""
    #: A known_hosts file with the host key the seed gave the guest, when its image is known to
    #: install that key (then any other key is refused); empty: the first key seen is pinned.
    known_hosts: str = ""
    #: The BootFiles (as a dict) the instance was booted with directly; empty: its disk's own loader.
    direct_boot: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InstanceState:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


class Workspaces:
    def __init__(self, root: Path = DEFAULT_ROOT) -> None:
        self.root = root

    def folder(self, instance_id: str) -> Path:
        if not instance_id.startswith("i-") or "/" in instance_id or instance_id in ("i-.", "i-.."):
            raise ValueError(f"not an instance id: {instance_id!r}")
        return self.root / instance_id

    def make_folder(self, instance_id: str) -> Path:
        folder = self.folder(instance_id)
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        folder.mkdir(mode=0o755)
        folder.chmod(0o755)  # whatever the umask
        return folder

    def load(self, instance_id: str) -> InstanceState | None:
        try:
            data = json.loads((self.folder(instance_id) / "state.json").read_text())
        except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError, ValueError):
            return None
        return InstanceState.from_json(data)

    def save(self, state: InstanceState) -> None:
        folder = self.folder(state.instance_id)
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


def connect_hint(key_path: str, ssh_port: int, domain: str) -> str:
    """How a person reaches a kept instance from its worker host."""
    return (
        f"ssh -i {key_path} -p {ssh_port} -o StrictHostKeyChecking=no root@127.0.0.1 "
        f"(or: virsh -c qemu:///system console {domain})"
    )


def give_to_qemu(*paths: Path) -> None:
    """The QEMU process (libvirt-qemu) opens these; libvirt is told not to relabel anything."""
    try:
        user = pwd.getpwnam(QEMU_USER)
    except KeyError:
        return  # a libvirt that runs QEMU as root (or another user) configured by hand
    for path in paths:
        os.chown(path, user.pw_uid, user.pw_gid)


def readable_by_others(path: Path) -> bool:
    """Whether a non-owner can read `path` (r on the file, x on every folder above it): the QEMU
    user must read a backing parent it does not own."""
    path = path.resolve()
    if not path.is_file() or not path.stat().st_mode & 0o004:
        return False
    return all(parent.stat().st_mode & 0o001 for parent in path.parents)
