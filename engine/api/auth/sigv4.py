"""Signature Version 4, the server side: read the signature a request carries (Authorization
header or presigned query string), rebuild its canonical request and string to sign, and compare.

Pure functions over the request as it arrived on the wire (method, raw path, raw query, headers,
body); no keys and no clock here (see ``verifier.py``). The algorithm follows AWS's
"Create a signed AWS API request": canonical URI encoded once more than the wire form (non-S3
services), query pairs decoded and re-encoded strictly (RFC 3986 unreserved characters), header
values trimmed with inner whitespace collapsed, the payload's SHA-256.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from urllib.parse import quote, unquote

from engine.api.auth.errors import AuthError, incomplete, signature_mismatch

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
_AMZ_DATE = re.compile(r"^\d{8}T\d{6}Z$")
_HEX_SIGNATURE = re.compile(r"^[0-9a-f]{64}$")
#: Query parameters of the presigned form; their presence means the request is presigned.
QUERY_AUTH = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature")


@dataclass(frozen=True)
class Scope:
    access_key: str
    date: str  # YYYYMMDD
    region: str
    service: str
    terminator: str

    def text(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/{self.terminator}"


@dataclass(frozen=True)
class Signed:
    """What a request claims: who signed it, when, over which headers, and the signature."""

    scope: Scope
    amz_date: str  # YYYYMMDDTHHMMSSZ
    signed_headers: tuple[str, ...]
    signature: str
    presigned: bool
    expires: int | None  # X-Amz-Expires (seconds) of a presigned request
    security_token: str | None


def _parse_credential(text: str) -> Scope:
    parts = text.split("/")
    if len(parts) != 5 or not all(parts):
        raise incomplete(
            f"Credential should be of the form 'access-key/date/region/service/aws4_request', not {text[:200]!r}"
        )
    return Scope(*parts)


def _parse_authorization(value: str) -> dict[str, str]:
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise incomplete(f"Unsupported authorization type {algorithm[:40]!r}; only {ALGORITHM} is accepted")
    fields: dict[str, str] = {}
    for item in rest.split(","):
        key, sep, val = item.strip().partition("=")
        if not sep:
            raise incomplete(f"Authorization header requires 'key=value' pairs; got {item.strip()[:80]!r}")
        fields[key] = val
    missing = [k for k in ("Credential", "SignedHeaders", "Signature") if not fields.get(k)]
    if missing:
        raise incomplete(
            " ".join(f"Authorization header requires '{k}' parameter." for k in missing)
            + f" Authorization={value[:200]}"
        )
    return fields


def read_signature(headers: dict[str, str], query_pairs: list[tuple[str, str]]) -> Signed | None:
    """The signature a request carries, or None when it carries none at all."""
    auth = headers.get("authorization")
    query = dict(query_pairs)
    presigned = any(k in query for k in QUERY_AUTH)
    if auth is not None and presigned:
        raise incomplete("Only one auth mechanism allowed; give the Authorization header or X-Amz-* query parameters")
    if auth is not None:
        fields = _parse_authorization(auth)
        amz_date = headers.get("x-amz-date") or headers.get("date") or ""
        if not _AMZ_DATE.match(amz_date):
            raise incomplete(
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header "
                "in ISO 8601 basic format (YYYYMMDDTHHMMSSZ)."
            )
        signed = Signed(
            scope=_parse_credential(fields["Credential"]),
            amz_date=amz_date,
            signed_headers=tuple(fields["SignedHeaders"].split(";")),
            signature=fields["Signature"],
            presigned=False,
            expires=None,
            security_token=headers.get("x-amz-security-token"),
        )
    elif presigned:
        missing = [
            k
            for k in ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders", "X-Amz-Signature")
            if not query.get(k)
        ]
        if missing:
            raise incomplete(" ".join(f"AWS query-string parameters must include '{k}'." for k in missing))
        if query["X-Amz-Algorithm"] != ALGORITHM:
            raise incomplete(f"X-Amz-Algorithm must be {ALGORITHM}")
        if not _AMZ_DATE.match(query["X-Amz-Date"]):
            raise incomplete("X-Amz-Date must be in ISO 8601 basic format (YYYYMMDDTHHMMSSZ)")
        expires_text = query.get("X-Amz-Expires", "")
        if not expires_text.isdigit() or not 1 <= int(expires_text) <= 604800:
            raise incomplete("X-Amz-Expires must be a whole number of seconds from 1 to 604800")
        signed = Signed(
            scope=_parse_credential(query["X-Amz-Credential"]),
            amz_date=query["X-Amz-Date"],
            signed_headers=tuple(query["X-Amz-SignedHeaders"].split(";")),
            signature=query["X-Amz-Signature"],
            presigned=True,
            expires=int(expires_text),
            security_token=query.get("X-Amz-Security-Token"),
        )
    else:
        return None
    if "host" not in signed.signed_headers:
        raise incomplete("'Host' must be a 'SignedHeader' in the AWS Authorization.")
    if list(signed.signed_headers) != sorted(set(signed.signed_headers)) or "" in signed.signed_headers:
        raise incomplete("SignedHeaders must be lower case, sorted and separated by ';'")
    if not _HEX_SIGNATURE.match(signed.signature):
        raise signature_mismatch("The signature must be 64 lower-case hexadecimal digits.")
    return signed


def _encode(text: str) -> str:
    return quote(text, safe="-_.~")


def canonical_uri(raw_path: str) -> str:
    """The path as sent, dot and empty segments removed, encoded once more (botocore and AWS
    do this for every service except S3)."""
    path = raw_path.split("?", 1)[0] or "/"
    segments: list[str] = []
    for seg in path.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if segments:
                segments.pop()
            continue
        segments.append(seg)
    normalized = "/" + "/".join(segments)
    if path.endswith("/") and segments:
        normalized += "/"
    return quote(normalized, safe="/~")


def split_query(query: str) -> list[tuple[str, str]]:
    """Raw query pairs, percent-decoded ('+' stays a plus, as SigV4 signs it)."""
    pairs = []
    for item in query.split("&"):
        if not item:
            continue
        key, _, value = item.partition("=")
        pairs.append((unquote(key), unquote(value)))
    return pairs


def canonical_query(pairs: list[tuple[str, str]], presigned: bool) -> str:
    encoded = sorted((_encode(k), _encode(v)) for k, v in pairs if not (presigned and k == "X-Amz-Signature"))
    return "&".join(f"{k}={v}" for k, v in encoded)


def canonical_headers(headers: dict[str, str], names: tuple[str, ...]) -> str:
    lines = []
    for name in names:
        if name not in headers:
            raise signature_mismatch(f"The signed header {name!r} is not in the request.")
        lines.append(f"{name}:{' '.join(headers[name].split())}\n")
    return "".join(lines)


def canonical_request(
    method: str,
    raw_path: str,
    query_pairs: list[tuple[str, str]],
    headers: dict[str, str],
    signed: Signed,
    payload_hash: str,
) -> str:
    return "\n".join(
        (
            method.upper(),
            canonical_uri(raw_path),
            canonical_query(query_pairs, signed.presigned),
            canonical_headers(headers, signed.signed_headers),
            ";".join(signed.signed_headers),
            payload_hash,
        )
    )


def string_to_sign(signed: Signed, request_text: str) -> str:
    digest = hashlib.sha256(request_text.encode()).hexdigest()
    return f"{ALGORITHM}\n{signed.amz_date}\n{signed.scope.text()}\n{digest}"


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = hmac.new(f"AWS4{secret}".encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def signature(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def payload_hashes(headers: dict[str, str], body: bytes, signed: Signed) -> list[str]:
    """The payload hashes the signature may cover: the body's SHA-256; a declared
    x-amz-content-sha256 must agree with it (UNSIGNED-PAYLOAD only for an empty body)."""
    actual = hashlib.sha256(body).hexdigest()
    declared = headers.get("x-amz-content-sha256")
    if declared is not None and not signed.presigned:
        if declared == UNSIGNED_PAYLOAD and not body:
            return [UNSIGNED_PAYLOAD]
        if declared != actual:
            raise signature_mismatch("The provided 'x-amz-content-sha256' header does not match what was computed.")
        return [actual]
    # A presigned request made for an empty body may name UNSIGNED-PAYLOAD instead.
    return [actual, UNSIGNED_PAYLOAD] if signed.presigned and not body else [actual]


def verify(
    key: bytes,
    method: str,
    raw_path: str,
    query_pairs: list[tuple[str, str]],
    headers: dict[str, str],
    body: bytes,
    signed: Signed,
) -> None:
    """Raise SignatureDoesNotMatch unless the signature is right for this request."""
    for payload_hash in payload_hashes(headers, body, signed):
        request_text = canonical_request(method, raw_path, query_pairs, headers, signed, payload_hash)
        expected = signature(key, string_to_sign(signed, request_text))
        if hmac.compare_digest(expected, signed.signature):
            return
    raise signature_mismatch(
        "The request signature we calculated does not match the signature you provided. "
        "Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
    )


__all__ = ["AuthError", "Scope", "Signed", "read_signature", "signing_key", "split_query", "verify"]
