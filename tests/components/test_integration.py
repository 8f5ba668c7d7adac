"""Whole documents through the runner on real remote targets: a Debian container over the
Docker API (DockerTarget) and a real sshd in a container over paramiko (SSHTarget).

Covers multi-phase runs with loops, conditions, chaining, every onFailure status, the file
actions, WebDownload from a file:// URL on the target, a reboot in the middle of a document
(a real container restart: `docker restart`, or PID 1 exiting under restart policy "always"
for the sshd container), UpdateOS with apt-get, and the awstoe-style CLI. Nothing is mocked.
The last test checks that no test container was left behind.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from docker.models.containers import Container

from components.runner import run_document
from components.targets.base import Target
from components.targets.docker import DockerTarget
from components.targets.ssh import SSHTarget
from tests.support.containers import SshEndpoint, session_containers

pytestmark = pytest.mark.timeout(300)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["docker", "ssh"])
def remote(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Target, Container]]:
    """A remote target and the container behind it (to look at it from the outside)."""
    made: Target
    if request.param == "docker":
        container: Container = request.getfixturevalue("debian_container")
        made = DockerTarget(str(container.id))
    else:
        endpoint: SshEndpoint = request.getfixturevalue("sshd_container")
        container = endpoint.container
        made = SSHTarget(
            endpoint.host,
            endpoint.port,
            "root",
            key_filename=str(endpoint.key_path),
            known_hosts=tmp_path / "known_hosts",
        )
    with made:
        yield made, container


def write(tmp_path: Path, body: str, name: str = "doc.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body).lstrip())
    return path


def sh(target: Target, script: str) -> str:
    result = target.exec(["sh", "-c", script], timeout=60)
    assert result.exit_code == 0, result.stderr.decode()
    return result.stdout.decode()


def steps_of(detailed_output: Path) -> dict[str, dict[str, Any]]:
    """detailedoutput.json's steps by name (names are unique across the documents used here)."""
    detail = json.loads(detailed_output.read_text())
    return {s["name"]: s for d in detail["documents"] for p in d["phases"] for s in p["steps"]}


def outputs(step: dict[str, Any]) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(step["outputs"])[0]
    return value


# --- one document that exercises most of the engine ---------------------------------------------

