"""Which disks a build or test guest boots directly (libvirt_domain.boot_files_of): a managed
parent by its own manifest, a captured disk and its AMIs by the image folder's manifest when the
build left /boot alone, and nothing else (an imported disk boots its own loader)."""

from __future__ import annotations

import json
from pathlib import Path

from workers.executors.libvirt_domain import BootFiles, boot_files_of


def boot_files(tmp_path: Path) -> dict[str, object]:
    (tmp_path / "vmlinux").write_bytes(b"\x7fELF")
    (tmp_path / "initrd").write_bytes(b"070701")
    return {
        "kernel": str(tmp_path / "vmlinux"),
        "initrd": str(tmp_path / "initrd"),
        "kernel_version": "6.1.0-50-amd64",
        "host_key_from_seed": True,
    }


def test_a_managed_parent_names_its_files_beside_it(tmp_path: Path) -> None:
    disk = tmp_path / "debian-12.qcow2"
    Path(f"{disk}.json").write_text(json.dumps({**boot_files(tmp_path), "sha256": "x"}))
    assert boot_files_of(disk) == BootFiles(str(tmp_path / "vmlinux"), str(tmp_path / "initrd"), "6.1.0-50-amd64", True)


def test_a_captured_image_and_its_amis_use_the_image_folder_manifest(tmp_path: Path) -> None:
    folder = tmp_path / "images" / "golden" / "1.0.0" / "1"
    ami = folder / "amis" / "us-east-1" / "ami-0123456789abcdef0.qcow2"
    ami.parent.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"imageArn": "arn", "directBoot": boot_files(tmp_path)}))
    assert boot_files_of(folder / "disk.qcow2") is not None
    found = boot_files_of(ami)
    assert found is not None and found.kernel_version == "6.1.0-50-amd64"


def test_disks_without_direct_boot_files_boot_their_own_loader(tmp_path: Path) -> None:
    folder = tmp_path / "images" / "imported" / "1.0.0" / "1"
    folder.mkdir(parents=True)
    # A build that changed /boot (no directBoot), an imported disk (no manifest), files gone.
    (folder / "manifest.json").write_text(json.dumps({"imageArn": "arn"}))
    assert boot_files_of(folder / "disk.qcow2") is None
    assert boot_files_of(tmp_path / "elsewhere.qcow2") is None
    gone = {**boot_files(tmp_path), "kernel": str(tmp_path / "missing")}
    Path(f"{tmp_path / 'other.qcow2'}.json").write_text(json.dumps(gone))
    assert boot_files_of(tmp_path / "other.qcow2") is None
