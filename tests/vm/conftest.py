"""A build stack for machine images: the Temporal dev server, the API server and a worker with
the control role and the libvirt executor, as separate processes, as `imagebuilder up` runs them.

The data directory sits under /var/lib/imagebuilder (not the pytest tmp folder, which is 0700):
the QEMU user must reach the captured disks there to boot test instances from them.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import Server, start_server, stop_server
from tests.builds.conftest import Temporal, temporal  # noqa: F401 - the session's Temporal dev server
from workers.vm_images import managed_parent

ROOT = Path("/var/lib/imagebuilder/test-stacks")


def ib_domains() -> list[str]:
    out = subprocess.run(
        ["virsh", "-c", "qemu:///system", "list", "--all", "--name"], check=True, capture_output=True, text=True
    ).stdout
    return [name for name in out.split() if name.startswith("ib-")]


def qemu_processes() -> list[str]:
    out = subprocess.run(["pgrep", "-a", "qemu-system"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "ib-i-" in line]


@dataclass
class VmStack:
    api: Server
    worker: subprocess.Popen[bytes]
    data_dir: Path
    env: dict[str, str]

    def client(self) -> Any:
        return self.api.client()

    @property
    def instances(self) -> Path:
        return self.data_dir / "instances"

    def start_worker(self) -> None:
        log = (self.data_dir / "worker.log").open("ab")
        self.worker = subprocess.Popen(
            [sys.executable, "-m", "engine.cli", "worker", "--control", "--executors", "libvirt"],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.env}, start_new_session=True,
        )  # fmt: skip

    def kill_worker(self, sig: int = signal.SIGKILL) -> None:
        os.killpg(self.worker.pid, sig)
        self.worker.wait(30)

    def wait_image(self, arn: str, states: set[str], timeout: float = 1500) -> dict[str, Any]:
        ib = self.client()
        deadline = time.monotonic() + timeout
        while True:
            image = ib.get_image(imageBuildVersionArn=arn)["image"]
            if image["state"]["status"] in states:
                return dict(image)
            if time.monotonic() > deadline:
                raise AssertionError(f"{arn} still {image['state']} after {timeout} s; see {self.data_dir}")
            time.sleep(2)

    def leftovers(self) -> list[str]:
        """Domains, QEMU processes or instance workspaces this stack's builds left."""
        found = ib_domains() + qemu_processes()
        if self.instances.is_dir():
            found += [p.name for p in self.instances.iterdir()]
        return found


@pytest.fixture(scope="module")
def vm_stack(temporal: Temporal) -> Iterator[VmStack]:  # noqa: F811
    # Made (or taken from the cache) before any build, so no test's timeout pays for a cold bootstrap.
    managed_parent("debian-12")
    data = ROOT / uuid.uuid4().hex[:10]
    data.mkdir(parents=True)
    for folder in (data, *data.parents):
        if folder == Path("/"):
            break
        folder.chmod(folder.stat().st_mode | 0o755)
    env = {
        "IMAGEBUILDER_DATA_DIR": str(data),
        "IMAGEBUILDER_TEMPORAL_ADDRESS": temporal.address,
        "IMAGEBUILDER_LIBVIRT_INSTANCES": str(data / "instances"),
    }
    api = start_server(data, env=env)
    stack = VmStack(api, None, data, env)  # type: ignore[arg-type]
    stack.start_worker()
    yield stack
    if stack.worker.poll() is None:
        stack.kill_worker(signal.SIGTERM)
    stop_server(api)
    shutil.rmtree(data, ignore_errors=True)
