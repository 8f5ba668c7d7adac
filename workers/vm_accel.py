"""Which QEMU accelerator a host can really use: KVM when the CPU virtualizes, else TCG.

`/dev/kvm` alone proves nothing: some sandboxes expose it through kvm_pvm (KVM on a
paravirtualized host without VT-x/AMD-V), where stock guest kernels crash or hang. So KVM is
chosen only when the CPU advertises vmx or svm and the loaded KVM is not kvm_pvm; anything else
falls back to TCG (software emulation, slow but correct) with the reason, so logs say why.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal


@dataclass(frozen=True)
class Accel:
    kind: Literal["kvm", "tcg"]
    reason: str

    @property
    def qemu_args(self) -> list[str]:
        """QEMU's -accel/-cpu for this accelerator (TCG's `max` has every feature it emulates)."""
        if self.kind == "kvm":
            return ["-accel", "kvm", "-cpu", "host"]
        return ["-accel", "tcg,thread=multi", "-cpu", "max"]

    @property
    def libvirt_domain_type(self) -> str:
        return "kvm" if self.kind == "kvm" else "qemu"


def detect(root: Path = Path("/")) -> Accel:
    """Decide from `root`'s /dev, /proc and /sys (a directory tree in tests, the host otherwise)."""
    dev_kvm = root / "dev" / "kvm"
    if not dev_kvm.exists():
        return Accel("tcg", "/dev/kvm does not exist")
    if root == Path("/") and not os.access(dev_kvm, os.R_OK | os.W_OK):
        return Accel("tcg", "/dev/kvm is not readable and writable by this user")
    try:
        cpuinfo = (root / "proc" / "cpuinfo").read_text()
    except OSError as exc:
        return Accel("tcg", f"cannot read /proc/cpuinfo: {exc}")
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            flags.update(value.split())
    if not flags & {"vmx", "svm"}:
        return Accel("tcg", "the CPU advertises neither vmx nor svm (no hardware virtualization)")
    if _kvm_pvm_loaded(root):
        return Accel("tcg", "KVM is kvm_pvm (paravirtualized), on which stock guest kernels crash or hang")
    return Accel("kvm", "/dev/kvm is usable, the CPU has " + ("vmx" if "vmx" in flags else "svm"))


def _kvm_pvm_loaded(root: Path) -> bool:
    # /sys/module lists built-in modules too; /proc/modules (absent in some sandboxes) only loadables.
    if (root / "sys" / "module" / "kvm_pvm").exists():
        return True
    try:
        modules = (root / "proc" / "modules").read_text()
    except OSError:
        return False
    return any(line.split(maxsplit=1)[0] == "kvm_pvm" for line in modules.splitlines() if line.strip())
