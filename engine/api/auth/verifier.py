"""Who is calling: verify a request's SigV4 signature against the access keys and answer the
account and principal it acts as, or raise the AWS authentication error."""

from __future__ import annotations

import calendar
import hmac
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from engine.api.auth import errors, sigv4
from engine.api.auth.keys import AccessKey, FileKeyring, KeysError, MasterKey, root_principal, token_hash

log = logging.getLogger("imagebuilder.auth")

SERVICE = "imagebuilder"
#: How far a request's date may be from the server's clock (either way), as AWS allows.
SKEW_SECONDS = 15 * 60


@dataclass(frozen=True)
class Identity:
    account: str
    principal: str
    access_key: str


class Keyring(Protocol):
    def get(self, access_key_id: str) -> AccessKey | None: ...


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y%m%dT%H%M%SZ")


def _parse_stamp(text: str) -> float:
    # By hand: strptime costs more than the rest of the verification together.
    return float(
        calendar.timegm(
            (int(text[0:4]), int(text[4:6]), int(text[6:8]), int(text[9:11]), int(text[11:13]), int(text[13:15]))
        )
    )


class Authenticator:
    def __init__(
        self,
        region: str,
        keyrings: Sequence[Keyring],
        master_key: Callable[[], MasterKey],
        *,
        dev_account: str | None = None,
        clock: Callable[[], float] = time.time,
        accounts_file: FileKeyring | None = None,
    ) -> None:
        self.region = region
        self.keyrings = list(keyrings)
        self.master_key = master_key
        #: Dev mode: any well-formed signature is accepted and acts as this account.
        self.dev_account = dev_account
        self.clock = clock
        self.accounts_file = accounts_file
        self._signing_keys: dict[tuple[str, str, str], bytes] = {}
        self._lock = threading.Lock()

    def authenticate(self, method: str, raw_path: str, query: str, headers: dict[str, str], body: bytes) -> Identity:
        pairs = sigv4.split_query(query)
        signed = sigv4.read_signature(headers, pairs)
        if signed is None:
            raise errors.missing()
        scope = signed.scope
        if self.dev_account is not None:
            return Identity(self.dev_account, root_principal(self.dev_account), scope.access_key)
        self._check_scope(signed)
        key = self._find(scope.access_key)
        if key is None or not key.active:
            raise errors.unknown_key()
        now = self.clock()
        self._check_token(key, signed, now)
        sigv4.verify(self._signing_key(key, scope.date), method, raw_path, pairs, headers, body, signed)
        self._check_time(signed, now)
        return Identity(key.account, key.principal, key.access_key_id)

    def instance_profiles(self, account: str) -> tuple[str, ...] | None:
        """The instance profiles (worker pools) an account may name, or None for any."""
        if self.accounts_file is None:
            return None
        self.accounts_file.refresh()
        return self.accounts_file.current.instance_profiles.get(account)

    def _check_scope(self, signed: sigv4.Signed) -> None:
        scope = signed.scope
        if scope.terminator != "aws4_request":
            raise errors.signature_mismatch(
                f"Credential should be scoped with a valid terminator: 'aws4_request', not '{scope.terminator[:40]}'."
            )
        if scope.service != SERVICE:
            raise errors.signature_mismatch(f"Credential should be scoped to correct service: '{SERVICE}'.")
        if scope.region != self.region:
            raise errors.signature_mismatch(
                f"Credential should be scoped to a valid region, not '{scope.region[:40]}'; "
                f"this endpoint serves '{self.region}'."
            )
        if scope.date != signed.amz_date[:8]:
            raise errors.signature_mismatch(
                f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
                f"'{scope.date[:20]}' != '{signed.amz_date[:8]}'."
            )

    def _find(self, access_key_id: str) -> AccessKey | None:
        for ring in self.keyrings:
            try:
                key = ring.get(access_key_id)
            except KeysError:
                log.exception("access key %s is unusable", access_key_id)
                raise errors.unknown_key() from None
            if key is not None:
                return key
        return None

    @staticmethod
    def _check_token(key: AccessKey, signed: sigv4.Signed, now: float) -> None:
        given = signed.security_token
        if key.session_token_sha256 is None:
            if given is not None:
                raise errors.unknown_key()  # a permanent key carries no session token
            return
        if given is None or not hmac.compare_digest(token_hash(given), key.session_token_sha256):
            raise errors.unknown_key()
        if key.expired(now):
            raise errors.expired_token()

    def _signing_key(self, key: AccessKey, date: str) -> bytes:
        # Four HMACs and an AES-GCM open per request add up; the derived key is per day.
        cache_key = (key.access_key_id, date, key.sealed_secret)
        found = self._signing_keys.get(cache_key)
        if found is not None:
            return found
        try:
            secret = self.master_key().open(key.access_key_id, key.sealed_secret)
        except KeysError:
            log.exception("access key %s is unusable", key.access_key_id)
            raise errors.unknown_key() from None
        derived = sigv4.signing_key(secret, date, self.region, SERVICE)
        with self._lock:
            if len(self._signing_keys) > 4096:
                self._signing_keys.clear()
            self._signing_keys[cache_key] = derived
        return derived

    def _check_time(self, signed: sigv4.Signed, now: float) -> None:
        try:
            when = _parse_stamp(signed.amz_date)
        except ValueError:
            raise errors.incomplete(f"X-Amz-Date {signed.amz_date!r} is not a valid date") from None
        if when > now + SKEW_SECONDS:
            raise errors.request_expired(
                f"Signature not yet current: {signed.amz_date} is still later than "
                f"{_stamp(now + SKEW_SECONDS)} ({_stamp(now)} + 15 min.)"
            )
        if signed.presigned:
            assert signed.expires is not None
            if now > when + signed.expires:
                raise errors.request_expired(
                    f"Request has expired: signed at {signed.amz_date} for {signed.expires} s, now {_stamp(now)}"
                )
        elif when < now - SKEW_SECONDS:
            raise errors.request_expired(
                f"Signature expired: {signed.amz_date} is now earlier than "
                f"{_stamp(now - SKEW_SECONDS)} ({_stamp(now)} - 15 min.)"
            )
