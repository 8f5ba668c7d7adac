"""Step ``if`` conditions and the ``Assert`` action's expressions (spec §6).

A condition is a one-operator map. Logical: ``and`` / ``or`` (a list, short-circuit) and
``not`` (one child, as a map or a one-item list). Comparisons take their operand under the
operator key and, for two-sided ones, the other side under ``value:`` (``path:`` for hashes);
the check is "value <op> operand", so ``numberLessThan: 2`` + ``value: 1`` is true.
File operators run on the target, because that is where the files are.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from components.targets.base import Target

LOGICAL = ("and", "or", "not")
UNARY_STRING = ("stringIsEmpty", "stringIsWhitespace")
BINARY_STRING = (
    "stringEquals",
    "stringLessThan",
    "stringLessThanEquals",
    "stringGreaterThan",
    "stringGreaterThanEquals",
    "patternMatches",
)
NUMBER = ("numberEquals", "numberLessThan", "numberLessThanEquals", "numberGreaterThan", "numberGreaterThanEquals")
FILE_EXISTS = ("binaryExists", "fileExists", "folderExists")
FILE_HASH = {
    "fileMD5Equals": "md5sum",
    "fileSHA1Equals": "sha1sum",
    "fileSHA256Equals": "sha256sum",
    "fileSHA512Equals": "sha512sum",
}
COMPARISONS = (*UNARY_STRING, *BINARY_STRING, *NUMBER, *FILE_EXISTS, *FILE_HASH)
#: ``then`` / ``else`` on a step's top-level ``if``: what to do with the step.
BRANCH_ACTIONS = ("Execute", "Skip", "Abort")
MAX_DEPTH = 4
_NUMBER = re.compile(r"^[-+]?([0-9]+[.])?[0-9]+$")


def check(expr: Any, depth: int = 1, top: bool = False) -> list[str]:
    """Problems with a condition's structure (empty when fine)."""
    if not isinstance(expr, Mapping):
        return [f"a condition must be a map with one operator, not {type(expr).__name__}"]
    problems: list[str] = []
    keys = set(expr)
    if top:
        for branch in ("then", "else"):
            if branch in expr and expr[branch] not in BRANCH_ACTIONS:
                problems.append(f"'{branch}' must be one of {', '.join(BRANCH_ACTIONS)}")
        keys -= {"then", "else"}
    ops = [k for k in keys if k in LOGICAL or k in COMPARISONS]
    if len(ops) != 1:
        unknown = sorted(str(k) for k in keys - {"value", "path"})
        if not ops and unknown:
            return [f"unknown condition operator '{unknown[0]}' (known: {', '.join((*LOGICAL, *COMPARISONS))})"]
        return [f"a condition needs exactly one operator, found {len(ops)}: {', '.join(sorted(ops)) or 'none'}"]
    op = ops[0]
    extra = (
        keys
        - {op}
        - ({"value"} if op in (*BINARY_STRING, *NUMBER) else set())
        - ({"path"} if op in FILE_HASH else set())
    )
    if extra:
        problems.append(f"'{op}' does not take {', '.join(sorted(map(str, extra)))}")
    if op in LOGICAL:
        if depth > MAX_DEPTH:
            return [f"conditions nest at most {MAX_DEPTH} logical operators deep"]
        children = expr[op]
        if op == "not":
            if isinstance(children, list) and len(children) == 1:
                children = children[0]
            if not isinstance(children, Mapping):
                return [*problems, "'not' takes one condition (a map)"]
            return problems + check(children, depth + 1)
        if not isinstance(children, list) or not children:
            return [*problems, f"'{op}' takes a non-empty list of conditions"]
        for child in children:
            problems += check(child, depth + 1)
        return problems
    operand = expr[op]
    if isinstance(operand, Mapping | list) or operand is None:
        problems.append(f"'{op}' takes a string or number")
    if op in (*BINARY_STRING, *NUMBER) and "value" not in expr:
        problems.append(f"'{op}' needs a 'value' to compare with")
    if op in FILE_HASH and "path" not in expr:
        problems.append(f"'{op}' needs the 'path' of the file to hash")
    return problems


