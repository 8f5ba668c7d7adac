"""Waiting for a guest's sshd (workers/vm_qemu.py) against a real loopback listener: a guest
that says on its console that sshd listens is taken at its word (the port untouched), one that
never says is probed for its banner, a silent one is given up on, and the console line is found
even in pieces."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from workers.vm_qemu import ConsoleMarker, wait_for_sshd

MARKER = "imagebuilder: sshd is listening"


def test_the_console_line_is_found_across_writes(tmp_path: Path) -> None:
    console = tmp_path / "console.log"
    seen = ConsoleMarker(console, MARKER)
    assert not seen()  # no file yet
    console.write_text("[  OK  ] booting\nimagebuilder: sshd is li")
    assert not seen()
    with open(console, "a") as f:
        f.write("stening\n")
    assert seen() and seen()


def test_no_probe_before_the_guest_is_ready(tmp_path: Path) -> None:
    accepted: list[float] = []
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            accepted.append(time.monotonic())
            conn.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian\r\n")
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    console = tmp_path / "console.log"
    console.write_text("")
    ready_at: list[float] = []

    def say_ready() -> None:
        time.sleep(0.5)
        ready_at.append(time.monotonic())
        console.write_text(f"{MARKER}\n")

    threading.Thread(target=say_ready, daemon=True).start()
    try:
        wait_for_sshd("127.0.0.1", port, 10, ready=ConsoleMarker(console, MARKER))
        # The guest's word is taken: the port was never touched.
        assert ready_at and not accepted
        # A guest that boots but never says (an image without the marker): its banner, after ready_wait.
        (tmp_path / "other").write_text("Debian GNU/Linux 12 login:\n")
        wait_for_sshd("127.0.0.1", port, 10, ready=ConsoleMarker(tmp_path / "other", MARKER), ready_wait=0.3)
        assert len(accepted) == 1
        # A guest that printed nothing at all hung early in boot: no waiting out the whole timeout.
        with pytest.raises(TimeoutError, match="printed nothing on its console"):
            wait_for_sshd("127.0.0.1", port, 10, ready=ConsoleMarker(tmp_path / "silent", MARKER), ready_wait=0.3)
        assert len(accepted) == 1
    finally:
        server.close()


def test_a_guest_that_dies_while_booting_is_reported(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="exited before sshd answered"):
        wait_for_sshd("127.0.0.1", 9, 10, alive=lambda: False, ready=ConsoleMarker(tmp_path / "none", MARKER))
