"""Machine-image build through the API vs Packer's QEMU builder, and guest boot to SSH, on this host.

    .venv/bin/python bench/vm_build.py                # both builds once, test stage off (default)
    .venv/bin/python bench/vm_build.py --with-tests   # our build with its test stage as well
    .venv/bin/python bench/vm_build.py boot --runs 3  # LaunchInstance only: domain start -> SSH

Both builds start from the same parent disk (the managed Debian 12 image, workers/vm_images.py),
run the same shell provisioning over SSH (PROVISION: offline, nothing installed), shut the guest
down and write a standalone qcow2, under the same accelerator (TCG here: workers/vm_accel.py):

(a) ours: CreateImage through the API on a stack of our own (Temporal dev server, API server, a
    worker with the control role and the libvirt executor: engine/up.py), the recipe's parentImage
    arn:aws:imagebuilder:us-east-1:aws:image/debian-12/x.x.x, one component running PROVISION,
    t3.small (2 vCPUs, 2 GiB), no package inventory (Packer takes none), the test stage off unless
    --with-tests. Timed from CreateImage to the first GetImage that shows AVAILABLE.
(b) Packer (Debian's `packer` package; installed with apt when missing): the qemu builder with
    disk_image on the same parent, 2 vCPUs, 2 GiB, virtio disk and NIC, a NoCloud seed made by
    workers/vm_seed.py with a fresh key (the way our builds get theirs), a shell provisioner with
    PROVISION, `systemctl poweroff`, qcow2 output compacted by Packer. It boots the disk as Packer
    does, through the firmware and the disk's loader; `--packer-fast-boot` gives it our direct
    kernel boot too (the same kernel, initramfs and command line), to show what is left apart
    from the boot.

Where our time goes: every workflow step's start and end (ListWorkflowStepExecutions), and the
build instance's console log, each line stamped with the time it reached the log, so the boot's
phases (firmware/kernel, initramfs, systemd, first-boot unit, sshd) show. `boot` launches
instances with the libvirt executor itself (no Temporal), prints domain start -> sshd listening
(the guest's console line) -> root login for each, and the console phases. One guest at a time:
the host has 2 CPUs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import settings
from engine.up import Stack
from tests.api.conftest import Server, free_port, provision_keys
from workers.vm_accel import detect
from workers.vm_images import FAST_APPEND, SSH_READY_MARKER, Manifest, managed_parent
from workers.vm_seed import cloud_config, write_ed25519_key, write_nocloud_seed

PARENT_ARN = "arn:aws:imagebuilder:us-east-1:aws:image/debian-12/x.x.x"
#: Under /var/lib (not /tmp, 0700 in places): the QEMU user must reach instance files and captured disks.
ROOT = Path("/var/lib/imagebuilder/bench-vm")
TARGET_RATIO = 0.5
TARGET_BOOT_S = 20.0
#: The provisioning both builds run, as root, offline.
PROVISION = [
    "mkdir -p /opt/bench",
    "echo built-by-bench > /opt/bench/marker",
    "uname -r > /opt/bench/kernel",
    "dpkg-query -W | wc -l > /opt/bench/packages",
    "cp /etc/os-release /opt/bench/",
    "sync",
]
#: Console lines that mark the phases of a boot (the first line containing each).
PHASES = (
    ("kernel", "Linux version"),
    ("initramfs", "Run /init as init process"),
    ("systemd", "systemd["),
    ("first-boot unit", "imagebuilder-nocloud:"),
    ("sshd listening", SSH_READY_MARKER),
)


def component_document() -> str:
    commands = "\n".join(f"            - {json.dumps(c)}" for c in PROVISION)
    return f"""name: bench-provision
schemaVersion: 1.0
phases:
  - name: build
    steps:
      - name: Provision
        action: ExecuteBash
        inputs:
          commands:
{commands}
"""


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _traversable(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for f in (folder, *folder.parents):
        if f == Path("/"):
            break
        f.chmod(f.stat().st_mode | 0o755)


class ConsoleStamps:
    """Follows a console log file, stamping each line with the monotonic time it appeared."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True)

    def __enter__(self) -> ConsoleStamps:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)

    def _follow(self) -> None:
        pos, buf = 0, b""
        while not self._stop.is_set():
            with contextlib.suppress(OSError), open(self.path, "rb") as f:
                f.seek(pos)
                data = f.read()
                pos += len(data)
                buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                self.lines.append((time.monotonic(), line.decode(errors="replace").strip()))
            time.sleep(0.05)

    def phases(self, t0: float) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, needle in PHASES:
            hit = next((t for t, line in self.lines if needle in line), None)
            if hit is not None:
                out[name] = hit - t0
        return out


# -- boot: LaunchInstance alone -------------------------------------------------------------------


@dataclass
class Boot:
    banner: float
    login: float
    phases: dict[str, float]


