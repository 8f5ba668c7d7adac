"""InstallMSI: Windows only.

Kept so that Windows documents validate here (the schema sits beside this module); the runner
refuses Windows-only actions on other targets and run() says so too.
"""

from __future__ import annotations

from typing import Any

from components.actions.base import ActionContext, ActionFailed, ActionResult

NAME = "InstallMSI"
PLATFORMS = frozenset({"Windows"})


def run(ctx: ActionContext, inputs: Any) -> ActionResult:
    raise ActionFailed(f"{NAME} runs only on Windows targets")
