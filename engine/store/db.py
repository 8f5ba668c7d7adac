"""Store and transactions.

Every API request runs in one transaction. Writes on SQLite take the write lock up front
(BEGIN IMMEDIATE) so two writers never deadlock upgrading a read lock; on PostgreSQL a
conflicting insert raises IntegrityError and the dispatcher retries the whole request.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig

from engine.store.tables import idempotency, resources


def now_iso() -> str:
    """Timestamps as Image Builder writes them: ISO 8601, UTC, milliseconds."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class Record:
    arn: str
    kind: str
    account: str
    name: str
    body: dict[str, Any]
    version: str = ""
    build: int = 0
    parent: str | None = None
    created: str = ""

    def with_body(self, body: dict[str, Any]) -> Record:
        return replace(self, body=body)


def _version_parts(version: str) -> tuple[int, int, int]:
    parts = version.split(".")
    if len(parts) == 3 and all(p.isdigit() for p in parts):
        return int(parts[0]), int(parts[1]), int(parts[2])
    return 0, 0, 0


def _row_to_record(row: sa.Row[Any]) -> Record:
    m = row._mapping
    return Record(
        arn=m["arn"],
        kind=m["kind"],
        account=m["account"],
        name=m["name"],
        body=json.loads(m["body"]),
        version=m["version"],
        build=m["build"],
        parent=m["parent"],
        created=m["created"],
    )


_ORDER = (resources.c.name, resources.c.v_major, resources.c.v_minor, resources.c.v_patch, resources.c.build)
_KEY = (
    resources.c.account,
    resources.c.name,
    resources.c.v_major,
    resources.c.v_minor,
    resources.c.v_patch,
    resources.c.build,
)


def key_of(rec: Record) -> tuple[Any, ...]:
    """A record's position in ``Tx.scan`` order."""
    return (rec.account, rec.name, *_version_parts(rec.version), rec.build)


# Built once: constructing SQLAlchemy expressions costs more than running the query.
_GET = sa.select(resources).where(resources.c.arn == sa.bindparam("arn"))
_GET_KIND = _GET.where(resources.c.kind == sa.bindparam("kind"))


