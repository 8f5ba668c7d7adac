"""Access keys: each maps to an account id and a principal ARN.

SigV4 needs the secret itself (the signing key is an HMAC chain starting from it), so secrets
cannot be stored as one-way hashes. They are sealed instead: AES-256-GCM under a server master
key kept in its own file (0600), with the access key id as associated data, so a copied keys
file or database dump alone does not reveal them, and a sealed secret cannot be moved to
another key id. Session tokens are only compared, so they are stored as SHA-256 hashes.

Keys live in a JSON keys file (one per API host, reloaded when it changes) and/or in the
database (shared by every API host; kind ``access-key`` in the resources table, never reachable
through the API because no operation reads that kind). The file also says which instance
profiles (worker pools) each account may name, see ``identities.py``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from engine.store import Record, Store

KIND = "access-key"
_SEALED_PREFIX = "v1:"


class KeysError(Exception):
    """A keys file or master key that cannot be used; the message says what to do."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class MasterKey:
    """The server key that seals secrets at rest."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise KeysError("the master key must be 32 bytes (base64 in its file)")
        self._aead = AESGCM(key)

    @classmethod
    def load(cls, path: Path) -> MasterKey:
        try:
            return cls(base64.b64decode(path.read_text().strip(), validate=True))
        except FileNotFoundError:
            raise KeysError(f"the master key {path} is missing; the keys were sealed with it") from None
        except ValueError:
            raise KeysError(f"the master key {path} is not base64 of 32 bytes") from None

    @classmethod
    def load_or_create(cls, path: Path) -> MasterKey:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(_b64(AESGCM.generate_key(bit_length=256)) + "\n")
        return cls.load(path)

    def seal(self, access_key_id: str, secret: str) -> str:
        nonce = secrets.token_bytes(12)
        return _SEALED_PREFIX + _b64(nonce + self._aead.encrypt(nonce, secret.encode(), access_key_id.encode()))

    def open(self, access_key_id: str, sealed: str) -> str:
        if not sealed.startswith(_SEALED_PREFIX):
            raise KeysError(f"the secret of {access_key_id} is not sealed (expected {_SEALED_PREFIX}...)")
        try:
            raw = base64.b64decode(sealed[len(_SEALED_PREFIX) :], validate=True)
            return self._aead.decrypt(raw[:12], raw[12:], access_key_id.encode()).decode()
        except (ValueError, InvalidTag):
            raise KeysError(f"the secret of {access_key_id} does not open with this master key") from None


@dataclass(frozen=True)
class AccessKey:
    access_key_id: str
    account: str
    principal: str
    sealed_secret: str
    session_token_sha256: str | None = None
    expires: str | None = None  # ISO 8601; for temporary credentials
    active: bool = True

    def expired(self, now: float) -> bool:
        if not self.expires:
            return False
        return datetime.fromisoformat(self.expires.replace("Z", "+00:00")).timestamp() <= now

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "accessKeyId": self.access_key_id,
            "account": self.account,
            "principal": self.principal,
            "sealedSecret": self.sealed_secret,
            "status": "Active" if self.active else "Inactive",
        }
        if self.session_token_sha256:
            out["sessionTokenSha256"] = self.session_token_sha256
        if self.expires:
            out["expires"] = self.expires
        return out

    @classmethod
    def from_json(cls, raw: Any, where: str) -> AccessKey:
        if not isinstance(raw, dict):
            raise KeysError(f"{where}: each key must be an object")
        for name in ("accessKeyId", "account", "sealedSecret"):
            if not isinstance(raw.get(name), str) or not raw[name]:
                raise KeysError(f"{where}: {name} is required (a string)")
        if not (raw["account"].isdigit() and len(raw["account"]) == 12):
            raise KeysError(f"{where}: account must be 12 digits, not {raw['account']!r}")
        if raw.get("status", "Active") not in ("Active", "Inactive"):
            raise KeysError(f"{where}: status must be Active or Inactive")
        expires = raw.get("expires")
        if expires is not None:
            try:
                datetime.fromisoformat(str(expires).replace("Z", "+00:00"))
            except ValueError:
                raise KeysError(f"{where}: expires must be an ISO 8601 time, not {expires!r}") from None
        return cls(
            access_key_id=raw["accessKeyId"],
            account=raw["account"],
            principal=str(raw.get("principal") or root_principal(raw["account"])),
            sealed_secret=raw["sealedSecret"],
            session_token_sha256=raw.get("sessionTokenSha256"),
            expires=expires,
            active=raw.get("status", "Active") == "Active",
        )


def root_principal(account: str) -> str:
    return f"arn:aws:iam::{account}:root"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def generate() -> tuple[str, str]:
    """A new access key id (AKIA + 16 upper-case base32 characters) and a 40-character secret."""
    key_id = "AKIA" + base64.b32encode(secrets.token_bytes(10)).decode()[:16]
    secret = base64.b64encode(secrets.token_bytes(30)).decode()
    return key_id, secret


@dataclass(frozen=True)
class KeysFile:
    keys: dict[str, AccessKey] = field(default_factory=dict)
    #: account -> instance profile names it may use; an account not listed may use any name.
    instance_profiles: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "keys": [k.to_json() for k in self.keys.values()],
            "accounts": {a: {"instanceProfiles": list(p)} for a, p in self.instance_profiles.items()},
        }


def read_keys_file(path: Path) -> KeysFile:
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return KeysFile()
    except ValueError as exc:
        raise KeysError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("keys", []), list):
        raise KeysError(f"{path}: expected an object with a 'keys' list")
    keys: dict[str, AccessKey] = {}
    for i, entry in enumerate(raw.get("keys", [])):
        key = AccessKey.from_json(entry, f"{path}: keys[{i}]")
        if key.access_key_id in keys:
            raise KeysError(f"{path}: access key {key.access_key_id} appears twice")
        keys[key.access_key_id] = key
    profiles: dict[str, tuple[str, ...]] = {}
    accounts = raw.get("accounts", {})
    if not isinstance(accounts, dict):
        raise KeysError(f"{path}: 'accounts' must be an object keyed by account id")
    for account, conf in accounts.items():
        names = conf.get("instanceProfiles") if isinstance(conf, dict) else None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise KeysError(f"{path}: accounts.{account}.instanceProfiles must be a list of names")
        profiles[account] = tuple(names)
    return KeysFile(keys, profiles)


def write_keys_file(path: Path, keys_file: KeysFile) -> None:
    """Replace the file atomically (0600), so a server reloading it never reads half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(keys_file.to_json(), f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def add_key(
    path: Path,
    master_key_path: Path,
    access_key_id: str,
    secret: str,
    account: str,
    principal: str | None = None,
    session_token: str | None = None,
    expires: str | None = None,
) -> AccessKey:
    """Seal a secret and add (or replace) its key in a keys file."""
    master = MasterKey.load_or_create(master_key_path)
    key = AccessKey.from_json(
        {
            "accessKeyId": access_key_id,
            "account": account,
            "principal": principal or root_principal(account),
            "sealedSecret": master.seal(access_key_id, secret),
            "sessionTokenSha256": token_hash(session_token) if session_token else None,
            "expires": expires,
        },
        access_key_id,
    )
    current = read_keys_file(path)
    write_keys_file(path, KeysFile({**current.keys, access_key_id: key}, current.instance_profiles))
    return key


class FileKeyring:
    """The keys file, re-read when it changes (checked at most once a second), so adding or
    revoking a key needs no restart. A broken edit keeps the last good version (and is logged)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        self.current = read_keys_file(path)
        self._stamp = self._stat()

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked < 1.0:
            return
        with self._lock:
            self._checked = now
            stamp = self._stat()
            if stamp == self._stamp:
                return
            try:
                self.current = read_keys_file(self.path)
            except KeysError:
                import logging

                logging.getLogger("imagebuilder.auth").exception("keeping the previous keys: %s is broken", self.path)
            self._stamp = stamp

    def get(self, access_key_id: str) -> AccessKey | None:
        self.refresh()
        return self.current.keys.get(access_key_id)


def db_record(key: AccessKey) -> Record:
    return Record(
        arn=f"{KIND}:{key.access_key_id}", kind=KIND, account=key.account, name=key.access_key_id, body=key.to_json()
    )


class DatabaseKeyring:
    """Keys in the store; a found key is remembered for a few seconds (revocation takes effect
    within that time on every API host)."""

    TTL = 5.0

    def __init__(self, store: Store) -> None:
        self.store = store
        self._cache: dict[str, tuple[float, AccessKey | None]] = {}

    def get(self, access_key_id: str) -> AccessKey | None:
        hit = self._cache.get(access_key_id)
        now = time.monotonic()
        if hit is not None and now - hit[0] < self.TTL:
            return hit[1]
        with self.store.transaction() as tx:
            rec = tx.get(f"{KIND}:{access_key_id}", KIND)
        key = AccessKey.from_json(rec.body, f"access key {access_key_id}") if rec is not None else None
        if key is not None:
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[access_key_id] = (now, key)
        return key


def put_db_key(store: Store, key: AccessKey) -> None:
    with store.transaction(write=True) as tx:
        if tx.get(f"{KIND}:{key.access_key_id}", KIND) is not None:
            tx.update(db_record(key))
        else:
            tx.insert(db_record(key))


def provision_first_key(keys_path: Path, master_key_path: Path, account: str) -> tuple[str, Path] | None:
    """On a first run (no keys file yet): one new key for the account, and an AWS shared
    credentials file (0600, profile "default") next to the keys file for the operator's
    clients. Returns the key id and that file, or None when keys already exist."""
    if read_keys_file(keys_path).keys:
        return None
    key_id, secret = generate()
    add_key(keys_path, master_key_path, key_id, secret, account, principal=f"arn:aws:iam::{account}:user/admin")
    credentials = keys_path.with_name("credentials")
    fd = os.open(credentials, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"[default]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n")
    return key_id, credentials
