"""The docker target: commands run in a running container through the Docker engine API.

Commands are docker execs whose output is streamed as the engine multiplexes it (stdout and
stderr frames in the order they were written). Files move as tar archives (put_archive /
get_archive), so they are binary-safe and need nothing in the container. A reboot is a
container restart: the root filesystem survives it, like a disk survives a machine reboot.
"""

from __future__ import annotations

import contextlib
import io
import posixpath
import queue
import tarfile
import threading
import time
from collections.abc import Iterator

import docker
import docker.errors
from docker.models.containers import Container

from components.targets import _remote
from components.targets.base import ExecResult, OutputSink, Target, TargetError

#: How long to wait for a killed command's stream to end before giving up on it.
_DRAIN_AFTER_KILL = 5.0
_SYMLINK_HOPS = 8

_Frame = tuple[bytes | None, bytes | None]


class DockerTarget(Target):
    def __init__(
        self,
        container: str,
        *,
        client: docker.DockerClient | None = None,
        user: str | None = None,
        stop_timeout: int = 10,
    ) -> None:
        """container: id or name. user: run execs as this user (default: the image's).

        stop_timeout: seconds a reboot gives the container's processes to stop before SIGKILL.
        """
        self.container_ref = container
        self.spec = f"docker:{container}"
        self.user = user
        self.stop_timeout = stop_timeout
        self._own_client = client is None
        self._client = client if client is not None else docker.from_env()

    # --- exec ---------------------------------------------------------------------------------

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
        deadline = None if timeout is None else time.monotonic() + timeout
        exec_id = _remote.new_exec_id()
        full_env = {**_remote.check_env(env), _remote.MARKER_VAR: exec_id}
        if stdin is not None:
            # docker exec stdin needs a hijacked bidirectional socket; a file is simpler and
            # the wrapper removes it before the command starts.
            stdin_path = f"/tmp/.imagebuilder-stdin-{exec_id}"
            self._put(stdin_path, stdin, 0o600)
            full_env[_remote.STDIN_VAR] = stdin_path
        api = self._client.api
        with self._errors():
            created = api.exec_create(
                self.container_ref,
                _remote.wrapped_argv(argv, cwd=cwd),
                stdout=True,
                stderr=True,
                environment=full_env,
                user=self.user or "",
            )
            frames = api.exec_start(created["Id"], stream=True, demux=True)

        out, err = bytearray(), bytearray()
        # The SDK's stream is a blocking generator; a reader thread lets us keep a deadline.
        chunks: queue.Queue[_Frame | BaseException | None] = queue.Queue()
        reader = threading.Thread(target=_pump, args=(frames, chunks), daemon=True)
        reader.start()
        timed_out = False
        drain_until: float | None = None
        while True:
            limit = drain_until if timed_out else deadline
            wait = None if limit is None else limit - time.monotonic()
            if wait is not None and wait <= 0:
                if timed_out:
                    break  # the stream did not end after the kill; leave the reader behind
                timed_out = True
                self._kill(exec_id)
                drain_until = time.monotonic() + _DRAIN_AFTER_KILL
                continue
            try:
                item = chunks.get(timeout=wait)
            except queue.Empty:
                continue
            if item is None:
                break
            if isinstance(item, BaseException):
                raise TargetError(f"{self.spec}: exec stream failed: {item}") from item
            stdout_chunk, stderr_chunk = item
            if stdout_chunk:
                out += stdout_chunk
                if on_stdout:
                    on_stdout(stdout_chunk)
            if stderr_chunk:
                err += stderr_chunk
                if on_stderr:
                    on_stderr(stderr_chunk)
        if timed_out:
            return ExecResult(-1, bytes(out), bytes(err), timed_out=True)
        return ExecResult(self._exit_code(created["Id"]), bytes(out), bytes(err))

    def _exit_code(self, exec_id: str) -> int:
        # The stream can end a moment before the engine records the exit code.
        for _ in range(100):
            with self._errors():
                info = self._client.api.exec_inspect(exec_id)
            if not info["Running"] and info["ExitCode"] is not None:
                return int(info["ExitCode"])
            time.sleep(0.05)
        raise TargetError(f"{self.spec}: exec {exec_id} ended but reports no exit code")

    def _kill(self, exec_id: str) -> None:
        with self._errors():
            created = self._client.api.exec_create(self.container_ref, _remote.kill_argv(exec_id), user="root")
            self._client.api.exec_start(created["Id"])

    # --- files --------------------------------------------------------------------------------

    def write_file(self, path: str, data: bytes, mode: int | None = None) -> None:
        if mode is None:
            # Replacing a file keeps its mode, as open(path, "w") does on the other targets.
            probe = self.exec(
                ["sh", "-c", 'mkdir -p -- "$(dirname -- "$1")" && { stat -c %a -- "$1" 2>/dev/null || :; }',
                 "sh", path]
            )
            if probe.exit_code != 0:
                raise OSError(f"{self.spec}: cannot create the folder of {path}: {probe.stderr.decode().strip()}")
            existing = probe.stdout.strip()
            mode = int(existing, 8) if existing else 0o644
        else:
            made = self.exec(["mkdir", "-p", "--", posixpath.dirname(path) or "/"])
            if made.exit_code != 0:
                raise OSError(f"{self.spec}: cannot create the folder of {path}: {made.stderr.decode().strip()}")
        self._put(path, data, mode)

    def _put(self, path: str, data: bytes, mode: int) -> None:
        folder, name = posixpath.split(posixpath.normpath(path))
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = mode
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(data))
        with self._errors():
            if not self._client.api.put_archive(self.container_ref, folder or "/", buf.getvalue()):
                raise TargetError(f"{self.spec}: the engine refused to write {path}")

    def read_file(self, path: str) -> bytes:
        for _ in range(_SYMLINK_HOPS):
            try:
                with self._errors():
                    stream, _stat = self._client.api.get_archive(self.container_ref, path)
                    raw = b"".join(stream)
            except TargetError as exc:
                if isinstance(exc.__cause__, docker.errors.NotFound) and self._running():
                    raise FileNotFoundError(2, "No such file or directory", path) from None
                raise
            with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
                member = tar.next()
                if member is None:
                    raise FileNotFoundError(2, "No such file or directory", path)
                if member.isdir():
                    raise IsADirectoryError(21, "Is a directory", path)
                if member.issym():
                    path = posixpath.join(posixpath.dirname(path), member.linkname)
                    continue
                extracted = tar.extractfile(member)
                if extracted is None:
                    raise OSError(f"{self.spec}: {path} is not a regular file")
                return extracted.read()
        raise OSError(f"{self.spec}: too many levels of symbolic links: {path}")

    # --- lifecycle ----------------------------------------------------------------------------

    def reboot(self, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        with self._errors():
            self._container().restart(timeout=self.stop_timeout)
        while True:
            try:
                if self.exec(["true"], timeout=5).exit_code == 0:
                    return
            except TargetError:
                pass  # still starting
            if time.monotonic() > deadline:
                raise TargetError(f"{self.spec}: no command ran within {timeout:.0f} s after the restart")
            time.sleep(0.2)

    def close(self) -> None:
        if self._own_client:
            self._client.close()

    def _container(self) -> Container:
        container: Container = self._client.containers.get(self.container_ref)
        return container

    def _running(self) -> bool:
        try:
            return self._container().status == "running"
        except docker.errors.DockerException:
            return False

    def _errors(self) -> contextlib.AbstractContextManager[None]:
        return _engine_errors(self.spec)


def _pump(frames: Iterator[_Frame], chunks: queue.Queue[_Frame | BaseException | None]) -> None:
    try:
        for frame in frames:
            chunks.put(frame)
    except BaseException as exc:  # handed to the exec loop, which raises it as a TargetError
        chunks.put(exc)
    chunks.put(None)


@contextlib.contextmanager
def _engine_errors(spec: str) -> Iterator[None]:
    """Turns engine errors into TargetError: the target failed, not the command."""
    try:
        yield
    except docker.errors.NotFound as exc:
        raise TargetError(f"{spec}: not found: {exc.explanation or exc}") from exc
    except docker.errors.APIError as exc:
        raise TargetError(f"{spec}: {exc.explanation or exc}") from exc
    except (docker.errors.DockerException, ConnectionError) as exc:
        raise TargetError(f"{spec}: docker engine unreachable: {exc}") from exc
