"""The three targets (local, docker, ssh) against the real thing: the host, a real container on
the Docker engine, and a real sshd (in a container) over paramiko. Nothing is mocked.

The same behaviour tests run on every target; reboot, reconnect and connection-reuse tests
run where they apply. The last test checks that no test container was left behind.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import paramiko
import pytest
from docker.models.containers import Container

from components.targets import open_target
from components.targets.base import Target, TargetError
from components.targets.docker import DockerTarget
from components.targets.local import LocalTarget
from components.targets.ssh import SSHTarget
from tests.support.containers import (
    TEST_LABELS,
    SshEndpoint,
    free_loopback_port,
    session_containers,
    write_ed25519_key,
)

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(params=["local", "docker", "ssh"])
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    kind = request.param
    made: Target
    if kind == "local":
        made = LocalTarget()
    elif kind == "docker":
        container: Container = request.getfixturevalue("debian_container")
        made = DockerTarget(container.id)
    else:
        endpoint: SshEndpoint = request.getfixturevalue("sshd_container")
        made = SSHTarget(endpoint.host, endpoint.port, "root", key_filename=str(endpoint.key_path))
    with made:
        yield made


@pytest.fixture
def scratch(target: Target) -> Iterator[str]:
    """A fresh directory on the target, removed afterwards."""
    made = target.exec(["mktemp", "-d", "/tmp/imagebuilder-test.XXXXXX"])
    assert made.exit_code == 0, made.stderr
    path = made.stdout.decode().strip()
    yield path
    target.exec(["rm", "-rf", "--", path])


@pytest.fixture
def docker_target(debian_container: Container) -> Iterator[DockerTarget]:
    made = DockerTarget(debian_container.id)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def ssh_target(sshd_container: SshEndpoint, tmp_path: Path) -> Iterator[SSHTarget]:
    host, port, key_path = sshd_container
    made = SSHTarget(
        str(host), int(str(port)), "root", key_filename=str(key_path), known_hosts=tmp_path / "known_hosts"
    )
    try:
        yield made
    finally:
        made.close()


def text(data: bytes) -> str:
    return data.decode()


def running(target: Target, pattern: str) -> list[str]:
    """Command lines of the target's processes that match pattern (a regex)."""
    listing = target.exec(["ps", "-eo", "pid=,args="])
    assert listing.exit_code == 0, listing.stderr
    return [line for line in text(listing.stdout).splitlines() if re.search(pattern, line)]


def alive(target: Target, pid: str) -> bool:
    return target.exec(["kill", "-0", pid]).exit_code == 0


# --- exec -----------------------------------------------------------------------------------


def test_exit_codes(target: Target) -> None:
    assert target.exec(["true"]).exit_code == 0
    assert target.exec(["false"]).exit_code == 1
    assert target.exec(["sh", "-c", "exit 42"]).exit_code == 42
    missing = target.exec(["imagebuilder-no-such-command"])
    assert missing.exit_code == 127
    assert not missing.timed_out


def test_argv_is_passed_verbatim(target: Target) -> None:
    # No shell sees the arguments: quotes, spaces, $ and globs arrive as written.
    args = ["a b", "c'd", 'e"f', "$HOME", "*", "", "-n", "line\nbreak"]
    result = target.exec(["printf", "[%s]\\n", *args])
    assert result.exit_code == 0
    assert text(result.stdout) == "".join(f"[{a}]\n" for a in args)


def test_output_is_streamed_in_order(target: Target) -> None:
    seen: list[tuple[float, str, bytes]] = []
    start = time.monotonic()
    script = "for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; sleep 0.3; done"
    result = target.exec(
        ["sh", "-c", script],
        on_stdout=lambda chunk: seen.append((time.monotonic(), "out", chunk)),
        on_stderr=lambda chunk: seen.append((time.monotonic(), "err", chunk)),
    )
    end = time.monotonic()
    assert result.exit_code == 0
    assert text(result.stdout) == "".join(f"out{i}\n" for i in range(1, 6))
    assert text(result.stderr) == "".join(f"err{i}\n" for i in range(1, 6))
    # Sinks got the same bytes, in order per stream...
    assert b"".join(c for _, s, c in seen if s == "out") == result.stdout
    assert b"".join(c for _, s, c in seen if s == "err") == result.stderr
    # ...as they were written, not at the end: the first lines arrive long before the last.
    first_out = next(t for t, s, _ in seen if s == "out")
    first_err = next(t for t, s, _ in seen if s == "err")
    assert first_out - start < (end - start) - 0.8
    assert first_err - start < (end - start) - 0.8


