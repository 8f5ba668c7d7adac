"""Offline bootable Debian parent image for VM builds: debootstrap, then an MBR + extlinux qcow2.

Nothing is downloaded but Debian packages (from a mirror, or from the warm debootstrap cache),
and the disk is assembled without libguestfs and, where possible, without loop devices:

1. debootstrap a minbase bookworm with a kernel, systemd, sshd and cloud-init (packages cached
   under /var/cache/imagebuilder/debootstrap-vm, separate from the container one's smaller set);
2. configure and generalize it (NoCloud-only cloud-init, key-only root SSH, DHCP through
   systemd-networkd, no machine-id, no host keys);
3. `sfdisk` an MBR partition table onto a sparse raw file, `mkfs.ext4 -d ROOTFS` straight into the
   partition (mke2fs's offset option), and syslinux's MBR code in front;
4. `extlinux --install` is the one step that needs the filesystem mounted: a loop mount when the
   host allows one. Without loop devices the image is still made, with boot mode "direct-kernel"
   in its manifest (kernel and initrd are kept beside it for QEMU's -kernel/-initrd);
5. `qemu-img convert` to qcow2, plus a JSON manifest.

The result is cached under a key of its inputs (suite, package list, size, the configuration
written into it, this recipe's version), so a second call only links or copies the cached file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

DEFAULT_MIRROR = os.environ.get("IMAGEBUILDER_DEBIAN_MIRROR", "http://deb.debian.org/debian")
CACHE_ROOT = Path("/var/cache/imagebuilder")
#: Bump when the way the disk is made changes in a way the inputs below do not show.
RECIPE_VERSION = 1
ROOT_LABEL = "debian-root"
PART_OFFSET = 1 << 20  # 1 MiB: the usual first-partition alignment; sector 2048
_SUITE_VERSIONS = {"bookworm": "12", "trixie": "13"}

#: debootstrap does not install Recommends, so what a usable cloud guest needs is listed here.
#: python3-cffi-backend: cloud-init needs it through a virtual package debootstrap cannot resolve.
#: dbus: without it pam/logind calls in sshd sessions wait for a timeout.
INCLUDE = (
    "linux-image-amd64,systemd-sysv,udev,dbus,openssh-server,cloud-init,python3-cffi-backend,"
    "cloud-guest-utils,sudo,ca-certificates,systemd-resolved,curl,procps,iproute2,less,xz-utils"
)

#: Files written into the image (path relative to the root -> content). Part of the cache key.
CONFIG_FILES: dict[str, str] = {
    "etc/fstab": f"LABEL={ROOT_LABEL} / ext4 errors=remount-ro 0 1\n",
    "etc/hostname": "debian\n",
    # NoCloud only: no network probing for EC2/OpenStack metadata at boot (saves minutes offline).
    # locale: minbase has no locales, so cloud-init's locale module would fail. Root may log in
    # with the seed's keys (disable_root false); the default user is Debian's cloud-image "admin".
    # Networking is the image's own (networkd DHCP on every NIC), not cloud-init's fallback.
    # No RSA (or DSA) host keys: RSA 3072 keygen costs about 19 s of first boot under TCG.
    "etc/cloud/cloud.cfg.d/90-imagebuilder.cfg": """\
datasource_list: [NoCloud, None]
locale: false
disable_root: false
ssh_pwauth: false
ssh_genkeytypes: [ed25519, ecdsa]
network:
  config: disabled
system_info:
  default_user:
    name: admin
    lock_passwd: true
    gecos: Debian
    groups: [adm, sudo]
    sudo: ["ALL=(ALL) NOPASSWD:ALL"]
    shell: /bin/bash
""",
    "etc/systemd/network/80-dhcp.network": """\
[Match]
Name=en* eth*

[Network]
DHCP=yes
""",
    "etc/ssh/sshd_config.d/50-imagebuilder.conf": """\
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
""",
    # Host keys are removed when generalizing; cloud-init makes new ones on first boot. Without a
    # seed cloud-init does nothing, and Debian's ssh.service would refuse to start without keys.
    "etc/systemd/system/imagebuilder-ssh-keygen.service": """\
[Unit]
Description=Generate SSH host keys missing after generalization
After=cloud-init.service
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
""",
    # extlinux follows the /vmlinuz and /initrd.img symlinks the kernel package keeps current,
    # so a kernel upgrade inside a build boots without rewriting this file.
    "boot/extlinux/extlinux.conf": f"""\
DEFAULT debian
PROMPT 0
TIMEOUT 1
LABEL debian
  LINUX /vmlinuz
  INITRD /initrd.img
  APPEND root=LABEL={ROOT_LABEL} ro console=tty0 console=ttyS0,115200
