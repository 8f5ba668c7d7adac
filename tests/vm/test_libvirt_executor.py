"""The libvirt executor driven directly (no Temporal): a real build and test of a machine image.

Build stage: launch from the cached Debian 12 parent, run a component (CreateFile + ExecuteBash,
with a parameter), collect the package inventory, sanitize, capture; test stage: launch from the
captured disk and run a test component that finds the built file. Afterwards nothing may remain
but the captured disk and its manifest: no ib- domain, no workspace, no overlay, seed or key.
Two TCG boots make this the slow part (about 75 s each on an idle host); timings are printed (-s).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from workers.blobstore import BlobStore
from workers.contracts import Artifact, BuildContext, CleanupRequest, ComponentRef, StepRequest, StepResult, pool_queue
from workers.errors import StepFailed
from workers.executors.base import ExecutorSettings, StepRuntime
from workers.executors.libvirt import LibvirtExecutor
from workers.vm_images import build_debian_qcow2, cached_image_path

pytestmark = [pytest.mark.vm, pytest.mark.timeout(900)]

REGION = "us-west-2"
#: Under /var/lib: the QEMU user (libvirt-qemu) must traverse to the captured disk the test stage boots.
TEST_ROOT = Path("/var/lib/imagebuilder/test-libvirt")

BUILD_COMPONENT = """name: make-marker
schemaVersion: 1.0
parameters:
  - owner:
      type: string
phases:
  - name: build
    steps:
      - name: WriteMarker
        action: CreateFile
        inputs:
          - path: /opt/built/marker.txt
            content: built by {{ owner }}
      - name: Stamp
        action: ExecuteBash
        inputs:
          commands:
            - uname -r > /opt/built/kernel
  - name: validate
    steps:
      - name: CheckMarker
        action: ExecuteBash
        inputs:
          commands:
            - grep -qx "built by {{ owner }}" /opt/built/marker.txt
"""

TEST_COMPONENT = """name: check-marker
schemaVersion: 1.0
phases:
  - name: test
    steps:
      - name: MarkerIsThere
        action: ExecuteBash
        inputs:
          commands:
            - grep -qx "built by alice,bob" /opt/built/marker.txt
            - test -s /opt/built/kernel
            # Generalized capture: this boot made its own machine-id and host keys.
            - grep -Eqx '[0-9a-f]{32}' /etc/machine-id
            - ls /etc/ssh/ssh_host_ed25519_key
"""

FAILING_TEST = """name: fails
schemaVersion: 1.0
phases:
  - name: test
    steps:
      - name: Nope
        action: ExecuteBash
        inputs:
          commands: [test -e /no/such/file]
