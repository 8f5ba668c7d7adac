"""ExecutePowerShell: run PowerShell commands or a .ps1 file with ``pwsh`` on the target.

Windows targets are refused by the runner; on Linux and macOS this works when PowerShell 7
(``pwsh``) is installed. Exit code 3010 (the Windows convention) and 194 request a reboot.
"""

from __future__ import annotations

from typing import Any

from components.actions._target import Shell, run_program
from components.actions.base import ActionContext, ActionFailed, ActionResult

NAME = "ExecutePowerShell"
PLATFORMS = frozenset({"Windows", "Linux", "macOS"})


def run(ctx: ActionContext, inputs: Any) -> ActionResult:
    sh = Shell(ctx, NAME)
    if not sh.has_binary("pwsh"):
        raise ActionFailed("pwsh not found on target")
    if "file" in inputs:
        script = str(inputs["file"])
    else:
        script = sh.script_path(".ps1")
        body = "\n".join(str(command) for command in inputs["commands"]) + "\n"
        ctx.target.write_file(script, body.encode(), mode=0o700)
    argv = ["pwsh", "-NoProfile", "-NonInteractive"]
    if inputs.get("executionPolicy"):
        argv += ["-ExecutionPolicy", str(inputs["executionPolicy"])]
    return ActionResult(run_program(sh, [*argv, "-File", script], reboot_codes=frozenset({194, 3010})))
