"""Assert: the inputs are one comparison or logical expression; false fails the step.

The expression language is the one step ``if`` conditions use (``components.conditions``);
``{{ }}`` references in it were already resolved by the runner, and file operators such as
``fileExists`` are answered on the target.
"""

from __future__ import annotations

import json
from typing import Any

from components.actions.base import ActionContext, ActionFailed, ActionResult
from components.conditions import Probe, check, evaluate

NAME = "Assert"
PLATFORMS = frozenset({"Linux", "Windows", "macOS"})


def run(ctx: ActionContext, inputs: Any) -> ActionResult:
    problems = check(inputs)
    if problems:
        raise ActionFailed(f"{NAME}: invalid expression: {'; '.join(problems)}")
    if not evaluate(inputs, lambda value: value, Probe(ctx.target)):
        raise ActionFailed(f"{NAME} failed: {json.dumps(inputs, sort_keys=True, default=str)} is false")
    ctx.log.info("assertion holds")
    return ActionResult()
