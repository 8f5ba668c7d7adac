"""The offline Debian parent qcow2 boots under this host's accelerator (TCG here), takes a NoCloud
seed's key, answers SSH, powers off cleanly and leaves nothing behind: once on the fast path (its
kernel booted directly with the build-guest command line, our first-boot unit instead of
cloud-init's stages, recipe user data run before sshd), once through the disk's own extlinux with
recipe user data, as on a cloud: cloud-init's own stages do the work.

The first run builds the image (debootstrap with a kernel, cloud-init and sshd: a few minutes
cold); later runs take it from /var/cache/imagebuilder/vm-images. Timings are printed (-s).
"""

from __future__ import annotations

import hashlib
import subprocess
import time
from pathlib import Path

import paramiko
import pytest

from workers.executors.libvirt import _user_data
from workers.vm_accel import detect
from workers.vm_images import FAST_APPEND, KERNEL_APPEND, Manifest, build_debian_qcow2
from workers.vm_qemu import ephemeral_guest

pytestmark = [pytest.mark.vm, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def parent(tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    started = time.monotonic()
    manifest = build_debian_qcow2(tmp_path_factory.mktemp("parent") / "debian-12.qcow2")
    how = "cached" if manifest.cached else f"built {manifest.timings}"
    print(f"\nparent image: {time.monotonic() - started:.1f} s ({how}), boot mode {manifest.boot_mode}")
    return manifest


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def ssh_connect(port: int, key_path: Path, timeout: float = 60) -> paramiko.SSHClient:
    # The banner can come a moment before cloud-init's keys are in place on a slow (TCG) guest.
    deadline = time.monotonic() + timeout
    while True:
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        try:
            client.connect(
                "127.0.0.1",
                port,
                username="root",
                key_filename=str(key_path),
                look_for_keys=False,
                allow_agent=False,
                timeout=30,
            )
            return client
        except (paramiko.AuthenticationException, paramiko.SSHException, OSError):
            client.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


def run(client: paramiko.SSHClient, command: str) -> str:
    _, stdout, stderr = client.exec_command(command, timeout=60)
    status = stdout.channel.recv_exit_status()
    out = stdout.read().decode()
    assert status == 0, f"{command!r} exited {status}: {stderr.read().decode()}"
    return out


def test_manifest_describes_the_image(parent: Manifest) -> None:
    image = Path(parent.path)
    assert image.is_file()
    assert parent.virtual_size == 4 << 30
    assert parent.kernel_version.endswith("-amd64")
    assert parent.packages > 100
    info = subprocess.run(
        ["qemu-img", "info", "--output=json", str(image)], check=True, capture_output=True, text=True
    ).stdout
    assert '"format": "qcow2"' in info
    assert f'"virtual-size": {4 << 30}' in info
    # The fast path's files are kept beside the image.
    assert parent.kernel and Path(parent.kernel).is_file() and parent.initrd and Path(parent.initrd).is_file()
    # The kernel as an ELF QEMU enters directly; the initramfs uncompressed but small (no udev).
    assert Path(parent.kernel).read_bytes()[:4] == b"\x7fELF"
    assert Path(parent.initrd).read_bytes()[:6] == b"070701"
    assert Path(parent.initrd).stat().st_size < 8 << 20, "the build guests' initramfs should stay small"
    assert parent.host_key_from_seed


def test_boots_to_ssh_and_powers_off_leaving_nothing(parent: Manifest) -> None:
    """The fast path, with a recipe's user data: sshd starts early there (right after the first-boot
    unit), yet the user data has run by the time a login works."""
    accel = detect()
    started = time.monotonic()
    user_data = lambda key: _user_data(key, RECIPE)  # noqa: E731
    with ephemeral_guest(Path(parent.path), manifest=parent, accel=accel, user_data=user_data) as guest:
        banner_s = time.monotonic() - started
        workdir, pid = guest.workdir, guest.process.pid
        assert guest.overlay.is_file() and guest.seed.is_file() and guest.key_path.is_file()
        client = ssh_connect(guest.ssh_port, guest.key_path)
        try:
            login_s = time.monotonic() - started
            assert run(client, "cat /proc/cmdline").strip() == FAST_APPEND
            # The host key is the one the seed carried (made by the caller, known before the boot).
            server_key = client.get_transport().get_remote_server_key()  # type: ignore[union-attr]
            assert f"{server_key.get_name()} {server_key.get_base64()}" == guest.host_public_key.rsplit(" ", 1)[0]
            assert run(client, "cat /var/tmp/user-data-ran").strip() == "user data ran as root"
            assert run(client, "cat /run/imagebuilder/user-data.status").strip() == "0"
            # sshd was ordered after the user data although the build-guest drop-in starts it early.
            assert run(client, "systemctl show -p DefaultDependencies --value ssh.service").strip() == "no"
            assert run(client, "uname -r").strip() == parent.kernel_version
            # Our first-boot unit, not cloud-init, read the seed: fresh host keys, the instance's hostname.
            assert run(client, "systemctl is-active imagebuilder-nocloud.service").strip() == "active"
            # Build guests' networking: slirp's fixed addresses and DNS, without networkd or resolved.
            assert run(client, "systemctl is-active imagebuilder-usernet.service").strip() == "active"
            assert "nameserver 10.0.2.3" in run(client, "cat /etc/resolv.conf")
            assert run(client, "hostname").strip() == run(client, "cat /var/lib/imagebuilder/instance-id").strip()
            assert "ssh_host_ed25519_key" in run(client, "ls /etc/ssh")
            # cloud-init's own boot stages stayed off (it ran only for the user data, in our unit).
            for unit in ("cloud-init-local.service", "cloud-init.service", "cloud-final.service"):
                assert run(client, f"systemctl show -p ActiveState --value {unit}").strip() == "inactive"
            assert run(client, "systemctl is-active imagebuilder-userdata.service").strip() == "active"
            os_release = run(client, "cat /etc/os-release")
            assert 'VERSION_ID="12"' in os_release and "bookworm" in os_release
            # Generalized image: this boot made its own machine-id.
            assert len(run(client, "cat /etc/machine-id").strip()) == 32
            # Sent detached: a plain `poweroff` over a channel that is then closed can be lost.
            client.exec_command("systemctl --no-block poweroff")
        finally:
            client.close()
        off = time.monotonic()
        assert guest.wait_exit(120) == 0, guest.console_tail()
        poweroff_s = time.monotonic() - off
    print(
        f"\n{accel.kind} ({accel.reason}): SSH banner {banner_s:.1f} s, root login {login_s:.1f} s, "
        f"poweroff to QEMU exit {poweroff_s:.1f} s"
    )
    assert not workdir.exists(), "overlay, seed and key must be removed"
    assert not Path(f"/proc/{pid}").exists()
    leftover = subprocess.run(["pgrep", "-f", str(workdir)], capture_output=True, text=True)
    assert leftover.stdout == "", f"qemu still running: {leftover.stdout}"
    assert sha256(Path(parent.path)) == parent.sha256, "the parent image must never change"


USER_SCRIPT = """#!/bin/sh
echo "user data ran as $(id -un)" > /var/tmp/user-data-ran
"""


def test_own_loader_with_recipe_user_data(parent: Manifest) -> None:
    """Through extlinux (as a captured or exported disk boots) with a recipe's userDataOverride:
    the image's own boot, as on a cloud: cloud-init's stages find the NoCloud seed, take its keys
    and run the user data; our first-boot unit stands aside."""
    started = time.monotonic()
    with ephemeral_guest(Path(parent.path), user_data=lambda key: _user_data(key, RECIPE)) as guest:
        banner_s = time.monotonic() - started
        client = ssh_connect(guest.ssh_port, guest.key_path)
        try:
            assert KERNEL_APPEND in run(client, "cat /proc/cmdline")
            assert "status: done" in run(client, "cloud-init status --wait")
            assert run(client, "cloud-init query platform").strip() == "nocloud"
            assert run(client, "cat /var/tmp/user-data-ran").strip() == "user data ran as root"
            result = "systemctl show -p ConditionResult --value imagebuilder-nocloud.service"
            assert run(client, result).strip() == "no"
            client.exec_command("systemctl --no-block poweroff")
        finally:
            client.close()
        assert guest.wait_exit(120) == 0, guest.console_tail()
    print(f"\nextlinux boot with user data: SSH banner {banner_s:.1f} s")


RECIPE = {"additionalInstanceConfiguration": {"userDataOverride": USER_SCRIPT}}
