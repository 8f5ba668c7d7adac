"""Opaque nextToken pagination over a list computed per request.

The token carries the offset and a digest of the query it belongs to, so a token used
with other filters is refused instead of silently skipping results.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from engine.api.errors import ApiError
from engine.store import Record
from engine.store.db import key_of

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


def keyset_page(
    fetch: Callable[[tuple[Any, ...] | None, int], list[Record]],
    params: dict[str, Any],
    convert: Callable[[Record], dict[str, Any] | None],
    group: Callable[[Record], Any] | None = None,
    default: int = DEFAULT_PAGE,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of a list walked in store key order, resumed from the token's key.

    ``convert`` turns a record into an entry, or None to filter it out. With ``group``,
    consecutive records of one group collapse into the group's last record (e.g. the newest
    build of each version), which is the one converted.
    """
    size = int(params.get("maxResults") or default)
    after = _decode_key(params)
    entries: list[dict[str, Any]] = []
    last_key: tuple[Any, ...] | None = None
    pending: tuple[Any, Record] | None = None
    cursor = after
    exhausted = False

    def emit(rec: Record) -> None:
        nonlocal last_key
        entry = convert(rec)
        last_key = key_of(rec)
        if entry is not None:
            entries.append(entry)

    more = False  # whether a record follows the last one emitted
    while len(entries) < size:
        batch = fetch(cursor, size + 1)
        if not batch:
            exhausted = True
            break
        for i, rec in enumerate(batch):
            cursor = key_of(rec)
            if group is None:
                emit(rec)
            else:
                g = group(rec)
                if pending is not None and pending[0] != g:
                    emit(pending[1])
                pending = (g, rec)
            if len(entries) >= size:
                more = i + 1 < len(batch) or pending is not None
                break
        if len(entries) >= size:
            break
    if exhausted and pending is not None and len(entries) < size:
        emit(pending[1])
        pending = None
    if len(entries) < size or last_key is None:
        return entries, None
    # Full page: a token, unless nothing at all follows the last emitted record.
    if not more and not fetch(last_key, 1):
        return entries, None
    raw = json.dumps({"k": list(last_key), "q": _digest(params)}).encode()
    return entries, base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_key(params: dict[str, Any]) -> tuple[Any, ...] | None:
    token = params.get("nextToken")
    if not token:
        return None
    try:
        raw = json.loads(base64.urlsafe_b64decode(token.encode() + b"=" * (-len(token) % 4)))
        key, digest = tuple(raw["k"]), str(raw["q"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ApiError("InvalidPaginationTokenException", "nextToken is not a token this API returned") from exc
    if digest != _digest(params):
        raise ApiError("InvalidPaginationTokenException", "nextToken belongs to a different query")
    return key
