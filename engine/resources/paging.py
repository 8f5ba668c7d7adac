"""Opaque nextToken pagination over a list computed per request.

The token carries the offset and a digest of the query it belongs to, so a token used
with other filters is refused instead of silently skipping results.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from typing import Any, TypeVar

from engine.api.errors import ApiError

T = TypeVar("T")
DEFAULT_PAGE = 25


def _digest(params: dict[str, Any]) -> str:
    query = {k: v for k, v in params.items() if k not in ("nextToken", "maxResults")}
    return hashlib.sha256(json.dumps(query, sort_keys=True).encode()).hexdigest()[:16]


def page(items: Sequence[T], params: dict[str, Any], default: int = DEFAULT_PAGE) -> tuple[list[T], str | None]:
    size = int(params.get("maxResults") or default)
    offset = 0
    token = params.get("nextToken")
    if token:
        try:
            raw = json.loads(base64.urlsafe_b64decode(token.encode() + b"=" * (-len(token) % 4)))
            offset, digest = int(raw["o"]), str(raw["q"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ApiError("InvalidPaginationTokenException", "nextToken is not a token this API returned") from exc
        if digest != _digest(params) or offset < 0:
            raise ApiError("InvalidPaginationTokenException", "nextToken belongs to a different query")
    chunk = list(items[offset : offset + size])
    nxt = None
    if offset + size < len(items):
        raw_next = json.dumps({"o": offset + size, "q": _digest(params)}).encode()
        nxt = base64.urlsafe_b64encode(raw_next).decode().rstrip("=")
    return chunk, nxt
