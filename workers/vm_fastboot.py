"""What build guests of the managed parent boot directly (QEMU -kernel/-initrd), made once per parent.

Under TCG every instruction of a boot is emulated, so the usual path costs seconds twice before
systemd starts:

- **The kernel uncompressed.** Debian's vmlinuz is an xz-compressed bzImage: the decompressor ran
  about 5 s under TCG. The ELF inside it carries a PVH entry note (CONFIG_PVH), and QEMU loads such
  an ELF as it is and jumps to that entry: no real-mode setup, no decompression.
- **An initramfs without udev.** initramfs-tools starts udevd, triggers every device and runs its
  scripts (about 3 s). Ours is an uncompressed cpio of klibc's tools (already in the image, 80 KB
  of static-like binaries), the few modules a virtio disk with ext4 needs, and a 20-line /init
  that loads them in dependency order, mounts the root named on the command line, and hands over
  to systemd with run-init.

The image's own boot (extlinux, its own initramfs) is untouched: this is for throwaway build and
test guests only.
"""

from __future__ import annotations

import lzma
import os
import stat
from collections.abc import Iterable
from pathlib import Path

XZ_MAGIC = b"\xfd7zXZ\x00"
#: The ELF note type of the 32-bit PVH entry point (Xen's XEN_ELFNOTE_PHYS32_ENTRY).
PVH_NOTE = 18

INIT = r"""#!/bin/sh
# Image Builder fast initramfs: modules, root, run-init. No udev: devtmpfs names the disk itself.
PATH=/bin
mkdir -p /dev /proc /root
mount -t devtmpfs devtmpfs /dev
mount -t proc proc /proc
root=/dev/vda1 rootfstype=ext4 flags=ro
read -r cmdline </proc/cmdline
for arg in $cmdline; do
    case $arg in
    root=/dev/*) root=${arg#root=} ;;
    rootfstype=*) rootfstype=${arg#rootfstype=} ;;
    rw) flags=rw ;;
    esac
done
while read -r module; do
    insmod "/modules/$module" || echo "fast initramfs: insmod $module failed"
done </modules/order
i=0
while [ ! -b "$root" ]; do
    i=$((i + 1))
    [ $i -gt 600 ] && { echo "fast initramfs: no $root after 60 s"; break; }
    sleep 0.1
done
mount -t "$rootfstype" -o "$flags" "$root" /root || { echo "fast initramfs: cannot mount $root"; sh; }
umount /proc
umount /dev
exec run-init /root /sbin/init "$@"
"""
#: klibc's tools used by INIT (the klibc-utils package, which initramfs-tools depends on).
KLIBC_TOOLS = ("sh", "mount", "umount", "insmod", "sleep", "mkdir", "run-init")


def extract_vmlinux(bzimage: Path, out: Path) -> None:
    """The ELF kernel inside an xz-compressed bzImage, written to `out`; ValueError if it has none or
    if the ELF has no PVH entry note (QEMU could not boot it directly)."""
    data = bzimage.read_bytes()
    start = data.find(XZ_MAGIC)
    if start < 0:
        raise ValueError(f"{bzimage}: no xz-compressed kernel inside")
    # The payload is followed by the bzImage's trailer; the decompressor stops at the stream's end.
    elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data[start:])
    if not elf.startswith(b"\x7fELF") or not _has_pvh_note(elf):
        raise ValueError(f"{bzimage}: the kernel inside has no PVH entry note (CONFIG_PVH)")
    tmp = out.with_name(out.name + ".part")
    tmp.write_bytes(elf)
    os.replace(tmp, out)


