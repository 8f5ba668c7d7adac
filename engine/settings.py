"""One table of settings: the CLI flags, environment variables and docs come from it.

Each setting is read from (in order) a command-line flag, an ``IMAGEBUILDER_*`` environment
variable, or its default. docs/CONFIGURATION.md is checked against this table by a test.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path


@dataclass(frozen=True)
class Setting:
    name: str
    default: str
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return "IMAGEBUILDER_" + self.name.upper()


SETTINGS: tuple[Setting, ...] = (
    Setting("host", "127.0.0.1", "address the API server listens on"),
    Setting("port", "8080", "port the API server listens on"),
    Setting("data_dir", "./data", "directory for the SQLite file, image store and logs"),
    Setting("database_url", "", "SQLAlchemy URL (postgresql+psycopg://...); default: SQLite in data_dir"),
    Setting("region", "us-east-1", "region named in ARNs and accepted in request signatures"),
    Setting("account_id", "123456789012", "the default account: `up`'s first access key, dev auth mode, CLI builds"),
    Setting("auth_mode", "keys", "keys: verify SigV4 signatures against access keys; dev: accept any signature"),
    Setting("keys_file", "", "access keys file (JSON, secrets sealed); default data_dir/auth/keys.json"),
    Setting("master_key_file", "", "key that seals access key secrets at rest; default data_dir/auth/master.key"),
    Setting("workers", "1", "API server processes (uvicorn workers)"),
    Setting("temporal_address", "127.0.0.1:7233", "Temporal frontend host:port"),
    Setting("temporal_namespace", "default", "Temporal namespace builds run in"),
    Setting(
        "pipeline_catchup_minutes",
        "1440",
        "a pipeline schedule tick missed while Temporal was down runs (once) if it is at most this old",
    ),
    Setting("log_level", "info", "log level: debug, info, warning, error"),
    Setting("registry", "127.0.0.1:5000", "container registry (host:port) images are pushed to"),
    Setting(
        "vulnerability_database",
        "",
        "offline vulnerability data for image scans: OSV JSON (file, zip or folder) or Debian security tracker JSON",
    ),
    Setting("scanners", "auto", "image scanners: auto (the database if set, trivy/grype if installed), or a list"),
    Setting("event_endpoints", "", "JSON file mapping SNS topic ARNs (or *) to webhook URLs that receive build events"),
    Setting("s3_endpoint_url", "", "S3-compatible endpoint for s3:// URIs (MinIO, Ceph RGW); empty: AWS default"),
    Setting(
        "export_dir",
        "",
        "where disk exports go when no S3 endpoint is set: <export_dir>/<bucket>/<prefix>; default data_dir/exports",
    ),
    Setting("import_dir", "", "the one folder ImportVmImage may read disk files from; default data_dir/imports"),
)


@dataclass(frozen=True)
class Config:
    host: str
    port: int
    data_dir: Path
    database_url: str
    region: str
    account_id: str
    auth_mode: str
    keys_file: str
    master_key_file: str
    workers: int
    temporal_address: str
    temporal_namespace: str
    pipeline_catchup_minutes: int
    log_level: str
    registry: str
    vulnerability_database: str
    scanners: str
    event_endpoints: str
    s3_endpoint_url: str
    export_dir: str
    import_dir: str

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir.resolve() / 'imagebuilder.sqlite'}"

    @property
    def keys_path(self) -> Path:
        return Path(self.keys_file) if self.keys_file else self.data_dir / "auth" / "keys.json"

    @property
    def master_key_path(self) -> Path:
        return Path(self.master_key_file) if self.master_key_file else self.data_dir / "auth" / "master.key"


def add_arguments(parser: argparse.ArgumentParser, names: Sequence[str] | None = None) -> None:
    for s in SETTINGS:
        if names is None or s.name in names:
            parser.add_argument(
                s.flag, dest=s.name, default=None, help=f"{s.help} (env {s.env}, default {s.default!r})"
            )


def load(args: argparse.Namespace | None = None) -> Config:
    raw: dict[str, str] = {}
    for s in SETTINGS:
        value = getattr(args, s.name, None) if args is not None else None
        raw[s.name] = value if value is not None else os.environ.get(s.env, s.default)
    types = {f.name: f.type for f in fields(Config)}
    conv: dict[str, object] = {}
    by_name = {st.name: st for st in SETTINGS}
    for key, value in raw.items():
        t = types[key]
        if t == "int":
            try:
                conv[key] = int(value)
            except ValueError:
                st = by_name[key]
                raise SystemExit(
                    f"imagebuilder: {st.flag} (or {st.env}) must be a whole number, not {value!r}"
                ) from None
        else:
            conv[key] = Path(value) if t == "Path" else value
    return Config(**conv)  # type: ignore[arg-type]
