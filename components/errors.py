"""The errors the component engine raises, one class per decision the caller makes.

``DocumentError`` is one problem at one place in a document (non-retryable: fix the file);
``DocumentInvalid`` carries all of them for one validation; ``RunError`` is a run that
cannot start or continue (bad parameters, unreachable target, refused platform).
"""

from __future__ import annotations

from dataclasses import dataclass


class ToeError(Exception):
    """Base of everything the component engine raises on purpose."""


@dataclass(frozen=True)
class DocumentError:
    """One problem in a document, rendered like a compiler message."""

    file: str
    line: int | None
    message: str
    step: str | None = None
    phase: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        if self.step is not None:
            return f"{where}: step '{self.step}' (phase {self.phase}): {self.message}"
        if self.phase is not None:
            return f"{where}: phase '{self.phase}': {self.message}"
        return f"{where}: {self.message}"


class DocumentInvalid(ToeError):
    """A document failed to parse or validate; ``errors`` lists every problem found."""

    def __init__(self, errors: list[DocumentError]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors


class RunError(ToeError):
    """The run cannot start or go on: parameters, target or platform problems."""


class ExpressionError(ToeError):
    """A ``{{ ... }}`` reference or an ``if`` condition could not be evaluated at run time."""
