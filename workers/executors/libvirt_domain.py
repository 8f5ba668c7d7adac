"""libvirt domains for build and test instances: sizing, the domain XML, and finding/removing them.

A domain is named ``ib-<instance id>`` and carries the image ARN in its description and metadata,
so a worker that lost its state folder (or crashed) still finds, and can remove, what it started.
Networking is QEMU user-mode with SSH forwarded to a loopback port (passed through
<qemu:commandline>): it needs no bridge, no iptables and no root-owned network on the host.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import libvirt

from workers.errors import InfrastructureError
from workers.vm_accel import Accel
from workers.vm_images import FAST_APPEND

URI = "qemu:///system"
DOMAIN_PREFIX = "ib-"
METADATA_NS = "https://imagebuilder.local/xmlns/libvirt-instance/1"
QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"

# libvirt's default handler prints every error to stderr, even the "no such domain" that an
# idempotent removal expects; errors still arrive as libvirtError exceptions.
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)


@dataclass(frozen=True)
class Size:
    vcpus: int
    memory_mib: int


DEFAULT_SIZE = Size(2, 2048)
#: EC2 instance types an infrastructure configuration may name, mapped to guest sizes. Kept small on
#: purpose: vCPUs are capped at 4 because a build host runs several guests (and under TCG more
#: vCPUs than host cores only adds contention). Unknown types get DEFAULT_SIZE.
INSTANCE_TYPES: dict[str, Size] = {
    "t3.micro": Size(2, 1024),
    "t3.small": Size(2, 2048),
    "t3.medium": Size(2, 4096),
    "t3.large": Size(2, 8192),
    "m5.large": Size(2, 8192),
    "c5.large": Size(2, 4096),
    "m5.xlarge": Size(4, 16384),
    "c5.xlarge": Size(4, 8192),
}


def size_for(infrastructure: dict[str, Any]) -> tuple[Size, str]:
    """The first known type of the configuration's instanceTypes (Image Builder tries them in order)."""
    for name in infrastructure.get("instanceTypes") or []:
        if str(name) in INSTANCE_TYPES:
            return INSTANCE_TYPES[str(name)], str(name)
    return DEFAULT_SIZE, ""


@dataclass(frozen=True)
class BootFiles:
    """A disk's kernel and fast initramfs, kept on the host (a managed parent's, workers.vm_images)."""

    kernel: str
    initrd: str
    kernel_version: str
    #: The image installs the SSH host key its seed carries (so that key alone is to be trusted).
    host_key_from_seed: bool = False
    #: What the guest prints on its console once sshd listens (workers.vm_images.SSH_READY_MARKER).
    ssh_ready_marker: str = ""


@dataclass(frozen=True)
class DirectBoot:
    """Boot a kernel and initramfs from host files (QEMU -kernel/-initrd/-append), not the disk's loader."""

    kernel: Path
    initrd: Path
    cmdline: str
    source: BootFiles


def boot_files_of(disk: Path) -> BootFiles | None:
    """The boot files a disk may be booted with directly: a managed parent names them in its
    manifest (`disk`.json); an image CreateImage captured (and its AMIs) names them in its folder's
    manifest.json (as "directBoot") when its build left /boot as the parent had it. None otherwise,
    or when the files are not on this host: the disk then boots through its own loader."""
    found: dict[str, object] = {}
    with contextlib.suppress(OSError, ValueError):
        found = json.loads(Path(f"{disk}.json").read_text())
    # A captured disk's folder, or the image folder above an AMI's amis/<region>/ (libvirt_distribution).
    folders = [disk.parent, disk.parents[2]] if disk.parent.parent.name == "amis" else [disk.parent]
    for folder in folders:
        if found:
            break
        with contextlib.suppress(OSError, ValueError, AttributeError):
            found = json.loads((folder / "manifest.json").read_text()).get("directBoot") or {}
    kernel, initrd = found.get("kernel"), found.get("initrd")
    if not (isinstance(kernel, str) and isinstance(initrd, str) and Path(kernel).is_file() and Path(initrd).is_file()):
        return None
    return BootFiles(
        kernel,
        initrd,
        str(found.get("kernel_version", "")),
        bool(found.get("host_key_from_seed")),
        str(found.get("ssh_ready_marker") or ""),
    )


def direct_boot_for(disk: Path, folder: Path) -> DirectBoot | None:
    """Direct kernel boot for `disk` (see boot_files_of), its files copied into the instance's
    `folder`, so the QEMU user owns its own copies and the shared ones are never relabelled."""
    source = boot_files_of(disk)
    if source is None:
        return None
    boot = DirectBoot(folder / "vmlinux", folder / "initrd.img", FAST_APPEND, source)
    shutil.copyfile(source.kernel, boot.kernel)
    shutil.copyfile(source.initrd, boot.initrd)
    return boot


def domain_name(instance_id: str) -> str:
    return DOMAIN_PREFIX + instance_id


