"""Authentication of API requests (SigV4 against access keys) and the on-prem meaning of the
identities a request names (execution roles, instance profiles). See docs/SECURITY.md."""

from __future__ import annotations

import logging
from functools import cache

from engine.api.auth.errors import AuthError
from engine.api.auth.keys import DatabaseKeyring, FileKeyring, KeysError, MasterKey
from engine.api.auth.verifier import Authenticator, Identity
from engine.settings import Config
from engine.store import Store

log = logging.getLogger("imagebuilder.auth")

MODES = ("keys", "dev")

DEV_MODE_BANNER = (
    "\n" + "!" * 78 + "\n"
    "!! AUTH MODE dev: ANY well-formed SigV4 signature is accepted, unchecked, and acts as\n"
    "!! account {account}. Anyone who can reach this port can do anything. Never use it\n"
    "!! outside a developer's own machine; the default (--auth-mode keys) verifies signatures.\n" + "!" * 78
)


def build_authenticator(config: Config, store: Store, file_keys: FileKeyring | None = None) -> Authenticator:
    if config.auth_mode not in MODES:
        raise SystemExit(f"imagebuilder: --auth-mode (or IMAGEBUILDER_AUTH_MODE) must be one of {', '.join(MODES)}")
    if config.auth_mode == "dev":
        log.warning(DEV_MODE_BANNER.format(account=config.account_id))
        return Authenticator(config.region, [], lambda: MasterKey(bytes(32)), dev_account=config.account_id)
    try:
        keyring = file_keys or FileKeyring(config.keys_path)
    except KeysError as exc:
        raise SystemExit(f"imagebuilder: {exc}") from None

    @cache
    def master() -> MasterKey:
        return MasterKey.load(config.master_key_path)

    if keyring.current.keys:
        try:
            master()  # a missing master key is a startup error, not a refusal of every request
        except KeysError as exc:
            raise SystemExit(f"imagebuilder: {exc}") from None
    log.info(
        "auth: SigV4 verified against %d access key(s) in %s and any in the database",
        len(keyring.current.keys),
        config.keys_path,
    )
    return Authenticator(config.region, [keyring, DatabaseKeyring(store)], master, accounts_file=keyring)


__all__ = ["AuthError", "Authenticator", "Identity", "build_authenticator"]
