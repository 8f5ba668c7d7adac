"""UpdateOS: install the available package updates on the target.

The package manager is detected on the target: apt-get, dnf, yum or zypper (in that order).
``include`` narrows the update to those packages, ``exclude`` keeps packages back; the set
updated is include minus exclude. apt and zypper have no exclude flag, so excluded packages
are held/locked for the update and released afterwards (only those this step held).
"""

from __future__ import annotations

from typing import Any

from components.actions._target import Shell, q
from components.actions.base import ActionContext, ActionFailed, ActionResult

NAME = "UpdateOS"
PLATFORMS = frozenset({"Linux", "Windows"})
MANAGERS = ("apt-get", "dnf", "yum", "zypper")


def run(ctx: ActionContext, inputs: Any) -> ActionResult:
    sh = Shell(ctx, NAME)
    inputs = inputs or {}
    exclude = [str(p) for p in inputs.get("exclude") or []]
    include = [str(p) for p in inputs.get("include") or [] if str(p) not in exclude]
    if inputs.get("include") and not include:
        ctx.log.info("every included package is also excluded; nothing to update")
        return ActionResult()
    manager = next((m for m in MANAGERS if sh.has_binary(m)), None)
    if manager is None:
        raise ActionFailed(f"{NAME}: no supported package manager ({', '.join(MANAGERS)}) on the target")
    ctx.log.info(f"updating with {manager}")
    sh.check(_script(manager, include, exclude), f"{manager} update failed", stream=True)
    return ActionResult()


def _words(packages: list[str]) -> str:
    return " ".join(q(p) for p in packages)


def _script(manager: str, include: list[str], exclude: list[str]) -> str:
    if manager == "apt-get":
        apt = "DEBIAN_FRONTEND=noninteractive apt-get -y -o Dpkg::Options::=--force-confold"
        if include:
            return f"apt-get update && {apt} install --only-upgrade {_words(include)}"
        if not exclude:
            return f"apt-get update && {apt} dist-upgrade"
        # Hold only what is not held already, and release exactly that, even on failure.
        return (
            f"held=$(apt-mark showhold); new=''; for p in {_words(exclude)}; do "
            'printf "%s\\n" "$held" | grep -qx -- "$p" || new="$new $p"; done; '
            '[ -z "$new" ] || apt-mark hold $new >/dev/null || exit 1; '
            f"apt-get update && {apt} dist-upgrade; rc=$?; "
            '[ -z "$new" ] || apt-mark unhold $new >/dev/null; exit $rc'
        )
    if manager in ("dnf", "yum"):
        excludes = "".join(f" --exclude={q(p)}" for p in exclude)
        return f"{manager} -y update{excludes} {_words(include)}".rstrip()
    # zypper
    zypper = "zypper --non-interactive"
    if include:
        return f"{zypper} refresh && {zypper} update {_words(include)}"
    if not exclude:
        return f"{zypper} refresh && {zypper} update"
    return (
        f"{zypper} addlock {_words(exclude)} || exit 1; "
        f"{zypper} refresh && {zypper} update; rc=$?; "
        f"{zypper} removelock {_words(exclude)}; exit $rc"
    )