def _has_pvh_note(elf: bytes) -> bool:
    """Walk the PT_NOTE program headers of a 64-bit little-endian ELF for the PVH entry note."""
    phoff = int.from_bytes(elf[32:40], "little")
    phentsize = int.from_bytes(elf[54:56], "little")
    phnum = int.from_bytes(elf[56:58], "little")
    for i in range(phnum):
        ph = elf[phoff + i * phentsize : phoff + (i + 1) * phentsize]
        if int.from_bytes(ph[0:4], "little") != 4:  # PT_NOTE
            continue
        offset, size = int.from_bytes(ph[8:16], "little"), int.from_bytes(ph[32:40], "little")
        notes, pos = elf[offset : offset + size], 0
        while pos + 12 <= len(notes):
            namesz, descsz, kind = (int.from_bytes(notes[pos + k : pos + k + 4], "little") for k in (0, 4, 8))
            if kind == PVH_NOTE and notes[pos + 12 : pos + 12 + namesz].rstrip(b"\0") == b"Xen":
                return True
            pos += 12 + _align4(namesz) + _align4(descsz)
    return False


def _align4(n: int) -> int:
    return (n + 3) & ~3


def module_order(rootfs: Path, kernel_version: str, names: Iterable[str]) -> list[str]:
    """The .ko paths (relative to the modules folder) to insmod for `names`, dependencies first,
    from the image's modules.dep (softdeps are named explicitly by the caller)."""
    base = rootfs / "lib" / "modules" / kernel_version
    deps: dict[str, list[str]] = {}
    by_name: dict[str, str] = {}
    for line in (base / "modules.dep").read_text().splitlines():
        path, _, rest = line.partition(":")
        deps[path] = rest.split()
        by_name[Path(path).name.removesuffix(".ko").replace("-", "_")] = path
    order: list[str] = []

    def visit(path: str) -> None:
        if path in order:
            return
        for dep in deps.get(path, []):
            visit(dep)
        order.append(path)

    for name in names:
        found = by_name.get(name.replace("-", "_"))
        if found is None:
            raise ValueError(f"module {name} is not in {base / 'modules.dep'}")
        visit(found)
    return order


def fast_initramfs(rootfs: Path, kernel_version: str, modules: Iterable[str]) -> bytes:
    """The initramfs (an uncompressed newc cpio) for `rootfs`'s kernel: INIT, klibc's tools and `modules`."""
    klibc_bin = rootfs / "usr" / "lib" / "klibc" / "bin"
    interpreters = sorted((rootfs / "usr" / "lib").glob("klibc-*.so"))
    if not interpreters or not klibc_bin.is_dir():
        raise ValueError(f"{rootfs} has no klibc (the klibc-utils package)")
    archive = _Cpio()
    for folder in ("bin", "dev", "lib", "modules", "proc", "root"):
        archive.add(folder, stat.S_IFDIR | 0o755)
    archive.add("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1))
    archive.add("init", stat.S_IFREG | 0o755, INIT.encode())
    # klibc binaries name their shared library as their program interpreter, under /lib.
    archive.add(f"lib/{interpreters[-1].name}", stat.S_IFREG | 0o755, interpreters[-1].read_bytes())
    for tool in KLIBC_TOOLS:
        archive.add(f"bin/{tool}", stat.S_IFREG | 0o755, (klibc_bin / tool).read_bytes())
    order = module_order(rootfs, kernel_version, modules)
    base = rootfs / "lib" / "modules" / kernel_version
    for path in order:
        archive.add(f"modules/{Path(path).name}", stat.S_IFREG | 0o644, (base / path).read_bytes())
    archive.add("modules/order", stat.S_IFREG | 0o644, "".join(f"{Path(p).name}\n" for p in order).encode())
    return archive.finish()


class _Cpio:
    """The newc ("070701") format the kernel unpacks: a 110-byte ASCII header, the name, the data,
    each padded to 4 bytes; the archive ends with an entry named TRAILER!!!."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._ino = 1

    def add(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        fields = (self._ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name) + 1, 0)
        header = b"070701" + b"".join(b"%08X" % f for f in fields)
        self._ino += 1
        entry = header + name.encode() + b"\0"
        self._parts += [entry, b"\0" * (-len(entry) % 4), data, b"\0" * (-len(data) % 4)]

    def finish(self) -> bytes:
        self.add("TRAILER!!!", 0)
        return b"".join(self._parts)
