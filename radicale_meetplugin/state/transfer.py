"""`migrate-state`: copy a sqlite state file into a PostgreSQL database, without loss (not pure).

Works on either kind of state file — the plugin's records (conferences, jobs,
suspects, letters) or the bridge's — by reading the file's own tables: a target
that has no such schema yet gets the file's tables (in PostgreSQL's types) at the
file's version, so the program's later steps run from there. A target already at
another version is refused (bring both to the same version first).

Rows are copied by primary key in one transaction: a row the target holds
already, the same, is left (so a second run changes nothing and says so); a row
it holds with other content stops the copy and nothing is written. Identity
sequences move past the copied ids. The file must not be in use: a running
Radicale or bridge keeps it open (`db.sqlite_held`), and the copy refuses then.
`check=True` writes nothing and tells what a copy would do.
"""

from __future__ import annotations

import os
import re
import sqlite3
from contextlib import closing
from dataclasses import dataclass, field

from radicale_meetplugin.state.db import (
    _META,
    Connection,
    Schema,
    Unavailable,
    is_url,
    sqlite_held,
)

_CREATE = re.compile(r"^\s*CREATE\s+(TABLE|INDEX|UNIQUE\s+INDEX)\s+(?:IF\s+NOT\s+EXISTS\s+)?", re.I)
KINDS = (("conferences", "records"), ("homes", "bridge"))  # a table that tells the kind


class TransferError(RuntimeError):
    """The copy cannot be made; nothing was written."""


@dataclass
class Table:
    name: str
    columns: list[str]
    key: list[str]
    rows: list[tuple]
    copied: int = 0  # rows the target did not have
    present: int = 0  # rows it had already, the same


@dataclass
class Transfer:
    kind: str  # "records" or "bridge"
    version: int
    target: str  # masked
    tables: list[Table] = field(default_factory=list)
    created: bool = False  # the target had no such schema: its tables were (or would be) made

    @property
    def copied(self) -> int:
        return sum(t.copied for t in self.tables)

    def lines(self, check: bool) -> list[str]:
        verb = "would copy" if check else "copied"
        out = [f"{self.kind} state, schema version {self.version} -> {self.target}"]
        if self.created:
            out.append(f"  the {self.kind} tables {'would be' if check else 'were'} created")
        for t in self.tables:
            out.append(f"  {t.name}: {verb} {t.copied}, already there {t.present}")
        if not self.copied and not self.created:
            out.append("nothing to copy: the target already holds every row (no change)")
        return out


def source_path(text: str) -> str:
    """`sqlite:PATH` or a plain path."""
    return text[len("sqlite:") :] if text.startswith("sqlite:") else text


def _read_source(path: str) -> tuple[str, int, list[str], list[Table]]:
    """(kind, version, DDL statements, tables with their rows) of a state file, read-only."""
    uri = "file:" + os.path.abspath(path).replace("?", "%3f").replace("#", "%23") + "?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, timeout=5.0)) as conn:
        master = conn.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL "
            "AND name NOT LIKE 'sqlite%' ORDER BY rowid"
        ).fetchall()
        names = [n for t, n, _ in master if t == "table" and n != "meta"]
        kind = next((k for table, k in KINDS if table in names), "")
        if not kind:
            raise TransferError(f"{path} holds no meetplugin state (no conferences or homes)")
        version = 0
        if "meta" in {n for _t, n, _s in master}:
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            version = int(row[0]) if row and str(row[0]).isdigit() else 0
        ddl = [sql for t, n, sql in master if n != "meta" and t in ("table", "index")]
        tables = []
        for name in names:
            info = conn.execute(f"PRAGMA table_info({name})").fetchall()
            columns = [r[1] for r in info]
            key = [r[1] for r in sorted(info, key=lambda r: r[5]) if r[5]] or columns
            rows = conn.execute(f"SELECT {', '.join(columns)} FROM {name}").fetchall()
            tables.append(Table(name, columns, key, rows))
    return kind, version, ddl, tables


def migrate_state(source: str, target: str, *, check: bool = False) -> Transfer:
    """Copy the state file `source` into the PostgreSQL database `target` (see the module)."""
    path = source_path(source)
    if not is_url(target):
        raise TransferError("--to must be a postgresql:// URL")
    if not os.path.isfile(path):
        raise TransferError(f"no state file at {path}")
    if sqlite_held(path):
        raise TransferError(
            f"{path} is in use (a running Radicale or meetplugin-bridge has it open): "
            "stop it, then copy; start it again with state_url pointing at the new database"
        )
    kind, version, ddl_steps, tables = _read_source(path)
    import psycopg

    from radicale_meetplugin.state.postgres import PostgresDatabase, ddl

    db = PostgresDatabase(target, Schema((), name=kind), pool=1, migrate=False, timeout=30)
    try:
        have = db.version
        transfer = Transfer(kind, version, db.shown, tables, created=have == 0)
        if have not in (0, version):
            raise TransferError(
                f"the target's {kind} schema is at version {have}, the file's at {version}: "
                "bring both to the same version first (start the new version once on each)"
            )
        with db.transaction() as conn:
            db.lock(conn, "migrate-state", kind)
            if transfer.created:
                if check:
                    for table in tables:
                        table.copied = len(table.rows)
                    return transfer
                conn.execute(_META)
                for statement in ddl_steps:
                    conn.execute(ddl(_CREATE.sub(r"CREATE \1 IF NOT EXISTS ", statement)))
                conn.execute(
                    "INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                    (f"schema_version:{kind}", str(version)),
                )
            for table in tables:
                _copy(conn, table, check)
            if check:
                raise _Checked(transfer)  # out of the transaction with a rollback
            for table in tables:
                if "id" in table.columns:
                    conn.execute(
                        "SELECT setval(pg_get_serial_sequence(?, 'id'), "
                        f"GREATEST((SELECT MAX(id) FROM {table.name}), 1))",
                        (table.name,),
                    )
        return transfer
    except _Checked as done:
        return done.transfer
    except Unavailable as e:
        raise TransferError(str(e)) from None
    except psycopg.Error as e:  # a statement the target refused: nothing was written
        raise TransferError(f"{db.shown}: {type(e).__name__}: {str(e).splitlines()[0]}") from None
    finally:
        db.close()


class _Checked(Exception):
    """Leaves a checking run's transaction with a rollback: nothing it did stays."""

    def __init__(self, transfer: Transfer) -> None:
        self.transfer = transfer


def _copy(conn: Connection, table: Table, check: bool) -> None:
    names = ", ".join(table.columns)
    where = " AND ".join(f"{k}=?" for k in table.key)
    positions = [table.columns.index(k) for k in table.key]
    insert = (
        f"INSERT INTO {table.name} ({names}) VALUES ({', '.join('?' * len(table.columns))}) "
        "ON CONFLICT DO NOTHING RETURNING 1"
    )
    select = f"SELECT {names} FROM {table.name} WHERE {where}"
    for row in table.rows:
        key = [row[i] for i in positions]
        if check:
            existing = conn.execute(select, key).fetchone()
        elif conn.execute(insert, row).fetchone() is not None:
            table.copied += 1
            continue
        else:
            existing = conn.execute(select, key).fetchone()
        if existing is None:
            table.copied += 1
        elif tuple(existing) == tuple(row):
            table.present += 1
        else:
            shown = ", ".join(f"{k}={v!r}" for k, v in zip(table.key, key, strict=True))
            raise TransferError(
                f"{table.name} ({shown}) is in the target already with other content: "
                "nothing was copied (is another server using that database?)"
            )
