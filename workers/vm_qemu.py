"""Run a guest with plain QEMU: qcow2 overlays, a user-mode NIC with SSH forwarded to loopback,
waiting for sshd, and an ephemeral guest whose every trace (overlay, seed, key, process) goes
away on exit. The libvirt executor reuses the overlay, port and banner helpers.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from workers.vm_accel import Accel, detect
from workers.vm_images import FAST_APPEND, Manifest
from workers.vm_seed import cloud_config, ed25519_keypair, write_ed25519_key, write_nocloud_seed

QEMU = "qemu-system-x86_64"


def create_overlay(parent: Path, overlay: Path) -> None:
    """A qcow2 overlay on `parent`: the guest writes only to the overlay; the parent never changes."""
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(parent.absolute()), "-F", "qcow2", str(overlay)],
        check=True,
    )


def free_loopback_port() -> int:
    # The port is free now; QEMU binds it moments later (a tiny race accepted, as in the docker tests).
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ConsoleMarker:
    """Whether a line has appeared in a guest's console log (read incrementally, a file QEMU writes)."""

    def __init__(self, path: Path, marker: str) -> None:
        self.path = path
        self.marker = marker.encode()
        self._pos = 0
        self._tail = b""
        self.seen = False

    @property
    def silent(self) -> bool:
        """Nothing at all has reached the console yet."""
        return self._pos == 0

    def __call__(self) -> bool:
        if not self.seen:
            with contextlib.suppress(OSError), open(self.path, "rb") as f:
                f.seek(self._pos)
                data = f.read()
                self._pos += len(data)
                self.seen = self.marker in self._tail + data
                self._tail = (self._tail + data)[-len(self.marker) :]
        return self.seen


def wait_for_sshd(
    host: str,
    port: int,
    timeout: float,
    alive: Callable[[], bool] | None = None,
    ready: Callable[[], bool] | None = None,
    ready_wait: float = 180,
) -> None:
    """Wait until the guest's sshd listens. Gives up early when `alive` says the VM is gone.

    With `ready` (a guest that says on its console when sshd listens, see ConsoleMarker), its
    word is taken: nothing touches the port before, since a probe made before the guest's network
    is up hangs for seconds while slirp resends its SYN into the guest, and none after, since each
    connection costs the guest an sshd fork and re-exec. Otherwise (or if it has said nothing
    after `ready_wait` seconds) sshd must answer with its banner: QEMU's hostfwd accepts TCP long
    before the guest listens, so a connect alone proves nothing. A guest whose console stayed empty
    all that time hung early in its boot (seen once in ~50 TCG boots): TimeoutError at once, so the
    launch is retried rather than waited out."""
    deadline = time.monotonic() + timeout
    if ready is not None:
        probe_anyway = time.monotonic() + ready_wait
        checked = 0.0
        while time.monotonic() < min(probe_anyway, deadline):
            if ready():
                return
            if alive is not None and time.monotonic() - checked > 0.5:
                if not alive():
                    raise RuntimeError(f"the guest exited before sshd answered on {host}:{port}")
                checked = time.monotonic()
            time.sleep(0.05)
        if isinstance(ready, ConsoleMarker) and ready.silent:
            raise TimeoutError(f"the guest printed nothing on its console in {ready_wait:.0f} s: it hung early in boot")
    while True:
        if alive is not None and not alive():
            raise RuntimeError(f"the guest exited before sshd answered on {host}:{port}")
        try:
            with socket.create_connection((host, port), timeout=2) as sock:
                sock.settimeout(5)
                if sock.recv(256).startswith(b"SSH-"):
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"no SSH banner on {host}:{port} within {timeout:.0f} s")
        time.sleep(0.25)


