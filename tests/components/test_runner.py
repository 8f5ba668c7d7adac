"""Run real documents on the local target: statuses, loops, chaining, retries, reboots, resume, CLI."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from components.cli import main
from components.errors import RunError
from components.runner import run_document
from components.runner_state import RunState
from components.targets.local import LocalTarget


class RebootingLocalTarget(LocalTarget):
    """The local host, where reboot() only counts: enough to drive the reboot protocol."""

    spec = "local-rebootable"

    def __init__(self) -> None:
        self.reboots = 0

    def reboot(self, timeout: float = 600) -> None:
        self.reboots += 1


class EngineCrash(BaseException):
    """Stands in for the engine process dying while the target reboots."""


class CrashingLocalTarget(LocalTarget):
    spec = "local-crashing"

    def reboot(self, timeout: float = 600) -> None:
        raise EngineCrash()


def write(tmp_path: Path, body: str, name: str = "doc.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body).lstrip())
    return path


def bash_steps(*steps: tuple[str, str], extra: str = "") -> str:
    out = ""
    for name, command in steps:
        out += f"      - name: {name}\n        action: ExecuteBash\n{extra}        inputs:\n"
        out += f"          commands:\n            - {json.dumps(command)}\n"
    return out


def test_full_run_with_chaining_loops_conditions_and_statuses(tmp_path: Path) -> None:
    doc = write(
        tmp_path,
        """
        name: demo
        schemaVersion: 1.0
        parameters:
          - Greeting: {type: string, default: hello}
        constants:
          - Who: {type: string, value: world}
        phases:
          - name: build
            steps:
              - name: Say
                action: ExecuteBash
                inputs:
                  commands: ['echo "{{ Greeting }} {{Who}}"']
              - name: Each
                action: ExecuteBash
                loop:
                  name: items
                  forEach: [a, '{{ Who }}']
                inputs:
                  commands: ['echo "{{ items.value }}-{{ loop.index }}:{{ build.Say.outputs.stdout }}"']
              - name: Count
                action: ExecuteBash
                loop:
                  for: {start: 3, end: 1, updateBy: -1}
                inputs:
                  commands: ['echo {{ loop.value }}']
              - name: Split
                action: ExecuteBash
                loop:
                  forEach: {list: 'x;y', delimiter: ';'}
                inputs:
                  commands: ['echo {{ loop.value }}']
              - name: Skipped
                action: ExecuteBash
                if: {fileExists: /definitely/not/here}
                inputs:
                  commands: ['exit 1']
              - name: Tolerated
                action: ExecuteBash
                onFailure: Ignore
                inputs:
                  commands: ['echo oops >&2; exit 3']
          - name: validate
            steps:
              - name: Check
                action: ExecuteBash
                inputs:
                  commands:
                    - test "{{ build.Each.outputs.stdout }}" = "$(printf 'a-0:hello world\\nworld-1:hello world')"
                    - test "{{ build.Count.outputs.stdout }}" = "$(printf '3\\n2\\n1')"
                    - test "{{ build.Split.outputs.stdout }}" = "$(printf 'x\\ny')"
        """,
    )
    summary = run_document([doc], target=LocalTarget(), log_directory=tmp_path / "logs")
    assert summary.status == "SuccessWithIgnoredFailure"
    assert [(s.step, s.status) for s in summary.steps] == [
        ("Say", "success"),
        ("Each", "success"),
        ("Count", "success"),
        ("Split", "success"),
        ("Skipped", "skipped"),
        ("Tolerated", "IgnoredFailure"),
        ("Check", "success"),
    ]
    assert (summary.executed_step_count, summary.failed_step_count, summary.ignored_failed_step_count) == (6, 0, 1)
    assert summary.log_dir.name.startswith("TOE_") and summary.log_dir.name.endswith(summary.execution_id)
    detail = json.loads(summary.detailed_output.read_text())
    assert detail["executionId"] == summary.execution_id and detail["status"] == "SuccessWithIgnoredFailure"
    step = detail["documents"][0]["phases"][0]["steps"][0]
    assert step["name"] == "Say" and step["action"] == "ExecuteBash" and step["exitCode"] == 0
    assert json.loads(step["inputs"]) == [{"commands": ['echo "hello world"']}]
    assert json.loads(step["outputs"])[0]["stdout"].strip() == "hello world"
    tolerated = detail["documents"][0]["phases"][0]["steps"][5]
    assert (
        tolerated["status"] == "IgnoredFailure" and tolerated["exitCode"] == 3 and "oops" in tolerated["failureMessage"]
    )
    assert (summary.log_dir / tolerated["stderrFile"]).read_text() == "oops\n"
    console = (summary.log_dir / "console.log").read_text()
    assert "hello world" in console and "build/Tolerated: IgnoredFailure" in console


def test_continue_keeps_going_but_fails_and_abort_stops(tmp_path: Path) -> None:
    doc = write(
        tmp_path,
        "schemaVersion: 1.0\nphases:\n  - name: build\n    steps:\n"
        + bash_steps(("Bad", "exit 4"), extra="        onFailure: Continue\n")
        + bash_steps(("After", "echo after"), ("Stop", "exit 5"), ("Never", "echo never")),
    )
    summary = run_document([doc], target=LocalTarget(), log_directory=tmp_path)
    assert summary.status == "failed"
    assert [(s.step, s.status) for s in summary.steps] == [("Bad", "failed"), ("After", "success"), ("Stop", "failed")]
    assert summary.failed_step == "doc.yaml/build/Bad"
    assert "exit code 5" in summary.failure_message  # the step that aborted the run
    assert "never" not in (summary.log_dir / "console.log").read_text()


def test_phases_run_in_document_order_and_filter(tmp_path: Path) -> None:
    doc = write(
        tmp_path,
        "schemaVersion: 1.0\nphases:\n"
        + "  - name: build\n    steps:\n"
        + bash_steps(("B", f"echo build >> {tmp_path}/order"))
        + "  - name: validate\n    steps:\n"
        + bash_steps(("V", f"echo validate >> {tmp_path}/order"))
        + "  - name: test\n    steps:\n"
        + bash_steps(("T", f"echo test >> {tmp_path}/order")),
    )
    summary = run_document([doc], target=LocalTarget(), log_directory=tmp_path, phases=["validate", "build"])
    assert summary.status == "success"
    assert (tmp_path / "order").read_text().split() == ["build", "validate"]


def test_max_attempts_retries_the_step(tmp_path: Path) -> None:
    counter = tmp_path / "count"
    doc = write(
        tmp_path,
        "schemaVersion: 1.0\nphases:\n  - name: build\n    steps:\n"
        + bash_steps(
            ("Flaky", f"echo x >> {counter}; [ $(wc -l < {counter}) -ge 3 ]"), extra="        maxAttempts: 3\n"
        ),
    )
    summary = run_document([doc], target=LocalTarget(), log_directory=tmp_path)
    assert summary.status == "success"
    detail = json.loads(summary.detailed_output.read_text())
    assert detail["documents"][0]["phases"][0]["steps"][0]["attempts"] == 3


def test_timeout_seconds_kills_the_step(tmp_path: Path) -> None:
    doc = write(
        tmp_path,
        "schemaVersion: 1.0\nphases:\n  - name: build\n    steps:\n"
        + bash_steps(("Slow", "sleep 20"), extra="        timeoutSeconds: 1\n"),
    )
    summary = run_document([doc], target=LocalTarget(), log_directory=tmp_path)
    assert summary.status == "failed" and "timed out" in summary.failure_message
    assert summary.steps[0].duration_seconds < 10


def test_parameters_override_and_required(tmp_path: Path) -> None:
    doc = write(
        tmp_path,
        """
        schemaVersion: 1.0
        parameters:
          - Must: {type: string}
        phases:
          - name: build
            steps:
              - name: Show
                action: ExecuteBash
                inputs:
                  commands: ['test "{{ Must }}" = given']
        """,
    )
    with pytest.raises(RunError, match="parameter 'Must' has no default"):
        run_document([doc], target=LocalTarget(), log_directory=tmp_path)
    with pytest.raises(RunError, match="empty value"):
        run_document([doc], target=LocalTarget(), log_directory=tmp_path, parameters={"Must": ""})
    summary = run_document(
        [doc], target=LocalTarget(), log_directory=tmp_path, parameters={"Must": "given", "Unknown": "ignored"}
    )
    assert summary.status == "success"


def test_windows_only_actions_are_refused_on_linux(tmp_path: Path) -> None:
    doc = write(
        tmp_path,
        """
        schemaVersion: 1.0
        phases:
          - name: build
            steps:
              - name: Registry
                action: SetRegistry
                inputs:
                  - path: HKLM:\\SOFTWARE\\Test
                    name: Value
                    value: '1'
                    type: SZ
        """,
    )
    with pytest.raises(RunError, match="action 'SetRegistry' runs on Windows only; target local is Linux"):
        run_document([doc], target=LocalTarget(), log_directory=tmp_path)


REBOOT_DOC = """
    schemaVersion: 1.0
    phases:
      - name: build
        steps:
          - name: Before
            action: ExecuteBash
            inputs:
              commands: ['echo before >> {dir}/trace']
          - name: NeedsReboot
            action: ExecuteBash
            if: {{binaryExists: sh}}
            inputs:
              commands:
                - |
                  echo run >> {dir}/trace
                  if [ -f {dir}/indicator ]; then rm {dir}/indicator; exit 0; fi
                  touch {dir}/indicator
                  exit 194
          - name: After
            action: ExecuteBash
            inputs:
              commands: ['echo after >> {dir}/trace']
    """


def test_exit_194_reboots_and_reruns_only_that_step(tmp_path: Path) -> None:
    doc = write(tmp_path, REBOOT_DOC.format(dir=tmp_path))
    target = RebootingLocalTarget()
    summary = run_document([doc], target=target, log_directory=tmp_path / "logs")
    assert summary.status == "success" and target.reboots == 1
    assert (tmp_path / "trace").read_text().split() == ["before", "run", "run", "after"]
    detail = json.loads(summary.detailed_output.read_text())
    step = detail["documents"][0]["phases"][0]["steps"][1]
    assert (step["reboots"], step["attempts"]) == (1, 1)


def test_local_target_cannot_reboot_so_the_step_fails(tmp_path: Path) -> None:
    doc = write(tmp_path, REBOOT_DOC.format(dir=tmp_path))
    summary = run_document([doc], target=LocalTarget(), log_directory=tmp_path / "logs")
    assert summary.status == "failed" and "cannot reboot" in summary.failure_message


def test_resume_after_engine_restart(tmp_path: Path) -> None:
    doc = write(tmp_path, REBOOT_DOC.format(dir=tmp_path))
    logs = tmp_path / "logs"
    with pytest.raises(EngineCrash):
        run_document([doc], target=CrashingLocalTarget(), log_directory=logs, execution_id="run-1")
    (folder,) = logs.iterdir()
    state = RunState.load(folder)
    assert state.reboot_pending == "0/build/NeedsReboot"
    assert state.steps["0/build/Before"].status == "success"
    assert state.steps["0/build/NeedsReboot"].decision == "Execute"
    # A new engine process: same execution id and log directory resume the run.
    target = RebootingLocalTarget()
    summary = run_document([doc], target=target, log_directory=logs, execution_id="run-1")
    assert summary.status == "success" and summary.log_dir == folder
    assert target.reboots == 1  # the reboot that was pending when the engine died
    assert (tmp_path / "trace").read_text().split() == ["before", "run", "run", "after"]
    # Running a finished execution again changes nothing.
    again = run_document([doc], target=target, log_directory=logs, execution_id="run-1")
    assert again.status == "success" and (tmp_path / "trace").read_text().split()[-1] == "after"
    assert target.reboots == 1


def test_execute_document_runs_a_nested_document(tmp_path: Path) -> None:
    write(
        tmp_path,
        "schemaVersion: 1.0\nparameters:\n  - Word: {type: string}\nphases:\n"
        + "  - name: build\n    steps:\n"
        + bash_steps(("Inner", f"echo {{{{ Word }}}} >> {tmp_path}/nested")),
        name="inner.yaml",
    )
    outer = write(
        tmp_path,
        """
        schemaVersion: 1.0
        phases:
          - name: build
            steps:
              - name: Nested
                action: ExecuteDocument
                inputs:
                  document: inner.yaml
                  parameters:
                    - name: Word
                      value: deep
        """,
    )
    summary = run_document([outer], target=LocalTarget(), log_directory=tmp_path / "logs")
    assert summary.status == "success", summary.failure_message
    assert (tmp_path / "nested").read_text() == "deep\n"


def test_cli_run_and_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(
        tmp_path,
        "schemaVersion: 1.0\nphases:\n  - name: build\n    steps:\n" + bash_steps(("Hi", "echo hi")),
        name="good.yaml",
    )
    bad = write(
        tmp_path,
        "schemaVersion: 1.0\nphases:\n  - name: build\n    steps:\n" + bash_steps(("Fails", "exit 9")),
        name="bad.yaml",
    )
    assert main(["validate", "--documents", f"{good},{bad}"]) == 0
    assert main(["run", "-d", str(good), "-l", str(tmp_path / "l"), "-i", "cli-1"]) == 0
    result = json.loads(capsys.readouterr().out.split("\n", 2)[-1])
    assert result["status"] == "success" and result["executionId"] == "cli-1"
    assert main(["run", "-d", str(bad), "-l", str(tmp_path / "l")]) == 1
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps({"documents": [{"path": str(good)}], "phases": "build", "logDirectory": str(tmp_path / "c")})
    )
    assert main(["run", "--config", str(config)]) == 0
    assert any((tmp_path / "c").iterdir())
    broken = write(tmp_path, "schemaVersion: 9\nphases: []\n", name="broken.yaml")
    assert main(["validate", "-d", str(broken)]) == 1
    assert "broken.yaml:1: schemaVersion must be 1.0" in capsys.readouterr().err
    assert main(["run"]) == 1  # no documents: usage error, awstoe exits 1
    assert main(["run", "-d", str(good), "--target", "nowhere:1"]) == 1
