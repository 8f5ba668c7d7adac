"""`imagebuilder keys`: manage API access keys.

    imagebuilder keys create --account 123456789012 [--principal ARN] [--database]
    imagebuilder keys add --access-key-id AKID --account ID < secret      # import a known secret
    imagebuilder keys list [--database]
    imagebuilder keys revoke --access-key-id AKID [--database]

A new secret is printed once and stored only sealed (see keys.py). Keys go to the keys file
(default data_dir/auth/keys.json, read by that host's API server) or, with --database, to the
store every API host shares. Servers pick up changes within seconds, without a restart.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace

from engine import settings
from engine.api.auth import keys
from engine.store import Store


def _store(config: settings.Config) -> Store:
    config.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(config.db_url)
    store.migrate()
    return store


def _save(config: settings.Config, args: argparse.Namespace, key_id: str, secret: str) -> keys.AccessKey:
    if not args.database:
        return keys.add_key(
            config.keys_path,
            config.master_key_path,
            key_id,
            secret,
            args.account,
            args.principal,
            args.session_token,
            args.expires,
        )
    master = keys.MasterKey.load_or_create(config.master_key_path)
    key = keys.AccessKey.from_json(
        {
            "accessKeyId": key_id,
            "account": args.account,
            "principal": args.principal or keys.root_principal(args.account),
            "sealedSecret": master.seal(key_id, secret),
            "sessionTokenSha256": keys.token_hash(args.session_token) if args.session_token else None,
            "expires": args.expires,
        },
        key_id,
    )
    store = _store(config)
    try:
        keys.put_db_key(store, key)
    finally:
        store.dispose()
    return key


def _list(config: settings.Config, database: bool) -> list[keys.AccessKey]:
    if not database:
        return list(keys.read_keys_file(config.keys_path).keys.values())
    store = _store(config)
    try:
        with store.transaction() as tx:
            return [keys.AccessKey.from_json(r.body, r.name) for r in tx.find(keys.KIND)]
    finally:
        store.dispose()


def _revoke(config: settings.Config, key_id: str, database: bool) -> bool:
    if not database:
        current = keys.read_keys_file(config.keys_path)
        if key_id not in current.keys:
            return False
        rest = {k: v for k, v in current.keys.items() if k != key_id}
        keys.write_keys_file(config.keys_path, replace(current, keys=rest))
        return True
    store = _store(config)
    try:
        with store.transaction(write=True) as tx:
            if tx.get(f"{keys.KIND}:{key_id}", keys.KIND) is None:
                return False
            tx.delete(f"{keys.KIND}:{key_id}")
            return True
    finally:
        store.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imagebuilder keys", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("create", "add", "list", "revoke"))
    parser.add_argument("--account", help="12-digit account id the key acts as (create, add)")
    parser.add_argument("--principal", help="principal ARN (default arn:aws:iam::ACCOUNT:root)")
    parser.add_argument("--access-key-id", help="the key (add, revoke)")
    parser.add_argument("--session-token", help="temporary credentials: the token requests must carry")
    parser.add_argument("--expires", help="temporary credentials: ISO 8601 expiry time")
    parser.add_argument("--database", action="store_true", help="the shared database instead of the keys file")
    settings.add_arguments(parser, ["data_dir", "database_url", "keys_file", "master_key_file"])
    args = parser.parse_args(argv)
    config = settings.load(args)
    try:
        if args.action in ("create", "add"):
            if not args.account:
                parser.error(f"{args.action} needs --account")
            if args.action == "create":
                key_id, secret = keys.generate()
            else:
                if not args.access_key_id:
                    parser.error("add needs --access-key-id (and the secret on standard input)")
                key_id, secret = args.access_key_id, sys.stdin.readline().strip()
                if not secret:
                    parser.error("add reads the secret access key from standard input; it was empty")
            key = _save(config, args, key_id, secret)
            print(f"aws_access_key_id = {key.access_key_id}")
            if args.action == "create":
                print(f"aws_secret_access_key = {secret}")
            print(f"# account {key.account}, principal {key.principal}", file=sys.stderr)
        elif args.action == "list":
            for key in _list(config, args.database):
                state = "Active" if key.active else "Inactive"
                print(f"{key.access_key_id}\t{key.account}\t{key.principal}\t{state}\t{key.expires or '-'}")
        else:
            if not args.access_key_id:
                parser.error("revoke needs --access-key-id")
            if not _revoke(config, args.access_key_id, args.database):
                print(f"imagebuilder keys: no access key {args.access_key_id}", file=sys.stderr)
                return 1
    except keys.KeysError as exc:
        print(f"imagebuilder keys: {exc}", file=sys.stderr)
        return 1
    return 0
