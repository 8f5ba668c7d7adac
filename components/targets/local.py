"""The local target: commands run on the host that runs the engine (only when asked for)."""

from __future__ import annotations

import contextlib
import os
import selectors
import subprocess
import time
from pathlib import Path

from components.targets.base import ExecResult, OutputSink, Target, TargetError


class LocalTarget(Target):
    spec = "local"
    local_files = True

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
        full_env = {**os.environ, **(env or {})}
        try:
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=full_env,
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # so a timeout kills the whole process group
            )
        except OSError as exc:
            return ExecResult(127, b"", f"{argv[0]}: {exc.strerror}\n".encode())
        if stdin is not None and proc.stdin is not None:
            try:
                proc.stdin.write(stdin)
                proc.stdin.close()
            except BrokenPipeError:
                pass
        out, err = bytearray(), bytearray()
        sinks = {proc.stdout: (out, on_stdout), proc.stderr: (err, on_stderr)}
        deadline = None if timeout is None else time.monotonic() + timeout
        timed_out = False
        with selectors.DefaultSelector() as sel:
            for stream in sinks:
                assert stream is not None
                sel.register(stream, selectors.EVENT_READ)
            while sel.get_map():
                wait = None if deadline is None else deadline - time.monotonic()
                if wait is not None and wait <= 0:
                    timed_out = True
                    break
                for key, _ in sel.select(wait):
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        sel.unregister(key.fileobj)
                        continue
                    buf, sink = sinks[key.fileobj]  # type: ignore[index]
                    buf += chunk
                    if sink:
                        sink(chunk)
        if timed_out:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            proc.wait()
            return ExecResult(-1, bytes(out), bytes(err), timed_out=True)
        return ExecResult(proc.wait(), bytes(out), bytes(err))

    def write_file(self, path: str, data: bytes, mode: int | None = None) -> None:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        if mode is not None:
            p.chmod(mode)

    def read_file(self, path: str) -> bytes:
        return Path(path).read_bytes()

    def reboot(self, timeout: float = 600) -> None:
        # Rebooting the engine's own host would end the run; refuse clearly.
        raise TargetError("the local target cannot reboot; run documents that reboot on a docker: or ssh: target")
