"""Reboot: reboot the target, then carry on with the next step.

The runner reboots on RebootRequested and reruns the step. So that the rerun finishes the step
instead of rebooting again, the first run leaves a marker file in the run's work dir on the
target; the rerun finds it, removes it and succeeds. (The work dir must survive a reboot,
which is why it lives on the target's disk rather than in a tmpfs.)
"""

from __future__ import annotations

import posixpath
import re
from typing import Any

from components.actions._target import Shell, q
from components.actions.base import ActionContext, ActionResult, RebootRequested

NAME = "Reboot"
PLATFORMS = frozenset({"Linux", "Windows", "macOS"})


def run(ctx: ActionContext, inputs: Any) -> ActionResult:
    sh = Shell(ctx, NAME)
    delay = int((inputs or {}).get("delaySeconds") or 0)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{ctx.phase}-{ctx.step}")
    marker = posixpath.join(ctx.work_dir, f".rebooted-{safe}")
    if sh.test("-e", marker):
        sh.check(f"rm -f -- {q(marker)}", "cannot remove the reboot marker")
        ctx.log.info("rebooted; step complete")
        return ActionResult()
    sh.check(f"mkdir -p -- {q(ctx.work_dir)} && : > {q(marker)}", "cannot write the reboot marker")
    ctx.log.info(f"reboot requested (delay {delay} s)")
    raise RebootRequested(delay_seconds=delay)
