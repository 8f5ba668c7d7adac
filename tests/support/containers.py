"""Helpers for tests that use Docker containers; the fixtures themselves are in tests/conftest.py.

Import from here (``from tests.support.containers import ...``), never from a conftest: pytest
loads conftest files under its own module names, so importing one again makes a second copy.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
from docker.models.containers import Container

BASE_IMAGE = os.environ.get("IMAGEBUILDER_BASE_IMAGE", "imagebuilder/debian:12")
#: Labels on every container a test makes; the session label tells this run's from another's.
TEST_LABEL = "imagebuilder.test"
SESSION_LABEL = "imagebuilder.test.session"
TEST_SESSION = uuid.uuid4().hex[:12]
TEST_LABELS = {TEST_LABEL: "1", SESSION_LABEL: TEST_SESSION}


def session_containers(client: docker.DockerClient) -> list[Container]:
    """Containers (running or not) made by this test session."""
    found: list[Container] = client.containers.list(all=True, filters={"label": f"{SESSION_LABEL}={TEST_SESSION}"})
    return found


def free_loopback_port() -> int:
    """A currently free TCP port on 127.0.0.1.

    Ports are published explicitly because a dynamically published port may change when the
    container restarts, and the SSH fixture's containers restart on every reboot.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_ssh_banner(host: str, port: int, timeout: float = 30) -> None:
    """Wait until sshd answers with its banner (docker-proxy accepts TCP before sshd listens)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=2) as sock:
                sock.settimeout(5)
                if sock.recv(256).startswith(b"SSH-"):
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"no SSH banner on {host}:{port} within {timeout:.0f} s")
        time.sleep(0.2)


# PID 1 of the SSH test container. `reboot` (and `systemctl reboot`) are shims that signal PID 1,
# which then exits; the restart policy "always" starts the container again with the same root
# filesystem, like a machine coming back from a reboot with its disk. Everything here is
# idempotent because it runs again on every such "boot"; host keys are made only once, so the
# host key stays the same across reboots.
SSHD_INIT = r"""
set -e
mkdir -p /usr/local/sbin /run/sshd /root/.ssh
cat >/usr/local/sbin/reboot <<'EOF'
#!/bin/sh
# test container: ending PID 1 makes docker restart the container (restart policy always)
kill -TERM 1
EOF
cat >/usr/local/sbin/systemctl <<'EOF'
#!/bin/sh
for arg in "$@"; do [ "$arg" = reboot ] && exec /usr/local/sbin/reboot; done
echo "systemctl: this test container has no systemd; only 'systemctl reboot' works" >&2
exit 1
EOF
chmod 755 /usr/local/sbin/reboot /usr/local/sbin/systemctl
printf '%s\n' "$AUTHORIZED_KEY" >/root/.ssh/authorized_keys
chmod 700 /root/.ssh && chmod 600 /root/.ssh/authorized_keys
# One ed25519 host key, made on the first boot only (RSA keys would cost a second per container).
key=/etc/ssh/ssh_host_ed25519_key
[ -f $key ] || ssh-keygen -q -t ed25519 -N '' -f $key
trap 'exit 0' TERM
/usr/sbin/sshd -D -e -o HostKey=$key &
wait
"""


@dataclass(frozen=True)
class SshEndpoint:
    """Unpacks as ``host, port, key_path``; ``container`` is there for tests that look inside."""

    host: str
    port: int
    key_path: Path
    container: Container

    def __iter__(self) -> Iterator[object]:
        return iter((self.host, self.port, self.key_path))


def write_ed25519_key(path: Path) -> str:
    """Write a new private key (OpenSSH format, mode 600) and return its public key line."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
    )
    path.chmod(0o600)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return public.decode() + " imagebuilder-test"
