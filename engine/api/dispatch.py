"""From an HTTP request to an operation's response: authenticate (SigV4), route, parse,
validate, run the handler in a transaction as the caller's account (with clientToken
idempotency and dryRun), shape the output or the error."""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote

import sqlalchemy.exc

from engine.api import errors, model
from engine.api.auth import Authenticator, AuthError, Identity, build_authenticator, identities
from engine.api.auth.keys import root_principal
from engine.api.context import RequestContext
from engine.api.errors import ApiError
from engine.api.registry import handlers
from engine.api.serialize import shape_output
from engine.api.services import Services
from engine.api.validation import coerce_scalar, validate

log = logging.getLogger("imagebuilder.api")

#: Operations whose work belongs to a later part of the system, and what brings it.
NOT_YET: dict[str, str] = {}


@dataclass(frozen=True)
class Response:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


def _is_write(operation: str) -> bool:
    return not (operation.startswith("Get") or operation.startswith("List"))


class Dispatcher:
    def __init__(
        self, services: Services, authenticator: Authenticator | None = None, acting_as: str | None = None
    ) -> None:
        """``acting_as``: an in-process caller (a test driving the dispatcher without HTTP) that
        acts as this account without signing; never set by the HTTP server."""
        self.services = services
        self.config = services.config
        self.handlers = handlers()
        self.trusted = Identity(acting_as, root_principal(acting_as), "") if acting_as else None
        self.auth = authenticator or (None if self.trusted else build_authenticator(self.config, services.store))

    def authenticate(self, method: str, raw_path: str, query: str, headers: dict[str, str], body: bytes) -> Identity:
        if self.trusted is not None:
            return self.trusted
        assert self.auth is not None
        return self.auth.authenticate(method, raw_path, query, headers, body)

    def handle(self, method: str, raw_path: str, query: str, headers: dict[str, str], body: bytes) -> Response:
        request_id = str(uuid.uuid4())
        operation: str | None = None
        started = time.perf_counter()
        try:
            # Before routing, as AWS does: an unsigned caller learns nothing, not even what exists.
            identity = self.authenticate(method, raw_path, query, headers, body)
        except AuthError as exc:
            log.info("request %s refused: %s (%s)", request_id, exc.code, exc.message)
            return self._error(None, request_id, exc, exc.status)
        except Exception:
            log.exception("request %s: authentication failed", request_id)
            return self._error(
                None, request_id, ApiError("InternalFailure", f"internal error, request id {request_id}"), 500
            )
        try:
            # Keep an empty last segment: "/tags/" is TagResource with an empty (invalid) ARN.
            segments = [unquote(s) for s in raw_path.split("?")[0].split("/")[1:]]
            matched = model.match(method, segments)
            if matched is None:
                return self._error(
                    None,
                    request_id,
                    ApiError("UnknownOperationException", f"no operation at {method} /{'/'.join(segments)}"),
                    404,
                )
            route, labels = matched
            operation = route.operation
            params = self._parse(operation, labels, query, body)
            identities.check(self.auth, identity, operation, params)
            result = self._run(operation, params, identity, request_id)
            payload = json.dumps(result, separators=(",", ":")).encode()
            return Response(200, self._headers(request_id), payload)
        except ApiError as exc:
            return self._error(operation, request_id, exc)
        except Exception:
            log.exception("request %s (%s) failed", request_id, operation)
            return self._error(
                operation, request_id, ApiError("ServiceException", f"internal error, request id {request_id}")
            )
        finally:
            log.debug(
                "%s %s by %s %.1f ms", operation, request_id, identity.principal, (time.perf_counter() - started) * 1000
            )

    def _parse(self, operation: str, labels: dict[str, str], query: str, body: bytes) -> dict[str, Any]:
        shape = model.operation(operation).input_shape
        params: dict[str, Any] = {}
        if body.strip():
            try:
                params = json.loads(body)
            except (ValueError, UnicodeDecodeError) as exc:
                raise errors.invalid(f"the request body is not valid JSON: {exc}") from None
            if not isinstance(params, dict):
                raise errors.invalid("the request body must be a JSON object")
        if shape is None:
            return {}
        query_values = dict(parse_qsl(query, keep_blank_values=True))
        for name, member in shape.members.items():
            where = member.serialization.get("location")
            wire = member.serialization.get("name", name)
            if where == "uri" and wire in labels:
                params[name] = coerce_scalar(member, labels[wire])
            elif where == "querystring":
                if member.type_name == "list":
                    values = [v for k, v in parse_qsl(query) if k == wire]
                    if values:
                        params[name] = values
                elif wire in query_values:
                    params[name] = coerce_scalar(member, query_values[wire])
        validate(shape, params)
        return params

    def _run(self, operation: str, params: dict[str, Any], identity: Identity, request_id: str) -> dict[str, Any]:
        handler = self.handlers.get(operation)
        if handler is None:
            reason = NOT_YET.get(operation, "this server does not implement it yet")
            raise ApiError("ServiceUnavailableException", f"{operation} is not available yet: {reason}")
        output_shape = model.operation(operation).output_shape
        token = params.get("clientToken") if _is_write(operation) else None
        # Only requests with a token are remembered, so only they need the digest of their input.
        request_hash = (
            hashlib.sha256(
                json.dumps({k: v for k, v in params.items() if k != "clientToken"}, sort_keys=True).encode()
            ).hexdigest()
            if token
            else ""
        )
        account = identity.account
        for attempt in range(8):
            ctx: RequestContext | None = None
            try:
                with self.services.store.transaction(write=_is_write(operation)) as tx:
                    if token:
                        seen = tx.idempotent_response(account, operation, token)
                        if seen is not None:
                            if seen[0] != request_hash:
                                raise ApiError(
                                    "IdempotentParameterMismatchException",
                                    f"clientToken {token!r} was already used with different parameters",
                                )
                            stored: dict[str, Any] = json.loads(seen[1])
                            return stored
                    ctx = RequestContext(
                        operation=operation,
                        account=account,
                        region=self.config.region,
                        tx=tx,
                        config=self.config,
                        services=self.services,
                        request_id=request_id,
                        access_key=identity.access_key or None,
                        principal=identity.principal,
                        dry_run=bool(params.get("dryRun")),
                    )
                    result = handler(ctx, params)
                    if ctx.dry_run:
                        # Everything was validated; raising rolls the transaction back.
                        raise ApiError(
                            "DryRunOperationException", "the request would have succeeded, but dryRun was set"
                        )
                    if output_shape is not None and "requestId" in output_shape.members:
                        result.setdefault("requestId", request_id)
                    shaped: dict[str, Any] = shape_output(output_shape, result) or {}
                    if token:
                        tx.remember_response(account, operation, token, request_hash, json.dumps(shaped))
                break
            except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError) as exc:
                # A concurrent writer won a race (PostgreSQL) or held the lock too long
                # (SQLite): the whole request runs again and sees the winner's data.
                if attempt == 7:
                    raise ApiError("ServiceUnavailableException", "the store is busy, try again") from exc
                time.sleep(0.01 * (attempt + 1))
        assert ctx is not None
        try:
            for callback in ctx.after_commit:
                callback()
        except ApiError:
            # The work after the commit (starting a build) failed, so the stored success must not
            # answer a retry with this token: forget it, and the retry runs again.
            if token:
                with self.services.store.transaction(write=True) as tx:
                    tx.forget_response(account, operation, token)
            raise
        return shaped

    def _headers(self, request_id: str, extra: list[tuple[bytes, bytes]] | None = None) -> list[tuple[bytes, bytes]]:
        hs = [(b"content-type", b"application/json"), (b"x-amzn-requestid", request_id.encode())]
        return hs + (extra or [])

    def _error(self, operation: str | None, request_id: str, exc: ApiError, status: int | None = None) -> Response:
        exc = errors.for_operation(operation, exc)
        body = json.dumps({"message": exc.message}).encode()
        code = status or errors.status_of(exc.code)
        return Response(code, self._headers(request_id, [(b"x-amzn-errortype", exc.code.encode())]), body)
