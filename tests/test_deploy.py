"""deploy/ agrees with the code: the example config file with the settings table, the systemd
units with systemd's own checker, the compose file with the services, files and settings it names.

Neither systemd (not PID 1 here) nor compose (no images can be pulled) runs these for real on
this machine; what can be checked offline is checked with the real tools: `systemd-analyze
verify` and `systemd-analyze security --offline`, and `docker-compose config` (installed by
deploy/host-setup.sh) for the compose schema.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine import settings
from engine.cli import VERBS

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
EXAMPLE = DEPLOY / "imagebuilder.toml.example"
SYSTEMD = DEPLOY / "systemd"
UNITS = ("imagebuilder-server.service", "imagebuilder-control.service", "imagebuilder-worker@.service")
INSTANCES = ("imagebuilder-worker@docker.service", "imagebuilder-worker@libvirt.service")
INSTALLED_BINARY = "/opt/imagebuilder/venv/bin/imagebuilder"
CONFIG_PATH = "/etc/imagebuilder/imagebuilder.toml"

# --- the example config file ----------------------------------------------------------------

KEY_LINE = re.compile(r"^(#?)([a-z0-9_]+) = ")


def example_keys() -> list[tuple[str, str, bool]]:
    """(section, key, commented) for every key line of the example, commented out or not."""
    section, found = "", []
    for line in EXAMPLE.read_text().splitlines():
        if header := re.fullmatch(r"\[([a-z_]+)\]", line):
            section = header[1]
        elif m := KEY_LINE.match(line):
            found.append((section, m[2], bool(m[1])))
    return found


def test_the_example_config_names_every_setting_once_in_its_section() -> None:
    keys = example_keys()
    by_name = {s.name: s for s in settings.SETTINGS}
    unknown = [key for _, key, _ in keys if key not in by_name]
    assert not unknown, f"{EXAMPLE.name} names keys that are not settings: {unknown}"
    misplaced = [f"{key} in [{section}]" for section, key, _ in keys if by_name[key].section != section]
    assert not misplaced, f"{EXAMPLE.name}: keys outside their section: {misplaced}"
    names = [key for _, key, _ in keys]
    assert sorted(set(names)) == sorted(names), f"{EXAMPLE.name} names a key twice"
    missing = [f"{s.file_key} (#{s.name} = ...)" for s in settings.SETTINGS if s.name not in names]
    assert not missing, f"{EXAMPLE.name} lacks settings; add them, commented, in their section: {missing}"


def test_the_example_config_loads_as_it_is_and_with_every_line_uncommented(tmp_path: Path) -> None:
    as_is = settings.read_config_file(EXAMPLE)
    assert as_is["data_dir"] == "/var/lib/imagebuilder"  # what the systemd units' paths assume
    uncommented = tmp_path / "all.toml"
    uncommented.write_text(re.sub(r"(?m)^#(?=[a-z0-9_]+ = )", "", EXAMPLE.read_text()))
    every = settings.read_config_file(uncommented)  # types and sections right for every key
    assert sorted(every) == sorted(s.name for s in settings.SETTINGS)


# --- systemd units --------------------------------------------------------------------------


def unit_text(name: str) -> str:
    """A unit with its drop-ins, as systemd would merge them (text only)."""
    template = re.sub(r"@[^.]+\.service$", "@.service", name)
    parts = [(SYSTEMD / template).read_text()]
    parts += [p.read_text() for p in sorted((SYSTEMD / f"{name}.d").glob("*.conf"))] if "@" in name else []
    return "\n".join(parts)


def directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def verify_copy(tmp_path: Path) -> Path:
    """The units and drop-ins copied with ExecStart pointing at this checkout's imagebuilder,
    since verify checks that the command exists and /opt/imagebuilder is not installed here."""
    here = Path(sys.executable).parent / "imagebuilder"
    assert here.exists(), f"{here} missing: pip install -e . makes it"
    copy = tmp_path / "units"
    shutil.copytree(SYSTEMD, copy)
    for path in copy.rglob("*"):
        if path.is_file():
            path.write_text(path.read_text().replace(INSTALLED_BINARY, str(here)))
    return copy


def systemd_analyze(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("systemd-analyze")
    assert binary, "systemd-analyze is missing: apt-get install systemd (it need not be PID 1)"
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


@pytest.mark.parametrize("unit", [UNITS[0], UNITS[1], *INSTANCES])
def test_systemd_analyze_verify_accepts_the_unit_with_its_drop_ins(tmp_path: Path, unit: str) -> None:
    copy = verify_copy(tmp_path)
    out = systemd_analyze("verify", f"./{unit}", cwd=copy)
    assert out.returncode == 0 and out.stderr == "" and out.stdout == "", out.stderr + out.stdout


def test_systemd_analyze_verify_would_see_a_mistake_in_a_drop_in(tmp_path: Path) -> None:
    """The check above is not vacuous: verify reads the drop-ins next to the unit."""
    copy = verify_copy(tmp_path)
    conf = copy / "imagebuilder-worker@docker.service.d" / "10-docker.conf"
    conf.write_text(conf.read_text() + "ProtectSystm=strict\n")
    out = systemd_analyze("verify", "./imagebuilder-worker@docker.service", cwd=copy)
    assert "Unknown key 'ProtectSystm'" in out.stderr


@pytest.mark.parametrize(
    ("unit", "limit"),
    [(UNITS[0], 2.0), (UNITS[1], 2.0), (INSTANCES[0], 2.5), (INSTANCES[1], 7.5)],
)
def test_the_units_exposure_stays_where_it_was_measured(tmp_path: Path, unit: str, limit: float) -> None:
    """systemd's own exposure score (0 best, 10 worst). Measured: server and control 1.6, the
    docker worker 1.8 (unprivileged, docker group), the libvirt worker 7.1 (root: chown to the
    QEMU user, debootstrap, loop mounts)."""
    copy = verify_copy(tmp_path)
    out = systemd_analyze("security", "--offline=true", f"./{unit}", cwd=copy)
    found = re.search(r"Overall exposure level for \S+: ([\d.]+)", out.stdout)
    assert found, out.stdout[-500:] + out.stderr
    assert float(found[1]) <= limit


def test_each_unit_runs_the_right_process_with_the_config_file_and_restarts() -> None:
    expected = {
        "imagebuilder-server.service": ["server"],
        "imagebuilder-control.service": ["worker", "--control"],
        "imagebuilder-worker@docker.service": ["worker", "--executors", "docker"],
        "imagebuilder-worker@libvirt.service": ["worker", "--executors", "libvirt"],
    }
    for unit, argv in expected.items():
        d = directives(unit_text(unit).replace("%i", unit.split("@")[-1].removesuffix(".service")))
        assert d["ExecStart"] == [" ".join([INSTALLED_BINARY, *argv])], unit
        assert argv[0] in VERBS
        assert f"IMAGEBUILDER_CONFIG={CONFIG_PATH}" in d["Environment"], unit
        assert d["Restart"] == ["on-failure"], unit
        assert d["WorkingDirectory"] == ["/var/lib/imagebuilder"], unit
    docker = directives(unit_text(INSTANCES[0]))
    assert docker["User"] == ["imagebuilder"] and docker["SupplementaryGroups"] == ["docker"]
    assert "docker.service" in " ".join(docker["After"])
    libvirt = directives(unit_text(INSTANCES[1]))
    assert "User" not in libvirt, "the libvirt executor needs root (chown to libvirt-qemu, loop mounts)"
    assert "libvirtd.service" in " ".join(libvirt["After"])
    # Per-kind capacity on one host: the env file beats the shared config file.
    assert "-/etc/imagebuilder/worker-%i.env" in directives(unit_text(UNITS[2]))["EnvironmentFile"]
    assert any(s.name == "max_concurrent" for s in settings.SETTINGS)


def test_the_worker_flags_the_units_use_exist() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "engine.cli", "worker", "--help"], capture_output=True, text=True, timeout=60
    )
    for flag in ("--control", "--executors", "--config", "--max-concurrent"):
        assert flag in out.stdout


# --- compose and the image ------------------------------------------------------------------


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def test_the_compose_file_has_the_control_plane_and_refers_only_to_what_exists() -> None:
    doc = compose()
    services = doc["services"]
    assert {"postgres", "temporal", "temporal-postgres", "api", "control"} <= set(services)
    assert services["api"]["command"] == ["server"]
    assert services["control"]["command"] == ["worker", "--control"]
    for name, service in services.items():
        for dependency in service.get("depends_on", []):
            assert dependency in services, f"{name} depends on unknown {dependency}"
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image tag ({image})"
        if "build" in service:
            context = (DEPLOY / service["build"]["context"]).resolve()
            assert (context / service["build"]["dockerfile"]).is_file(), name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in doc["volumes"], f"{name} uses undeclared volume {source}"
        for key in service.get("environment", {}):
            if key.startswith("IMAGEBUILDER_"):
                valid = {s.env for s in settings.SETTINGS} | {settings.CONFIG_ENV}
                assert key in valid, f"{name}: {key} is not a setting{settings._suggest(key, sorted(valid))}"
        if service.get("command"):
            assert service["command"][0] in VERBS


def test_every_variable_the_compose_file_needs_is_in_the_env_example() -> None:
    needed = set(re.findall(r"\$\{([A-Z_]+)", (DEPLOY / "compose.yaml").read_text()))
    defined = {line.split("=")[0] for line in (DEPLOY / "compose.env.example").read_text().splitlines() if "=" in line}
    assert needed and needed <= defined, needed - defined


def test_docker_compose_accepts_the_file(tmp_path: Path) -> None:
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is missing: deploy/host-setup.sh installs it (Debian package docker-compose)"
    out = subprocess.run(
        [binary, "--env-file", str(DEPLOY / "compose.env.example"), "-f", str(DEPLOY / "compose.yaml"), "config"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    resolved = yaml.safe_load(out.stdout)
    api_env = resolved["services"]["api"]["environment"]
    assert api_env["IMAGEBUILDER_DATABASE_URL"].startswith("postgresql+psycopg://imagebuilder:change-me@postgres:")
    assert api_env["IMAGEBUILDER_TEMPORAL_ADDRESS"] == "temporal:7233"
    # A missing password is refused, not defaulted.
    empty = tmp_path / "empty.env"
    empty.write_text("")
    out = subprocess.run(
        [binary, "--env-file", str(empty), "-f", str(DEPLOY / "compose.yaml"), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0 and "set it in .env" in out.stderr


def test_the_dockerfile_copies_only_what_exists_and_the_ignore_file_lets_through() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    allowed = {
        line[1:].rstrip("/")
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    copies = re.findall(r"(?m)^COPY (.+) \S+$", dockerfile)
    sources = [src for line in copies for src in line.split()]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert source in allowed, f"{source} is copied but excluded by Dockerfile.dockerignore"
    assert 'ENTRYPOINT ["imagebuilder"]' in dockerfile
    assert 'imagebuilder = "engine.cli:main"' in (ROOT / "pyproject.toml").read_text()


# --- docs -----------------------------------------------------------------------------------


def test_the_deploy_docs_exist_and_are_linked() -> None:
    assert "deploy/MULTI_HOST.md" in (ROOT / "README.md").read_text()
    readme = (DEPLOY / "README.md").read_text()
    assert "not run here" in readme  # compose and the units were checked, not run
    for name in ("systemd/", "compose.yaml", "imagebuilder.toml.example", "MULTI_HOST.md"):
        assert name in readme
    multi = (DEPLOY / "MULTI_HOST.md").read_text()
    for queue in ("imagebuilder-control", "imagebuilder-docker", "imagebuilder-libvirt", "max_concurrent"):
        assert queue in multi
