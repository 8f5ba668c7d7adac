"""ExecutePowerShell: run PowerShell commands or a .ps1 file with ``pwsh`` on the target.

Windows targets are refused by the runner; on Linux and macOS this works when PowerShell 7
(``pwsh``) is installed. Exit code 3010 (the Windows convention) and 194 request a reboot.
"""

from __future__ import annotations

from typing import Any

from components.actions._target import Shell, run_program, with_script
from components.actions.base import ActionContext, ActionFailed, ActionResult
from components.expressions import to_text

NAME = "ExecutePowerShell"
PLATFORMS = frozenset({"Windows", "Linux", "macOS"})


def run(ctx: ActionContext, inputs: Any) -> ActionResult:
    sh = Shell(ctx, NAME)
    if not sh.has_binary("pwsh"):
        raise ActionFailed("pwsh not found on target")
    argv = ["pwsh", "-NoProfile", "-NonInteractive"]
    if inputs.get("executionPolicy"):
        argv += ["-ExecutionPolicy", str(inputs["executionPolicy"])]
    if "file" in inputs:
        argv += ["-File", str(inputs["file"])]
    else:
        script = sh.script_path(".ps1")
        # to_text: a YAML `true` item is the command `true`, not Python's "True".
        body = "\n".join(to_text(command) for command in inputs["commands"]) + "\n"
        argv = with_script(sh, script, body, [*argv, "-File", script])
    return ActionResult(run_program(sh, argv, reboot_codes=frozenset({194, 3010})))
