"""Component documents: load, validate, and the model the runner executes.

``load_document(path)`` parses and validates one file and returns a ``Document`` or raises
``DocumentInvalid`` with every problem found (file, line, step, phase, message).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from components.actions.base import ActionModule, registry
from components.document.checks import DOCUMENTED_ACTIONS, check_document, default_inputs
from components.document.model import (
    STANDARD_PHASES,
    Constant,
    Document,
    Loop,
    LoopKind,
    OnFailure,
    Parameter,
    Phase,
    Step,
)
from components.document.parser import load_yaml
from components.document.structure import build_document
from components.errors import DocumentError, DocumentInvalid

__all__ = [
    "DOCUMENTED_ACTIONS",
    "STANDARD_PHASES",
    "Constant",
    "Document",
    "Loop",
    "LoopKind",
    "OnFailure",
    "Parameter",
    "Phase",
    "Step",
    "default_inputs",
    "load_document",
    "parse_document",
    "validate_text",
]


def parse_document(
    text: str,
    label: str = "<inline>",
    path: Path | None = None,
    actions: Mapping[str, ActionModule] | None = None,
) -> Document:
    """Parse and fully validate one document's text."""
    data = load_yaml(text, label)
    doc, errors = build_document(data, label, path, text)
    if doc is not None:
        errors += check_document(doc, registry() if actions is None else actions)
    if errors or doc is None:
        # The same bad reference repeated on one line is one problem to the reader.
        unique = list(dict.fromkeys(errors))
        raise DocumentInvalid(sorted(unique, key=lambda e: e.line or 0))
    return doc


def load_document(path: str | Path, actions: Mapping[str, ActionModule] | None = None) -> Document:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise DocumentInvalid([DocumentError(str(path), None, f"cannot read document: {exc.strerror}")]) from None
    except UnicodeDecodeError:
        raise DocumentInvalid([DocumentError(str(path), None, "document is not UTF-8 text")]) from None
    return parse_document(text, path.name, path.resolve(), actions)


def validate_text(text: str, name: str = "<inline>") -> Document:
    """Validate a document held in memory (the API's CreateComponent data); raises DocumentInvalid."""
    return parse_document(text, name)
