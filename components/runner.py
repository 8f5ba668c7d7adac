"""Run component documents on a target (spec §3-§9): the public entry points.

``run(RunRequest, target)`` runs the documents' phases in document order (``phases`` only
filters), steps in order, and returns a ``RunSummary``; everything else is in the run's log
folder (logs.py). Step mechanics (conditions, loops, retries, reboots) are in runner_step.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from components.actions.base import ActionModule, registry
from components.document import Document, load_document
from components.errors import RunError, ToeError
from components.logs import RunLog, find_run_dir, now_iso, run_dir_name
from components.runner_report import RunSummary, detailed_output, summarize
from components.runner_state import FAILED, RunState, StepState, step_key
from components.runner_step import StepRunner
from components.targets.base import Target

#: ExecuteDocument may nest this many levels below the top document (4 documents in all).
MAX_NESTING = 3


@dataclass(frozen=True)
class DocumentInput:
    """One document to run and the parameters meant for it alone (config-file form)."""

    path: Path
    parameters: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RunRequest:
    documents: tuple[DocumentInput, ...]
    log_directory: Path
    #: Phase names to run; None runs all. Order here has no effect: document order wins.
    phases: tuple[str, ...] | None = None
    #: Parameters for every document; names a document does not declare are ignored.
    parameters: Mapping[str, str] = field(default_factory=dict)
    #: Reusing an execution id with the same log directory resumes that run.
    execution_id: str | None = None
    #: Documents of the ExecuteDocument chain above this run (cycle and depth checks).
    parents: tuple[Path, ...] = ()


def run_document(
    documents: Sequence[str | Path],
    *,
    target: Target,
    log_directory: str | Path,
    parameters: Mapping[str, str] | None = None,
    phases: Sequence[str] | None = None,
    execution_id: str | None = None,
) -> RunSummary:
    """Convenience form of ``run`` for the common case of paths and global parameters."""
    request = RunRequest(
        documents=tuple(DocumentInput(Path(d)) for d in documents),
        log_directory=Path(log_directory),
        phases=tuple(phases) if phases is not None else None,
        parameters=dict(parameters or {}),
        execution_id=execution_id,
    )
    return run(request, target)


def resolve_variables(doc: Document, overrides: Mapping[str, str]) -> dict[str, str]:
    """Constants, then parameter defaults, then caller values (spec §2)."""
    values = {c.name: c.value for c in doc.constants}
    for p in doc.parameters:
        value = overrides.get(p.name, p.default)
        if p.name in overrides and overrides[p.name] == "":
            raise RunError(f"{doc.label}: parameter '{p.name}' was given an empty value")
        if value is None:
            raise RunError(
                f"{doc.label}: parameter '{p.name}' has no default; pass a value (--parameters {p.name}=...)"
            )
        values[p.name] = value
    return values


def run(request: RunRequest, target: Target, actions: Mapping[str, ActionModule] | None = None) -> RunSummary:
    """Validate, then run (or resume) the request. Raises DocumentInvalid / RunError before any step runs."""
    actions = registry() if actions is None else actions
    docs = [load_document(d.path, actions) for d in request.documents]
    variables = [
        resolve_variables(doc, {**request.parameters, **d.parameters})
        for doc, d in zip(docs, request.documents, strict=True)
    ]
    _refuse_foreign_platforms(docs, request.phases, actions, target)

    execution_id = request.execution_id or str(uuid.uuid4())
    request.log_directory.mkdir(parents=True, exist_ok=True)
    folder = find_run_dir(request.log_directory, execution_id)
    if folder is not None:
        state = RunState.load(folder)
        if state.documents != [str(d.path.resolve()) for d in request.documents]:
            raise RunError(f"execution {execution_id} in {folder} ran other documents; use a new execution id")
    else:
        folder = request.log_directory / run_dir_name(execution_id, datetime.now(UTC))
        state = RunState(
            execution_id=execution_id,
            start_time=now_iso(),
            documents=[str(d.path.resolve()) for d in request.documents],
            phases=list(request.phases) if request.phases is not None else None,
        )
    log = RunLog(folder)
    try:
        if not state.finished:
            _execute(request, docs, variables, state, log, target, actions)
        report = detailed_output(state, docs, request.phases, log.path)
        detail_path = log.write_detailed_output(report)
    finally:
        log.close()
    return summarize(state, docs, report, log.path, detail_path)


def _refuse_foreign_platforms(
    docs: list[Document], phases: tuple[str, ...] | None, actions: Mapping[str, ActionModule], target: Target
) -> None:
    for doc in docs:
        for phase in doc.phases:
            if phases is not None and phase.name not in phases:
                continue
            for step in phase.steps:
                module = actions[step.action]
                if target.platform not in module.platforms:
                    raise RunError(
                        f"{doc.label}: step '{step.name}' (phase {phase.name}): action '{step.action}' runs on "
                        f"{', '.join(sorted(module.platforms))} only; target {target.spec} is {target.platform}"
                    )


def _execute(
    request: RunRequest,
    docs: list[Document],
    variables: list[dict[str, str]],
    state: RunState,
    log: RunLog,
    target: Target,
    actions: Mapping[str, ActionModule],
) -> None:
    resumed = bool(state.steps)
    log.console(f"execution {state.execution_id} {'resumed' if resumed else 'started'} on {target.spec}")
    for index, doc in enumerate(docs):
        log.save_document(index, doc.path, doc.text)
    for index, doc in enumerate(docs):
        for phase in doc.phases:
            for step in phase.steps:
                state.steps.setdefault(step_key(index, phase.name, step.name), StepState(action=step.action))
    state.save(log.path)

    def nested(document: str, parameters: dict[str, str], phases: list[str] | None) -> dict[str, Any]:
        return _run_nested(request, docs, state, log, target, actions, document, parameters, phases)

    stepper = StepRunner(state=state, log=log, target=target, actions=actions, run_nested=nested)
    aborted = False
    for index, doc in enumerate(docs):
        for phase in doc.phases:
            if aborted or (request.phases is not None and phase.name not in request.phases):
                continue
            for step in phase.steps:
                key = step_key(index, phase.name, step.name)
                if state.steps[key].finished:
                    continue
                stepper.run_step(index, doc, phase, step, variables[index])
                if state.steps[key].status == FAILED and step.on_failure == "Abort":
                    state.failure_message = state.steps[key].failure_message
                    aborted = True
                    break
            log.write_detailed_output(detailed_output(state, docs, request.phases, log.path))
    state.end_time = now_iso()
    state.status = detailed_output(state, docs, request.phases, log.path)["status"]
    if state.status == FAILED and not state.failure_message:
        state.failure_message = next(
            (s.failure_message for s in state.steps.values() if s.status == FAILED), "a step failed"
        )
    state.save(log.path)
    log.console(f"execution {state.execution_id} finished: {state.status}")


def _run_nested(
    request: RunRequest,
    docs: list[Document],
    state: RunState,
    log: RunLog,
    target: Target,
    actions: Mapping[str, ActionModule],
    document: str,
    parameters: dict[str, str],
    phases: list[str] | None,
) -> dict[str, Any]:
    """ExecuteDocument: run another document on the same target, below this run's folder."""
    from components.actions.base import ActionFailed

    here = docs[0].path.parent if docs and docs[0].path else Path.cwd()
    path = Path(document) if Path(document).is_absolute() or not (here / document).exists() else here / document
    chain = (*request.parents, *(d.path for d in docs if d.path))
    if len(request.parents) >= MAX_NESTING:
        raise ActionFailed(f"ExecuteDocument nests at most {MAX_NESTING} levels deep")
    if path.resolve() in chain:
        raise ActionFailed(f"ExecuteDocument cycle: {path} is already running in this chain")
    # A deterministic id: if this step is rerun after a reboot, the nested run resumes too.
    nested_id = str(
        uuid.uuid5(uuid.NAMESPACE_URL, f"{state.execution_id}/{path.resolve()}/{sorted(parameters.items())}")
    )
    try:
        summary = run(
            RunRequest(
                documents=(DocumentInput(path, parameters),),
                log_directory=log.path / "nested",
                phases=tuple(phases) if phases else None,
                execution_id=nested_id,
                parents=chain,
            ),
            target,
            actions,
        )
    except ToeError as exc:
        raise ActionFailed(f"ExecuteDocument {document}: {exc}") from None
    return {**summary.outputs(), "detailedOutput": str(summary.detailed_output)}
