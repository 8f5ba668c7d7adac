"""Component documents as the API sees them: fetched from `data` or `uri`, checked by the
component engine's validator, and summarized (type, parameters) for the resource record."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from engine.api import errors


@dataclass(frozen=True)
class ComponentSummary:
    data: str
    digest: str
    phases: tuple[str, ...]
    parameters: tuple[dict[str, Any], ...]


def fetch_uri(uri: str, s3_endpoint: str | None = None) -> str:
    """The document a `uri` names: file:// or a path on the server, or s3://bucket/key on
    the configured S3-compatible store."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        path = Path(parsed.path if parsed.scheme else uri)
        try:
            return path.read_text()
        except OSError as exc:
            raise errors.invalid(f"cannot read {uri}: {exc.strerror}") from None
    if parsed.scheme == "s3":
        import botocore.session
        from botocore.exceptions import BotoCoreError, ClientError

        client = botocore.session.get_session().create_client("s3", endpoint_url=s3_endpoint or None)
        try:
            obj = client.get_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))
            text: str = obj["Body"].read().decode()
            return text
        except (BotoCoreError, ClientError) as exc:
            raise errors.invalid(f"cannot fetch {uri}: {exc}") from None
    raise errors.invalid(f"unsupported uri scheme in {uri!r}: use s3://, file:// or a path")


def summarize_component(data: str, name: str = "component") -> ComponentSummary:
    """Validate a component document; errors name the line and step in the author's words."""
    from components.document import parse_document
    from components.errors import DocumentInvalid

    try:
        doc = parse_document(data, f"{name}.yaml")
    except DocumentInvalid as exc:
        raise errors.invalid(f"the component document is not valid: {exc}") from None
    params: list[dict[str, Any]] = []
    for p in doc.parameters:
        detail: dict[str, Any] = {"name": p.name, "type": p.type}
        if p.default is not None:
            detail["defaultValue"] = [str(p.default)]
        if p.description:
            detail["description"] = p.description
        params.append(detail)
    return ComponentSummary(
        data=data,
        digest=hashlib.sha256(data.encode()).hexdigest(),
        phases=tuple(ph.name for ph in doc.phases),
        parameters=tuple(params),
    )


def shell_to_component(script: str, component_type: str, name: str) -> str:
    """ImportComponent's SHELL format: the script becomes one ExecuteBash step in the build
    phase (or the test phase for TEST components)."""
    phase = "test" if component_type == "TEST" else "build"
    doc = {
        "name": name,
        "schemaVersion": 1.0,
        "phases": [
            {"name": phase, "steps": [{"name": "RunScript", "action": "ExecuteBash", "inputs": {"commands": [script]}}]}
        ],
    }
    return yaml.safe_dump(doc, sort_keys=False)