def qemu_argv(
    disk: Path,
    *,
    accel: Accel,
    ssh_port: int,
    console_log: Path,
    seed: Path | None = None,
    manifest: Manifest | None = None,
    cpus: int = 2,
    memory_mb: int = 2048,
    name: str = "imagebuilder",
) -> list[str]:
    argv = [
        QEMU,
        "-name",
        name,
        "-machine",
        "q35",
        *accel.qemu_args,
        "-smp",
        str(cpus),
        "-m",
        str(memory_mb),
        "-nodefaults",
        "-display",
        "none",
        "-serial",
        f"file:{console_log}",
        "-drive",
        f"file={disk},if=virtio,format=qcow2,discard=unmap",
        "-netdev",
        f"user,id=net0,hostfwd=tcp:127.0.0.1:{ssh_port}-:22",
        # romfile= skips the iPXE option ROM: the guest boots from disk, never from the network.
        "-device",
        "virtio-net-pci,netdev=net0,romfile=",
    ]
    if seed is not None:
        argv += ["-drive", f"file={seed},if=virtio,format=raw,readonly=on"]
    if manifest is not None and manifest.kernel and manifest.initrd:
        # The fast path (see workers.vm_images): the image's kernel, the small initramfs kept
        # beside it and the build-guest command line; no firmware reading the disk's loader.
        argv += ["-kernel", manifest.kernel, "-initrd", manifest.initrd, "-append", FAST_APPEND]
    return argv


@dataclass
class Guest:
    """A running ephemeral guest: SSH as `user` with `key_path` to 127.0.0.1:`ssh_port`."""

    process: subprocess.Popen[bytes]
    workdir: Path
    overlay: Path
    seed: Path
    key_path: Path
    console_log: Path
    ssh_port: int
    #: The SSH host key's public line the seed gave the guest (images of ours install it).
    host_public_key: str = ""
    user: str = "root"

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_exit(self, timeout: float) -> int:
        """Wait for QEMU to exit by itself (after a guest poweroff); returns its exit status."""
        return self.process.wait(timeout)

    def console_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.console_log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@contextlib.contextmanager
def ephemeral_guest(
    parent: Path,
    *,
    manifest: Manifest | None = None,
    accel: Accel | None = None,
    workdir_root: Path = Path("/var/tmp"),
    cpus: int = 2,
    memory_mb: int = 2048,
    boot_timeout: float = 300,
    user_data: Callable[[str], str] | None = None,
) -> Iterator[Guest]:
    """Boot `parent` (never modified) on an overlay with a fresh key in a NoCloud seed, wait for
    sshd, yield the Guest. With `manifest` naming a kernel, the guest boots it directly (the fast
    path), else through the disk's own loader. `user_data` makes the seed's user data from the
    login key's public line (default: a cloud-config with only that key). On exit QEMU is stopped
    if still running and the work directory (overlay, seed, key, console log) is removed, whatever
    happened."""
    accel = accel or detect()
    workdir = Path(tempfile.mkdtemp(prefix="imagebuilder-guest.", dir=workdir_root))
    process: subprocess.Popen[bytes] | None = None
    try:
        overlay, seed, key_path, console = (
            workdir / "disk.qcow2",
            workdir / "seed.iso",
            workdir / "id_ed25519",
            workdir / "console.log",
        )
        create_overlay(parent, overlay)
        public_key = write_ed25519_key(key_path)
        instance = f"i-{uuid.uuid4().hex[:17]}"
        seed_user_data = user_data(public_key) if user_data else cloud_config([public_key])
        host_key = ed25519_keypair(instance)
        write_nocloud_seed(seed, instance_id=instance, hostname=instance, user_data=seed_user_data, host_key=host_key)
        port = free_loopback_port()
        argv = qemu_argv(
            overlay,
            accel=accel,
            ssh_port=port,
            console_log=console,
            seed=seed,
            manifest=manifest,
            cpus=cpus,
            memory_mb=memory_mb,
            name=instance,
        )
        with open(workdir / "qemu.log", "wb") as qemu_log:
            # Own session: a Ctrl-C meant for the caller must not kill the guest mid-cleanup.
            process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=qemu_log, stderr=subprocess.STDOUT, start_new_session=True
            )
        guest = Guest(process, workdir, overlay, seed, key_path, console, port, host_key[1])
        marker = manifest.ssh_ready_marker if manifest is not None and manifest.kernel else ""
        ready = ConsoleMarker(console, marker) if marker else None
        try:
            wait_for_sshd("127.0.0.1", port, boot_timeout, guest.alive, ready)
        except (TimeoutError, RuntimeError) as exc:
            qemu_out = (workdir / "qemu.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{exc}\n--- qemu ---\n{qemu_out}\n--- console ---\n{guest.console_tail()}") from exc
        yield guest
    finally:
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)  # QEMU exits at once on SIGTERM (like pulling the plug)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(workdir, ignore_errors=True)
