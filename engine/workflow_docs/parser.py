"""``parse_workflow``: the one entry point from YAML text to a validated ``WorkflowDocument``."""

from __future__ import annotations

from engine.workflow_docs.errors import WorkflowDocumentError
from engine.workflow_docs.model import WorkflowDocument, WorkflowType
from engine.workflow_docs.validate import validate_document
from engine.workflow_docs.yamlload import load_yaml

#: Inline workflow data (CreateWorkflow ``data``) is limited to 16,000 characters.
MAX_DOCUMENT_CHARS = 16_000


def parse_workflow(
    text: str, workflow_type: str | WorkflowType, *, max_chars: int | None = MAX_DOCUMENT_CHARS
) -> WorkflowDocument:
    """Parse and validate a workflow document for a BUILD, TEST or DISTRIBUTION workflow.

    Raises WorkflowDocumentError (with the line and step when it knows them) on the first problem.
    ``max_chars=None`` lifts the size limit, for documents that did not arrive inline.
    """
    try:
        wtype = WorkflowType(workflow_type)
    except ValueError:
        raise WorkflowDocumentError(
            f"unknown workflow type {workflow_type!r}; use BUILD, TEST or DISTRIBUTION"
        ) from None
    if not text.strip():
        raise WorkflowDocumentError("the document is empty")
    if max_chars is not None and len(text) > max_chars:
        raise WorkflowDocumentError(f"the document has {len(text)} characters; the limit is {max_chars}")
    if "\x00" in text:
        raise WorkflowDocumentError("the document contains a NUL character")
    data, lines = load_yaml(text)
    return validate_document(data, lines, wtype)