#: What `boot --analyze` asks each guest after login: where its boot went.
ANALYZE = (
    "cat /proc/cmdline",
    "systemd-analyze",
    "systemd-analyze critical-chain ssh.service",
    "systemd-analyze blame | head -15",
)


def boot_runs(runs: int, parent: Path, analyze: bool = False) -> list[Boot]:
    from workers.blobstore import BlobStore
    from workers.contracts import BuildContext, StepRequest
    from workers.executors.base import ExecutorSettings, StepRuntime
    from workers.executors.libvirt import LibvirtExecutor

    root = ROOT / f"boot-{uuid.uuid4().hex[:8]}"
    _traversable(root)
    executor = LibvirtExecutor(
        ExecutorSettings(host_id="bench", state_dir=root / "state", blobs=BlobStore(root / "blobs")),
        instances_root=root / "instances",
    )
    ctx = BuildContext(
        image_arn=f"arn:aws:imagebuilder:us-east-1:123456789012:image/bench-{root.name}/1.0.0/1",
        image_name="bench", version="1.0.0", build_number=1, image_type="AMI", platform="Linux",
        executor="libvirt", recipe={"name": "bench", "parentImage": str(parent)},
        infrastructure={"instanceTypes": ["t3.small"]}, distribution=None, components=(),
        parent_image=str(parent), log_prefix="logs/bench",
    )  # fmt: skip
    out: list[Boot] = []
    try:
        for i in range(runs):
            log_dir = root / "logs" / f"boot-{i}"
            log_dir.mkdir(parents=True)
            request = StepRequest(
                context=ctx, workflow_type="BUILD", workflow_execution_id="wf-bench", step_execution_id=f"s-{i}",
                step_name="LaunchInstance", action="LaunchInstance", inputs={},
            )  # fmt: skip
            runtime = StepRuntime(cancel=threading.Event(), log_dir=log_dir, heartbeat=lambda _: None)
            with ConsoleStamps(log_dir / "console.log") as console:
                t0 = time.monotonic()
                # LaunchInstance's own time includes the overlay and seed (milliseconds) before the domain starts.
                result = executor.run("LaunchInstance", request, runtime)
                t1 = time.monotonic()
            if analyze:
                state = executor.workspaces.load(result.outputs["instanceId"])
                assert state is not None
                for command in ANALYZE:
                    print(f"$ {command}\n{executor._guest(state, command, 'analyze')}", flush=True)
            executor.remove_instance(result.outputs["instanceId"])
            # sshd listening: the guest's own console line (probing the port from here would
            # load the guest and, before its network is up, hang in slirp).
            phases = console.phases(t0)
            b = Boot(phases.get("sshd listening", t1 - t0), t1 - t0, phases)
            out.append(b)
            print(
                f"boot {i + 1}: sshd listening {b.banner:5.1f} s, login {b.login:5.1f} s; {_phase_text(b.phases)}",
                flush=True,
            )
    finally:
        for instance in executor.live_instances():
            executor.remove_instance(instance)
        shutil.rmtree(root, ignore_errors=True)
    return out


def _phase_text(phases: dict[str, float]) -> str:
    return ", ".join(f"{k} @{v:.1f}" for k, v in phases.items()) or "no console lines"


# -- (a) ours, through the API --------------------------------------------------------------------


@dataclass
class ApiRun:
    total: float
    steps: list[tuple[str, str, float, float]]
    t0: float
    messages: dict[str, str] = field(default_factory=dict)
    console: dict[str, float] = field(default_factory=dict)


def api_run(ib: Any, data_dir: Path, with_tests: bool) -> ApiRun:
    suffix = uuid.uuid4().hex[:6]
    component = ib.create_component(
        name=f"bench-{suffix}", semanticVersion="1.0.0", platform="Linux", data=component_document(),
        clientToken=str(uuid.uuid4()),
    )["componentBuildVersionArn"]  # fmt: skip
    recipe = ib.create_image_recipe(
        name=f"bench-{suffix}", semanticVersion="1.0.0", parentImage=PARENT_ARN,
        components=[{"componentArn": component}], clientToken=str(uuid.uuid4()),
    )["imageRecipeArn"]  # fmt: skip
    infra = ib.create_infrastructure_configuration(
        name=f"bench-{suffix}", instanceProfileName="default", instanceTypes=["t3.small"],
        clientToken=str(uuid.uuid4()),
    )["infrastructureConfigurationArn"]  # fmt: skip
    t0 = time.time()
    arn = ib.create_image(
        imageRecipeArn=recipe, infrastructureConfigurationArn=infra, enhancedImageMetadataEnabled=False,
        imageTestsConfiguration={"imageTestsEnabled": with_tests}, clientToken=str(uuid.uuid4()),
    )["imageBuildVersionArn"]  # fmt: skip
    while True:
        state = ib.get_image(imageBuildVersionArn=arn)["image"]["state"]
        if state["status"] == "AVAILABLE":
            break
        if state["status"] in ("FAILED", "CANCELLED"):
            raise RuntimeError(f"the API build ended {state['status']}: {state.get('reason')} (logs: {data_dir})")
        time.sleep(0.2)
    total = time.time() - t0
    steps, messages = [], {}
    for ex in ib.list_workflow_executions(imageBuildVersionArn=arn)["workflowExecutions"]:
        listed = ib.list_workflow_step_executions(workflowExecutionId=ex["workflowExecutionId"])["steps"]
        steps += [(ex["type"], s["name"], _ts(s["startTime"]), _ts(s["endTime"])) for s in listed if s.get("endTime")]
        messages.update({f"{ex['type']} {s['name']}": str(s.get("message") or "") for s in listed})
    steps.sort(key=lambda s: s[2])
    return ApiRun(total, steps, t0, messages)