FEATURES = """
    name: integration
    description: loops, conditions, chaining, file actions and a file:// download
    schemaVersion: 1.0
    parameters:
      - Root: {type: string, default: /opt/it}
      - Greeting: {type: string, default: hello}
    constants:
      - Owner: {type: string, value: nobody}
    phases:
      - name: build
        steps:
          - name: MakeFolder
            action: CreateFolder
            inputs:
              - path: '{{ Root }}/src'
          - name: CreateFiles
            action: CreateFile
            loop:
              name: files
              forEach: [alpha, beta, gamma]
            inputs:
              - path: '{{ Root }}/src/{{ files.value }}.txt'
                content: '{{ Greeting }} {{ files.value }} #{{ files.index }}'
          - name: Append
            action: AppendFile
            inputs:
              - path: '{{ Root }}/src/alpha.txt'
                content: "\\nappended"
          - name: Copy
            action: CopyFile
            inputs:
              - source: '{{ Root }}/src/alpha.txt'
                destination: '{{ Root }}/copy/'
          - name: Move
            action: MoveFolder
            inputs:
              - source: '{{ Root }}/src'
                destination: '{{ Root }}/moved'
          - name: Permissions
            action: SetFilePermissions
            inputs:
              - path: '{{ Root }}/moved/beta.txt'
                permissions: '0640'
          - name: Owner
            action: SetFileOwner
            inputs:
              - path: '{{ Root }}/moved/beta.txt'
                owner: '{{ Owner }}'
                group: nogroup
          - name: Read
            action: ReadFile
            inputs:
              - path: '{{ Root }}/copy/alpha.txt'
          - name: List
            action: ListFiles
            inputs:
              - path: '{{ Root }}/moved'
                fileNamePattern: '*.txt'
          - name: Publish
            action: ExecuteBash
            inputs:
              commands:
                - mkdir -p {{ Root }}/www && printf 'payload from the target' > {{ Root }}/www/payload.bin
                - sha256sum {{ Root }}/www/payload.bin | cut -d ' ' -f 1
          - name: Download
            action: WebDownload
            inputs:
              - source: 'file://{{ Root }}/www/payload.bin'
                destination: '{{ Root }}/downloads/'
                checksum: '{{ build.Publish.outputs.stdout }}'
                algorithm: SHA256
          - name: Count
            action: ExecuteBash
            loop:
              name: counter
              for: {start: 1, end: 5, updateBy: 2}
            inputs:
              commands: ['echo "{{ counter.index }}:{{ counter.value }}"']
          - name: Split
            action: ExecuteBash
            loop:
              forEach: {list: '{{ build.Count.outputs.stdout }}', delimiter: "\\n"}
            inputs:
              commands: ['echo "item {{ loop.value }}"']
          - name: WhenPresent
            action: ExecuteBash
            if:
              and:
                - binaryExists: bash
                - fileExists: '{{ Root }}/moved/alpha.txt'
                - not:
                    folderExists: '{{ Root }}/src'
            inputs:
              commands: ['echo ran > {{ Root }}/when-present']
          - name: WhenAbsent
            action: ExecuteBash
            if:
              fileExists: '{{ Root }}/no/such/file'
            inputs:
              commands: ['echo ran > {{ Root }}/when-absent; exit 1']
          - name: Tolerated
            action: ExecuteBash
            onFailure: Ignore
            inputs:
              commands: ['echo tolerated >&2; exit 3']
      - name: validate
        steps:
          - name: CheckContent
            action: Assert
            inputs:
              stringEquals: "{{ Greeting }} alpha #0\\nappended"
              value: '{{ build.Read.outputs.content }}'
          - name: CheckOnTarget
            action: ExecuteBash
            inputs:
              commands:
                - set -e
                - test "$(cat {{ Root }}/downloads/payload.bin)" = 'payload from the target'
                - test "$(stat -c '%U:%G %a' {{ Root }}/moved/beta.txt)" = 'nobody:nogroup 640'
                - test ! -e {{ Root }}/src
                - echo "{{ build.Download.outputs.destination }}"
      - name: test
        steps:
          - name: NotSelected
            action: ExecuteBash
            inputs:
              commands: ['touch {{ Root }}/test-phase-ran']
    """


def check_features(target: Target, detailed_output: Path, root: str, greeting: str) -> None:
    detail = json.loads(detailed_output.read_text())
    assert detail["status"] == "SuccessWithIgnoredFailure", detail["failureMessage"]
    steps = steps_of(detailed_output)
    statuses = {name: s["status"] for name, s in steps.items()}
    assert statuses.pop("WhenAbsent") == "skipped"
    assert statuses.pop("Tolerated") == "IgnoredFailure"
    assert set(statuses.values()) == {"success"}, statuses
    assert "NotSelected" not in steps  # phase test was not asked for
    counts = (detail["executedStepCount"], detail["failedStepCount"], detail["ignoredFailedStepCount"])
    assert counts == (len(steps) - 1, 0, 1)
    # Chaining and loop outputs, as the engine recorded them.
    assert outputs(steps["Read"])["content"] == f"{greeting} alpha #0\nappended"
    assert outputs(steps["List"])["files"] == [f"{root}/moved/{n}.txt" for n in ("alpha", "beta", "gamma")]
    assert outputs(steps["Count"])["stdout"] == "0:1\n1:3\n2:5"
    assert outputs(steps["Split"])["stdout"] == "item 0:1\nitem 1:3\nitem 2:5"
    assert outputs(steps["Download"])["destination"] == f"{root}/downloads/payload.bin"
    assert outputs(steps["CheckOnTarget"])["stdout"] == f"{root}/downloads/payload.bin"
    assert json.loads(steps["Download"]["inputs"])[0]["checksum"] == outputs(steps["Publish"])["stdout"]
    assert steps["Tolerated"]["exitCode"] == 3 and "tolerated" in steps["Tolerated"]["failureMessage"]
    # And on the target itself.
    for index, name in enumerate(("alpha", "beta", "gamma")):
        expected = f"{greeting} {name} #{index}" + ("\nappended" if name == "alpha" else "")
        assert target.read_file(f"{root}/moved/{name}.txt").decode() == expected
    assert target.read_file(f"{root}/copy/alpha.txt").decode() == f"{greeting} alpha #0\nappended"
    assert sh(target, f"stat -c '%U:%G %a' {root}/moved/beta.txt").strip() == "nobody:nogroup 640"
    assert target.read_file(f"{root}/when-present") == b"ran\n"
    assert sh(target, f"ls {root}").split() == ["copy", "downloads", "moved", "when-present", "www"]


