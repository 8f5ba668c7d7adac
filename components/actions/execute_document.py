"""ExecuteDocument: run another component document on the same target.

The runner does the work through ``ctx.run_document`` (it owns parsing, nesting limits and
cycle detection); this module turns the inputs into that call and a failed nested run into
a failed step. The step's outputs are the nested run's summary.
"""

from __future__ import annotations

from typing import Any

from components.actions.base import ActionContext, ActionFailed, ActionResult

NAME = "ExecuteDocument"
PLATFORMS = frozenset({"Linux", "Windows", "macOS"})


def run(ctx: ActionContext, inputs: Any) -> ActionResult:
    if ctx.run_document is None:
        raise ActionFailed(f"{NAME} is not available in this run")
    document = str(inputs["document"])
    parameters = {str(p["name"]): _text(p["value"]) for p in inputs.get("parameters") or []}
    phases_text = str(inputs.get("phases") or "")
    phases = [p.strip() for p in phases_text.split(",") if p.strip()] or None
    ctx.log.info(f"running document {document}" + (f" (phases {','.join(phases)})" if phases else ""))
    outputs = ctx.run_document(document, parameters, phases)
    status = str(outputs.get("status", "")).lower()
    if status == "failed":
        message = outputs.get("failureMessage") or "the nested document failed"
        raise ActionFailed(f"{NAME} {document}: {message}")
    return ActionResult(outputs)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