"""


@dataclass
class Harness:
    executor: LibvirtExecutor
    blobs: BlobStore
    root: Path
    arn: str
    timings: dict[str, float] = field(default_factory=dict)

    def component(self, text: str, name: str, **parameters: list[str]) -> ComponentRef:
        return ComponentRef(
            arn=f"arn:aws:imagebuilder:{REGION}:123456789012:component/{name}/1.0.0/1",
            name=name,
            document=self.blobs.put_document(text),
            parameters=dict(parameters),
        )

    def context(self, parent: str, *components: ComponentRef) -> BuildContext:
        return BuildContext(
            image_arn=self.arn,
            image_name="libvirt-executor-test",
            version="1.0.0",
            build_number=1,
            image_type="AMI",
            platform="Linux",
            executor="libvirt",
            recipe={"name": "libvirt-executor-test", "parentImage": parent},
            infrastructure={"instanceTypes": ["t3.small"]},
            distribution=None,
            components=components,
            parent_image=parent,
            log_prefix="logs/test",
        )

    def step(
        self, ctx: BuildContext, stage: str, action: str, inputs: dict[str, Any] | None = None, **kw: Any
    ) -> StepResult:
        request = StepRequest(
            context=ctx,
            workflow_type=stage,
            workflow_execution_id="wf-test",
            step_execution_id=f"step-{uuid.uuid4()}",
            step_name=action,
            action=action,
            inputs=inputs or {},
            artifact=kw.get("artifact"),
        )
        runtime = StepRuntime(
            cancel=threading.Event(), log_dir=self.root / "logs" / f"{stage}-{action}", heartbeat=lambda _: None
        )
        started = time.monotonic()
        try:
            return self.executor.run(action, request, runtime)
        finally:
            self.timings[f"{stage} {action}"] = round(time.monotonic() - started, 1)


def ib_domains() -> list[str]:
    out = subprocess.run(
        ["virsh", "-c", "qemu:///system", "list", "--all", "--name"], check=True, capture_output=True, text=True
    ).stdout
    return [name for name in out.split() if name.startswith("ib-")]


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@pytest.fixture(scope="module")
def parent() -> str:
    # The cache path itself: world-readable under /var/cache, so the QEMU user can open it as a backing file.
    manifest = build_debian_qcow2(cached_image_path())
    return manifest.path


@pytest.fixture
def harness() -> Iterator[Harness]:
    root = TEST_ROOT / uuid.uuid4().hex[:10]
    root.mkdir(parents=True)
    for folder in (root, *root.parents):
        if folder == Path("/"):
            break
        folder.chmod(folder.stat().st_mode | 0o755)
    blobs = BlobStore(root / "blobs")
    executor = LibvirtExecutor(
        ExecutorSettings(host_id="test-host", state_dir=root / "state", blobs=blobs),
        instances_root=root / "instances",
    )
    h = Harness(executor, blobs, root, f"arn:aws:imagebuilder:{REGION}:123456789012:image/lv-{root.name}/1.0.0/1")
    yield h
    # Whatever a failed test left behind (cleanup is idempotent).
    executor.cleanup(CleanupRequest(context=h.context(""), instance_ids=tuple(executor.live_instances())))
    print(f"\ntimings: {h.timings}")
    shutil.rmtree(root, ignore_errors=True)


def test_build_capture_and_test_a_machine_image(harness: Harness, parent: str) -> None:
    h = harness
    parent_sha = json.loads(Path(parent + ".json").read_text())["sha256"]
    build = h.component(BUILD_COMPONENT, "make-marker", owner=["alice", "bob"])
    ctx = h.context(parent, build)

    launched = h.step(ctx, "BUILD", "LaunchInstance")
    instance = launched.outputs["instanceId"]
    assert instance.startswith("i-")
    assert launched.instance_queue == "imagebuilder-libvirt@test-host"
    assert ib_domains() == [f"ib-{instance}"]
    state = json.loads((h.root / "instances" / instance / "state.json").read_text())
    assert state["domain"] == f"ib-{instance}" and state["ssh_port"] > 0
    workspace_files = [Path(state[k]) for k in ("overlay", "seed", "key_path")]
    assert all(p.is_file() for p in workspace_files)
    assert (h.root / "logs" / "BUILD-LaunchInstance" / "console.log").stat().st_size > 0

    h.step(ctx, "BUILD", "ExecuteComponents", {"instanceId": instance})
    metadata = h.step(ctx, "BUILD", "CollectImageMetadata", {"instanceId": instance})
    assert "Debian GNU/Linux 12" in metadata.outputs["osVersion"]
    packages = json.loads(h.blobs.read_text(metadata.outputs["packagesRef"]))["packages"]
    assert {"openssh-server", "cloud-init"} <= {p["packageName"] for p in packages}

    h.step(ctx, "BUILD", "SanitizeInstance", {"instanceId": instance})
    created = h.step(ctx, "BUILD", "CreateImage", {"instanceId": instance})
    ref = created.outputs["imageId"]
    assert ref == "images/libvirt-executor-test/1.0.0/1/disk.qcow2"
    assert created.artifact is not None
    assert created.artifact == Artifact(image_ref=ref, queue=pool_queue("libvirt"), details=created.artifact.details)
    h.step(ctx, "BUILD", "TerminateInstance", {"instanceId": instance})
    assert ib_domains() == []
    assert not (h.root / "instances" / instance).exists()
    assert not any(p.exists() for p in workspace_files)

    disk = h.blobs.path(ref)
    manifest = json.loads(h.blobs.read_text("images/libvirt-executor-test/1.0.0/1/manifest.json"))
    assert manifest["sha256"] == sha256(disk)
    assert manifest["virtualSize"] == 4 << 30
    assert manifest["parent"] == parent and manifest["componentArns"] == [build.arn]
    info = subprocess.run(["qemu-img", "info", "--output=json", str(disk)], check=True, capture_output=True, text=True)
    assert "backing-filename" not in info.stdout, "the captured disk must stand alone"

    # Test stage: an instance of the captured disk, a passing then a failing test component.
    test_ctx = h.context(parent, h.component(TEST_COMPONENT, "check-marker"))
    tested = h.step(test_ctx, "TEST", "LaunchInstance", artifact=created.artifact)
    test_instance = tested.outputs["instanceId"]
    h.step(test_ctx, "TEST", "ExecuteComponents", {"instanceId": test_instance})
    failing_ctx = h.context(parent, h.component(FAILING_TEST, "fails"))
    with pytest.raises(StepFailed, match="component fails failed at step Nope"):
        h.step(failing_ctx, "TEST", "ExecuteComponents", {"instanceId": test_instance})
    h.step(test_ctx, "TEST", "TerminateInstance", {"instanceId": test_instance})
    # Idempotent: a second terminate (a retried activity) finds nothing and succeeds.
    h.step(test_ctx, "TEST", "TerminateInstance", {"instanceId": test_instance})

    assert ib_domains() == []
    assert h.executor.live_instances() == []
    assert list((h.root / "instances").iterdir()) == []
    assert manifest["sha256"] == sha256(disk), "booting an overlay must not change the captured disk"
    assert sha256(Path(parent)) == parent_sha, "the parent image must never change"