def test_features_document(remote: tuple[Target, Container], tmp_path: Path) -> None:
    target, _ = remote
    doc = write(tmp_path, FEATURES)
    summary = run_document([doc], target=target, log_directory=tmp_path / "logs", phases=["build", "validate"])
    assert summary.status == "SuccessWithIgnoredFailure"
    check_features(target, summary.detailed_output, "/opt/it", "hello")
    console = (summary.log_dir / "console.log").read_text()
    assert f"started on {target.spec}" in console and "build/Tolerated: IgnoredFailure" in console


def test_cli_runs_a_document_on_a_container(debian_container: Container, tmp_path: Path) -> None:
    doc = write(tmp_path, FEATURES)
    logs = tmp_path / "cli-logs"
    argv = [
        sys.executable, "-m", "engine.cli", "toe", "run",
        "--documents", str(doc),
        "--phases", "build,validate",
        "--parameters", "Root=/srv/cli,Greeting=hi",
        "--target", f"docker:{debian_container.id}",
        "--log-directory", str(logs),
    ]  # fmt: skip
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "SuccessWithIgnoredFailure" and result["ignoredFailedStepCount"] == 1
    (run_dir,) = logs.iterdir()
    assert run_dir.name.startswith("TOE_") and run_dir.name.endswith(result["executionId"])
    assert result["logUrl"] == str(run_dir)
    detail = json.loads((run_dir / "detailedoutput.json").read_text())
    assert detail["status"] == "SuccessWithIgnoredFailure" and detail["executionId"] == result["executionId"]
    assert [p["name"] for p in detail["documents"][0]["phases"]] == ["build", "validate"]
    with DockerTarget(str(debian_container.id)) as target:
        check_features(target, run_dir / "detailedoutput.json", "/srv/cli", "hi")

    # A failing run exits 1 and still writes its detailed output.
    bad = write(
        tmp_path,
        "schemaVersion: 1.0\nphases:\n  - name: build\n    steps:\n"
        "      - name: Fails\n        action: ExecuteBash\n        inputs:\n          commands: ['exit 7']\n",
        name="bad.yaml",
    )
    argv[argv.index("--documents") + 1] = str(bad)
    failed = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert failed.returncode == 1, failed.stderr
    assert json.loads(failed.stdout)["status"] == "failed"


# --- scripts: small ones travel inside the exec, big ones are uploaded first ------------------------


def test_small_and_big_scripts_land_as_private_files(remote: tuple[Target, Container], tmp_path: Path) -> None:
    target, _ = remote
    filler = "x" * 100_000  # over the inline limit: written with write_file, then run
    doc = write(
        tmp_path,
        f"""
        schemaVersion: 1.0
        phases:
          - name: build
            steps:
              - name: Small
                action: ExecuteBash
                inputs:
                  commands:
                    - printf '%s|' "it's" '$HOME' "back\\slash" '%d'
                    - stat -c %a "$0"
                    - umask
              - name: Big
                action: ExecuteBash
                inputs:
                  commands:
                    - ": '{filler}'"
                    - stat -c %a "$0"
        """,
    )
    summary = run_document([doc], target=target, log_directory=tmp_path / "logs")
    assert summary.status == "success", summary.failure_message
    steps = steps_of(summary.detailed_output)
    # The umask that kept the script private while it was written is not the script's umask.
    umask = sh(target, "umask").strip()
    assert outputs(steps["Small"])["stdout"] == f"it's|$HOME|back\\slash|%d|700\n{umask}"
    assert outputs(steps["Big"])["stdout"] == "700"


