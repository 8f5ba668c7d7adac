"""The libvirt executor: machine images (image type AMI) built and tested in QEMU guests on this host.

An instance is a libvirt domain ``ib-<instance id>`` booted from a qcow2 overlay on an immutable
parent (the recipe's parent image in the build stage, the captured disk in the test stage), with
an ephemeral ed25519 login key and the guest's SSH host key (made here, then trusted alone) in
a NoCloud seed ISO, and SSH forwarded to a loopback port (libvirt_domain.py). A disk with boot
files on this host (a managed parent, or an image whose build left /boot alone) boots them
directly; any other through its own loader, with cloud-init's stages. Components run over SSH
through the component engine (SSHTarget). CreateImage generalizes the guest, powers it off and
flattens the overlay chain into the blob store, which every libvirt worker shares: the captured
disk goes to the libvirt pool queue, not this host's.

Each instance's files and state.json live in a workspace folder (libvirt_workspace.py); the
domain's name and metadata identify it too, so cleanup finds it after a worker crash.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import threading
import time
from dataclasses import asdict
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path
from typing import Any

from components.errors import ToeError
from components.runner import run_document
from components.targets.base import TargetError
from components.targets.ssh import SSHTarget
from workers.contracts import (
    Artifact,
    CleanupRequest,
    CleanupResult,
    StepRequest,
    StepResult,
    host_queue,
    pool_queue,
)
from workers.errors import InfrastructureError, NotSupported, StepFailed
from workers.executors.base import Executor, ExecutorSettings, StepRuntime, raise_if_component_failed
from workers.executors.docker_build import run_cancellable
from workers.executors.libvirt_distribution import (
    apply_image_configurations,
    distribute_image,
    image_folder_of,
    import_image,
    modify_image_attributes,
    remove_distribution,
)
from workers.executors.libvirt_domain import (
    connection,
    direct_boot_for,
    domain_name,
    domain_xml,
    instance_domains,
    is_running,
    lookup,
    remove_domain,
    size_for,
    wait_shutoff,
)
from workers.executors.libvirt_workspace import (
    InstanceState,
    Workspaces,
    connect_hint,
    give_to_qemu,
    readable_by_others,
)
from workers.vm_accel import detect
from workers.vm_images import managed_parent
from workers.vm_qemu import ConsoleMarker, create_overlay, free_loopback_port, wait_for_sshd
from workers.vm_seed import cloud_config, ed25519_keypair, write_ed25519_key, write_nocloud_seed

#: Printed by a build instance whose /boot nothing changed since it booted (no kernel installed,
#: no initramfs remade, no loader edited): its captured disk boots like its parent did.
BOOT_UNCHANGED = """k=$(uname -r)
if [ -d /run/imagebuilder ] && [ "$(readlink -f /vmlinuz)" = "/boot/vmlinuz-$k" ] \\
    && [ -z "$(find /boot -newer /run/imagebuilder -print -quit)" ]; then echo "boot-unchanged $k"; fi
"""
BUILD_PHASES = ("build", "validate")
TEST_PHASES = ("test",)
DEFAULT_TIMEOUT = 600
KEY_COMMENT = "imagebuilder-ephemeral"
#: What makes a captured disk a template rather than a copy of one machine: cloud-init runs again
#: (new instance id, new keys), sshd gets new host keys, systemd a new machine-id, and the build's
#: login key is gone. Each command tolerates what is already done, so running it twice is safe.
GENERALIZE = f"""set -u
# What `cloud-init clean --logs` removes, without starting its Python (about 5 s under TCG).
rm -rf /var/lib/cloud/* /var/log/cloud-init.log /var/log/cloud-init-output.log
rm -f /etc/ssh/ssh_host_*
if [ -f /etc/machine-id ]; then truncate -s 0 /etc/machine-id; fi
rm -f /var/lib/dbus/machine-id
for f in /root/.ssh/authorized_keys /home/*/.ssh/authorized_keys; do
  if [ -f "$f" ]; then sed -i '/{KEY_COMMENT}/d' "$f"; fi
