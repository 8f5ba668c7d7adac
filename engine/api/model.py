"""The Image Builder API model, read from the copy botocore ships.

botocore's service-2.json is the machine-readable form of the API reference: operations,
HTTP routes, shapes with their constraints, and the errors each operation declares. The
server routes, validates and shapes responses from it instead of hand-copying 150 shapes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import botocore.session
from botocore.model import OperationModel, ServiceModel


@dataclass(frozen=True)
class Route:
    method: str
    #: Path segments; a segment like "{resourceArn}" is a label bound to that input member.
    segments: tuple[str, ...]
    operation: str


@cache
def service_model() -> ServiceModel:
    return botocore.session.get_session().get_service_model("imagebuilder")


@cache
def operation(name: str) -> OperationModel:
    return service_model().operation_model(name)


@cache
def declared_errors(name: str) -> frozenset[str]:
    return frozenset(e.name for e in operation(name).error_shapes)


@cache
def error_status(code: str) -> int:
    shape = service_model().shape_for(code)
    status: int = shape.metadata.get("error", {}).get("httpStatusCode", 400)
    return status


@cache
def routes() -> dict[tuple[str, str], list[Route]]:
    """Routes keyed by (method, first path segment) for O(1) dispatch."""
    table: dict[tuple[str, str], list[Route]] = {}
    for name in service_model().operation_names:
        http = operation(name).http
        path = http["requestUri"].split("?")[0]
        segments = tuple(s for s in path.split("/") if s)
        table.setdefault((http["method"], segments[0]), []).append(Route(http["method"], segments, name))
    return table


def match(method: str, segments: list[str]) -> tuple[Route, dict[str, str]] | None:
    """Find the operation for a request path; returns it with its bound URI labels."""
    if not segments:
        return None
    for route in routes().get((method, segments[0]), []):
        if len(route.segments) != len(segments):
            continue
        labels: dict[str, str] = {}
        for want, got in zip(route.segments, segments, strict=True):
            if want.startswith("{"):
                labels[want.strip("{}+")] = got
            elif want != got:
                break
        else:
            return route, labels
    return None


def known_paths() -> set[str]:
    return {seg for (_, seg) in routes()}
