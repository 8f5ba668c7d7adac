"""Where component documents run: ``open_target(spec)`` turns a target spec into a Target.

Specs: ``local``, ``docker:CONTAINER`` (id or name), ``ssh:[USER@]HOST[:PORT]`` (IPv6 hosts in
brackets; user defaults to root, port to 22). The docker and ssh modules import their client
libraries only when such a target is opened.
"""

from __future__ import annotations

import os
import re
from typing import Any

from components.targets.base import ExecResult, OutputSink, Target, TargetError

__all__ = ["ExecResult", "OutputSink", "Target", "TargetError", "open_target", "parse_ssh_spec"]

#: The private key an ssh: target logs in with when none is passed as an option.
SSH_KEY_ENV = "IMAGEBUILDER_SSH_KEY"

_SSH_SPEC = re.compile(
    r"""(?:(?P<user>[^@\s:]+)@)?
        (?:\[(?P<v6>[0-9A-Fa-f:.]+)\] | (?P<host>[^@\s:\[\]]+))
        (?::(?P<port>\d+))?""",
    re.VERBOSE,
)
_SPECS_HELP = "expected 'local', 'docker:CONTAINER' or 'ssh:USER@HOST:PORT'"


def parse_ssh_spec(rest: str) -> tuple[str, str, int]:
    """``[user@]host[:port]`` -> (user, host, port)."""
    match = _SSH_SPEC.fullmatch(rest)
    if not match:
        raise ValueError(f"invalid ssh target 'ssh:{rest}': {_SPECS_HELP}")
    port = int(match["port"] or 22)
    if not 0 < port < 65536:
        raise ValueError(f"invalid ssh target 'ssh:{rest}': port {port} is out of range")
    return match["user"] or "root", match["v6"] or match["host"], port


def open_target(spec: str, **options: Any) -> Target:
    """Open the target named by spec; options go to the target's constructor.

    For ssh: targets without ``key_filename``, ``pkey`` or ``password`` among the options, the
    key file named by $IMAGEBUILDER_SSH_KEY is used.
    """
    kind, sep, rest = spec.partition(":")
    if kind == "local" and not sep:
        from components.targets.local import LocalTarget

        if options:
            raise ValueError(f"the local target takes no options, got {sorted(options)}")
        return LocalTarget()
    if kind == "docker" and sep:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", rest):
            raise ValueError(f"invalid docker target {spec!r}: expected 'docker:CONTAINER' (a container id or name)")
        from components.targets.docker import DockerTarget

        return DockerTarget(rest, **options)
    if kind == "ssh" and sep:
        user, host, port = parse_ssh_spec(rest)
        if not {"key_filename", "pkey", "password"} & options.keys():
            key = os.environ.get(SSH_KEY_ENV)
            if not key:
                raise ValueError(
                    f"ssh target {spec!r} needs credentials: pass key_filename/pkey/password or set ${SSH_KEY_ENV}"
                )
            options["key_filename"] = key
        from components.targets.ssh import SSHTarget

        return SSHTarget(host, port, user, **options)
    raise ValueError(f"invalid target {spec!r}: {_SPECS_HELP}")