def report_api(run: ApiRun) -> None:
    print(f"\n(a) ours through the API: {run.total:.1f} s, CreateImage -> AVAILABLE")
    print(f"    {'stage':<13}{'step':<28}{'start s':>8}{'took s':>8}")
    for stage, name, start, end in run.steps:
        print(f"    {stage:<13}{name:<28}{start - run.t0:>8.1f}{end - start:>8.1f}")
    for key, message in run.messages.items():
        if "Launch" in key and message:
            # The executor's own measure: domain start to a root login over SSH.
            print(f"    {key}: {message}")
    busy = sum(end - start for *_, start, end in run.steps)
    print(f"    sum of steps {busy:.1f} s; outside steps (Temporal, records, polling) {run.total - busy:.1f} s")


# -- (b) Packer -----------------------------------------------------------------------------------


def ensure_packer() -> str:
    found = shutil.which("packer")
    if found:
        return found
    print("installing Debian's packer package (apt-get install packer) ...", flush=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "packer"],
        check=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    return shutil.which("packer") or "packer"


@dataclass
class PackerRun:
    total: float
    ssh_ready: float | None
    provisioned: float | None
    stopped: float | None
    console: dict[str, float]


def packer_run(parent: Path, manifest: Manifest, work: Path, fast_boot: bool) -> PackerRun:
    packer = ensure_packer()
    accel = detect()
    work.mkdir(parents=True)
    key = work / "id_ed25519"
    public = write_ed25519_key(key)
    seed = work / "seed.iso"
    write_nocloud_seed(
        seed, instance_id=f"i-{uuid.uuid4().hex[:17]}", hostname="packer", user_data=cloud_config([public])
    )
    out_dir, name, console = work / "output", "disk.qcow2", work / "console.log"
    qemuargs = [
        ["-cpu", "max" if accel.kind == "tcg" else "host"],
        ["-machine", f"q35,accel={accel.kind}"],
        ["-serial", f"file:{console}"],
        # A -drive here replaces Packer's own, so the disk it copied is named too.
        ["-drive", f"file={out_dir / name},if=virtio,format=qcow2,discard=unmap"],
        ["-drive", f"file={seed},if=virtio,format=raw,readonly=on"],
    ]
    if fast_boot:
        assert manifest.kernel and manifest.initrd
        qemuargs += [["-kernel", manifest.kernel], ["-initrd", manifest.initrd], ["-append", FAST_APPEND]]
    template = {
        "builders": [
            {
                "type": "qemu",
                "disk_image": True,
                "iso_url": str(parent),
                "iso_checksum": "none",
                "format": "qcow2",
                "accelerator": accel.kind,
                "headless": True,
                "cpus": 2,
                "memory": 2048,
                "disk_interface": "virtio",
                "net_device": "virtio-net",
                "output_directory": str(out_dir),
                "vm_name": name,
                "qemuargs": qemuargs,
                "communicator": "ssh",
                "ssh_username": "root",
                "ssh_private_key_file": str(key),
                "ssh_timeout": "20m",
                "shutdown_command": "systemctl poweroff",
                "shutdown_timeout": "10m",
            }
        ],
        "provisioners": [{"type": "shell", "inline": PROVISION}],
    }
    (work / "template.json").write_text(json.dumps(template, indent=2))
    marks: dict[str, float] = {}
    env = {**os.environ, "PACKER_LOG": "0", "CHECKPOINT_DISABLE": "1", "PACKER_CACHE_DIR": str(work / "cache")}
    with ConsoleStamps(console) as stamps:
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [packer, "build", "-machine-readable", str(work / "template.json")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=work,
        )  # fmt: skip
        assert proc.stdout is not None
        with open(work / "packer.log", "w") as log:
            for line in proc.stdout:
                log.write(f"{time.monotonic() - t0:8.2f} {line}")
                text = line.split(",", 4)[-1]
                if "Connected to SSH" in text:
                    marks.setdefault("ssh", time.monotonic() - t0)
                elif "Gracefully halting" in text:
                    marks.setdefault("provisioned", time.monotonic() - t0)
                elif "Converting hard drive" in text or "Compacting" in text:
                    marks.setdefault("stopped", time.monotonic() - t0)
        code = proc.wait()
        total = time.monotonic() - t0
    if code != 0 or not (out_dir / name).is_file():
        raise RuntimeError(f"packer build failed ({code}); see {work / 'packer.log'}")
    return PackerRun(total, marks.get("ssh"), marks.get("provisioned"), marks.get("stopped"), stamps.phases(t0))


