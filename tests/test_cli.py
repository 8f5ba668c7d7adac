"""The command line answers bad input in the user's words, without a traceback."""

import subprocess
import sys


def imagebuilder(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True, timeout=60, env=env
    )


def test_a_setting_that_is_not_a_number_names_the_flag_and_the_variable() -> None:
    out = imagebuilder("server", "--port", "eighty")
    assert out.returncode == 1
    assert "--port (or IMAGEBUILDER_PORT) must be a whole number, not 'eighty'" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_worker_without_temporal_says_where_it_looked() -> None:
    out = imagebuilder("worker", "--control", "--temporal-address", "127.0.0.1:1")
    assert out.returncode == 1
    assert "cannot reach Temporal at 127.0.0.1:1" in out.stderr and "Traceback" not in out.stderr


def test_toe_reports_a_missing_document() -> None:
    out = imagebuilder("toe", "validate", "--documents", "/nonexistent/doc.yaml")
    assert out.returncode != 0
    assert "/nonexistent/doc.yaml: cannot read document" in out.stdout + out.stderr
