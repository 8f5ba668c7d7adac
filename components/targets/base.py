"""The one interface every place a document can run on implements.

A target is where component documents execute: the local host, a Docker container or an SSH
host. Actions never touch the host that runs the engine directly; they go through a Target,
so the same action code works on all three. Everything an action needs is expressed as
"run this command" plus "move these bytes"; file actions build shell commands from that.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass

OutputSink = Callable[[bytes], None]


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: bytes
    stderr: bytes
    timed_out: bool = False


class TargetError(Exception):
    """The target itself failed (unreachable, container gone); not the command's fault."""


class Target(abc.ABC):
    """Where documents run. Implementations: local, docker, ssh."""

    #: How the target is named on the command line, e.g. ``docker:3f2a`` or ``ssh:root@h:22``.
    spec: str
    #: The target's platform as documents name it: ``Linux``, ``Windows`` or ``macOS``.
    platform: str = "Linux"
    #: True when write_file is a plain write on the engine's own disk, cheaper than an exec;
    #: actions then write scripts first instead of sending them inside the command.
    local_files: bool = False

    @abc.abstractmethod
    def exec(
        self,
        argv: list[str],
        *,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        timeout: float | None = None,
        stdin: bytes | None = None,
        on_stdout: OutputSink | None = None,
        on_stderr: OutputSink | None = None,
    ) -> ExecResult:
        """Run argv on the target, streaming output to the sinks as it arrives.

        On timeout the command is killed and ``timed_out`` is set; the exit code is then -1.
        """

    @abc.abstractmethod
    def write_file(self, path: str, data: bytes, mode: int | None = None) -> None:
        """Create or replace a file on the target with the given bytes, creating missing parent folders."""

    @abc.abstractmethod
    def read_file(self, path: str) -> bytes:
        """Read a whole file from the target. Raises FileNotFoundError if it is absent."""

    @abc.abstractmethod
    def reboot(self, timeout: float = 600) -> None:
        """Reboot the target and return once it accepts commands again."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. Idempotent."""

    def __enter__(self) -> Target:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
