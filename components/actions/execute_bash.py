"""ExecuteBash: run shell commands with bash on the target.

The commands are joined into one script under the run's work dir and run with ``bash``, so a
``cd`` or variable in one command carries over to the next (as in awstoe's ``input.sh``).
Exit code 194 asks for a reboot, after which the runner reruns this step.
"""

from __future__ import annotations

from typing import Any

from components.actions._target import Shell, run_program, with_script
from components.actions.base import ActionContext, ActionResult
from components.expressions import to_text

NAME = "ExecuteBash"
PLATFORMS = frozenset({"Linux", "macOS"})
REBOOT_EXIT_CODE = 194


def run(ctx: ActionContext, inputs: Any) -> ActionResult:
    sh = Shell(ctx, NAME)
    script = sh.script_path(".sh")
    # to_text: a YAML `true` item is the command `true`, not Python's "True".
    body = "\n".join(to_text(command) for command in inputs["commands"]) + "\n"
    argv = with_script(sh, script, body, ["bash", script])
    return ActionResult(run_program(sh, argv, reboot_codes=frozenset({REBOOT_EXIT_CODE})))