class Tx:
    """The operations handlers use, all inside one transaction."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def get(self, arn: str, kind: str | None = None) -> Record | None:
        if kind is None:
            row = self.conn.execute(_GET, {"arn": arn}).first()
        else:
            row = self.conn.execute(_GET_KIND, {"arn": arn, "kind": kind}).first()
        return _row_to_record(row) if row else None

    def find(
        self,
        kind: str,
        *,
        accounts: list[str] | None = None,
        name: str | None = None,
        version: str | None = None,
        parent: str | None = None,
    ) -> list[Record]:
        """Records of a kind, oldest version first (name, then semantic version, then build)."""
        q = sa.select(resources).where(resources.c.kind == kind)
        if accounts is not None:
            q = q.where(resources.c.account.in_(accounts))
        if name is not None:
            q = q.where(resources.c.name == name)
        if version is not None:
            q = q.where(resources.c.version == version)
        if parent is not None:
            q = q.where(resources.c.parent == parent)
        return [_row_to_record(r) for r in self.conn.execute(q.order_by(*_ORDER))]

    def scan(
        self, kind: str, accounts: list[str], after: tuple[Any, ...] | None, limit: int, name: str | None = None
    ) -> list[Record]:
        """Records in key order (see ``key_of``) strictly after ``after``: keyset pagination, so
        a page costs the same however deep into the list it is. One account at a time, so each
        query is a plain range read of the index."""
        c = resources.c
        out: list[Record] = []
        for account in sorted(set(accounts)):
            if after is not None and account < after[0]:
                continue
            q = sa.select(resources).where(c.kind == kind, c.account == account)
            if name is not None:
                q = q.where(c.name == name)
            if after is not None and account == after[0]:
                q = q.where(sa.tuple_(*_KEY[1:]) > sa.tuple_(*[sa.literal(v) for v in after[1:]]))
            q = q.order_by(*_KEY[1:]).limit(limit - len(out))
            out += [_row_to_record(r) for r in self.conn.execute(q)]
            if len(out) >= limit:
                break
        return out

    def insert(self, rec: Record) -> Record:
        created = rec.created or now_iso()
        major, minor, patch = _version_parts(rec.version)
        self.conn.execute(
            resources.insert().values(
                arn=rec.arn,
                kind=rec.kind,
                account=rec.account,
                name=rec.name,
                version=rec.version,
                v_major=major,
                v_minor=minor,
                v_patch=patch,
                build=rec.build,
                parent=rec.parent,
                created=created,
                body=json.dumps(rec.body, separators=(",", ":")),
            )
        )
        return replace(rec, created=created)

    def update(self, rec: Record) -> None:
        self.conn.execute(
            resources.update()
            .where(resources.c.arn == rec.arn)
            .values(body=json.dumps(rec.body, separators=(",", ":")), parent=rec.parent)
        )

    def delete(self, arn: str) -> None:
        self.conn.execute(resources.delete().where(resources.c.arn == arn))

    def next_build(self, kind: str, account: str, name: str, version: str) -> int:
        q = sa.select(sa.func.max(resources.c.build)).where(
            resources.c.kind == kind,
            resources.c.account == account,
            resources.c.name == name,
            resources.c.version == version,
        )
        current = self.conn.execute(q).scalar()
        return int(current or 0) + 1

    def idempotent_response(self, account: str, operation: str, token: str) -> tuple[str, str] | None:
        q = sa.select(idempotency.c.request_hash, idempotency.c.response).where(
            idempotency.c.account == account, idempotency.c.operation == operation, idempotency.c.token == token
        )
        row = self.conn.execute(q).first()
        return (row[0], row[1]) if row else None

    def forget_response(self, account: str, operation: str, token: str) -> None:
        self.conn.execute(
            idempotency.delete().where(
                idempotency.c.account == account, idempotency.c.operation == operation, idempotency.c.token == token
            )
        )

    def remember_response(self, account: str, operation: str, token: str, request_hash: str, response: str) -> None:
        self.conn.execute(
            idempotency.insert().values(
                account=account,
                operation=operation,
                token=token,
                request_hash=request_hash,
                response=response,
                created=now_iso(),
            )
        )


class Store:
    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.engine = sa.create_engine(
                url,
                # Driver-level autocommit: we issue BEGIN ourselves to choose DEFERRED or IMMEDIATE.
                connect_args={"check_same_thread": False, "isolation_level": None, "timeout": 30},
                pool_size=16,
                max_overflow=32,
            )
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            # REPEATABLE READ: a request sees one snapshot, so a racing writer shows up as a
            # conflict (retried by the dispatcher) rather than as half-visible new rows.
            self.engine = sa.create_engine(
                url, pool_size=16, max_overflow=16, pool_pre_ping=True, isolation_level="REPEATABLE READ"
            )
        self._write_lock = threading.Lock()

    def migrate(self) -> None:
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
        with self.engine.connect() as conn:
            if self.is_sqlite:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            conn.commit()

    @contextmanager
    def transaction(self, write: bool = False) -> Iterator[Tx]:
        with self.engine.connect() as conn:
            if self.is_sqlite:
                # The driver connection directly: these statements need no SQLAlchemy processing.
                raw = conn.connection.dbapi_connection
                assert raw is not None
                if write:
                    # One writer at a time per process, queued fairly here rather than by
                    # SQLite's busy handler, whose sleeps give long tail latencies.
                    self._write_lock.acquire()
                try:
                    raw.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                    try:
                        yield Tx(conn)
                    except BaseException:
                        raw.execute("ROLLBACK")
                        raise
                    raw.execute("COMMIT")
                finally:
                    if write:
                        self._write_lock.release()
            else:
                with conn.begin():
                    yield Tx(conn)

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL: readers never block the writer and a crash never corrupts committed data.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()
