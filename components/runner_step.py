"""Run one step: its ``if``, its loop, retries (maxAttempts), timeout and the reboot protocol.

Reboot protocol (spec §9): an action raises RebootRequested (ExecuteBash exit 194, Reboot).
The runner records the pending reboot in state.json, reboots the target, clears the mark and
runs the same step again; a reboot is not a failed attempt. If the engine dies meanwhile, a
resume sees the mark, reboots again to be sure, and reruns the step.
"""

from __future__ import annotations

import shlex
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from components import conditions
from components.actions.base import ActionContext, ActionFailed, ActionModule, RebootRequested
from components.document import Document, LoopKind, Phase, Step, default_inputs
from components.errors import ExpressionError
from components.expressions import LoopFrame, Scope, substitute, to_text
from components.logs import RunLog, now_iso
from components.runner_state import FAILED, IGNORED_FAILURE, SKIPPED, SUCCESS, RunState, StepState, step_key
from components.targets.base import Target, TargetError

#: More reboots than this for one step means the step never stops asking.
MAX_REBOOTS_PER_STEP = 10


@dataclass
class StepRunner:
    state: RunState
    log: RunLog
    target: Target
    actions: Mapping[str, ActionModule]
    run_nested: Callable[[str, dict[str, str], list[str] | None], dict[str, Any]]

    def __post_init__(self) -> None:
        # Survives a reboot (not a tmpfs), so scripts and markers outlive it.
        self.work_dir = f"/var/tmp/imagebuilder-toe/{self.state.execution_id}"
        self._env: dict[str, str | None] = {}
        self._host: dict[str, str] = {}
        self._prepared = False

    def run_step(self, doc_index: int, doc: Document, phase: Phase, step: Step, variables: dict[str, str]) -> None:
        key = step_key(doc_index, phase.name, step.name)
        record = self.state.steps[key]
        record.status, record.start_time = "running", record.start_time or now_iso()
        started = time.monotonic() - record.duration_seconds
        self.log.console(f"{phase.name}/{step.name}: {step.action} started")
        step_log = self.log.step_log(doc_index, phase.name, step.name, step.disable_logging)
        try:
            self._prepare()
            if self.state.reboot_pending == key:
                self.log.console(f"{phase.name}/{step.name}: finishing the reboot this step asked for")
                self._reboot(key, 0)
            scope = self._scope(doc_index, phase, step, variables)
            if record.decision is None:
                # Not saved on its own: _attempts saves it before the action runs and Skip/Abort
                # save at the end of the step. Until then nothing has touched the target, so an
                # engine that dies in between decides the same way on resume.
                record.decision = self._decide(step, scope)
            if record.decision == "Skip":
                record.status = SKIPPED
            elif record.decision == "Abort":
                self._fail(record, step, "the step's if condition chose Abort", None)
            else:
                self._attempts(doc_index, phase, step, record, scope, step_log)
        except ExpressionError as exc:
            self._fail(record, step, str(exc), None)
        except TargetError as exc:
            self._fail(record, step, f"target {self.target.spec}: {exc}", None)
        except Exception as exc:  # a bug in an action must fail the step, not the engine
            self.log.console(traceback.format_exc())
            self._fail(record, step, f"internal error in {step.action}: {exc!r}", None)
        finally:
            step_log.close()
        record.end_time = now_iso()
        record.duration_seconds = round(time.monotonic() - started, 3)
        self.state.save(self.log.path)
        self.log.write_chaining(
            {k: {"inputs": s.inputs, "outputs": s.outputs} for k, s in self.state.steps.items() if s.status == SUCCESS}
        )
        suffix = f": {record.failure_message}" if record.failure_message else ""
        self.log.console(f"{phase.name}/{step.name}: {record.status} in {record.duration_seconds:g}s{suffix}")

    def _attempts(
        self, doc_index: int, phase: Phase, step: Step, record: StepState, scope: Scope, step_log: Any
    ) -> None:
        key = step_key(doc_index, phase.name, step.name)
        while True:
            record.attempts += 1
            self.state.save(self.log.path)
            try:
                record.inputs, record.outputs = self._attempt(phase, step, scope, step_log)
                record.status, record.failure_message, record.exit_code = SUCCESS, "", 0
                return
            except RebootRequested as req:
                record.attempts -= 1  # a reboot is not a failed attempt
                record.reboots += 1
                if record.reboots > MAX_REBOOTS_PER_STEP:
                    self._fail(record, step, f"asked for a reboot more than {MAX_REBOOTS_PER_STEP} times", None)
                    return
                self._reboot(key, req.delay_seconds)
            except ActionFailed as exc:
                if record.attempts >= step.max_attempts:
                    self._fail(record, step, str(exc), exc.exit_code)
                    return
                self.log.console(f"{phase.name}/{step.name}: attempt {record.attempts} failed ({exc}); retrying")

    def _attempt(self, phase: Phase, step: Step, scope: Scope, step_log: Any) -> tuple[Any, dict[str, Any]]:
        module = self.actions[step.action]
        # Reboot ignores timeoutSeconds; -1 means no limit (spec §4).
        limit = None if step.timeout_seconds == -1 or step.action == "Reboot" else float(step.timeout_seconds)
        deadline = None if limit is None else time.monotonic() + limit
        raw_inputs = default_inputs(step, module)
        frames = self._frames(step, scope)
        merged: dict[str, Any] = {}
        inputs: Any = None
        failures: list[str] = []
        for frame in frames:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise ActionFailed(f"timed out after {step.timeout_seconds} seconds")
            iteration_scope = Scope(scope.variables, frame, scope.steps, scope.env, scope.context)
            inputs = substitute(raw_inputs, iteration_scope)
            ctx = ActionContext(
                target=self.target,
                log=step_log,
                phase=phase.name,
                step=step.name,
                timeout=remaining,
                work_dir=self.work_dir,
                log_dir=self.log.path,
                run_document=self.run_nested,
            )
            try:
                outputs = module.run(ctx, inputs).outputs
            except ActionFailed as exc:
                if frame is None:
                    raise
                failures.append(f"[{frame.index}] {exc}")
                continue
            _merge(merged, outputs)
        if failures:
            raise ActionFailed(f"loop iterations failed: {'; '.join(failures)}")
        return inputs, merged

    def _frames(self, step: Step, scope: Scope) -> list[LoopFrame | None]:
        loop = step.loop
        if loop is None:
            return [None]
        if loop.kind is LoopKind.FOR:
            stop = loop.end + (1 if loop.update_by > 0 else -1)  # bounds are inclusive
            return [LoopFrame(loop.name, i, v) for i, v in enumerate(range(loop.start, stop, loop.update_by))]
        if loop.items is not None:
            values = [to_text(substitute(item, scope)) for item in loop.items]
        else:
            # The list is read once, when the loop starts (spec §7).
            values = to_text(substitute(loop.list_text or "", scope)).split(loop.delimiter)
        return [LoopFrame(loop.name, i, v) for i, v in enumerate(values)]

    def _decide(self, step: Step, scope: Scope) -> str:
        if step.condition is None:
            return "Execute"
        return conditions.decide(step.condition, lambda v: substitute(v, scope), conditions.Probe(self.target)).action

    def _fail(self, record: StepState, step: Step, message: str, exit_code: int | None) -> None:
        record.status = IGNORED_FAILURE if step.on_failure == "Ignore" else FAILED
        record.failure_message = message
        record.exit_code = exit_code

    def _reboot(self, key: str, delay: int) -> None:
        self.state.reboot_pending = key
        self.state.save(self.log.path)
        self.log.console(f"{key}: rebooting {self.target.spec}")
        if delay:
            time.sleep(delay)
        self.target.reboot()
        self.state.reboot_pending = None
        self._prepared = False
        self.state.save(self.log.path)
        self.log.console(f"{key}: {self.target.spec} is back; running the step again")

    def _prepare(self) -> None:
        if not self._prepared:
            result = self.target.exec(["mkdir", "-p", self.work_dir], timeout=60)
            if result.exit_code != 0:
                raise TargetError(f"cannot create {self.work_dir}: {result.stderr.decode(errors='replace').strip()}")
            self._prepared = True

    def _scope(self, doc_index: int, phase: Phase, step: Step, variables: dict[str, str]) -> Scope:
        prefix = f"{doc_index}/"
        steps = {}
        for key, record in self.state.steps.items():
            if key.startswith(prefix) and record.status in (SUCCESS, FAILED, IGNORED_FAILURE):
                _, phase_name, step_name = key.split("/", 2)
                steps[(phase_name, step_name)] = {"inputs": record.inputs, "outputs": record.outputs}
        context = {
            "executionId": self.state.execution_id,
            "phase": phase.name,
            "step": step.name,
            "osPlatform": self.target.platform,
            "date": now_iso()[:10],
            "dateTime": now_iso(),
            "uuid": str(uuid.uuid4()),
            **self._host_facts(),
        }
        return Scope(variables=variables, steps=steps, env=self._env_var, context=context)

    def _env_var(self, name: str) -> str | None:
        if name not in self._env:
            result = self.target.exec(["sh", "-c", f"printenv {shlex.quote(name)}"], timeout=60)
            self._env[name] = result.stdout.decode(errors="replace").rstrip("\n") if result.exit_code == 0 else None
        return self._env[name]

    def _host_facts(self) -> dict[str, str]:
        if not self._host:
            script = '. /etc/os-release 2>/dev/null; printf "%s\\n%s\\n%s\\n" "$(hostname)" "$ID" "$VERSION_ID"'
            result = self.target.exec(["sh", "-c", script], timeout=60)
            lines = [*result.stdout.decode(errors="replace").splitlines(), "", "", ""][:3]
            self._host = {"hostname": lines[0], "osName": lines[1], "osVersion": lines[2]}
        return self._host


def _merge(merged: dict[str, Any], outputs: Mapping[str, Any]) -> None:
    """Loop iterations' outputs merge per key; strings join with newlines (spec §7)."""
    for k, v in outputs.items():
        if k not in merged:
            merged[k] = v
        elif isinstance(merged[k], str) and isinstance(v, str):
            merged[k] = f"{merged[k]}\n{v}"
        elif isinstance(merged[k], list) and isinstance(v, list):
            merged[k] = merged[k] + v
        else:
            merged[k] = v
