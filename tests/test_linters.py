"""Style and type checks run as tests, so CI enforces them (after mkosi's tests/test_linters.py)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ruff() -> None:
    subprocess.run(
        [sys.executable, "-m", "ruff", "check", "engine", "workers", "components", "tests", "bench"],
        cwd=ROOT,
        check=True,
    )


def test_mypy() -> None:
    subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, check=True)