""",
}
ENABLE_UNITS = ("systemd-networkd.service", "systemd-resolved.service", "imagebuilder-ssh-keygen.service")
KERNEL_APPEND = f"root=LABEL={ROOT_LABEL} ro console=tty0 console=ttyS0,115200"


@dataclass
class Manifest:
    path: str
    sha256: str
    virtual_size: int
    kernel_version: str
    packages: int
    build_date: str
    suite: str
    cache_key: str
    #: "extlinux": the disk boots by itself; "direct-kernel": boot with kernel/initrd/append below.
    boot_mode: Literal["extlinux", "direct-kernel"]
    kernel: str | None = None
    initrd: str | None = None
    kernel_append: str = KERNEL_APPEND
    timings: dict[str, float] = field(default_factory=dict)
    #: True when this call found the image in the cache (not stored in the JSON file).
    cached: bool = False

    def to_json(self) -> str:
        data = asdict(self)
        data.pop("cached")
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        return cls(**json.loads(text))


def cache_key(suite: str = "bookworm", size_gb: int = 4, include: str = INCLUDE) -> str:
    spec = {
        "recipe": RECIPE_VERSION,
        "suite": suite,
        "size_gb": size_gb,
        "include": sorted(include.split(",")),
        "config": CONFIG_FILES,
        "units": ENABLE_UNITS,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def cached_image_path(cache_dir: Path = CACHE_ROOT, suite: str = "bookworm", size_gb: int = 4) -> Path:
    """Where build_debian_qcow2 keeps the image for these inputs (passing it as `out` links nothing)."""
    key = cache_key(suite, size_gb)
    return cache_dir / "vm-images" / f"debian-{_SUITE_VERSIONS.get(suite, suite)}-{key}.qcow2"


def build_debian_qcow2(
    out: Path,
    cache_dir: Path = CACHE_ROOT,
    size_gb: int = 4,
    suite: str = "bookworm",
    mirror: str = DEFAULT_MIRROR,
    rebuild: bool = False,
    log: Path | None = None,
) -> Manifest:
    """Make (or take from `cache_dir`) the bootable Debian qcow2 and put it at `out`, with its
    manifest at `out` + ".json". Needs root, debootstrap, sfdisk, mkfs.ext4, extlinux, qemu-img.

    `out` is a hard link to the cached image when both are on one filesystem: treat it as an
    immutable parent and run guests on qcow2 overlays (workers.vm_qemu.create_overlay)."""
    key = cache_key(suite, size_gb)
    cached_image = cached_image_path(cache_dir, suite, size_gb)
    images = cached_image.parent
    cached_manifest = cached_image.with_name(cached_image.name + ".json")
    hit = not rebuild and cached_image.is_file() and cached_manifest.is_file()
    if not hit:
        images.mkdir(parents=True, exist_ok=True)
        _build(cached_image, cache_dir / "debootstrap-vm", size_gb, suite, mirror, key, log)
    manifest = Manifest.from_json(cached_manifest.read_text())
    manifest.cached = hit
    out = out.absolute()
    if out != cached_image:
        out.parent.mkdir(parents=True, exist_ok=True)
        _link_or_copy(cached_image, out)
        manifest.path = str(out)
        Path(str(out) + ".json").write_text(manifest.to_json())
    return manifest


def _link_or_copy(src: Path, dst: Path) -> None:
    tmp = dst.with_name(dst.name + ".part")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def _run(argv: list[str], log: Path | None, **kwargs: object) -> None:
    with open(log or os.devnull, "a") as out:
        out.write(f"$ {' '.join(argv)}\n")
        out.flush()
        done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False, **kwargs)  # type: ignore[call-overload]
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed with exit code {done.returncode} (log: {log or 'not kept'})")


def _build(image: Path, pkg_cache: Path, size_gb: int, suite: str, mirror: str, key: str, log: Path | None) -> None:
    timings: dict[str, float] = {}
    pkg_cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="imagebuilder-vm.", dir="/var/tmp"))
    try:
        rootfs = work / "rootfs"
        t = time.monotonic()
        _run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--cache-dir={pkg_cache}",
                f"--include={INCLUDE}",
                suite,
                str(rootfs),
                mirror,
            ],
            log,
        )
        timings["debootstrap_s"] = round(time.monotonic() - t, 1)

        t = time.monotonic()
        kernel_version = _configure(rootfs, log)
        packages = _count_packages(rootfs)
        timings["configure_s"] = round(time.monotonic() - t, 1)

        t = time.monotonic()
        raw = work / "disk.raw"
        boot_mode = _assemble(rootfs, raw, size_gb, work, log)
        timings["assemble_s"] = round(time.monotonic() - t, 1)

        kernel = initrd = None
        if boot_mode == "direct-kernel":
            kernel = str(image.with_suffix(".vmlinuz"))
            initrd = str(image.with_suffix(".initrd"))
            shutil.copyfile(rootfs / "boot" / f"vmlinuz-{kernel_version}", kernel)
            shutil.copyfile(rootfs / "boot" / f"initrd.img-{kernel_version}", initrd)

        t = time.monotonic()
        part = image.with_name(image.name + ".part")
        _run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", "-o", "compat=1.1", str(raw), str(part)], log)
        timings["convert_s"] = round(time.monotonic() - t, 1)
        manifest = Manifest(
            path=str(image),
            sha256=_sha256(part),
            virtual_size=size_gb << 30,
            kernel_version=kernel_version,
            packages=packages,
            build_date=datetime.now(UTC).isoformat(timespec="seconds"),
            suite=suite,
            cache_key=key,
            boot_mode=boot_mode,
            kernel=kernel,
            initrd=initrd,
            timings=timings,
        )
        # Image first, manifest last: a manifest beside an image means the image is complete.
        os.replace(part, image)
        manifest_path = image.with_name(image.name + ".json")
        manifest_path.with_name(manifest_path.name + ".part").write_text(manifest.to_json())
        os.replace(manifest_path.with_name(manifest_path.name + ".part"), manifest_path)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _configure(rootfs: Path, log: Path | None) -> str:
    """Write the configuration, enable units, generalize. Returns the kernel version."""
    for rel, content in CONFIG_FILES.items():
        path = rootfs / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    # `systemctl enable` on a root directory only makes symlinks; nothing runs in the chroot.
    _run(["systemctl", f"--root={rootfs}", "enable", *ENABLE_UNITS], log)
    # systemd-resolved's stub resolver, as Debian's cloud images do (the copied host file is wrong).
    resolv = rootfs / "etc" / "resolv.conf"
    resolv.unlink(missing_ok=True)
    resolv.symlink_to("../run/systemd/resolve/stub-resolv.conf")
    # Generalize: each instance makes its own machine-id and host keys; no cloud-init state, logs
    # or package lists from the build host's view of the mirror.
    (rootfs / "etc" / "machine-id").write_text("")
    (rootfs / "var" / "lib" / "dbus" / "machine-id").unlink(missing_ok=True)
    for pattern in (
        "etc/ssh/ssh_host_*",
        "var/lib/cloud/*",
        "var/log/cloud-init*",
        "var/lib/apt/lists/*",
        "var/cache/apt/*.bin",
        "var/cache/apt/archives/*.deb",
        "var/log/*.log",
    ):
        for path in rootfs.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    versions = sorted(p.name for p in (rootfs / "lib" / "modules").iterdir())
    if len(versions) != 1:
        raise RuntimeError(f"expected one kernel in the image, found {versions}")
    return versions[0]


def _count_packages(rootfs: Path) -> int:
    status = (rootfs / "var" / "lib" / "dpkg" / "status").read_text()
    return len(re.findall(r"^Status: install ok installed$", status, flags=re.MULTILINE))


def _assemble(
    rootfs: Path, raw: Path, size_gb: int, work: Path, log: Path | None
) -> Literal["extlinux", "direct-kernel"]:
    size = size_gb << 30
    with open(raw, "wb") as f:
        f.truncate(size)  # sparse: only what mkfs writes takes space
    _run(
        ["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", str(raw)],
        log,
        input=f"label: dos\nstart={PART_OFFSET // 512}, type=83, bootable\n".encode(),
    )
    # mke2fs writes the filesystem into the partition in place, so no partition image + dd.
    # ^64bit: syslinux's ext4 reader is happiest with 32-bit block numbers (plenty for 16 TiB).
    fs_kib = (size - PART_OFFSET) // 1024
    _run(
        [
            "mkfs.ext4",
            "-q",
            "-F",
            "-L",
            ROOT_LABEL,
            "-O",
            "^64bit",
            "-E",
            f"offset={PART_OFFSET}",
            "-d",
            str(rootfs),
            str(raw),
            f"{fs_kib}k",
        ],
        log,
    )
    mbr = Path("/usr/lib/syslinux/mbr/mbr.bin").read_bytes()
    with open(raw, "r+b") as f:
        f.write(mbr[:440])  # boot code only; the partition table follows at byte 446
    mnt = work / "mnt"
    mnt.mkdir()
    try:
        _run(["mount", "-o", f"loop,offset={PART_OFFSET}", str(raw), str(mnt)], log)
    except RuntimeError:
        # No loop devices (or not allowed): the disk is complete but has no boot sector loader.
        return "direct-kernel"
    try:
        _run(["extlinux", "--install", str(mnt / "boot" / "extlinux")], log)
    finally:
        with contextlib.suppress(RuntimeError):
            _run(["umount", str(mnt)], log)
    return "extlinux"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


#: Managed machine parent images (engine/managed.py names them "vm-parent:<name>") -> Debian suite.
MANAGED_PARENTS = {"debian-12": "bookworm"}


def managed_parent(name: str, cache_dir: Path = CACHE_ROOT, log: Path | None = None) -> Path:
    """The cached disk of a managed machine parent image, made on first use. A file lock keeps two
    builds on one host from bootstrapping it twice; the second one waits and reuses the first's."""
    import fcntl

    suite = MANAGED_PARENTS.get(name)
    if suite is None:
        raise KeyError(name)
    image = cached_image_path(cache_dir, suite)
    if image.is_file() and Path(str(image) + ".json").is_file():
        return image
    image.parent.mkdir(parents=True, exist_ok=True)
    with open(image.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        build_debian_qcow2(image, cache_dir, suite=suite, log=log)
    return image
