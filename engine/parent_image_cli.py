"""`imagebuilder parent-image bootstrap`: make the offline Debian parent image for container builds."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str]) -> int:
    from workers.parent_images import CACHE_ROOT, DEFAULT_MIRROR, DEFAULT_TAG, bootstrap_debian

    parser = argparse.ArgumentParser(prog="imagebuilder parent-image")
    sub = parser.add_subparsers(dest="command", required=True)
    boot = sub.add_parser("bootstrap", help="debootstrap a minbase Debian and `docker import` it (offline)")
    boot.add_argument("--tag", default=DEFAULT_TAG, help=f"image tag (default {DEFAULT_TAG})")
    boot.add_argument("--suite", default="bookworm", help="Debian suite (default bookworm)")
    boot.add_argument("--mirror", default=DEFAULT_MIRROR, help="Debian mirror for debootstrap")
    boot.add_argument("--cache-dir", type=Path, default=CACHE_ROOT / "debootstrap", help="debootstrap package cache")
    boot.add_argument("--rebuild", action="store_true", help="debootstrap again even if the rootfs tarball is cached")
    boot.add_argument(
        "--vm",
        action="store_true",
        help="make the bootable qcow2 for VM builds instead (packages cached in debootstrap-vm beside --cache-dir)",
    )
    boot.add_argument("--out", type=Path, help="with --vm: where to put the qcow2 (default: its place in the cache)")
    args = parser.parse_args(list(argv))
    if args.vm:
        return _bootstrap_vm(args)

    started = time.monotonic()
    try:
        image = bootstrap_debian(
            tag=args.tag, suite=args.suite, cache_dir=args.cache_dir, mirror=args.mirror, rebuild=args.rebuild
        )
    except (OSError, RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"parent-image bootstrap failed: {exc}", file=sys.stderr)
        return 1
    how = "debootstrapped" if image.bootstrapped else f"re-imported from {image.rootfs_tar}"
    print(f"{image.tag} {image.image_id} ({how}, {time.monotonic() - started:.1f} s)")
    if image.tag == DEFAULT_TAG:
        from engine import settings
        from engine.managed import parent_image_arn

        # The API server registers this tag as a managed image at start (engine/managed.py).
        print(f"container recipes can use parentImage: {parent_image_arn(settings.load().region)}")
    return 0


def _bootstrap_vm(args: argparse.Namespace) -> int:
    from workers.vm_images import build_debian_qcow2, cached_image_path

    started = time.monotonic()
    # The VM image's caches live beside the container one's (both under /var/cache/imagebuilder).
    cache_root = args.cache_dir.parent
    out = args.out or cached_image_path(cache_root, args.suite)
    try:
        manifest = build_debian_qcow2(out, cache_root, suite=args.suite, mirror=args.mirror, rebuild=args.rebuild)
    except (OSError, RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"parent-image bootstrap --vm failed: {exc}", file=sys.stderr)
        return 1
    how = "from the cache" if manifest.cached else f"built {manifest.timings}"
    print(
        f"{manifest.path} ({manifest.kernel_version}, {manifest.packages} packages, boot {manifest.boot_mode}; "
        f"{how}, {time.monotonic() - started:.1f} s)"
    )
    return 0
