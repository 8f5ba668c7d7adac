"""Offline parent images for container builds: debootstrap a Debian root filesystem, `docker import` it.

This is deploy/host-setup.sh's step 5 in Python, kept identical so both agree on the result and
share the caches: the same package list, the same generalization, the same rootfs tarball name
under /var/cache/imagebuilder (so either one reuses what the other made) and the same
`docker import` changes. Nothing is pulled from a registry; debootstrap needs a Debian mirror
(or a warm --cache-dir), and re-importing the cached tarball needs nothing at all.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

DEFAULT_TAG = "imagebuilder/debian:12"
DEFAULT_MIRROR = os.environ.get("IMAGEBUILDER_DEBIAN_MIRROR", "http://deb.debian.org/debian")
CACHE_ROOT = Path("/var/cache/imagebuilder")
#: Same list as host-setup.sh (what component documents and the target tests use).
INCLUDE = "ca-certificates,curl,openssh-server,sudo,procps,iproute2,python3,less,xz-utils"
_SUITE_VERSIONS = {"bookworm": "12", "trixie": "13", "bullseye": "11"}


@dataclass(frozen=True)
class ParentImage:
    tag: str
    image_id: str
    rootfs_tar: Path
    #: False when the cached tarball was imported again (no debootstrap ran).
    bootstrapped: bool


def rootfs_tarball(suite: str = "bookworm", include: str = INCLUDE, cache_root: Path = CACHE_ROOT) -> Path:
    """The cached generalized rootfs; its name changes with the package list, as in host-setup.sh."""
    digest = hashlib.sha256(include.encode()).hexdigest()[:12]
    return cache_root / f"debian-{_SUITE_VERSIONS.get(suite, suite)}-minbase-{digest}.tar"


def bootstrap_debian(
    tag: str = DEFAULT_TAG,
    suite: str = "bookworm",
    cache_dir: Path = CACHE_ROOT / "debootstrap",
    mirror: str = DEFAULT_MIRROR,
    include: str = INCLUDE,
    rebuild: bool = False,
    log: Path | None = None,
) -> ParentImage:
    """Make `tag` from a minbase debootstrap of `suite` (reusing the cached rootfs tarball unless
    rebuild), and return what was imported. Needs root, debootstrap and a Docker engine."""
    tarball = rootfs_tarball(suite, include, cache_dir.parent)
    bootstrapped = False
    if rebuild or not (tarball.is_file() and tarball.stat().st_size > 0):
        cache_dir.mkdir(parents=True, exist_ok=True)
        _debootstrap_to_tar(tarball, suite, cache_dir, mirror, include, log)
        bootstrapped = True
    subprocess.run(
        [
            "docker",
            "import",
            "--change",
            'CMD ["/bin/bash"]',
            "--change",
            "ENV LANG=C.UTF-8",
            "--message",
            f"debootstrap --variant=minbase {suite} +{include}",
            str(tarball),
            tag,
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    image_id = subprocess.run(
        ["docker", "image", "inspect", "-f", "{{.Id}}", tag], check=True, capture_output=True, text=True
    ).stdout.strip()
    return ParentImage(tag, image_id, tarball, bootstrapped)


def _debootstrap_to_tar(
    tarball: Path, suite: str, cache_dir: Path, mirror: str, include: str, log: Path | None
) -> None:
    work = Path(tempfile.mkdtemp(prefix="imagebuilder-rootfs.", dir="/var/tmp"))
    try:
        rootfs = work / "rootfs"
        argv = [
            "debootstrap",
            "--variant=minbase",
            f"--cache-dir={cache_dir}",
            f"--include={include}",
            suite,
            str(rootfs),
            mirror,
        ]
        with open(log or os.devnull, "a") as out:
            done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"debootstrap failed with exit code {done.returncode} (log: {log or 'not kept'})")
        # Generalize: no host keys or machine id baked in (each container makes its own), no
        # package lists or caches (the image must not pretend to know a mirror's state).
        for pattern in (
            "etc/ssh/ssh_host_*",
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
        (rootfs / "etc" / "machine-id").write_text("")
        tarball.parent.mkdir(parents=True, exist_ok=True)
        part = tarball.with_name(tarball.name + ".part")
        # Under a temporary name, so an interrupted run never leaves a truncated cache.
        subprocess.run(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(part), "."], check=True)
        os.replace(part, tarball)
    finally:
        shutil.rmtree(work, ignore_errors=True)
