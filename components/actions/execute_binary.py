"""ExecuteBinary: run a program with arguments on the target.

The arguments go to the program as an argv list, never through a shell, so no quoting is
needed. Exit code 194 asks for a reboot (3010 on Windows), as with ExecuteBash.
"""

from __future__ import annotations

from typing import Any

from components.actions._target import Shell, run_program
from components.actions.base import ActionContext, ActionResult

NAME = "ExecuteBinary"
PLATFORMS = frozenset({"Linux", "Windows", "macOS"})


def run(ctx: ActionContext, inputs: Any) -> ActionResult:
    sh = Shell(ctx, NAME)
    argv = [str(inputs["path"]), *(_text(arg) for arg in inputs.get("arguments") or [])]
    reboot = 3010 if ctx.target.platform == "Windows" else 194
    return ActionResult(run_program(sh, argv, reboot_codes=frozenset({reboot})))


def _text(value: Any) -> str:
    # YAML turns `- true` into a bool; the program should see what the author wrote.
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
