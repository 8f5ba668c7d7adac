"""Image records as the rules see them: creation time, state, tags, and the output AMIs with
what exclusion rules ask of them (public, shared, tags), read from the image's distribution
configuration."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from engine.lifecycle.rules import Ami, ImageFacts
from engine.store import Record


def parse_time(text: str) -> datetime:
    """ISO 8601 as the store writes it ('2024-05-01T10:00:00.000Z'); naive times are UTC."""
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def status_of(body: dict[str, Any]) -> str:
    state = body.get("state") or {}
    return str(state.get("status") or "") if isinstance(state, dict) else ""


def _distribution_for(body: dict[str, Any], region: str) -> dict[str, Any]:
    for entry in (body.get("distributionConfiguration") or {}).get("distributions") or []:
        if entry.get("region") == region:
            return dict(entry.get("amiDistributionConfiguration") or {})
    return {}


def amis_of(body: dict[str, Any]) -> tuple[Ami, ...]:
    found = []
    for ami in (body.get("outputResources") or {}).get("amis") or []:
        region = str(ami.get("region") or "")
        conf = _distribution_for(body, region)
        permission = conf.get("launchPermission") or {}
        found.append(
            Ami(
                image_id=str(ami.get("image") or ""),
                region=region,
                account=str(ami.get("accountId") or ""),
                public="all" in (permission.get("userGroups") or []),
                shared_with=frozenset(permission.get("userIds") or []),
                tags=dict(conf.get("amiTags") or {}),
                last_launched=parse_time(ami["_lastLaunched"]) if ami.get("_lastLaunched") else None,
            )
        )
    return tuple(found)


def image_facts(rec: Record) -> ImageFacts:
    body = rec.body
    return ImageFacts(
        arn=rec.arn,
        name=rec.name,
        version=rec.version,
        build=rec.build,
        created=parse_time(str(body.get("dateCreated") or rec.created)),
        status=status_of(body),
        image_type=str(body.get("type") or ""),
        tags=dict(body.get("tags") or {}),
        amis=amis_of(body),
    )