# --- onFailure ------------------------------------------------------------------------------------

STATUSES = """
    schemaVersion: 1.0
    phases:
      - name: build
        steps:
          - name: Continued
            action: ExecuteBash
            onFailure: Continue
            inputs:
              commands: ['echo continued >> /var/tmp/statuses; exit 4']
          - name: Ignored
            action: ExecuteBash
            onFailure: Ignore
            inputs:
              commands: ['echo ignored >> /var/tmp/statuses; exit 5']
          - name: Fine
            action: ExecuteBash
            inputs:
              commands: ['echo fine >> /var/tmp/statuses']
          - name: Aborts
            action: ExecuteBash
            inputs:
              commands: ['echo aborts >> /var/tmp/statuses; echo why >&2; exit 6']
          - name: NeverReached
            action: ExecuteBash
            inputs:
              commands: ['echo never >> /var/tmp/statuses']
      - name: validate
        steps:
          - name: NeverValidated
            action: ExecuteBash
            inputs:
              commands: ['echo never-validated >> /var/tmp/statuses']
    """


def test_on_failure_continue_ignore_and_abort(remote: tuple[Target, Container], tmp_path: Path) -> None:
    target, _ = remote
    summary = run_document([write(tmp_path, STATUSES)], target=target, log_directory=tmp_path / "logs")
    assert summary.status == "failed"
    assert [(s.step, s.status) for s in summary.steps] == [
        ("Continued", "failed"),
        ("Ignored", "IgnoredFailure"),
        ("Fine", "success"),
        ("Aborts", "failed"),
    ]
    assert summary.failed_step == "doc.yaml/build/Continued"
    assert "exit code 6" in summary.failure_message and "why" in summary.failure_message
    assert (summary.failed_step_count, summary.ignored_failed_step_count) == (2, 1)
    steps = steps_of(summary.detailed_output)
    assert (steps["Continued"]["exitCode"], steps["Ignored"]["exitCode"], steps["Aborts"]["exitCode"]) == (4, 5, 6)
    assert target.read_file("/var/tmp/statuses").decode().split() == ["continued", "ignored", "fine", "aborts"]


# --- reboot in the middle of a document -------------------------------------------------------

# Every step appends its name and the start time of the target's PID 1 (clock ticks since the
# host booted, /proc/1/stat field 22) to a file on the target's disk. A restarted container has
# a new PID 1, so the trace shows both which steps ran and which "boot" each one ran in.
REBOOTS = """
    schemaVersion: 1.0
    constants:
      - Trace: {type: string, value: /var/tmp/it-reboot/trace}
    phases:
      - name: build
        steps:
          - name: First
            action: ExecuteBash
            inputs:
              commands:
                - mkdir -p /var/tmp/it-reboot
                - echo "First $(cut -d ' ' -f 22 /proc/1/stat)" >> {{ Trace }}
          - name: AsksForReboot
            action: ExecuteBash
            inputs:
              commands:
                - echo "AsksForReboot $(cut -d ' ' -f 22 /proc/1/stat)" >> {{ Trace }}
                - if [ -f /var/tmp/it-reboot/marker ]; then rm /var/tmp/it-reboot/marker; echo resumed; exit 0; fi
                - touch /var/tmp/it-reboot/marker
                - exit 194
          - name: Middle
            action: ExecuteBash
            inputs:
              commands: ['echo "Middle $(cut -d '' '' -f 22 /proc/1/stat)" >> {{ Trace }}']
      - name: validate
        steps:
          - name: RebootNow
            action: Reboot
          - name: Last
            action: ExecuteBash
            inputs:
              commands: ['echo "Last $(cut -d '' '' -f 22 /proc/1/stat)" >> {{ Trace }}']
    """


