"""Helpers the action modules share: run commands on the target, quote paths, read inputs.

Everything here goes through ``ctx.target`` so the same action works on the local host, in a
container or over SSH. File actions build POSIX ``sh`` + coreutils commands (the target is not
assumed to have Python); every value that reaches a shell is passed through ``shlex.quote``.
"""

from __future__ import annotations

import posixpath
import re
import shlex
import time
from typing import Any

from components.actions.base import ActionContext, ActionFailed, RebootRequested
from components.targets.base import ExecResult

#: How many trailing stderr lines a failure message quotes.
TAIL_LINES = 10

q = shlex.quote


def tail(data: bytes, lines: int = TAIL_LINES) -> str:
    text = data.decode("utf-8", "replace").rstrip()
    return "\n".join(text.splitlines()[-lines:])


def entries(inputs: Any) -> list[dict[str, Any]]:
    """List-form inputs (one operation per item); a single mapping counts as a list of one."""
    if isinstance(inputs, dict):
        return [inputs]
    return list(inputs or [])


def flag(value: Any, default: bool) -> bool:
    """A boolean input; parameters are strings, so ``'true'``/``'false'`` count too."""
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def mode(value: Any) -> str:
    """A permission input as an octal string for chmod.

    Strings are octal (``'0755'``). Integers are taken as the numeric mode: YAML 1.1 reads an
    unquoted ``0700`` as octal 448, which is what real documents mean by it.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return format(value, "o")
    text = str(value).strip()
    if not re.fullmatch(r"[0-7]{1,4}", text):
        raise ActionFailed(f"invalid permissions {value!r}: expected an octal mode such as '0755'")
    return text


def glob_expr(path: str) -> str:
    """Quote a path for sh, leaving ``*`` (allowed in the last segment only) to the shell."""
    folder, name = posixpath.split(path)
    pattern = "*".join(q(part) if part else "" for part in name.split("*"))
    if folder:
        return f"{q(folder)}/{pattern}"
    return pattern


class Shell:
    """Runs commands for one action on its target, keeping to the step's time budget."""

    def __init__(self, ctx: ActionContext, action: str) -> None:
        self.ctx = ctx
        self.action = action
        # One deadline for the whole step, however many commands the action runs.
        self._deadline = None if ctx.timeout is None else time.monotonic() + ctx.timeout

    def remaining(self) -> float | None:
        if self._deadline is None:
            return None
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise self.timed_out()
        return left

    def timed_out(self) -> ActionFailed:
        return ActionFailed(f"{self.action} timed out after {self.ctx.timeout:g} seconds")

    def exec(
        self,
        argv: list[str],
        *,
        stdin: bytes | None = None,
        stream: bool = False,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ) -> ExecResult:
        """Run argv; output goes to the step log when ``stream``. Raises only on timeout."""
        result = self.ctx.target.exec(
            argv,
            env=env,
            cwd=cwd,
            timeout=self.remaining(),
            stdin=stdin,
            on_stdout=self.ctx.log.stdout if stream else None,
            on_stderr=self.ctx.log.stderr if stream else None,
        )
        if result.timed_out:
            raise self.timed_out()
        return result

    def sh(self, script: str, *, stdin: bytes | None = None, stream: bool = False) -> ExecResult:
        return self.exec(["sh", "-c", script], stdin=stdin, stream=stream)

    def check(self, script: str, what: str, *, stdin: bytes | None = None, stream: bool = False) -> ExecResult:
        """Run a sh script; a non-zero exit fails the action with ``what`` and the stderr tail."""
        result = self.sh(script, stdin=stdin, stream=stream)
        if result.exit_code != 0:
            detail = tail(result.stderr) or tail(result.stdout) or f"exit code {result.exit_code}"
            raise ActionFailed(f"{self.action}: {what}: {detail}", exit_code=result.exit_code)
        return result

    def test(self, op: str, path: str) -> bool:
        """``test <op> path`` on the target, e.g. ``-d`` for a folder."""
        return self.exec(["test", op, path]).exit_code == 0

    def has_binary(self, name: str) -> bool:
        return self.sh(f"command -v {q(name)} >/dev/null 2>&1").exit_code == 0

    def script_path(self, suffix: str) -> str:
        """A fresh file name under the run's work dir for a script.

        Nothing is run here: Target.write_file creates the folder if it is missing (a mkdir per
        step was a whole extra process or round trip on every ExecuteBash step).
        """
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{self.ctx.phase}-{self.ctx.step}")
        return posixpath.join(self.ctx.work_dir, f"{safe}-{time.time_ns()}{suffix}")


#: Largest script (after quoting for sh) sent inside the command line; Linux caps one argument
#: at 128 KiB, and over SSH the whole command line is one argument of the login shell.
INLINE_SCRIPT_LIMIT = 64 * 1024

# Writes $2 to $1 (mode 700, never readable by others even for a moment: scripts may hold
# secrets), restores the umask, then execs the rest of argv, as write_file + exec would.
_WRITE_THEN_EXEC = (
    'u=$(umask); umask 077; mkdir -p -- "$(dirname -- "$1")" && printf %s "$2" >"$1" && chmod 700 -- "$1" '
    '|| exit 127; umask "$u"; shift 2; exec "$@"'
)


def with_script(sh: Shell, path: str, body: str, argv: list[str]) -> list[str]:
    """Put ``body`` at ``path`` (mode 700) on the target; returns the argv that then runs ``argv``.

    On remote targets a separate write costs one or two round trips (docker put_archive, SFTP)
    on top of the exec, so a small script travels inside the command that runs it: one exec
    per step instead of three. Big scripts, or ones with NUL bytes, are written first.
    """
    if sh.ctx.target.local_files or "\0" in body or len(q(body)) > INLINE_SCRIPT_LIMIT:
        sh.ctx.target.write_file(path, body.encode(), mode=0o700)
        return argv
    return ["sh", "-c", _WRITE_THEN_EXEC, "sh", path, body, *argv]


def run_program(sh: Shell, argv: list[str], *, reboot_codes: frozenset[int]) -> dict[str, Any]:
    """Run a program streaming its output; shared by ExecuteBash, ExecuteBinary, ExecutePowerShell.

    Returns the step outputs (``stdout``); raises RebootRequested on a reboot exit code and
    ActionFailed on any other non-zero exit.
    """
    result = sh.exec(argv, stream=True)
    if result.exit_code in reboot_codes:
        raise RebootRequested()
    if result.exit_code != 0:
        message = f"{sh.action} failed with exit code {result.exit_code}"
        if result.stderr.strip():
            message += f"; last stderr lines:\n{tail(result.stderr)}"
        raise ActionFailed(message, exit_code=result.exit_code)
    # awstoe's stdout output drops the trailing newline (loop merging joins values with "\n").
    return {"stdout": result.stdout.decode("utf-8", "replace").rstrip("\n")}
