"""Image Builder workflow documents: model, parser/validator, run-time resolution, managed defaults.

doc = parse_workflow(yaml_text, "BUILD")          # WorkflowDocumentError(line, step, message)
params = bind_parameters(doc, {"name": ["v"]})
if evaluate_condition(step.if_, context):
    inputs = resolve_inputs(step, context)
"""

from engine.workflow_docs.actions import ACTIONS, ActionSpec, ValueType
from engine.workflow_docs.errors import ResolutionError, WorkflowDocumentError
from engine.workflow_docs.model import (
    Condition,
    OnFailure,
    Output,
    Parameter,
    ParameterType,
    ParameterValue,
    Step,
    WorkflowDocument,
    WorkflowType,
)
from engine.workflow_docs.parser import MAX_DOCUMENT_CHARS, parse_workflow
from engine.workflow_docs.runtime import (
    bind_parameters,
    default_value_strings,
    evaluate_condition,
    parameter_details,
    parameter_value,
    resolve_inputs,
    resolve_outputs,
    resolve_value,
    rollback_enabled,
)

__all__ = [
    "ACTIONS",
    "MAX_DOCUMENT_CHARS",
    "ActionSpec",
    "Condition",
    "OnFailure",
    "Output",
    "Parameter",
    "ParameterType",
    "ParameterValue",
    "ResolutionError",
    "Step",
    "ValueType",
    "WorkflowDocument",
    "WorkflowDocumentError",
    "WorkflowType",
    "bind_parameters",
    "default_value_strings",
    "evaluate_condition",
    "parameter_details",
    "parameter_value",
    "parse_workflow",
    "resolve_inputs",
    "resolve_outputs",
    "resolve_value",
    "rollback_enabled",
]
