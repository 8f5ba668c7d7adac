"""Parsing and validation of component documents: every rule reports file, line, step and phase."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from components.document import OnFailure, load_document, parse_document, validate_text
from components.errors import DocumentInvalid


def doc(body: str) -> str:
    return textwrap.dedent(body).lstrip()


def errors_of(text: str, label: str = "t.yaml") -> list[str]:
    with pytest.raises(DocumentInvalid) as info:
        parse_document(doc(text), label)
    return [str(e) for e in info.value.errors]


def bash_doc(step_extra: str = "", top: str = "") -> str:
    return (
        doc(top)
        + "schemaVersion: 1.0\nphases:\n  - name: build\n    steps:\n      - name: Install\n"
        + "        action: ExecuteBash\n"
        + textwrap.indent(doc(step_extra), "        ")
        + "        inputs:\n          commands: ['echo hi']\n"
    )


def test_minimal_document_and_defaults() -> None:
    d = parse_document(bash_doc())
    step = d.phases[0].steps[0]
    assert (d.schema_version, d.phases[0].name, step.name, step.action) == ("1.0", "build", "Install", "ExecuteBash")
    assert (step.timeout_seconds, step.max_attempts, step.on_failure) == (7200, 1, OnFailure.ABORT)
    assert step.inputs == {"commands": ["echo hi"]}
    assert step.line == 5


@pytest.mark.parametrize("version", ["1.0", "1", "'1.0'", "'1'"])
def test_schema_version_accepts_1_and_1_0(version: str) -> None:
    parse_document(bash_doc().replace("schemaVersion: 1.0", f"schemaVersion: {version}"))


def test_schema_version_other_values_rejected() -> None:
    assert errors_of(bash_doc().replace("1.0", "2.0")) == ["t.yaml:1: schemaVersion must be 1.0, not 2.0"]


def test_error_names_file_line_step_and_phase() -> None:
    text = bash_doc().replace("commands: ['echo hi']", "commands: echo hi")
    assert errors_of(text, "hello.yaml") == [
        "hello.yaml:8: step 'Install' (phase build): inputs.commands must be a list of strings"
    ]


def test_yaml_syntax_error_has_line() -> None:
    (message,) = errors_of("schemaVersion: 1.0\nphases:\n  - name: build\n   steps: [\n")
    assert message.startswith("t.yaml:") and "YAML syntax error" in message


def test_parameters_and_constants() -> None:
    text = bash_doc(
        top="""
        parameters:
          - Greeting:
              type: string
              default: hello
              allowedValues: [hello, hi]
          - Needed:
              type: string
        constants:
          - Where:
              type: string
              value: world
        """
    )
    d = parse_document(text)
    assert [(p.name, p.default) for p in d.parameters] == [("Greeting", "hello"), ("Needed", None)]
    assert [(c.name, c.value) for c in d.constants] == [("Where", "world")]


@pytest.mark.parametrize(
    ("top", "expected"),
    [
        ("parameters:\n  - ab:\n      type: string\n", "parameter name 'ab' must be 3-128 characters"),
        ("parameters:\n  - Abc:\n      default: x\n", "parameter 'Abc' needs a type"),
        ("parameters:\n  - name: Abc\n    type: string\n", "written '- Abc: {type: string, ...}'"),
        ("parameters:\n  Abc: {type: string}\n", "parameters must be a list of one-key maps"),
        ("constants:\n  - Abc:\n      type: string\n", "constant 'Abc' needs a string value"),
        ("constants:\n  - Abc:\n      type: integer\n      value: 1\n", "constant 'Abc' must have type: string"),
        (
            "parameters:\n  - Abc: {type: string}\nconstants:\n  - Abc: {type: string, value: x}\n",
            "t.yaml:4: 'Abc' is defined more than once",
        ),
    ],
)
def test_parameter_and_constant_rules(top: str, expected: str) -> None:
    assert any(expected in e for e in errors_of(bash_doc(top=top))), errors_of(bash_doc(top=top))


def test_phases_rules() -> None:
    assert "at least one of the phases build, validate, test" in errors_of(bash_doc().replace("build", "cleanup"))[0]
    two = bash_doc() + "  - name: build\n    steps:\n      - {name: X, action: ExecuteBash, inputs: {commands: [a]}}\n"
    assert errors_of(two) == ["t.yaml:9: phase 'build': phase names must be unique in a document"]
    assert "phases is required" in errors_of("schemaVersion: 1.0\n")[0]
    assert "unknown top-level key 'step'" in errors_of(bash_doc() + "step: 1\n")[0]


def test_duplicate_step_names_in_a_phase_but_not_across_phases() -> None:
    step = "      - {name: Same, action: ExecuteBash, inputs: {commands: [a]}}\n"
    ok = "schemaVersion: 1\nphases:\n  - name: build\n    steps:\n" + step + "  - name: test\n    steps:\n" + step
    parse_document(ok)
    bad = "schemaVersion: 1\nphases:\n  - name: build\n    steps:\n" + step + step
    assert errors_of(bad) == ["t.yaml:6: step 'Same' (phase build): step names must be unique within a phase"]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("onFailure: Stop\n", "onFailure must be Abort, Continue or Ignore, not 'Stop'"),
        ("timeoutSeconds: 0\n", "timeoutSeconds must be a positive integer or -1"),
        ("timeoutSeconds: -5\n", "timeoutSeconds must be a positive integer or -1"),
        ("timeoutSeconds: '60'\n", "timeoutSeconds must be a positive integer or -1"),
        ("maxAttempts: 0\n", "maxAttempts must be an integer of at least 1"),
        ("disableLogging: 'yes'\n", "disableLogging must be true or false"),
        ("retries: 3\n", "unknown step field 'retries'"),
    ],
)
def test_step_field_rules(extra: str, expected: str) -> None:
    (message,) = errors_of(bash_doc(extra))
    assert message.startswith("t.yaml:7: step 'Install' (phase build): ") and expected in message


def test_step_field_values_kept() -> None:
    step = parse_document(bash_doc("onFailure: Ignore\ntimeoutSeconds: -1\nmaxAttempts: 3\n")).phases[0].steps[0]
    assert (step.on_failure, step.timeout_seconds, step.max_attempts) == (OnFailure.IGNORE, -1, 3)


def test_unknown_action_lists_known_ones() -> None:
    (message,) = errors_of(bash_doc().replace("ExecuteBash", "Foo"))
    assert "step 'Install' (phase build): unknown action 'Foo' (known: " in message
    assert "ExecuteBash" in message


def test_windows_only_actions_validate_as_documents() -> None:
    text = doc("""
        schemaVersion: 1.0
        phases:
          - name: build
            steps:
              - name: Ps
                action: ExecutePowerShell
                inputs:
                  commands: ['Write-Host hi']
        """)
    assert parse_document(text).phases[0].steps[0].action == "ExecutePowerShell"


def test_execute_document_forces_timeout_and_attempts() -> None:
    text = doc("""
        schemaVersion: 1.0
        phases:
          - name: build
            steps:
              - name: Nested
                action: ExecuteDocument
                timeoutSeconds: 60
                maxAttempts: 2
                inputs:
                  document: other.yaml
        """)
    messages = errors_of(text)
    assert any("ExecuteDocument always runs without a timeout" in m for m in messages)
    assert any("ExecuteDocument runs once" in m for m in messages)


@pytest.mark.parametrize(
    ("loop", "expected"),
    [
        ("for: {start: 0, end: 5, updateBy: -1}", "never reaches its end"),
        ("for: {start: 0, end: 5, updateBy: 0}", "never reaches its end"),
        ("for: {start: 0, end: '{{ X }}', updateBy: 1}", "integer start, end and updateBy"),
        ("forEach: {list: 'a,b', delimiter: '||'}", "delimiter must be one character"),
        ("forEach: []", "non-empty list of strings"),
        ("for: {start: 0, end: 1, updateBy: 1}\n  forEach: [a]", "exactly one of 'for' and 'forEach'"),
    ],
)
def test_loop_rules(loop: str, expected: str) -> None:
    text = bash_doc("loop:\n  " + loop + "\n")
    assert any(expected in m for m in errors_of(text)), errors_of(text)


def test_loop_forms_parse() -> None:
    step = parse_document(bash_doc("loop:\n  name: files\n  forEach:\n    list: 'a b'\n    delimiter: ' '\n"))
    loop = step.phases[0].steps[0].loop
    assert loop is not None and (loop.name, loop.list_text, loop.delimiter) == ("files", "a b", " ")


def test_loop_names_unique_per_phase() -> None:
    step = "      - {name: S%d, action: ExecuteBash, loop: {name: each, forEach: [a]}, inputs: {commands: [a]}}\n"
    text = "schemaVersion: 1\nphases:\n  - name: build\n    steps:\n" + step % 1 + step % 2
    assert "loop name 'each' is used twice in this phase" in errors_of(text)[0]


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("{fileIsHere: /x}", "unknown condition operator 'fileIsHere'"),
        ("{stringEquals: a}", "'stringEquals' needs a 'value'"),
        ("{fileSHA256Equals: abc}", "needs the 'path'"),
        ("{and: {fileExists: /x}}", "'and' takes a non-empty list"),
        ("{not: {not: {not: {not: {not: {fileExists: /x}}}}}}", "nest at most 4"),
        ("{fileExists: /x, folderExists: /y}", "exactly one operator"),
        ("{fileExists: /x, then: Maybe}", "'then' must be one of Execute, Skip, Abort"),
    ],
)
def test_if_rules(condition: str, expected: str) -> None:
    text = bash_doc(f"if: {condition}\n")
    assert any(expected in m for m in errors_of(text)), errors_of(text)


def test_if_forms_accepted() -> None:
    parse_document(bash_doc("if:\n  and:\n    - binaryExists: apt-get\n    - not:\n        binaryExists: unzip\n"))
    parse_document(bash_doc("if: {not: [{fileExists: /x}]}\n"))
    parse_document(bash_doc("if: {numberLessThan: 2, value: 1, then: Execute, else: Abort}\n"))


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("'{{ Missing }}'", "'{{ Missing }}' is not a parameter or constant of this document"),
        ("'{{.GoTemplate}}'", "'{{.GoTemplate}}' is not a valid variable reference"),
        ("'{{ build.Later.outputs.stdout }}'", "refers to step 'Later' of phase 'build', which does not come before"),
        ("'{{ other.value }}'", "'other' is not this step's loop name"),
        ("'{{ aws:imds:iam/security-credentials }}'", "holds credentials and is not allowed"),
        ("'{{ context:nope }}'", "unknown context key 'nope'"),
    ],
)
def test_reference_rules(command: str, expected: str) -> None:
    text = bash_doc().replace("['echo hi']", f"[{command}]") + (
        "      - {name: Later, action: ExecuteBash, inputs: {commands: [a]}}\n"
    )
    (message,) = errors_of(text)
    assert message.startswith("t.yaml:8: step 'Install' (phase build): ") and expected in message


def test_references_that_resolve() -> None:
    text = doc("""
        schemaVersion: 1.0
        parameters:
          - Name: {type: string, default: x}
        phases:
          - name: build
            steps:
              - name: First
                action: ExecuteBash
                inputs:
                  commands: ['echo {{Name}}']
          - name: validate
            steps:
              - name: Second
                action: ExecuteBash
                loop:
                  name: each
                  forEach: ['{{ Name }}', b]
                inputs:
                  commands:
                    - 'echo {{ build.First.outputs.stdout }} {{ each.value }} {{ loop.index }}'
                    - 'echo {{ env:HOME }} {{ context:executionId }} {{ aws:ssm:/a/b }}'
              - name: Third
                action: ExecuteBash
                inputs:
                  commands: ['echo {{ loop.value }}']
        """)
    parse_document(text)


def test_octal_permissions_keep_their_text() -> None:
    text = doc("""
        schemaVersion: 1.0
        phases:
          - name: build
            steps:
              - name: Perm
                action: SetFilePermissions
                inputs:
                  - path: /tmp/x
                    permissions: 0700
        """)
    assert parse_document(text).phases[0].steps[0].inputs == [{"path": "/tmp/x", "permissions": "0700"}]


def test_every_error_reported_at_once_sorted_by_line() -> None:
    text = bash_doc("onFailure: Nope\n").replace("schemaVersion: 1.0", "schemaVersion: 3")
    messages = errors_of(text)
    assert len(messages) == 2 and messages[0].startswith("t.yaml:1:") and messages[1].startswith("t.yaml:7:")


def test_load_document_from_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(bash_doc())
    assert load_document(path).path == path.resolve()
    with pytest.raises(DocumentInvalid, match="cannot read document"):
        load_document(tmp_path / "missing.yaml")
    assert validate_text(bash_doc(), "api.yaml").label == "api.yaml"