def test_large_output(target: Target) -> None:
    result = target.exec(["sh", "-c", "head -c 3000000 /dev/zero | tr '\\0' x; echo done >&2"])
    assert result.exit_code == 0
    assert result.stdout == b"x" * 3_000_000
    assert result.stderr == b"done\n"


def test_env_cwd_and_stdin(target: Target, scratch: str) -> None:
    env = {"IB_PLAIN": "1", "IB_TRICKY": "a b 'c' \"d\" $HOME `x` \\", "IB_EMPTY": ""}
    result = target.exec(
        ["sh", "-c", 'printf "%s|%s|%s|" "$IB_PLAIN" "$IB_TRICKY" "$IB_EMPTY"; pwd; cat'],
        env=env,
        cwd=scratch,
        stdin=b"from stdin\x00\xff\n",
    )
    assert result.exit_code == 0, result.stderr
    tricky = env["IB_TRICKY"]
    assert result.stdout == f"1|{tricky}||{scratch}\n".encode() + b"from stdin\x00\xff\n"
    # The target's own environment is there too (PATH), not replaced by env.
    assert target.exec(["sh", "-c", 'test -n "$PATH"'], env={"X": "1"}).exit_code == 0


def test_bad_cwd(target: Target) -> None:
    result = target.exec(["pwd"], cwd="/nonexistent/imagebuilder")
    assert result.exit_code != 0
    assert not result.timed_out