def domain_xml(
    *,
    instance_id: str,
    image_arn: str,
    purpose: str,
    accel: Accel,
    size: Size,
    overlay: Path,
    seed: Path,
    console_log: Path,
    ssh_port: int,
    boot: DirectBoot | None = None,
) -> str:
    ET.register_namespace("qemu", QEMU_NS)
    dom = ET.Element("domain", {"type": accel.libvirt_domain_type})
    ET.SubElement(dom, "name").text = domain_name(instance_id)
    ET.SubElement(dom, "title").text = f"imagebuilder {purpose} instance {instance_id}"
    ET.SubElement(dom, "description").text = image_arn
    meta = ET.SubElement(ET.SubElement(dom, "metadata"), f"{{{METADATA_NS}}}instance")
    meta.set("id", instance_id)
    meta.set("imageArn", image_arn)
    meta.set("purpose", purpose)
    ET.SubElement(dom, "memory", {"unit": "MiB"}).text = str(size.memory_mib)
    ET.SubElement(dom, "vcpu").text = str(size.vcpus)
    os_el = ET.SubElement(dom, "os")
    ET.SubElement(os_el, "type", {"arch": "x86_64", "machine": "q35"}).text = "hvm"
    if boot is not None:
        ET.SubElement(os_el, "kernel").text = str(boot.kernel)
        ET.SubElement(os_el, "initrd").text = str(boot.initrd)
        ET.SubElement(os_el, "cmdline").text = boot.cmdline
    else:
        ET.SubElement(os_el, "boot", {"dev": "hd"})
    features = ET.SubElement(dom, "features")
    ET.SubElement(features, "acpi")
    ET.SubElement(features, "apic")
    # TCG: every feature QEMU emulates (like -cpu max); KVM: the host's own CPU.
    ET.SubElement(dom, "cpu", {"mode": "host-passthrough" if accel.kind == "kvm" else "maximum"})
    ET.SubElement(dom, "on_poweroff").text = "destroy"
    ET.SubElement(dom, "on_reboot").text = "restart"
    ET.SubElement(dom, "on_crash").text = "destroy"
    devices = ET.SubElement(dom, "devices")
    _disk(devices, overlay, "qcow2", "vda", readonly=False)
    _disk(devices, seed, "raw", "vdb", readonly=True)
    ET.SubElement(devices, "controller", {"type": "usb", "model": "none"})
    serial = ET.SubElement(devices, "serial", {"type": "file"})
    ET.SubElement(serial, "source", {"path": str(console_log)})
    ET.SubElement(serial, "target", {"port": "0"})
    ET.SubElement(devices, "memballoon", {"model": "none"})
    cmdline = ET.SubElement(dom, f"{{{QEMU_NS}}}commandline")
    # q35 puts libvirt's own devices on pcie.0 from the low slots up; 0x10 stays free.
    for arg in (
        "-netdev",
        f"user,id=ibnet0,hostfwd=tcp:127.0.0.1:{ssh_port}-:22",
        "-device",
        "virtio-net-pci,netdev=ibnet0,bus=pcie.0,addr=0x10,romfile=",
    ):
        ET.SubElement(cmdline, f"{{{QEMU_NS}}}arg", {"value": arg})
    return ET.tostring(dom, encoding="unicode")


def _disk(devices: ET.Element, path: Path, fmt: str, dev: str, readonly: bool) -> None:
    disk = ET.SubElement(devices, "disk", {"type": "file", "device": "disk"})
    ET.SubElement(disk, "driver", {"name": "qemu", "type": fmt, "discard": "unmap"})
    source = ET.SubElement(disk, "source", {"file": str(path)})
    # We chown the instance's own files; libvirt must not relabel the (shared, immutable) backing
    # parent, which another build may be using at the same time. Backing images inherit this.
    ET.SubElement(source, "seclabel", {"model": "dac", "relabel": "no"})
    ET.SubElement(disk, "target", {"dev": dev, "bus": "virtio"})
    if readonly:
        ET.SubElement(disk, "readonly")


@contextlib.contextmanager
def connection() -> Iterator[libvirt.virConnect]:
    """One connection per use: libvirt connections are cheap and a worker's steps run on threads."""
    try:
        conn = libvirt.open(URI)
    except libvirt.libvirtError as exc:
        raise InfrastructureError(f"libvirt ({URI}) is not reachable: {exc}") from exc
    try:
        yield conn
    except libvirt.libvirtError as exc:
        raise InfrastructureError(f"libvirt failed: {exc}") from exc
    finally:
        conn.close()


def lookup(conn: libvirt.virConnect, name: str) -> libvirt.virDomain | None:
    try:
        return conn.lookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return None
        raise


def is_running(conn: libvirt.virConnect, name: str) -> bool:
    dom = lookup(conn, name)
    return dom is not None and bool(dom.isActive())


def remove_domain(conn: libvirt.virConnect, name: str) -> bool:
    """Destroy (pull the plug) and undefine; False when there was no such domain."""
    dom = lookup(conn, name)
    if dom is None:
        return False
    with contextlib.suppress(libvirt.libvirtError):
        if dom.isActive():
            dom.destroy()
    try:
        dom.undefine()
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
            raise
    return True


def wait_shutoff(conn: libvirt.virConnect, name: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_running(conn, name):
            return True
        time.sleep(0.5)
    return False


def instance_domains(conn: libvirt.virConnect) -> dict[str, str]:
    """Instance id -> image ARN of every domain named ib-i-* on this host, running or not."""
    out: dict[str, str] = {}
    for dom in conn.listAllDomains():
        name = dom.name()
        if not name.startswith(DOMAIN_PREFIX + "i-"):
            continue
        arn = ""
        with contextlib.suppress(libvirt.libvirtError, ET.ParseError):
            meta = ET.fromstring(dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, METADATA_NS))
            arn = meta.get("imageArn", "")
        out[name.removeprefix(DOMAIN_PREFIX)] = arn
    return out
