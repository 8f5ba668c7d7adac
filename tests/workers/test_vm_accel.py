"""workers.vm_accel.detect on fabricated /dev, /proc and /sys trees, and on this host."""

from __future__ import annotations

from pathlib import Path

import pytest

from workers.vm_accel import detect

INTEL = "processor\t: 0\nflags\t\t: fpu vme sse2 vmx ept\n\nprocessor\t: 1\nflags\t\t: fpu vme sse2 vmx ept\n"
NO_VIRT = "processor\t: 0\nflags\t\t: fpu vme sse2 hypervisor\n"


def make_root(
    tmp_path: Path, *, kvm: bool = True, cpuinfo: str = INTEL, sys_pvm: bool = False, proc_modules: str | None = None
) -> Path:
    (tmp_path / "dev").mkdir()
    (tmp_path / "proc").mkdir()
    (tmp_path / "sys" / "module" / "kvm").mkdir(parents=True)
    if kvm:
        (tmp_path / "dev" / "kvm").touch()
    (tmp_path / "proc" / "cpuinfo").write_text(cpuinfo)
    if sys_pvm:
        (tmp_path / "sys" / "module" / "kvm_pvm").mkdir()
    if proc_modules is not None:
        (tmp_path / "proc" / "modules").write_text(proc_modules)
    return tmp_path


def test_kvm_when_device_and_vmx_and_not_pvm(tmp_path: Path) -> None:
    accel = detect(
        make_root(tmp_path, proc_modules="kvm_intel 409600 0 - Live 0x0\nkvm 1146880 1 kvm_intel, Live 0x0\n")
    )
    assert accel.kind == "kvm"
    assert "vmx" in accel.reason
    assert accel.qemu_args == ["-accel", "kvm", "-cpu", "host"]
    assert accel.libvirt_domain_type == "kvm"


def test_svm_counts_too(tmp_path: Path) -> None:
    assert detect(make_root(tmp_path, cpuinfo="flags\t: fpu svm npt\n")).kind == "kvm"


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"kvm": False}, "/dev/kvm does not exist"),
        ({"cpuinfo": NO_VIRT}, "neither vmx nor svm"),
        ({"sys_pvm": True}, "kvm_pvm"),
        ({"proc_modules": "kvm_pvm 1 0 - Live 0x0\nkvm 2 1 kvm_pvm, Live 0x0\n"}, "kvm_pvm"),
    ],
)
def test_tcg_with_reason(tmp_path: Path, kwargs: dict[str, object], why: str) -> None:
    accel = detect(make_root(tmp_path, **kwargs))  # type: ignore[arg-type]
    assert accel.kind == "tcg"
    assert why in accel.reason
    assert accel.qemu_args[:2] == ["-accel", "tcg,thread=multi"]
    assert accel.libvirt_domain_type == "qemu"


def test_this_host_gives_an_answer_with_a_reason() -> None:
    # Whatever this machine has (TCG on the project's kvm_pvm sandboxes), the answer is explained.
    accel = detect()
    assert accel.kind in ("kvm", "tcg")
    assert accel.reason
    if Path("/sys/module/kvm_pvm").exists():
        assert accel.kind == "tcg"