done
sync
"""


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-._") or "image"


class LibvirtExecutor(Executor, kind="libvirt"):
    def __init__(self, settings: ExecutorSettings, instances_root: Path | None = None) -> None:
        super().__init__(settings)
        self.workspaces = Workspaces(instances_root) if instances_root else Workspaces()
        # One SSH connection per instance for the life of this worker: after SanitizeInstance
        # removed the host keys and the login key, only an open connection still reaches the guest.
        self._targets: dict[str, SSHTarget] = {}
        self._lock = threading.Lock()

    @property
    def queue(self) -> str:
        return host_queue("libvirt", self.settings.host_id)

    # -- instances ----------------------------------------------------------------------------

    def launch_instance(self, request: StepRequest, runtime: StepRuntime) -> StepResult:
        ctx = request.context
        if ctx.image_type != "AMI":
            raise NotSupported(f"the libvirt executor builds machine images, not {ctx.image_type}")
        purpose = "build" if request.workflow_type == "BUILD" else "test"
        runtime.log_dir.mkdir(parents=True, exist_ok=True)
        if purpose == "test":
            if request.artifact is None:
                raise StepFailed("there is no image to test: the build stage produced none")
            parent = self._disk_path(request.artifact.image_ref)
        else:
            parent = self._disk_path(ctx.parent_image, log=runtime.log_dir / "parent-image.log")
        if not parent.is_file():
            raise StepFailed(f"the {'image to test' if purpose == 'test' else 'parent image'} {parent} does not exist")
        timeout = request.timeout_seconds or DEFAULT_TIMEOUT
        size, instance_type = size_for(ctx.infrastructure)
        accel = detect()
        instance_id = f"i-{os.urandom(8).hex()}"
        folder = self.workspaces.make_folder(instance_id)
        disk = parent  # where its manifest is; the QEMU-reachable path may be a link in the workspace
        try:
            parent = _reachable_by_qemu(parent, folder)
        except StepFailed:
            self.workspaces.remove(instance_id)
            raise
        state = InstanceState(
            instance_id=instance_id,
            purpose=purpose,
            image_arn=ctx.image_arn,
            domain=domain_name(instance_id),
            parent=str(parent),
            overlay=str(folder / "disk.qcow2"),
            seed=str(folder / "seed.iso"),
            key_path=str(folder / "id_ed25519"),
            ssh_port=free_loopback_port(),
            console_log=str((runtime.log_dir / "console.log").absolute()),
        )
        self.workspaces.save(state)
        started = time.monotonic()
        try:
            create_overlay(parent, Path(state.overlay))
            boot = direct_boot_for(disk, folder)  # the fast path; None: the disk's own loader
            if boot is not None:
                give_to_qemu(boot.kernel, boot.initrd)
                state.direct_boot = asdict(boot.source)
            public_key = write_ed25519_key(Path(state.key_path), KEY_COMMENT)
            # Made here, natively, not by the guest under emulation; and so known before it answers.
            host_key = ed25519_keypair(instance_id)
            if boot is not None and boot.source.host_key_from_seed:
                known_hosts = folder / "known_hosts"
                known_hosts.write_text(f"[127.0.0.1]:{state.ssh_port} {host_key[1].rsplit(' ', 1)[0]}\n")
                state.known_hosts = str(known_hosts)
            self.workspaces.save(state)
            write_nocloud_seed(
                Path(state.seed),
                instance_id=instance_id,
                hostname=instance_id,
                user_data=_user_data(public_key, ctx.recipe),
                host_key=host_key,
            )
            give_to_qemu(Path(state.overlay), Path(state.seed))
            xml = domain_xml(
                instance_id=instance_id,
                image_arn=ctx.image_arn,
                purpose=purpose,
                accel=accel,
                size=size,
                overlay=Path(state.overlay),
                seed=Path(state.seed),
                console_log=Path(state.console_log),
                ssh_port=state.ssh_port,
                boot=boot,
            )
            with connection() as conn:
                conn.defineXML(xml).create()
            deadline = time.monotonic() + timeout
            self._wait_login(state, runtime, deadline)
            cloud_init = "" if boot is not None else self._wait_cloud_init(state, deadline)
        except BaseException as exc:
            # Nobody else knows this instance id yet: remove what was made before reporting.
            tail = _tail(Path(state.console_log))
            self.remove_instance(instance_id)
            if isinstance(exc, TimeoutError | TargetError | RuntimeError):
                raise InfrastructureError(f"instance {instance_id} did not answer SSH: {exc}\n{tail}") from exc
            raise
        boot_s = time.monotonic() - started
        return StepResult(
            # How to reach the guest, should the build fail and keep it (terminateInstanceOnFailure).
            outputs={"instanceId": instance_id, "connect": connect_hint(state.key_path, state.ssh_port, state.domain)},
            instance_queue=self.queue,
            message=(
                f"{purpose} instance {instance_id} ({size.vcpus} vCPU, {size.memory_mib} MiB"
                f"{', ' + instance_type if instance_type else ''}, {accel.kind}) answered SSH on "
                f"127.0.0.1:{state.ssh_port} after {boot_s:.1f} s, "
                + ("booted directly" if boot is not None else f"booted by its own loader, cloud-init {cloud_init}")
            ),
        )

    def terminate_instance(self, request: StepRequest, runtime: StepRuntime) -> StepResult:
        instance_id = str(request.inputs.get("instanceId") or "")
        if not instance_id:
            raise StepFailed("TerminateInstance needs an instanceId")
        removed = self.remove_instance(instance_id)
        return StepResult(
            outputs={"instanceId": instance_id, "status": "Success"},
            message=f"removed {', '.join(removed) or 'nothing (already gone)'} of {instance_id}",
        )

    # -- components ---------------------------------------------------------------------------

    def execute_components(self, request: StepRequest, runtime: StepRuntime) -> StepResult:
        state = self._state(request)
        phases = TEST_PHASES if state.purpose == "test" else BUILD_PHASES
        components = request.context.components
        if not components:
            return StepResult(outputs={"status": "Success"}, message="the recipe has no components")
        target = self._target(state)
        stage = "test" if state.purpose == "test" else "build"
        for index, ref in enumerate(components):
            runtime.check_cancelled()
            document = self.settings.blobs.fetch(ref.document)
            parameters = {name: ",".join(values) for name, values in ref.parameters.items()}
            logs = runtime.log_dir / "components" / f"{index + 1:02d}-{_slug(ref.name)}"

            def one(document: Path = document, parameters: dict[str, str] = parameters, logs: Path = logs) -> Any:
                return run_document([document], target=target, log_directory=logs, parameters=parameters, phases=phases)

            try:
                # A cancellation closes the connection, which ends the running command's channel.
                summary = run_cancellable(one, runtime, target.close, f"{stage}: {ref.name}")
            except ToeError as exc:
                raise StepFailed(f"component {ref.name}: {exc}") from None
            except TargetError as exc:
                raise InfrastructureError(f"component {ref.name}: the instance stopped answering: {exc}") from exc
            runtime.check_cancelled()
            raise_if_component_failed(ref.name, summary)
        return StepResult(
            outputs={"status": "Success"},
            message=f"ran the {'/'.join(phases)} phases of {len(components)} components on {state.instance_id}",
        )

    # -- capture ------------------------------------------------------------------------------

    def sanitize_instance(self, request: StepRequest, runtime: StepRuntime) -> StepResult:
        state = self._state(request)
        self._guest(state, GENERALIZE, "generalize")
        state.sanitized = True
        self.workspaces.save(state)
        return StepResult(
            outputs={"status": "Success"},
            message="cloud-init state, SSH host keys, machine-id and the build's login key removed",
        )

    def collect_image_metadata(self, request: StepRequest, runtime: StepRuntime) -> StepResult:
        state = self._state(request)
        listing = self._guest(
            state,
            "if command -v dpkg-query >/dev/null 2>&1; then dpkg-query -W -f '${Package}\\t${Version}\\n';"
            " else rpm -qa --qf '%{NAME}\\t%{VERSION}-%{RELEASE}\\n'; fi",
            "list packages",
        )
        os_release = self._guest(state, "cat /etc/os-release", "read /etc/os-release")
        fields = dict(
            (k, v.strip().strip('"')) for k, _, v in (line.partition("=") for line in os_release.splitlines()) if k
        )
        os_version = fields.get("PRETTY_NAME") or f"{fields.get('NAME', 'Linux')} {fields.get('VERSION_ID', '')}"
        packages = [
            {"packageName": name, "packageVersion": version}
            for name, _, version in (line.partition("\t") for line in listing.splitlines())
            if name
        ]
        ref = f"{self._image_folder(request)}/packages.json"
        _write_atomic(self.settings.blobs.path(ref), json.dumps({"osVersion": os_version, "packages": packages}))
        return StepResult(
            outputs={"osVersion": os_version, "packagesRef": ref},
            message=f"{len(packages)} packages on {os_version}",
        )

    def create_image(self, request: StepRequest, runtime: StepRuntime) -> StepResult:
        state = self._state(request)
        if state.purpose != "build":
            raise StepFailed("CreateImage runs on the build instance")
        ctx = request.context
        timeout = request.timeout_seconds or DEFAULT_TIMEOUT
        started = time.monotonic()
        with connection() as conn:
            running = is_running(conn, state.domain)
        said = ""
        if running:
            try:
                # Detached, then the channel returns: a poweroff that kills its own session can be lost.
                # Generalized already by SanitizeInstance: only what the guest wrote since needs syncing.
                script = ("sync\n" if state.sanitized else GENERALIZE) + "systemctl --no-block poweroff\n"
                if state.direct_boot:
                    script = BOOT_UNCHANGED + script
                said = self._guest(state, script, "generalize and power off")
            except InfrastructureError:
                if not state.sanitized:
                    raise
                # Sanitized already (so no login any more) and this worker lost its connection:
                # the ACPI power button does the same clean shutdown.
                with connection() as conn:
                    dom = lookup(conn, state.domain)
                    if dom is not None:
                        dom.shutdown()
        self._drop_target(state.instance_id)
        with connection() as conn:
            deadline = time.monotonic() + timeout
            while not wait_shutoff(conn, state.domain, 2):
                runtime.heartbeat({"stage": "poweroff"})
                runtime.check_cancelled()
                if time.monotonic() > deadline:
                    raise InfrastructureError(f"instance {state.instance_id} did not power off within {timeout} s")
        off_s = time.monotonic() - started
        folder = self._image_folder(request)
        ref = f"{folder}/disk.qcow2"
        disk = self.settings.blobs.path(ref)
        disk.parent.mkdir(parents=True, exist_ok=True)
        partial = disk.with_name(disk.name + ".part")
        t0 = time.monotonic()
        # Flattening makes the image stand alone: no backing file that another host may not have.
        done = subprocess.run(
            ["qemu-img", "convert", "-O", "qcow2", state.overlay, str(partial)], capture_output=True, text=True
        )
        if done.returncode != 0:
            partial.unlink(missing_ok=True)
            raise InfrastructureError(f"qemu-img convert failed: {done.stderr.strip()}")
        partial.chmod(0o644)
        os.replace(partial, disk)
        convert_s = time.monotonic() - t0
        info = json.loads(
            subprocess.run(
                ["qemu-img", "info", "--output=json", str(disk)], check=True, capture_output=True, text=True
            ).stdout
        )
        manifest = {
            "imageArn": ctx.image_arn,
            "path": ref,
            "format": "qcow2",
            "sha256": _sha256(disk),
            "virtualSize": int(info["virtual-size"]),
            "parent": ctx.parent_image,
            "componentArns": [c.arn for c in ctx.components],
            "buildInstance": state.instance_id,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        if state.direct_boot and f"boot-unchanged {state.direct_boot.get('kernel_version')}\n" in said:
            # The build left the kernel, initramfs and loader as they were: test instances (and
            # builds on this image) may boot the same files directly.
            manifest["directBoot"] = state.direct_boot
        _write_atomic(self.settings.blobs.path(f"{folder}/manifest.json"), json.dumps(manifest, indent=2) + "\n")
        self.settings.blobs.publish(folder)  # disk, manifest (and inventory): test and distribution may run elsewhere
        state.image_ref = ref
        self.workspaces.save(state)
        return StepResult(
            outputs={"imageId": ref},
            artifact=Artifact(
                image_ref=ref,
                queue=pool_queue("libvirt"),
                details={"manifest": f"{folder}/manifest.json", "sha256": manifest["sha256"]},
            ),
            message=f"captured {ref} (power off {off_s:.1f} s, flatten {convert_s:.1f} s)",
        )

    # -- cleanup ------------------------------------------------------------------------------

    def cleanup(self, request: CleanupRequest) -> CleanupResult:
        arn = request.context.image_arn
        removed: list[str] = []
        if not request.keep_instances:
            for instance_id in request.instance_ids:
                removed += self.remove_instance(instance_id)
            # Whatever this build left that the workflow never heard of (a launch whose result was lost).
            with connection() as conn:
                strays = [i for i, a in instance_domains(conn).items() if a == arn]
            for instance_id in self.workspaces.ids():
                state = self.workspaces.load(instance_id)
                if state is not None and state.image_arn == arn:
                    strays.append(instance_id)
            for instance_id in dict.fromkeys(strays):
                removed += self.remove_instance(instance_id)
        if request.remove_artifacts:
            # The image never became AVAILABLE: its disk, AMI copies and exports go too.
            folder = image_folder_of(request.context)
            removed += remove_distribution(self.settings, folder)
            path = self.settings.blobs.path(folder)
            self.settings.blobs.unpublish(folder)
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
                removed.append(str(path))
        return CleanupResult(removed=tuple(removed))

    # -- distribution -------------------------------------------------------------------------

    def distribute_image(self, request: StepRequest, runtime: StepRuntime) -> StepResult:
        return distribute_image(self.settings, request)

    def modify_image_attributes(self, request: StepRequest, runtime: StepRuntime) -> StepResult:
        return modify_image_attributes(self.settings, request)

    def apply_image_configurations(self, request: StepRequest, runtime: StepRuntime) -> StepResult:
        return apply_image_configurations(self.settings, request)

    def import_disk(self, request: StepRequest, runtime: StepRuntime) -> StepResult:
        return import_image(self.settings, request)

    def live_instances(self) -> list[str]:
        found = set(self.workspaces.ids())
        with connection() as conn:
            found.update(instance_domains(conn))
        return sorted(found)

    def remove_instance(self, instance_id: str) -> list[str]:
        """The domain (destroyed, undefined), then the workspace. Idempotent."""
        try:
            self.workspaces.folder(instance_id)
        except ValueError:
            return []
        self._drop_target(instance_id)
        removed: list[str] = []
        with connection() as conn:
            if remove_domain(conn, domain_name(instance_id)):
                removed.append(domain_name(instance_id))
        if self.workspaces.remove(instance_id):
            removed.append(str(self.workspaces.folder(instance_id)))
        return removed

    # -- helpers ------------------------------------------------------------------------------

    def _disk_path(self, ref: str, log: Path | None = None) -> Path:
        """An absolute path, a managed parent ("vm-parent:debian-12", made on first use), or a
        blob-store reference ("images/...", "amis/...")."""
        if not ref:
            raise StepFailed("no parent image was given")
        if os.path.isabs(ref):
            return Path(ref)
        if ref.startswith("vm-parent:"):
            try:
                return managed_parent(ref.split(":", 1)[1], log=log)
            except KeyError:
                raise StepFailed(f"there is no managed parent image {ref}") from None
            except (OSError, RuntimeError, subprocess.CalledProcessError) as exc:
                raise InfrastructureError(f"could not make the managed parent image {ref}: {exc}") from exc
        try:
            return self.settings.blobs.fetch(ref, missing_ok=True)  # missing: the caller says which image
        except ValueError as exc:
            raise StepFailed(str(exc)) from None

    def _image_folder(self, request: StepRequest) -> str:
        return image_folder_of(request.context)

    def _state(self, request: StepRequest) -> InstanceState:
        instance_id = str(request.inputs.get("instanceId") or "")
        state = self.workspaces.load(instance_id) if instance_id else None
        if state is None:
            raise StepFailed(
                f"instance {instance_id or '(none given)'} does not exist on libvirt host {self.settings.host_id}"
            )
        return state

    def _target(self, state: InstanceState) -> SSHTarget:
        with self._lock:
            target = self._targets.get(state.instance_id)
            if target is None:
                target = SSHTarget(
                    "127.0.0.1",
                    state.ssh_port,
                    "root",
                    key_filename=state.key_path,
                    known_hosts=state.known_hosts or None,
                )
                self._targets[state.instance_id] = target
            return target

    def _drop_target(self, instance_id: str) -> None:
        with self._lock:
            target = self._targets.pop(instance_id, None)
        if target is not None:
            target.close()

    def _wait_login(self, state: InstanceState, runtime: StepRuntime, deadline: float) -> None:
        """sshd listening first (its console line, or its banner: hostfwd accepts TCP long before
        sshd listens), then a real login: on a disk's own boot the banner can come a moment
        before cloud-init has installed the key."""

        def alive() -> bool:
            runtime.heartbeat({"stage": "boot"})
            runtime.check_cancelled()
            with connection() as conn:
                return is_running(conn, state.domain)

        marker = str(state.direct_boot.get("ssh_ready_marker") or "")
        ready = ConsoleMarker(Path(state.console_log), marker) if marker else None
        wait_for_sshd("127.0.0.1", state.ssh_port, max(1.0, deadline - time.monotonic()), alive, ready)
        target = self._target(state)
        while True:
            try:
                if target.exec(["true"], timeout=30).exit_code == 0:
                    return
            except TargetError:
                target.close()
                if time.monotonic() > deadline:
                    raise
            if not alive():
                raise RuntimeError(f"instance {state.instance_id} stopped before accepting a login")
            time.sleep(1)

    def _wait_cloud_init(self, state: InstanceState, deadline: float) -> str:
        """A guest booted through its own loader runs cloud-init's boot stages (our images have
        them on; a build guest's command line turns them off), whose last one runs the recipe's
        user data after sshd is up: wait for it, so components start where user data left off.
        Its outcome ("done", "error", "disabled": no datasource) is reported, not judged, as
        on the fast path."""
        script = "command -v cloud-init >/dev/null 2>&1 || exit 0; cloud-init status --wait 2>/dev/null | tail -n 1"
        try:
            result = self._target(state).exec(["sh", "-c", script], timeout=max(30.0, deadline - time.monotonic()))
        except TargetError as exc:
            raise InfrastructureError(f"waiting for cloud-init on {state.instance_id}: {exc}") from exc
        return result.stdout.decode(errors="replace").strip().removeprefix("status:").strip() or "absent"

    def _guest(self, state: InstanceState, script: str, what: str) -> str:
        """Run a shell script as root on the instance; its stdout, or InfrastructureError/StepFailed."""
        try:
            result = self._target(state).exec(["sh", "-c", script], timeout=300)
        except TargetError as exc:
            self._drop_target(state.instance_id)
            raise InfrastructureError(f"{what} on {state.instance_id}: {exc}") from exc
        if result.exit_code != 0:
            detail = result.stderr.decode(errors="replace")[-500:]
            raise StepFailed(f"{what} on {state.instance_id} exited {result.exit_code}: {detail}")
        return result.stdout.decode(errors="replace")


def _user_data(public_key: str, recipe: dict[str, Any]) -> str:
    """Our cloud-config (the login key), plus the recipe's userDataOverride as a second part when
    it has one: cloud-init runs both (a multipart MIME archive is its way of taking several)."""
    ours = cloud_config([public_key])
    override = str(((recipe.get("additionalInstanceConfiguration") or {}).get("userDataOverride")) or "")
    if not override.strip():
        return ours
    # Image Builder takes the override base64-encoded; plain text is accepted too.
    with contextlib.suppress(binascii.Error, UnicodeDecodeError):
        override = base64.b64decode(override, validate=True).decode()
    subtype = "cloud-config" if override.startswith("#cloud-config") else "x-shellscript"
    archive = MIMEMultipart()
    archive.attach(MIMEText(ours, "cloud-config"))
    archive.attach(MIMEText(override, subtype))
    return archive.as_string()


def _reachable_by_qemu(parent: Path, folder: Path) -> Path:
    """The QEMU user opens the parent as a backing file. A disk in a private folder (a data
    directory under a 0700 home or /tmp folder) is hard-linked into the instance's workspace,
    which that user can traverse; the link goes with the workspace."""
    if readable_by_others(parent):
        return parent
    link = folder / "parent.qcow2"
    try:
        os.link(parent, link)
    except OSError:
        link = parent
    if not readable_by_others(link):
        raise StepFailed(f"{parent} is not readable by the QEMU user (the file and every folder above it)")
    return link


def _tail(path: Path, lines: int = 30) -> str:
    with contextlib.suppress(OSError):
        return "--- console ---\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text)
    tmp.chmod(0o644)
    os.replace(tmp, path)
