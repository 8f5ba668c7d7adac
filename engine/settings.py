"""One table of settings: the CLI flags, environment variables, config file and docs come from it.

Each setting is read from (in order) a command-line flag, an ``IMAGEBUILDER_*`` environment
variable, the TOML config file (``--config`` / ``IMAGEBUILDER_CONFIG``), or its default.
docs/CONFIGURATION.md is generated from this table and deploy/imagebuilder.toml.example is
checked against it by tests.
"""

from __future__ import annotations

import argparse
import difflib
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

#: The config file: a flag and a variable of its own (it cannot come from itself).
CONFIG_FLAG = "--config"
CONFIG_ENV = "IMAGEBUILDER_CONFIG"


@dataclass(frozen=True)
class Setting:
    name: str
    default: str
    help: str
    #: The [table] the setting may be grouped under in the config file (it may also be written
    #: at the top level); empty: top level only.
    section: str = ""

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return "IMAGEBUILDER_" + self.name.upper()

    @property
    def file_key(self) -> str:
        """The key in the config file, as a TOML dotted key (same as ``[section]`` + ``name = ...``)."""
        return f"{self.section}.{self.name}" if self.section else self.name


SETTINGS: tuple[Setting, ...] = (
    Setting("host", "127.0.0.1", "address the API server listens on", "server"),
    Setting("port", "8080", "port the API server listens on", "server"),
    Setting("data_dir", "./data", "directory for the SQLite file, image store and logs", "storage"),
    Setting("database_url", "", "SQLAlchemy URL (postgresql+psycopg://...); default: SQLite in data_dir", "storage"),
    Setting("region", "us-east-1", "region named in ARNs and accepted in request signatures", "general"),
    Setting(
        "account_id",
        "123456789012",
        "the default account: `up`'s first access key, dev auth mode, CLI builds",
        "general",
    ),
    Setting(
        "auth_mode", "keys", "keys: verify SigV4 signatures against access keys; dev: accept any signature", "auth"
    ),
    Setting("keys_file", "", "access keys file (JSON, secrets sealed); default data_dir/auth/keys.json", "auth"),
    Setting(
        "master_key_file", "", "key that seals access key secrets at rest; default data_dir/auth/master.key", "auth"
    ),
    Setting("workers", "1", "API server processes (uvicorn workers)", "server"),
    Setting("temporal_address", "127.0.0.1:7233", "Temporal frontend host:port", "temporal"),
    Setting("temporal_namespace", "default", "Temporal namespace builds run in", "temporal"),
    Setting(
        "pipeline_catchup_minutes",
        "1440",
        "a pipeline schedule tick missed while Temporal was down runs (once) if it is at most this old",
        "temporal",
    ),
    Setting("log_level", "info", "log level: debug, info, warning, error", "general"),
    Setting(
        "log_format",
        "text",
        "log lines: text, or json (one object a line: time, level, logger, message; image_arn and step in builds)",
        "observability",
    ),
    Setting(
        "metrics_port",
        "0",
        "port a worker serves Prometheus /metrics on; 0: none (the API has /metrics)",
        "observability",
    ),
    Setting(
        "otel_exporter",
        "none",
        "OpenTelemetry traces: none, console, or an OTLP/HTTP collector URL (http://host:4318)",
        "observability",
    ),
    Setting("registry", "127.0.0.1:5000", "container registry (host:port) images are pushed to", "builds"),
    Setting(
        "max_concurrent",
        "2",
        "builds an executor worker runs at once (instances it takes from its pool queue); per host and kind",
        "executors",
    ),
    Setting(
        "capacity_vcpus",
        "0",
        "vCPUs an executor worker's instances may hold together (a guest: its instance type's; a container"
        " build: 1); 0: the host's CPU count",
        "executors",
    ),
    Setting(
        "capacity_memory_mib",
        "0",
        "MiB of memory an executor worker's instances may hold together (a container build: 1024); 0: the host's",
        "executors",
    ),
    Setting(
        "capacity_disk_gib",
        "0",
        "GiB of disk an executor worker's instances may hold together (a guest: its volume, default 8; a"
        " container build: 2); 0: free under data_dir when the worker starts",
        "executors",
    ),
    Setting(
        "vulnerability_database",
        "",
        "offline vulnerability data for image scans: OSV JSON (file, zip or folder) or Debian security tracker JSON",
        "scanning",
    ),
    Setting(
        "scanners",
        "auto",
        "image scanners: auto (the database if set, trivy/grype if installed), or a list",
        "scanning",
    ),
    Setting(
        "event_endpoints",
        "",
        "JSON file mapping SNS topic ARNs (or *) to webhook URLs that receive build events",
        "events",
    ),
    Setting(
        "s3_endpoint_url", "", "S3-compatible endpoint for s3:// URIs (MinIO, Ceph RGW); empty: AWS default", "storage"
    ),
    Setting(
        "store_url",
        "",
        "where builds share documents, logs and disks (docs/STORAGE.md): empty: data_dir/store; a directory"
        " every host mounts; or s3://bucket/prefix at s3_endpoint_url, cached in data_dir/store",
        "storage",
    ),
    Setting(
        "export_dir",
        "",
        "where disk exports go when no S3 endpoint is set: <export_dir>/<bucket>/<prefix>; default data_dir/exports",
        "storage",
    ),
    Setting(
        "import_dir", "", "the one folder ImportVmImage may read disk files from; default data_dir/imports", "storage"
    ),
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
    log_format: str
    metrics_port: int
    otel_exporter: str
    registry: str
    max_concurrent: int
    capacity_vcpus: int
    capacity_memory_mib: int
    capacity_disk_gib: int
    vulnerability_database: str
    scanners: str
    event_endpoints: str
    s3_endpoint_url: str
    store_url: str
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
    parser.add_argument(
        CONFIG_FLAG, dest="config", default=None, help=f"TOML config file (env {CONFIG_ENV}); flags and env override it"
    )
    for s in SETTINGS:
        if names is None or s.name in names:
            parser.add_argument(
                s.flag, dest=s.name, default=None, help=f"{s.help} (env {s.env}, default {s.default!r})"
            )


def _field_types() -> dict[str, str]:
    # Annotations are strings here (``from __future__ import annotations``): "int", "Path", "str".
    return {f.name: str(f.type) for f in fields(Config)}


def _suggest(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def read_config_file(path: Path) -> dict[str, str]:
    """The settings a TOML config file sets, as strings keyed by setting name.

    Keys are the settings' names, at the top level or under their ``[section]``; anything else,
    and any value of the wrong type, stops the program with the file, the key and the reason.
    """
    try:
        with path.open("rb") as f:
            doc = tomllib.load(f)
    except OSError as exc:
        raise SystemExit(
            f"imagebuilder: cannot read the config file {path} (from {CONFIG_FLAG} or {CONFIG_ENV}): {exc.strerror}"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise SystemExit(f"imagebuilder: {path} is not valid TOML: {exc}") from None
    by_name = {s.name: s for s in SETTINGS}
    sections = sorted({s.section for s in SETTINGS if s.section})
    found: dict[str, str] = {}
    where: dict[str, str] = {}

    def take(key: str, value: object, section: str) -> None:
        at = f"[{section}] {key}" if section else key
        setting = by_name.get(key)
        if setting is None:
            raise SystemExit(
                f"imagebuilder: {path}: unknown setting {at!r}{_suggest(key, list(by_name))}; "
                "the settings are listed in docs/CONFIGURATION.md"
            )
        if section and setting.section != section:
            home = f"[{setting.section}] or the top level" if setting.section else "the top level"
            raise SystemExit(f"imagebuilder: {path}: {key} does not belong in [{section}]: write it in {home}")
        if key in found:
            raise SystemExit(f"imagebuilder: {path}: {key} is set twice (as {where[key]!r} and as {at!r})")
        found[key] = _file_value(path, setting, at, value)
        where[key] = at

    for key, value in doc.items():
        if isinstance(value, Mapping) and key not in by_name:
            if key not in sections:
                tables = [f"[{s}]" for s in sections]
                raise SystemExit(
                    f"imagebuilder: {path}: unknown section [{key}]{_suggest(f'[{key}]', tables)}; "
                    f"the sections are {', '.join(tables)}"
                )
            for sub_key, sub_value in value.items():
                take(sub_key, sub_value, key)
        else:
            take(key, value, "")
    return found


def _file_value(path: Path, setting: Setting, at: str, value: object) -> str:
    wanted = _field_types()[setting.name]
    if wanted == "int":
        # bool is an int subclass in Python; TOML's true/false is never a count.
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        like = f"{setting.name} = {setting.default}"
        raise SystemExit(f"imagebuilder: {path}: {at} must be a whole number (like {like}), not {_describe(value)}")
    if isinstance(value, str):
        return value
    like = f"{setting.name} = {setting.default!r}"
    raise SystemExit(f"imagebuilder: {path}: {at} must be a string (like {like}), not {_describe(value)}")


def _describe(value: object) -> str:
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a table"
    return f"a {type(value).__name__} ({value})"  # TOML dates and times


def config_path(args: argparse.Namespace | None = None) -> Path | None:
    """The config file named by ``--config``, else by IMAGEBUILDER_CONFIG, else none."""
    value = getattr(args, "config", None) if args is not None else None
    value = value if value is not None else os.environ.get(CONFIG_ENV, "")
    return Path(value) if value else None


def load(args: argparse.Namespace | None = None) -> Config:
    path = config_path(args)
    from_file = read_config_file(path) if path else {}
    raw: dict[str, str] = {}
    for s in SETTINGS:
        value = getattr(args, s.name, None) if args is not None else None
        if value is None:
            value = os.environ.get(s.env)
        raw[s.name] = value if value is not None else from_file.get(s.name, s.default)
    types = _field_types()
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