def report_packer(run: PackerRun, fast_boot: bool) -> None:
    how = "our direct kernel boot" if fast_boot else "disk boot (firmware + extlinux)"
    print(f"\n(b) Packer qemu builder, {how}: {run.total:.1f} s")
    for label, value in (
        ("SSH connected", run.ssh_ready),
        ("provisioned", run.provisioned),
        ("powered off", run.stopped),
    ):
        if value is not None:
            print(f"    {label:<16} @{value:.1f} s")
    print(f"    console: {_phase_text(run.console)}")


# -- main -----------------------------------------------------------------------------------------


def build_main(args: argparse.Namespace) -> int:
    parent = managed_parent("debian-12")
    manifest = Manifest.from_json(Path(f"{parent}.json").read_text())
    data_dir = ROOT / f"api-{uuid.uuid4().hex[:8]}"
    _traversable(data_dir)
    os.environ["IMAGEBUILDER_LIBVIRT_INSTANCES"] = str(data_dir / "instances")
    port = free_port()
    config = settings.load(argparse.Namespace(data_dir=str(data_dir), port=str(port), log_level="info"))
    stack = Stack(config, ["libvirt"], free_port(), free_port())
    print(f"parent {parent} ({detect().kind}); data {data_dir}", flush=True)
    try:
        ours: ApiRun | None = None
        theirs: PackerRun | None = None
        if not args.skip_api:
            provision_keys(data_dir)
            stack.start()
            api_proc = next(p for name, p in stack.procs if name == "api")
            ib = Server(f"http://127.0.0.1:{port}", data_dir, api_proc, stack.logs / "api.log").client()
            ours = api_run(ib, data_dir, args.with_tests)
            stack.stop()
            report_api(ours)
            for log in sorted((data_dir / "store").rglob("console.log")) if (data_dir / "store").is_dir() else []:
                print(f"    console log: {log}")
        if not args.skip_packer:
            theirs = packer_run(parent, manifest, data_dir / "packer", args.packer_fast_boot)
            report_packer(theirs, args.packer_fast_boot)
        if ours and theirs:
            ratio = ours.total / theirs.total
            verdict = "OK" if ratio <= TARGET_RATIO else "ABOVE TARGET"
            print(f"\nours / Packer: {ratio:.2f}x (target <= {TARGET_RATIO}x: {verdict})")
        return 0
    except KeyboardInterrupt:
        print("interrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        stack.stop()
        if args.keep:
            print(f"kept {data_dir}", file=sys.stderr)
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


def boot_main(args: argparse.Namespace) -> int:
    parent = Path(args.disk) if args.disk else managed_parent("debian-12")
    print(f"parent {parent} ({detect().kind}: {detect().reason})", flush=True)
    boots = boot_runs(args.runs, parent, args.analyze)
    banners = [b.banner for b in boots]
    # SSH ready = a root login works (what LaunchInstance waits for), the stricter of the two.
    verdict = "OK" if statistics.median(b.login for b in boots) < TARGET_BOOT_S else "ABOVE TARGET"
    print(
        f"domain start -> sshd listening: median {statistics.median(banners):.1f} s, min {min(banners):.1f} s; "
        f"-> login median {statistics.median(b.login for b in boots):.1f} s (target < {TARGET_BOOT_S:.0f} s: {verdict})"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    boot = sub.add_parser("boot", help="LaunchInstance only: domain start -> sshd listening -> login")
    boot.add_argument("--runs", type=int, default=3)
    boot.add_argument("--disk", help="a disk other than the managed parent (e.g. a captured image)")
    boot.add_argument("--analyze", action="store_true", help="print systemd-analyze of each guest after login")
    parser.add_argument("--with-tests", action="store_true", help="our build runs its test stage too")
    parser.add_argument("--skip-packer", action="store_true")
    parser.add_argument("--skip-api", action="store_true")
    parser.add_argument("--packer-fast-boot", action="store_true", help="Packer boots our kernel directly too")
    parser.add_argument("--keep", action="store_true", help="keep the data directory (logs, disks)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    return boot_main(args) if args.command == "boot" else build_main(args)


if __name__ == "__main__":
    sys.exit(main())