class Probe:
    """Answers the file operators by running small shell commands on the target."""

    def __init__(self, target: Target) -> None:
        self.target = target

    def _ok(self, script: str, *args: str) -> bool:
        return self.target.exec(["sh", "-c", script, "sh", *args], timeout=60).exit_code == 0

    def binary_exists(self, name: str) -> bool:
        return self._ok('command -v "$1" >/dev/null 2>&1', name)

    def file_exists(self, path: str) -> bool:
        return self._ok('test -f "$1"', path)

    def folder_exists(self, path: str) -> bool:
        return self._ok('test -d "$1"', path)

    def file_hash(self, tool: str, path: str) -> str | None:
        result = self.target.exec(["sh", "-c", f'{shlex.quote(tool)} "$1"', "sh", path], timeout=600)
        if result.exit_code != 0:
            return None
        return result.stdout.decode(errors="replace").split(" ", 1)[0].strip().lower()


@dataclass(frozen=True)
class Decision:
    """What a step's ``if`` says: run it, skip it, or fail it (``then``/``else: Abort``)."""

    action: str  # one of BRANCH_ACTIONS
    value: bool


def decide(expr: Mapping[str, Any], resolve: Callable[[Any], Any], probe: Probe) -> Decision:
    value = evaluate(expr, resolve, probe)
    branch = expr.get("then", "Execute") if value else expr.get("else", "Skip")
    return Decision(str(branch), value)


def evaluate(expr: Mapping[str, Any], resolve: Callable[[Any], Any], probe: Probe) -> bool:
    """Evaluate a checked condition; ``resolve`` substitutes ``{{ }}`` in operands first."""
    op = next(k for k in expr if k in LOGICAL or k in COMPARISONS)
    if op == "and":
        return all(evaluate(c, resolve, probe) for c in expr[op])
    if op == "or":
        return any(evaluate(c, resolve, probe) for c in expr[op])
    if op == "not":
        child = expr[op][0] if isinstance(expr[op], list) else expr[op]
        return not evaluate(child, resolve, probe)
    operand = _text(resolve(expr[op]))
    if op == "stringIsEmpty":
        return operand == ""
    if op == "stringIsWhitespace":
        return operand.strip() == "" and operand != ""
    if op in FILE_EXISTS:
        return {
            "binaryExists": probe.binary_exists,
            "fileExists": probe.file_exists,
            "folderExists": probe.folder_exists,
        }[op](operand)
    if op in FILE_HASH:
        digest = probe.file_hash(FILE_HASH[op], _text(resolve(expr["path"])))
        return digest is not None and digest == operand.strip().lower()
    value = resolve(expr["value"])
    if op in NUMBER:
        return _compare_numbers(op, _number(value), _number(expr[op] if not isinstance(expr[op], str) else operand))
    text = _text(value)
    if op == "stringEquals":
        # Case-sensitive: the docs' own example treats 'TESTING' and 'Testing' as different.
        return text == operand
    if op == "patternMatches":
        try:
            return re.search(operand, text) is not None
        except re.error:
            return False
    # Ordering is case-insensitive per the docs (spec §13 decision 1).
    a, b = text.casefold(), operand.casefold()
    return {
        "stringLessThan": a < b,
        "stringLessThanEquals": a <= b,
        "stringGreaterThan": a > b,
        "stringGreaterThanEquals": a >= b,
    }[op]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(value)
    return "" if value is None else str(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and _NUMBER.match(value.strip()):
        return float(value.strip())
    return None


def _compare_numbers(op: str, value: float | None, operand: float | None) -> bool:
    # Anything that does not convert makes the comparison false (DOC-CMP).
    if value is None or operand is None or math.isnan(value) or math.isnan(operand):
        return False
    return {
        "numberEquals": value == operand,
        "numberLessThan": value < operand,
        "numberLessThanEquals": value <= operand,
        "numberGreaterThan": value > operand,
        "numberGreaterThanEquals": value >= operand,
    }[op]
