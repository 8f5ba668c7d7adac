"""``{{ }}`` references and ``if`` conditions, evaluated against a real local target."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from components import conditions
from components.errors import ExpressionError
from components.expressions import LoopFrame, RefKind, Scope, parse_ref, substitute
from components.targets.local import LocalTarget

SCOPE = Scope(
    variables={"Name": "world", "name": "lower", "Count": "3"},
    loop=LoopFrame("files", 1, "b.txt"),
    steps={
        ("build", "Download"): {
            "inputs": [{"source": "s3://b/k", "destination": "/tmp/k"}],
            "outputs": {"stdout": "out", "files": ["a", "b"]},
        }
    },
    env=lambda name: {"HOME": "/root"}.get(name),
    context={"executionId": "e-1", "phase": "build"},
)


@pytest.mark.parametrize(
    ("expr", "kind"),
    [
        ("Name", RefKind.VARIABLE),
        ("loop.value", RefKind.LOOP),
        ("files.index", RefKind.LOOP),
        ("build.Download.outputs.stdout", RefKind.CHAIN),
        ("build.Download.inputs[0].destination", RefKind.CHAIN),
        ("env:ProgramFiles(x86)", RefKind.ENV),
        ("context:executionId", RefKind.CONTEXT),
        ("aws:ssm:/my/param", RefKind.SSM),
        ("aws:imds:instance-id", RefKind.IMDS),
    ],
)
def test_reference_kinds(expr: str, kind: RefKind) -> None:
    assert parse_ref(f"  {expr} ").kind is kind


def test_chain_path_parts() -> None:
    ref = parse_ref("build.Download.inputs[0].destination")
    assert (ref.phase, ref.step, ref.field, ref.path) == ("build", "Download", "inputs", (0, "destination"))


@pytest.mark.parametrize("bad", [".Var", "a b", "", "x.y.z", "context:unknownKey", "aws:imds:iam/info"])
def test_invalid_references(bad: str) -> None:
    with pytest.raises(ExpressionError):
        parse_ref(bad)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{Name}}", "world"),
        ("{{ Name }}", "world"),
        ("{{   name\t}}", "lower"),
        ("hello {{ Name }}, {{name}}!", "hello world, lower!"),
        ("{{ loop.value }}#{{ loop.index }}", "b.txt#1"),
        ("{{ files.value }}", "b.txt"),
        ("{{ build.Download.outputs.stdout }}", "out"),
        ("{{ build.Download.inputs[0].destination }}", "/tmp/k"),
        ("{{ build.Download.inputs.destination }}", "/tmp/k"),
        ("x={{ build.Download.outputs.files }}", "x=a,b"),
        ("{{ env:HOME }}", "/root"),
        ("{{ context:executionId }}", "e-1"),
        ("no refs here", "no refs here"),
    ],
)
def test_substitute_strings(text: str, expected: str) -> None:
    assert substitute(text, SCOPE) == expected


def test_whole_reference_keeps_value_type_and_nested_structures_are_copied() -> None:
    assert substitute("{{ build.Download.outputs.files }}", SCOPE) == ["a", "b"]
    assert substitute("{{ loop.index }}", SCOPE) == 1
    value: Any = {"commands": ["echo {{ Name }}"], "n": 3, "flag": True}
    assert substitute(value, SCOPE) == {"commands": ["echo world"], "n": 3, "flag": True}
    assert value["commands"] == ["echo {{ Name }}"]


def test_loop_reference_outside_a_loop_is_left_verbatim() -> None:
    no_loop = Scope(variables={"Name": "w"})
    assert substitute("echo {{ loop.value }} {{Name}}", no_loop) == "echo {{ loop.value }} w"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{ NAME }}", "'NAME' is not a parameter or constant"),  # names are case-sensitive
        ("{{ build.Other.outputs.stdout }}", "step 'Other' of phase 'build' has not run"),
        ("{{ build.Download.outputs.missing }}", "no 'missing' in the step's outputs"),
        ("{{ env:NOPE }}", "environment variable 'NOPE' is not set"),
        ("{{ aws:ssm:/p }}", "needs AWS"),
    ],
)
def test_unresolvable_references_raise(text: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        substitute(text, SCOPE)


# --- conditions ---------------------------------------------------------------------------------


@pytest.fixture
def probe() -> conditions.Probe:
    return conditions.Probe(LocalTarget())


def ev(expr: dict[str, Any], probe: conditions.Probe, scope: Scope = SCOPE) -> bool:
    assert conditions.check(expr, top=True) == []
    return conditions.evaluate(expr, lambda v: substitute(v, scope), probe)


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ({"stringEquals": "world", "value": "{{ Name }}"}, True),
        ({"stringEquals": "World", "value": "world"}, False),  # stringEquals is case-sensitive
        ({"stringLessThan": "b", "value": "a"}, True),
        ({"stringLessThan": "B", "value": "a"}, True),  # ordering ignores case
        ({"stringLessThanEquals": "a", "value": "A"}, True),
        ({"stringGreaterThan": "a", "value": "b"}, True),
        ({"stringGreaterThanEquals": "b", "value": "a"}, False),
        ({"stringGreaterThan": "a", "value": "1"}, False),  # digits sort before letters
        ({"stringIsEmpty": ""}, True),
        ({"stringIsEmpty": " "}, False),
        ({"stringIsWhitespace": " \t"}, True),
        ({"stringIsWhitespace": "x "}, False),
        ({"patternMatches": "^wor", "value": "{{ Name }}"}, True),
        ({"patternMatches": "l+d", "value": "world"}, True),
        ({"patternMatches": "^x", "value": "world"}, False),
        ({"numberEquals": 3, "value": "{{ Count }}"}, True),
        ({"numberEquals": 1, "value": 1.0}, True),
        ({"numberLessThan": 2, "value": 1}, True),  # value < operand
        ({"numberLessThan": 1, "value": 2}, False),
        ({"numberLessThanEquals": "2.5", "value": 2.5}, True),
        ({"numberGreaterThan": -1, "value": "+0"}, True),
        ({"numberGreaterThanEquals": 3, "value": 2}, False),
        ({"numberEquals": 1, "value": "one"}, False),  # unconvertible is false, not an error
        ({"numberEquals": 1, "value": "1e0"}, False),
    ],
)
def test_comparison_operators(expr: dict[str, Any], expected: bool, probe: conditions.Probe) -> None:
    assert ev(expr, probe) is expected


def test_file_operators_run_on_the_target(tmp_path: Path, probe: conditions.Probe) -> None:
    f = tmp_path / "file.txt"
    f.write_bytes(b"hello\n")
    assert ev({"fileExists": str(f)}, probe) is True
    assert ev({"fileExists": str(tmp_path)}, probe) is False
    assert ev({"folderExists": str(tmp_path)}, probe) is True
    assert ev({"folderExists": str(tmp_path / "nope")}, probe) is False
    assert ev({"binaryExists": "sh"}, probe) is True
    assert ev({"binaryExists": "surely-not-a-binary-here"}, probe) is False
    for op, algo in [
        ("fileMD5Equals", "md5"),
        ("fileSHA1Equals", "sha1"),
        ("fileSHA256Equals", "sha256"),
        ("fileSHA512Equals", "sha512"),
    ]:
        digest = hashlib.new(algo, b"hello\n").hexdigest()
        assert ev({op: digest.upper(), "path": str(f)}, probe) is True
        assert ev({op: "0" * len(digest), "path": str(f)}, probe) is False
        assert ev({op: digest, "path": str(tmp_path / "missing")}, probe) is False


def test_logical_operators_short_circuit(probe: conditions.Probe) -> None:
    broken = {"stringEquals": "x", "value": "{{ build.Nope.outputs.stdout }}"}  # raises if evaluated
    assert ev({"or": [{"stringIsEmpty": ""}, broken]}, probe) is True
    assert ev({"and": [{"stringIsEmpty": "x"}, broken]}, probe) is False
    with pytest.raises(ExpressionError):
        ev({"and": [{"stringIsEmpty": ""}, broken]}, probe)
    assert ev({"not": {"stringIsEmpty": "x"}}, probe) is True
    assert ev({"not": [{"stringIsEmpty": ""}]}, probe) is False
    nested = {"and": [{"binaryExists": "sh"}, {"not": {"or": [{"fileExists": "/nope"}, {"stringIsEmpty": "a"}]}}]}
    assert ev(nested, probe) is True


def test_then_else_branches(probe: conditions.Probe) -> None:
    resolve = lambda v: substitute(v, SCOPE)  # noqa: E731 - a one-off resolver
    assert conditions.decide({"stringIsEmpty": ""}, resolve, probe).action == "Execute"
    assert conditions.decide({"stringIsEmpty": "x"}, resolve, probe).action == "Skip"
    assert conditions.decide({"stringIsEmpty": "x", "else": "Abort"}, resolve, probe).action == "Abort"
    assert conditions.decide({"stringIsEmpty": "", "then": "Skip"}, resolve, probe).action == "Skip"


def test_condition_depth_limit() -> None:
    leaf: dict[str, Any] = {"fileExists": "/x"}
    expr = leaf
    for _ in range(4):
        expr = {"not": expr}
    assert conditions.check(expr) == []
    assert conditions.check({"not": expr}) == ["conditions nest at most 4 logical operators deep"]
