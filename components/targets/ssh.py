"""The SSH target: commands run on a host (a VM guest or an existing machine) over paramiko.

One SSH connection is opened lazily and reused: every exec is a new channel on the same
transport, and files go over one SFTP session on it, so a document with hundreds of steps
pays the handshake once. After a reboot the target reconnects.

Host keys: build hosts are ephemeral (a fresh guest per build, often on a reused loopback
port), so there is no known_hosts entry to check the first key against. The target accepts
the first key it sees and pins it for its own lifetime (optionally saving it to a
known_hosts file); a different key on a later reconnect, after a reboot, is refused.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import time
from pathlib import Path

import paramiko

from components.targets import _remote
from components.targets.base import ExecResult, OutputSink, Target, TargetError

_READ = 65536
_POLL = 0.05
# The remote command for reboot: started detached and delayed by a second so this channel
# returns cleanly first (a reboot that kills the session mid-command can be lost).
_REBOOT = (
    "nohup sh -c 'sleep 1; systemctl --no-block reboot || reboot || /sbin/reboot || shutdown -r now'"
    " >/dev/null 2>&1 </dev/null &"
)


class HostKeyChanged(TargetError):
    """The host presented a different key than the one pinned at the first connection."""


class _PinFirstKey(paramiko.MissingHostKeyPolicy):
    """Accept-new: take an unknown host's key and pin it (see the module docstring)."""

    def __init__(self, target: SSHTarget) -> None:
        self.target = target

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        client.get_host_keys().add(hostname, key.get_name(), key)
        self.target._pinned.add(hostname, key.get_name(), key)
        if self.target.known_hosts is not None:
            self.target._pinned.save(str(self.target.known_hosts))


