"""Every public workflow document in the shared corpus validates, or fails with the error we expect.

The table below is the record (docs/corpus-workflows.md shows the same table); a new corpus file
fails ``test_table_covers_the_corpus`` until it is added here.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pytest

from engine.workflow_docs import WorkflowDocumentError, parse_workflow

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "workflows"
DOC = Path(__file__).resolve().parents[2] / "docs" / "corpus-workflows.md"


class Expected(NamedTuple):
    type: str  # the type the document was published with (corpus/SOURCES.md)
    error: str | None  # None: valid; else the full error text
    note: str = ""


CFN = "CloudFormation ${…} tokens are left unresolved in the extracted text; they are ordinary strings to us"

EXPECTED: dict[str, Expected] = {
    "awscli__create-workflow__workflow-doc.yaml": Expected("BUILD", None, "unquoted $. variables"),
    "awscli__get-workflow__data.yaml": Expected(
        "BUILD", None, "boolean parameter with a default; WaitForAction without inputs, gated by `if`"
    ),
    "awssamples-cfn__approval-gate__ApprovalWorkflow.yaml": Expected(
        "BUILD", None, "required string parameter feeding `snsTopicArn.$`"
    ),
    "awssamples-cfn__base-template__ImageWorkflow.yaml": Expected(
        "BUILD", None, "nested `imageNamePrefix.$` list inside RunCommand parameters; output `output[0]`. " + CFN
    ),
    "awssamples-cfn__gated-distribution__DistributionWorkflow.yaml": Expected(
        "DISTRIBUTION",
        None,
        "`{{ $.workflowOutputs.ImageId }}` interpolation; `{{ imagebuilder:buildDate }}` name token; `not` "
        "condition. " + CFN,
    ),
    "awssamples-cfn__packer-build__BuildWorkflow.yaml": Expected(
        "BUILD", None, "ImageId output taken from RunCommand `output[0]`"
    ),
    "awssamples-cfn__step-functions-integration__BuildWorkflow.yaml": Expected("BUILD", None),
    "awssamples-cfn__step-functions-integration__OsCheckWorkflow.yaml": Expected("TEST", None),
    "awssamples-cfn__step-functions-integration__ValidateAmiWorkflow.yaml": Expected(
        "TEST", None, "`input.$` given as a block scalar holding `{{ }}` interpolations (accepted like a plain string)"
    ),
    "cdk__workflow-data.yaml": Expected("BUILD", None, "reproduction of the managed build-image"),
    "tfaws__imagebuilder_workflow-docs-example.yaml": Expected(
        "TEST", None, "boolean parameter without a default (required at run time)"
    ),
}

#: The same documents attached to a stage they were not written for: the error must say why.
WRONG_STAGE: dict[tuple[str, str], str] = {
    ("awssamples-cfn__gated-distribution__DistributionWorkflow.yaml", "BUILD"): (
        "line 24, step 'ApproveRelease': input 'payload' refers to "
        "'$.workflowOutputs.ImageId', an output of an earlier workflow, but a BUILD workflow runs first, "
        "so there is none"
    ),
    ("awssamples-cfn__gated-distribution__DistributionWorkflow.yaml", "TEST"): (
        "line 29, step 'DistributeCopies': action 'DistributeImage' cannot be used in a TEST workflow "
        "(only in DISTRIBUTION)"
    ),
    ("cdk__workflow-data.yaml", "DISTRIBUTION"): (
        "line 13, step 'ApplyBuildComponents': action 'ExecuteComponents' cannot be used in a DISTRIBUTION "
        "workflow (only in BUILD and TEST)"
    ),
    ("awssamples-cfn__step-functions-integration__ValidateAmiWorkflow.yaml", "BUILD"): (
        "line 22, step 'ValidateOutputAmi': input 'input.$' refers to "
        "'$.workflowOutputs.ImageId', an output of an earlier workflow, but a BUILD workflow runs first, "
        "so there is none"
    ),
}


def outcome(name: str, wtype: str) -> str | None:
    try:
        parse_workflow((CORPUS / name).read_text(encoding="utf-8"), wtype)
    except WorkflowDocumentError as e:
        return str(e)
    return None


def test_table_covers_the_corpus() -> None:
    assert sorted(p.name for p in CORPUS.iterdir()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_document(name: str) -> None:
    expected = EXPECTED[name]
    assert outcome(name, expected.type) == expected.error


@pytest.mark.parametrize(("name", "wtype"), sorted(WRONG_STAGE))
def test_corpus_document_in_the_wrong_stage(name: str, wtype: str) -> None:
    assert outcome(name, wtype) == WRONG_STAGE[(name, wtype)]


def render_table() -> str:
    rows = ["| document | type | result | notes |", "|---|---|---|---|"]
    for name, expected in sorted(EXPECTED.items()):
        result = "valid" if expected.error is None else f"error: {expected.error}"
        rows.append(f"| `{name}` | {expected.type} | {result} | {expected.note} |")
    rows += ["", "| document | attached as | error |", "|---|---|---|"]
    for (name, wtype), error in sorted(WRONG_STAGE.items()):
        rows.append(f"| `{name}` | {wtype} | {error} |")
    return "\n".join(rows) + "\n"


def test_doc_shows_the_table() -> None:
    assert render_table() in DOC.read_text(encoding="utf-8")
