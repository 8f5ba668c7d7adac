"""The build guests' boot files (workers/vm_fastboot.py), checked without a guest: the kernel pulled
out of a bzImage only when QEMU can enter it (PVH note), the initramfs a well-formed newc archive
whose modules come dependencies first, and the command line within the kernel's limit. The real
files boot in tests/vm/test_parent_image.py."""

from __future__ import annotations

import lzma
import stat
import struct
from pathlib import Path

import pytest

from workers.vm_fastboot import INIT, KLIBC_TOOLS, PVH_NOTE, extract_vmlinux, fast_initramfs, module_order
from workers.vm_images import FAST_APPEND

KERNEL_VERSION = "6.1.0-99-amd64"


def elf_with_note(note_type: int) -> bytes:
    """A 64-bit ELF header, one PT_NOTE program header, and a "Xen" note of `note_type`."""
    note = struct.pack("<III", 4, 8, note_type) + b"Xen\0" + (0x1000000).to_bytes(8, "little")
    header = b"\x7fELF\x02\x01\x01" + b"\0" * 9
    header += struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, 0x1000000, 64, 0, 0, 64, 56, 1, 0, 0, 0)
    program = struct.pack("<IIQQQQQQ", 4, 4, 120, 0, 0, len(note), len(note), 4)
    return header + program + note


def bzimage(payload: bytes) -> bytes:
    # Real bzImages put setup code before the compressed payload and a trailer after it.
    return b"\xeb\x3c" + b"setup" * 100 + lzma.compress(payload, format=lzma.FORMAT_XZ) + b"trailer\0\0\0\0"


def test_the_kernel_inside_a_bzimage_is_extracted(tmp_path: Path) -> None:
    elf = elf_with_note(PVH_NOTE)
    (tmp_path / "vmlinuz").write_bytes(bzimage(elf))
    extract_vmlinux(tmp_path / "vmlinuz", tmp_path / "vmlinux")
    assert (tmp_path / "vmlinux").read_bytes() == elf
    assert not (tmp_path / "vmlinux.part").exists()


def test_a_kernel_qemu_cannot_enter_directly_is_refused(tmp_path: Path) -> None:
    (tmp_path / "other-note").write_bytes(bzimage(elf_with_note(PVH_NOTE + 1)))
    with pytest.raises(ValueError, match="no PVH entry note"):
        extract_vmlinux(tmp_path / "other-note", tmp_path / "out")
    (tmp_path / "gzip").write_bytes(b"\x1f\x8b" + b"\0" * 64)
    with pytest.raises(ValueError, match="no xz-compressed kernel"):
        extract_vmlinux(tmp_path / "gzip", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def fake_rootfs(root: Path) -> Path:
    modules = root / "lib" / "modules" / KERNEL_VERSION
    for rel in ("kernel/fs/ext4/ext4.ko", "kernel/fs/jbd2/jbd2.ko", "kernel/lib/crc16.ko", "kernel/fs/mbcache.ko"):
        (modules / rel).parent.mkdir(parents=True, exist_ok=True)
        (modules / rel).write_bytes(f"module {rel}".encode())
    (modules / "kernel/crypto").mkdir(parents=True)
    (modules / "kernel/crypto/crc32c-generic.ko").write_bytes(b"crc")
    (modules / "modules.dep").write_text(
        "kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko\n"
        "kernel/fs/jbd2/jbd2.ko:\nkernel/lib/crc16.ko:\nkernel/fs/mbcache.ko:\n"
        "kernel/crypto/crc32c-generic.ko:\n"
    )
    klibc = root / "usr" / "lib" / "klibc" / "bin"
    klibc.mkdir(parents=True)
    for tool in KLIBC_TOOLS:
        (klibc / tool).write_bytes(f"klibc {tool}".encode())
    (root / "usr" / "lib" / "klibc-ABC.so").write_bytes(b"libklibc")
    return root


def read_newc(data: bytes) -> dict[str, tuple[int, bytes, tuple[int, int]]]:
    """name -> (mode, data, (rdev major, minor)), checking the format as the kernel reads it."""
    entries: dict[str, tuple[int, bytes, tuple[int, int]]] = {}
    pos = 0
    while True:
        assert data[pos : pos + 6] == b"070701", f"bad magic at {pos}"
        fields = [int(data[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, rmajor, rminor, namesize = fields[1], fields[6], fields[9], fields[10], fields[11]
        name_end = pos + 110 + namesize
        name = data[pos + 110 : name_end - 1].decode()
        assert data[name_end - 1] == 0
        start = (name_end + 3) & ~3
        body = data[start : start + size]
        pos = (start + size + 3) & ~3
        if name == "TRAILER!!!":
            assert pos == len(data)
            return entries
        entries[name] = (mode, body, (rmajor, rminor))


def test_modules_come_dependencies_first(tmp_path: Path) -> None:
    order = module_order(fake_rootfs(tmp_path), KERNEL_VERSION, ["crc32c_generic", "ext4"])
    assert order[0] == "kernel/crypto/crc32c-generic.ko"
    assert order[-1] == "kernel/fs/ext4/ext4.ko"
    assert set(order[1:-1]) == {"kernel/lib/crc16.ko", "kernel/fs/mbcache.ko", "kernel/fs/jbd2/jbd2.ko"}
    with pytest.raises(ValueError, match="virtio_blk is not in"):
        module_order(tmp_path, KERNEL_VERSION, ["virtio_blk"])


def test_the_initramfs_is_a_newc_archive_with_init_tools_and_modules(tmp_path: Path) -> None:
    entries = read_newc(fast_initramfs(fake_rootfs(tmp_path), KERNEL_VERSION, ["ext4"]))
    mode, body, _ = entries["init"]
    assert stat.S_ISREG(mode) and mode & 0o111 and body == INIT.encode()
    mode, _, rdev = entries["dev/console"]
    assert stat.S_ISCHR(mode) and rdev == (5, 1)
    assert entries["lib/klibc-ABC.so"][1] == b"libklibc"
    for tool in KLIBC_TOOLS:
        assert entries[f"bin/{tool}"][1] == f"klibc {tool}".encode()
    order = entries["modules/order"][1].decode().split()
    assert order[-1] == "ext4.ko" and len(order) == 4
    assert entries["modules/ext4.ko"][1] == b"module kernel/fs/ext4/ext4.ko"


def test_an_image_without_klibc_gets_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="has no klibc"):
        fast_initramfs(tmp_path, KERNEL_VERSION, [])


def test_the_build_guest_command_line_fits_the_kernel_limit() -> None:
    # x86's COMMAND_LINE_SIZE: a longer line is cut, and whatever came last silently ignored.
    assert len(FAST_APPEND) < 2048