class SSHTarget(Target):
    def __init__(
        self,
        host: str,
        port: int = 22,
        user: str = "root",
        *,
        key_filename: str | None = None,
        pkey: paramiko.PKey | None = None,
        password: str | None = None,
        known_hosts: str | Path | None = None,
        connect_timeout: float = 10,
    ) -> None:
        """known_hosts: a per-target file to pin the host key in (created if missing)."""
        self.host = host
        self.port = port
        self.user = user
        self.key_filename = key_filename
        self.pkey = pkey
        self.password = password
        self.known_hosts = Path(known_hosts) if known_hosts is not None else None
        self.connect_timeout = connect_timeout
        host_part = f"[{host}]" if ":" in host else host
        self.spec = f"ssh:{user}@{host_part}:{port}"
        self._pinned = paramiko.HostKeys()
        if self.known_hosts is not None and self.known_hosts.exists():
            self._pinned.load(str(self.known_hosts))
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None

    # --- connection ---------------------------------------------------------------------------

    def connect(self) -> paramiko.Transport:
        """The live transport, connecting first if needed (exec and files call this)."""
        client = self._client
        transport = client.get_transport() if client is not None else None
        if transport is None or not transport.is_active():
            self._disconnect()
            client = self._connect()
            transport = client.get_transport()
            assert transport is not None
        return transport

    def _connect(self) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        for hostname, keys in self._pinned.items():
            for key_type, key in keys.items():
                client.get_host_keys().add(hostname, key_type, key)
        client.set_missing_host_key_policy(_PinFirstKey(self))
        try:
            client.connect(
                self.host,
                port=self.port,
                username=self.user,
                key_filename=self.key_filename,
                pkey=self.pkey,
                password=self.password,
                timeout=self.connect_timeout,
                banner_timeout=self.connect_timeout,
                auth_timeout=self.connect_timeout,
                # Only the credentials given: an agent or ~/.ssh keys of whoever runs the
                # worker must not decide whether a build can log in.
                allow_agent=False,
                look_for_keys=False,
            )
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise HostKeyChanged(f"{self.spec}: host key changed since the first connection: {exc}") from exc
        except (OSError, paramiko.SSHException) as exc:
            client.close()
            raise TargetError(f"{self.spec}: cannot connect: {exc}") from exc
        transport = client.get_transport()
        assert transport is not None
        # Keepalives let a dead peer (a guest that reset without closing TCP) be noticed.
        transport.set_keepalive(15)
        # Every exec is a few small request/answer packets; with Nagle on, each one waits for
        # the peer's delayed ACK (~40 ms per command). OpenSSH sets TCP_NODELAY too.
        if isinstance(transport.sock, socket.socket):
            with contextlib.suppress(OSError):
                transport.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._client = client
        return client

    def _disconnect(self) -> None:
        if self._sftp is not None:
            with contextlib.suppress(Exception):
                self._sftp.close()
            self._sftp = None
        if self._client is not None:
            self._client.close()
            self._client = None

    def _open_channel(self) -> paramiko.Channel:
        try:
            return self.connect().open_session(timeout=self.connect_timeout)
        except (OSError, paramiko.SSHException) as exc:
            self._disconnect()
            raise TargetError(f"{self.spec}: cannot open a session: {exc}") from exc

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
        # Variables are exported by the command line: sshd's AcceptEnv usually refuses them.
        full_env = {**_remote.check_env(env), _remote.MARKER_VAR: exec_id}
        command = _remote.shell_command(argv, env=full_env, cwd=cwd)
        channel = self._open_channel()
        out, err = bytearray(), bytearray()
        try:
            channel.exec_command(command)
            if stdin:
                channel.sendall(stdin)
            channel.shutdown_write()
            with selectors.DefaultSelector() as sel:
                # The channel's fileno() is a pipe that becomes readable when stdout data
                # arrives or the channel closes; stderr and the exit status do not wake it,
                # hence the short poll interval.
                sel.register(channel, selectors.EVENT_READ)
                while True:
                    got = False
                    while channel.recv_ready():
                        chunk = channel.recv(_READ)
                        got = True
                        out += chunk
                        if on_stdout:
                            on_stdout(chunk)
                    while channel.recv_stderr_ready():
                        chunk = channel.recv_stderr(_READ)
                        got = True
                        err += chunk
                        if on_stderr:
                            on_stderr(chunk)
                    # Done when the output ended (EOF: like the other targets, that waits
                    # for background processes still holding stdout) and the exit status came;
                    # sshd may send the status before the last output, so both are needed.
                    ended = channel.eof_received or channel.closed
                    if ended and channel.exit_status_ready():
                        if not channel.recv_ready() and not channel.recv_stderr_ready():
                            break
                        continue
                    if deadline is not None and time.monotonic() >= deadline:
                        channel.close()
                        self._kill(exec_id)
                        return ExecResult(-1, bytes(out), bytes(err), timed_out=True)
                    if not got:
                        if ended:
                            channel.status_event.wait(_POLL)  # the pipe stays readable after EOF
                        else:
                            sel.select(_POLL)
                        if not self.transport_alive():
                            raise TargetError(f"{self.spec}: connection lost while running {argv[0]}")
            status = channel.recv_exit_status()
        except (OSError, EOFError, paramiko.SSHException) as exc:
            self._disconnect()
            raise TargetError(f"{self.spec}: connection lost while running {argv[0]}: {exc}") from exc
        finally:
            channel.close()
        if status == -1:
            # sshd sends no exit status when the command died by a signal it reports otherwise.
            raise TargetError(f"{self.spec}: {argv[0]} ended without an exit status")
        return ExecResult(status, bytes(out), bytes(err))

    def transport_alive(self) -> bool:
        client = self._client
        transport = client.get_transport() if client is not None else None
        return transport is not None and transport.is_active()

    def _kill(self, exec_id: str) -> None:
        channel = self._open_channel()
        try:
            channel.exec_command(_remote.shell_command(_remote.kill_argv(exec_id), env={}, cwd=None))
            channel.shutdown_write()
            channel.recv_exit_status()
        finally:
            channel.close()

    # --- files --------------------------------------------------------------------------------

    def _sftp_client(self) -> paramiko.SFTPClient:
        transport = self.connect()
        if self._sftp is None or self._sftp.sock.closed:
            try:
                self._sftp = paramiko.SFTPClient.from_transport(transport)
            except (OSError, paramiko.SSHException) as exc:
                raise TargetError(f"{self.spec}: cannot start SFTP: {exc}") from exc
            if self._sftp is None:
                raise TargetError(f"{self.spec}: cannot start SFTP")
        return self._sftp

    def write_file(self, path: str, data: bytes, mode: int | None = None) -> None:
        folder = path.rsplit("/", 1)[0] if "/" in path else ""
        if folder:
            made = self.exec(["mkdir", "-p", "--", folder])
            if made.exit_code != 0:
                raise OSError(f"{self.spec}: cannot create {folder}: {made.stderr.decode().strip()}")
        sftp = self._sftp_client()
        try:
            with sftp.open(path, "wb") as handle:
                handle.set_pipelined(True)  # don't wait for an ack per 32 KiB write
                handle.write(data)
            if mode is not None:
                sftp.chmod(path, mode)
        except paramiko.SSHException as exc:
            self._disconnect()
            raise TargetError(f"{self.spec}: writing {path} failed: {exc}") from exc

    def read_file(self, path: str) -> bytes:
        sftp = self._sftp_client()
        try:
            with sftp.open(path, "rb") as handle:
                handle.prefetch()
                data: bytes = handle.read()
                return data
        except paramiko.SSHException as exc:
            self._disconnect()
            raise TargetError(f"{self.spec}: reading {path} failed: {exc}") from exc

    # --- lifecycle ----------------------------------------------------------------------------

    def reboot(self, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        issued = self.exec(["sh", "-c", _REBOOT], timeout=min(30.0, timeout))
        if issued.exit_code != 0:
            raise TargetError(f"{self.spec}: reboot command failed: {issued.stderr.decode().strip()}")
        self._wait_for_drop(deadline)
        self._disconnect()
        self._wait_for_banner(deadline)
        while True:
            try:
                self.connect()
                if self.exec(["true"], timeout=max(1.0, deadline - time.monotonic())).exit_code == 0:
                    return
            except HostKeyChanged:
                raise  # waiting longer will not change the key
            except TargetError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.5)

    def _wait_for_drop(self, deadline: float) -> None:
        """Wait until the old connection is gone.

        A host that shuts down cleanly closes it; one that resets without closing TCP answers
        the next packet with a reset once its network is back, so we keep sending keepalives.
        """
        transport = self.connect()
        while transport.is_active():
            if time.monotonic() > deadline:
                raise TargetError(f"{self.spec}: still up after the reboot was issued")
            try:
                transport.global_request("keepalive@openssh.com", wait=False)
            except (OSError, EOFError, paramiko.SSHException):
                return
            time.sleep(0.2)

    def _wait_for_banner(self, deadline: float) -> None:
        """Wait for sshd's banner: a forwarded port may accept TCP long before sshd listens."""
        while True:
            try:
                with socket.create_connection((self.host, self.port), timeout=2) as sock:
                    sock.settimeout(5)
                    if sock.recv(256).startswith(b"SSH-"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TargetError(f"{self.spec}: no SSH banner after the reboot")
            time.sleep(0.5)

    def close(self) -> None:
        self._disconnect()