def test_reboot_mid_document_resumes_at_the_same_step(remote: tuple[Target, Container], tmp_path: Path) -> None:
    target, container = remote
    container.reload()
    started_before = container.attrs["State"]["StartedAt"]
    restarts_before = int(container.attrs["RestartCount"])
    summary = run_document([write(tmp_path, REBOOTS)], target=target, log_directory=tmp_path / "logs")
    assert summary.status == "success", summary.failure_message

    trace = [line.split() for line in target.read_file("/var/tmp/it-reboot/trace").decode().splitlines()]
    assert [name for name, _ in trace] == ["First", "AsksForReboot", "AsksForReboot", "Middle", "Last"]
    boots = [int(tick) for _, tick in trace]
    # First and the first try of AsksForReboot in boot 1; its rerun and Middle in boot 2; Last in boot 3.
    assert boots[0] == boots[1] < boots[2] == boots[3] < boots[4]
    assert sh(target, "ls -A /var/tmp/it-reboot").split() == ["trace"]  # the step's marker is gone

    steps = steps_of(summary.detailed_output)
    assert (steps["AsksForReboot"]["reboots"], steps["AsksForReboot"]["attempts"]) == (1, 1)
    assert outputs(steps["AsksForReboot"])["stdout"] == "resumed"
    assert (steps["RebootNow"]["reboots"], steps["RebootNow"]["status"]) == (1, "success")
    assert all(s["reboots"] == 0 for name, s in steps.items() if name not in ("AsksForReboot", "RebootNow"))

    # The container really restarted, twice: docker restarts it (docker target), or PID 1
    # exited and the restart policy brought it back (sshd container).
    container.reload()
    assert container.attrs["State"]["StartedAt"] != started_before
    if isinstance(target, SSHTarget):
        assert int(container.attrs["RestartCount"]) == restarts_before + 2
    console = (summary.log_dir / "console.log").read_text()
    assert console.count(f"rebooting {target.spec}") == 2


# --- UpdateOS ------------------------------------------------------------------------------------

UPDATE_OS = """
    schemaVersion: 1.0
    phases:
      - name: build
        steps:
          # The image's only source is deb.debian.org, which this network cannot reach: with no
          # sources `apt-get update` succeeds offline and the upgrade finds nothing to do.
          - name: NoSources
            action: CreateFile
            inputs:
              - path: /etc/apt/sources.list
                content: ''
                overwrite: true
          - name: UpdateAll
            action: UpdateOS
          - name: UpdateSome
            action: UpdateOS
            inputs:
              include: [bash, coreutils]
          - name: UpdateExcept
            action: UpdateOS
            inputs:
              exclude: [apt]
    """


def test_update_os_runs_apt_get_on_debian(debian_container: Container, tmp_path: Path) -> None:
    with DockerTarget(str(debian_container.id)) as target:
        assert target.exec(["test", "-e", "/var/lib/apt/lists/lock"]).exit_code != 0  # apt-get update never ran
        summary = run_document([write(tmp_path, UPDATE_OS)], target=target, log_directory=tmp_path / "logs")
        assert summary.status == "success", summary.failure_message
        assert [s.status for s in summary.steps] == ["success"] * 4
        assert target.exec(["test", "-e", "/var/lib/apt/lists/lock"]).exit_code == 0  # now it has
        assert sh(target, "apt-mark showhold") == ""  # the exclude hold was released
    steps = steps_of(summary.detailed_output)
    logs = {name: (summary.log_dir / steps[name]["stdoutFile"]).read_text() for name in steps}
    assert "0 upgraded, 0 newly installed" in logs["UpdateAll"]
    assert "bash is already the newest version" in logs["UpdateSome"]
    assert "0 upgraded, 0 newly installed" in logs["UpdateExcept"]
    console = (summary.log_dir / "console.log").read_text()
    assert console.count("updating with apt-get") == 3


# --- last: nothing left behind ---------------------------------------------------------------------


def test_no_test_containers_left(docker_client: docker.DockerClient) -> None:
    # Every fixture above has finished by now; each must have removed its container.
    leftovers = session_containers(docker_client)
    assert not leftovers, f"test containers left behind: {[c.name for c in leftovers]}"
