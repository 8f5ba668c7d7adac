"""Pieces the remote targets (docker, ssh) share: how commands are wrapped, and killed on timeout.

Every command runs with a unique ``IMAGEBUILDER_EXEC_ID`` in its environment. On timeout the
target runs a second, separate command that kills every process carrying that marker: the
variable is inherited by all descendants, including ones that start their own session or
process group, so nothing the timed-out command started keeps running. This needs only
``/proc``, ``grep`` and ``kill`` on the target, no PID bookkeeping and no pty.
"""

from __future__ import annotations

import re
import shlex
import uuid

MARKER_VAR = "IMAGEBUILDER_EXEC_ID"
STDIN_VAR = "IMAGEBUILDER_STDIN_FILE"

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# Three passes because a process may fork while the previous pass was killing its parent.
# `grep -z` reads /proc/PID/environ as NUL-separated lines; the killer itself does not carry
# the marker, so it never kills itself.
KILL_SCRIPT = r"""
m="$1=$2"
for _pass in 1 2 3; do
    found=
    for d in /proc/[0-9]*; do
        if grep -qzxF "$m" "$d/environ" 2>/dev/null; then
            kill -KILL "${d#/proc/}" 2>/dev/null && found=1
        fi
    done
    [ -n "$found" ] || break
done
"""

# Runs argv through sh so failures to start look like the local target's: a missing command or
# an unusable cwd gives 127 (docker exec would give 126 and an OCI error). When stdin was
# given it arrives as a file that is opened as stdin and removed before the command starts.
_WRAP = f"""d=$1; shift
if [ -n "$d" ]; then cd -- "$d" || exit 127; fi
f=${{{STDIN_VAR}-}}; unset {STDIN_VAR}
if [ -n "$f" ]; then exec <"$f" || exit 127; rm -f -- "$f"; fi
exec "$@"
"""


def new_exec_id() -> str:
    return uuid.uuid4().hex


def kill_argv(exec_id: str) -> list[str]:
    """The command that kills every process of the exec with this id."""
    return ["/bin/sh", "-c", KILL_SCRIPT, "sh", MARKER_VAR, exec_id]


def wrapped_argv(argv: list[str], *, cwd: str | None = None) -> list[str]:
    """argv run via /bin/sh -c in cwd; stdin comes from $IMAGEBUILDER_STDIN_FILE when set."""
    if not argv:
        raise ValueError("empty command")
    return ["/bin/sh", "-c", _WRAP, "sh", cwd or "", *argv]


def check_env(env: dict[str, str] | None) -> dict[str, str]:
    env = dict(env or {})
    for name in env:
        if not _ENV_NAME.fullmatch(name):
            raise ValueError(f"invalid environment variable name {name!r}")
    return env


def shell_command(argv: list[str], *, env: dict[str, str], cwd: str | None) -> str:
    """One sh command line running argv with env and cwd, for transports that take a string."""
    exports = "".join(f"export {name}={shlex.quote(value)}; " for name, value in env.items())
    return exports + shlex.join(wrapped_argv(argv, cwd=cwd))
