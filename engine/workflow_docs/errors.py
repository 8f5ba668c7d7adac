"""The two ways a workflow document goes wrong: it is invalid, or a reference can't be resolved at run time."""

from __future__ import annotations


class WorkflowDocumentError(ValueError):
    """The document is invalid. The message is written for the document's author.

    ``line`` is 1-based and points at the offending key in the YAML text (None when the problem is the
    document as a whole, e.g. its size); ``step`` names the step the problem is in, if any.
    """

    def __init__(self, message: str, *, line: int | None = None, step: str | None = None) -> None:
        self.message = message
        self.line = line
        self.step = step
        super().__init__(self._format())

    def _format(self) -> str:
        where = []
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.step is not None:
            where.append(f"step '{self.step}'")
        return f"{', '.join(where)}: {self.message}" if where else self.message


class ResolutionError(LookupError):
    """A dynamic variable (``$.…``) or condition could not be evaluated against the run's context.

    Raised at run time, e.g. when a step refers to the output of a step that was skipped; the
    interpreter fails the step with this message.
    """

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.message = message
        self.path = path
        super().__init__(message)