def test_timeout_kills_the_command_and_its_children(target: Target, scratch: str) -> None:
    # A shell with a child in the background, both recorded, then stuck.
    script = f"echo $$ >{scratch}/parent; sleep 3171 & echo $! >{scratch}/child; echo started; wait"
    start = time.monotonic()
    result = target.exec(["sh", "-c", script], timeout=1.5)
    took = time.monotonic() - start
    assert result.timed_out
    assert result.exit_code == -1
    assert result.stdout == b"started\n"  # output up to the timeout is kept
    assert 1.4 < took < 15
    parent = text(target.read_file(f"{scratch}/parent")).strip()
    child = text(target.read_file(f"{scratch}/child")).strip()
    deadline = time.monotonic() + 5
    while (alive(target, parent) or alive(target, child)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(target, parent)
    assert not alive(target, child)
    assert not running(target, r"sleep 3171")
    # The target is still usable after a timeout.
    assert target.exec(["echo", "ok"]).stdout == b"ok\n"


@pytest.mark.parametrize("kind", ["docker", "ssh"])
def test_timeout_kills_processes_that_left_the_process_group(kind: str, request: pytest.FixtureRequest) -> None:
    # setsid puts the child in a new session and process group; the remote targets find it by
    # the marker in its environment. (The local target kills by process group only.)
    target: Target = request.getfixturevalue(f"{kind}_target")
    result = target.exec(["sh", "-c", "setsid sleep 3172 & sleep 3173"], timeout=1)
    assert result.timed_out
    deadline = time.monotonic() + 5
    while running(target, r"sleep 317[23]") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not running(target, r"sleep 317[23]")


def test_no_timeout_when_fast_enough(target: Target) -> None:
    result = target.exec(["sh", "-c", "sleep 0.2; echo done"], timeout=30)
    assert not result.timed_out
    assert result.exit_code == 0
    assert result.stdout == b"done\n"


# --- files ----------------------------------------------------------------------------------


def test_files_round_trip_binary_safe(target: Target, scratch: str) -> None:
    every_byte = bytes(range(256)) * 16 + b"\r\n\x00 no trailing newline"
    big = os.urandom(2 * 1024 * 1024 + 3)
    target.write_file(f"{scratch}/bytes.bin", every_byte)
    target.write_file(f"{scratch}/deep/er/big.bin", big)  # parent folders are created
    target.write_file(f"{scratch}/empty", b"")
    assert target.read_file(f"{scratch}/bytes.bin") == every_byte
    assert target.read_file(f"{scratch}/deep/er/big.bin") == big
    assert target.read_file(f"{scratch}/empty") == b""
    # What the target's own tools see is the same bytes.
    sums = target.exec(["sha256sum", f"{scratch}/deep/er/big.bin"])
    assert text(sums.stdout).split()[0] == hashlib.sha256(big).hexdigest()
    # Replacing shortens the file; nothing of the old content is left.
    target.write_file(f"{scratch}/bytes.bin", b"short")
    assert target.read_file(f"{scratch}/bytes.bin") == b"short"


def test_file_modes(target: Target, scratch: str) -> None:
    def mode_of(path: str) -> str:
        return text(target.exec(["stat", "-c", "%a", path]).stdout).strip()

    target.write_file(f"{scratch}/script.sh", b"#!/bin/sh\necho ran\n", mode=0o755)
    assert mode_of(f"{scratch}/script.sh") == "755"
    assert target.exec([f"{scratch}/script.sh"]).stdout == b"ran\n"
    target.write_file(f"{scratch}/secret", b"s", mode=0o600)
    assert mode_of(f"{scratch}/secret") == "600"
    # Without a mode, replacing a file keeps its mode.
    target.write_file(f"{scratch}/script.sh", b"#!/bin/sh\necho again\n")
    assert mode_of(f"{scratch}/script.sh") == "755"
    target.write_file(f"{scratch}/plain", b"p")
    assert mode_of(f"{scratch}/plain") in {"644", "664"}


def test_read_missing_file(target: Target, scratch: str) -> None:
    with pytest.raises(FileNotFoundError):
        target.read_file(f"{scratch}/absent")


def test_read_through_symlink(target: Target, scratch: str) -> None:
    target.write_file(f"{scratch}/real", b"content")
    assert target.exec(["ln", "-s", "real", f"{scratch}/link"]).exit_code == 0
    assert target.read_file(f"{scratch}/link") == b"content"


# --- reboot ---------------------------------------------------------------------------------


def test_local_target_refuses_to_reboot() -> None:
    with pytest.raises(TargetError, match="cannot reboot"):
        LocalTarget().reboot()


def start_sentinel_process(target: Target) -> str:
    """A detached process that only a reboot ends; returns its pid."""
    started = target.exec(["sh", "-c", "setsid nohup sleep 4242 >/dev/null 2>&1 </dev/null & echo $!"])
    pid = text(started.stdout).strip()
    assert alive(target, pid)
    return pid


def test_docker_reboot_keeps_disk_state(docker_target: DockerTarget, debian_container: Container) -> None:
    docker_target.write_file("/var/lib/state/file", b"persisted", mode=0o640)
    start_sentinel_process(docker_target)
    started_before = debian_container.attrs["State"]["StartedAt"]
    docker_target.reboot(timeout=60)
    debian_container.reload()
    assert debian_container.attrs["State"]["StartedAt"] != started_before
    assert not running(docker_target, r"sleep 4242")  # processes did not survive: it rebooted
    assert docker_target.read_file("/var/lib/state/file") == b"persisted"
    assert text(docker_target.exec(["stat", "-c", "%a", "/var/lib/state/file"]).stdout).strip() == "640"


def test_ssh_reboot_reconnects_and_keeps_disk_state(ssh_target: SSHTarget) -> None:
    ssh_target.write_file("/var/lib/state/file", b"persisted")
    start_sentinel_process(ssh_target)
    before = ssh_target.connect()
    start = time.monotonic()
    ssh_target.reboot(timeout=120)
    took = time.monotonic() - start
    after = ssh_target.connect()
    assert after is not before and after.is_active()
    assert not before.is_active()
    assert not running(ssh_target, r"sleep 4242")
    assert ssh_target.read_file("/var/lib/state/file") == b"persisted"
    assert took < 60
    # And again: a document can reboot more than once.
    ssh_target.reboot(timeout=120)
    assert ssh_target.exec(["cat", "/var/lib/state/file"]).stdout == b"persisted"


def test_ssh_refuses_a_changed_host_key_after_reboot(ssh_target: SSHTarget, tmp_path: Path) -> None:
    assert ssh_target.exec(["true"]).exit_code == 0
    pinned = (tmp_path / "known_hosts").read_text()
    assert "ssh-ed25519" in pinned or "ecdsa" in pinned or "ssh-rsa" in pinned
    # A different machine answering on the same address after the reboot: new host keys.
    assert ssh_target.exec(["sh", "-c", "rm -f /etc/ssh/ssh_host_*"]).exit_code == 0
    with pytest.raises(TargetError, match="host key changed"):
        ssh_target.reboot(timeout=60)


# --- ssh connection handling ----------------------------------------------------------------


def established_ssh_connections(endpoint: SshEndpoint) -> int:
    listing = endpoint.container.exec_run(["ss", "-Htn", "state", "established", "( sport = :22 )"])
    return len([line for line in listing.output.decode().splitlines() if line.strip()])


def test_ssh_reuses_one_connection(ssh_target: SSHTarget, sshd_container: SshEndpoint) -> None:
    assert ssh_target.exec(["true"]).exit_code == 0
    transport = ssh_target.connect()
    for i in range(30):
        assert ssh_target.exec(["echo", str(i)]).stdout == f"{i}\n".encode()
        ssh_target.write_file(f"/tmp/reuse/{i}", str(i).encode())
        assert ssh_target.read_file(f"/tmp/reuse/{i}") == str(i).encode()
    assert ssh_target.exec(["sleep", "5"], timeout=0.5).timed_out
    assert ssh_target.connect() is transport
    assert established_ssh_connections(sshd_container) == 1


def test_ssh_reconnects_after_the_connection_drops(ssh_target: SSHTarget) -> None:
    assert ssh_target.exec(["true"]).exit_code == 0
    first = ssh_target.connect()
    first.close()  # as if the network dropped it
    assert ssh_target.exec(["echo", "back"]).stdout == b"back\n"
    assert ssh_target.connect() is not first
    # close() is idempotent and the target connects again lazily afterwards.
    ssh_target.close()
    ssh_target.close()
    assert ssh_target.read_file("/etc/hostname")


def test_ssh_connect_failures_are_target_errors(sshd_container: SshEndpoint, tmp_path: Path) -> None:
    nobody = SSHTarget("127.0.0.1", free_loopback_port(), key_filename=str(sshd_container.key_path))
    with pytest.raises(TargetError, match="cannot connect"):
        nobody.exec(["true"])
    write_ed25519_key(tmp_path / "other_key")
    stranger = SSHTarget(sshd_container.host, sshd_container.port, key_filename=str(tmp_path / "other_key"))
    with pytest.raises(TargetError, match="cannot connect"):
        stranger.exec(["true"])


def test_docker_target_on_a_removed_container(docker_client: docker.DockerClient, debian_image: str) -> None:
    container = docker_client.containers.run(debian_image, ["sleep", "infinity"], init=True, detach=True,
                                             labels=TEST_LABELS)
    target = DockerTarget(container.id)
    container.remove(force=True)
    with pytest.raises(TargetError):
        target.exec(["true"])
    with pytest.raises(TargetError):
        target.read_file("/etc/hostname")


# --- open_target ----------------------------------------------------------------------------


def test_open_target_specs(debian_container: Container, sshd_container: SshEndpoint,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(open_target("local"), LocalTarget)
    with open_target(f"docker:{debian_container.name}") as in_docker:
        assert isinstance(in_docker, DockerTarget)
        assert in_docker.exec(["echo", "hi"]).stdout == b"hi\n"
    monkeypatch.setenv("IMAGEBUILDER_SSH_KEY", str(sshd_container.key_path))
    spec = f"ssh:root@{sshd_container.host}:{sshd_container.port}"
    with open_target(spec) as over_ssh:
        assert isinstance(over_ssh, SSHTarget)
        assert over_ssh.spec == spec
        assert over_ssh.exec(["id", "-u"]).stdout == b"0\n"
    key = paramiko.Ed25519Key.from_private_key_file(str(sshd_container.key_path))
    with open_target(spec, pkey=key) as with_key:
        assert with_key.exec(["true"]).exit_code == 0


@pytest.mark.parametrize(
    ("spec", "user", "host", "port"),
    [
        ("ssh:root@10.0.0.5:2222", "root", "10.0.0.5", 2222),
        ("ssh:ec2-user@build-host", "ec2-user", "build-host", 22),
        ("ssh:[::1]:2200", "root", "::1", 2200),
    ],
)
def test_open_target_parses_ssh_specs(spec: str, user: str, host: str, port: int) -> None:
    # Parsing only: nothing connects until the first command.
    target = open_target(spec, key_filename="/nonexistent/key")
    assert isinstance(target, SSHTarget)
    assert (target.user, target.host, target.port) == (user, host, port)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "invalid target"),
        ("docker", "invalid target"),
        ("docker:", "invalid docker target"),
        ("docker:a b", "invalid docker target"),
        ("ssh:root@host:notaport", "invalid ssh target"),
        ("ssh:root@host:70000", "out of range"),
        ("ssh:@host", "invalid ssh target"),
        ("vmware:thing", "invalid target"),
        ("local:x", "invalid target"),
    ],
)
def test_open_target_rejects_bad_specs(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        open_target(spec, key_filename="/k")


def test_open_target_ssh_needs_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IMAGEBUILDER_SSH_KEY", raising=False)
    with pytest.raises(ValueError, match="IMAGEBUILDER_SSH_KEY"):
        open_target("ssh:root@host:22")


# --- hygiene (keep last) --------------------------------------------------------------------


def test_no_test_containers_left(docker_client: docker.DockerClient) -> None:
    # Every fixture above has finished by now; each must have removed its container.
    leftovers = session_containers(docker_client)
    assert not leftovers, f"test containers left behind: {[c.name for c in leftovers]}"
