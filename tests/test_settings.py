"""Settings come from a flag, the environment, the TOML config file or the default, in that order;
a config file with a mistake stops the program with the file, the key and the reason."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import settings
from tests.builds import conftest as build_stack

temporal = build_stack.temporal  # the Temporal dev server fixture, for the control worker test


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No IMAGEBUILDER_* variable of the test run's own environment leaks into these tests."""
    for name in list(os.environ):
        if name.startswith("IMAGEBUILDER_"):
            monkeypatch.delenv(name)
    yield


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    settings.add_arguments(parser)
    return parser.parse_args(argv)


def write(tmp_path: Path, text: str, name: str = "imagebuilder.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_flag_beats_the_environment_which_beats_the_file_which_beats_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_file = write(
        tmp_path,
        'host = "0.0.0.0"\n'  # flat key
        'temporal.temporal_address = "temporal.example:7233"\n'  # dotted key
        "[server]\nport = 9000\nworkers = 3\n"  # section
        '[storage]\ndata_dir = "/srv/imagebuilder"\n',
    )
    monkeypatch.setenv("IMAGEBUILDER_HOST", "10.0.0.1")
    monkeypatch.setenv("IMAGEBUILDER_WORKERS", "5")
    config = settings.load(parse("--config", str(config_file), "--data-dir", "/flag/data", "--workers", "7"))
    assert config.port == 9000  # file only
    assert config.temporal_address == "temporal.example:7233"  # file only (dotted key)
    assert config.host == "10.0.0.1"  # env over file
    assert config.workers == 7  # flag over env over file
    assert config.data_dir == Path("/flag/data")  # flag over file
    assert config.region == "us-east-1"  # default


def test_the_config_file_can_be_named_by_the_environment_and_the_flag_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from_env = write(tmp_path, "[server]\nport = 1111\n", "env.toml")
    from_flag = write(tmp_path, "[server]\nport = 2222\n", "flag.toml")
    monkeypatch.setenv(settings.CONFIG_ENV, str(from_env))
    assert settings.load().port == 1111  # processes that take no flags (uvicorn workers) read it too
    assert settings.load(parse()).port == 1111
    assert settings.load(parse("--config", str(from_flag))).port == 2222


def test_without_a_config_file_or_with_an_empty_one_the_defaults_hold(tmp_path: Path) -> None:
    config = settings.load(parse())
    assert config == settings.load() == settings.load(parse("--config", str(write(tmp_path, "# nothing\n"))))
    assert (config.port, config.data_dir, config.scanners) == (8080, Path("./data"), "auto")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("prot = 8080\n", "unknown setting 'prot' (did you mean port?)"),
        ("[server]\nprot = 8080\n", "unknown setting '[server] prot' (did you mean port?)"),
        ("[sever]\nport = 8080\n", "unknown section [sever] (did you mean [server]?)"),
        ('[server]\ndata_dir = "/x"\n', "data_dir does not belong in [server]: write it in [storage] or the top level"),
        ('port = "8080"\n', "port must be a whole number (like port = 8080), not the string '8080'"),
        ("[server]\nport = true\n", "[server] port must be a whole number (like port = 8080), not a boolean (true)"),
        ("[server]\nhost = 1\n", "[server] host must be a string (like host = '127.0.0.1'), not the number 1"),
        ('scanners = ["trivy"]\n', "scanners must be a string (like scanners = 'auto'), not a list"),
        ("port = 1\n[server]\nport = 2\n", "port is set twice (as 'port' and as '[server] port')"),
        ("[server.tls]\ncert = 'x'\n", "unknown setting '[server] tls'"),
        ("port = \n", "is not valid TOML: Invalid value (at line 1, column 8)"),
    ],
)
def test_a_mistake_in_the_config_file_names_the_file_the_key_and_the_reason(
    tmp_path: Path, text: str, reason: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SystemExit) as stopped:
        settings.load(parse("--config", str(path)))
    message = str(stopped.value.code)
    assert message.startswith(f"imagebuilder: {path}")
    assert reason in message


def test_a_missing_config_file_says_where_its_name_came_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(settings.CONFIG_ENV, str(tmp_path / "nope.toml"))
    with pytest.raises(SystemExit) as stopped:
        settings.load()
    assert str(stopped.value.code) == (
        f"imagebuilder: cannot read the config file {tmp_path / 'nope.toml'} "
        "(from --config or IMAGEBUILDER_CONFIG): No such file or directory"
    )


def imagebuilder(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("IMAGEBUILDER_")}
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **(env or {})},
    )


def test_the_server_command_stops_on_a_bad_config_file_without_a_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nprot = 8080\n")
    out = imagebuilder("server", "--config", str(path))
    assert out.returncode == 1
    assert f"imagebuilder: {path}: unknown setting '[server] prot' (did you mean port?)" in out.stderr
    assert "Traceback" not in out.stderr
    out = imagebuilder("keys", "list", env={settings.CONFIG_ENV: str(path)})
    assert out.returncode == 1 and "unknown setting '[server] prot'" in out.stderr


def test_the_control_worker_takes_scanner_settings_from_flags_and_the_config_file(
    tmp_path: Path, temporal: build_stack.Temporal
) -> None:
    """The event and scan loops used to read the environment only; a scanner that does not exist
    given by flag or file must now stop the worker at start, with the reason."""
    base = ["worker", "--control", "--temporal-address", temporal.address, "--data-dir", str(tmp_path / "data")]
    out = imagebuilder(*base, "--scanners", "nonesuch")
    assert out.returncode == 1, out.stderr[-2000:]
    assert "imagebuilder worker: unknown scanner 'nonesuch'" in out.stderr and "Traceback" not in out.stderr

    path = write(tmp_path, '[scanning]\nscanners = "offline"\n')  # offline needs vulnerability_database
    out = imagebuilder(*base, "--config", str(path))
    assert out.returncode == 1, out.stderr[-2000:]
    assert "the offline scanner needs a vulnerability database file" in out.stderr
