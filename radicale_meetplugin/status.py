"""`meetplugin status`: what the state folder says, read-only, as text, JSON or Prometheus.

Reads ``records.sqlite`` (the outbox, suspects, letters, conference records) and, when a
bridge shares the folder, ``bridge.sqlite`` (its ``cycles`` table, bridge/state.py). Files
are opened with sqlite's read-only mode: nothing is created, migrated or written. With a
``state_url``, the same tables are read from PostgreSQL in read-only transactions, and
the URL is shown with its password masked.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from radicale_meetplugin.clitools import CommandError
from radicale_meetplugin.state.db import Schema, open_database

RECORDS, BRIDGE = "records.sqlite", "bridge.sqlite"
LETTER_STATES = ("queued", "sent", "failed", "unknown")


@dataclass
class ProviderError:
    error: str
    at: float  # when it was recorded (unix time)
    pending: bool  # a queued job still carries it (else: a finished record kept it)


@dataclass
class Account:
    last_ok: float | None  # the last cycle of this account that went through
    last_failed: float | None
    last_error: str


@dataclass
class Status:
    state_dir: str
    now: float
    jobs: int = 0
    oldest_job_age: float = 0.0  # seconds; 0 without jobs
    jobs_due: int = 0
    suspects: int = 0
    letters: dict[str, int] = field(default_factory=dict)
    conferences: dict[str, int] = field(default_factory=dict)  # by record state
    providers: dict[str, ProviderError] = field(default_factory=dict)
    bridge: dict[str, Account] | None = None  # None: no bridge uses this folder

    def findings(self) -> list[str]:
        """What an admin should look at (the exit status is 1 when there is any)."""
        out = []
        if self.suspects:
            out.append(f"{self.suspects} suspect create(s): see `meetplugin reconcile`")
        if self.letters.get("failed") or self.letters.get("unknown"):
            out.append("letters not delivered: see the log")
        for name, account in (self.bridge or {}).items():
            if account.last_failed and (account.last_ok or 0) < account.last_failed:
                out.append(f"bridge account {name}: the last cycle failed: {account.last_error}")
        return out


@contextmanager
def _read_only(path: str) -> Iterator[sqlite3.Connection]:
    """A read-only connection that creates no file either.

    While a server uses the file its ``-wal`` and ``-shm`` exist and are shared; when none
    does, the file is complete in itself and is opened as immutable, so that sqlite does not
    create those two (owned by whoever runs this command, which could lock the server out).
    """
    uri = "file:" + os.path.abspath(path).replace("?", "%3f").replace("#", "%23") + "?mode=ro"
    if not (os.path.exists(path + "-wal") and os.path.exists(path + "-shm")):
        uri += "&immutable=1"
    with closing(sqlite3.connect(uri, uri=True, timeout=5.0)) as conn:
        yield conn


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def read(state_dir: str, now: float | None = None, state_url: str = "") -> Status:
    """The status of `state_dir` (or of the database of `state_url`); CommandError if it
    holds no plugin state."""
    if state_url:
        return _read_database(state_url, time.time() if now is None else now)
    records = os.path.join(state_dir, RECORDS)
    if not os.path.isfile(records):
        raise CommandError(
            f"no plugin state at {records}: the plugin has not run with this config yet, "
            "or state_dir points elsewhere"
        )
    status = Status(state_dir=state_dir, now=time.time() if now is None else now)
    try:
        with _read_only(records) as conn:
            _read_records(conn, status)
        bridge = os.path.join(state_dir, BRIDGE)
        if os.path.isfile(bridge):
            with _read_only(bridge) as conn:
                _read_bridge(conn, status)
    except sqlite3.Error as e:
        raise CommandError(f"cannot read the state in {state_dir}: {e}") from None
    return status


def _read_database(url: str, now: float) -> Status:
    try:
        db = open_database(url, Schema((), name="records"), read_only=True, migrate=False, pool=1)
    except sqlite3.Error as e:  # db.Unavailable: the URL's password is masked in it
        raise CommandError(f"cannot read the state: {e}") from None
    status = Status(state_dir=db.shown, now=now)
    try:
        tables = set(db.tables())
        if "conferences" not in tables:
            raise CommandError(
                f"no plugin state in {db.shown}: the plugin has not run with this config yet"
            )
        with db.transaction() as conn:
            _read_records(conn, status, tables)
            if "homes" in tables:
                _read_bridge(conn, status, tables)
    except sqlite3.Error as e:
        raise CommandError(f"cannot read the state in {db.shown}: {e}") from None
    finally:
        db.close()
    return status


def _read_records(conn: Any, status: Status, tables: set[str] | None = None) -> None:
    tables = _tables(conn) if tables is None else tables
    if "jobs" in tables:
        count, oldest, due = conn.execute(
            "SELECT COUNT(*), MIN(created_at), SUM(CASE WHEN next_at <= ? THEN 1 ELSE 0 END) "
            "FROM jobs",
            (status.now,),
        ).fetchone()
        status.jobs, status.jobs_due = count, due or 0
        status.oldest_job_age = max(0.0, status.now - oldest) if oldest is not None else 0.0
        for provider, error, at in conn.execute(
            "SELECT provider, last_error, next_at FROM jobs j WHERE last_error != '' AND "
            "next_at = (SELECT MAX(next_at) FROM jobs k WHERE k.provider = j.provider "
            "AND k.last_error != '')"
        ):
            status.providers[provider] = ProviderError(error, at, True)
    if "suspects" in tables:
        status.suspects = conn.execute("SELECT COUNT(*) FROM suspects").fetchone()[0]
    if "mails" in tables:
        status.letters = dict.fromkeys(LETTER_STATES, 0)
        for state, count in conn.execute(
            "SELECT state, COUNT(*) FROM mails GROUP BY state"
        ).fetchall():
            status.letters[state] = count
    if "conferences" in tables:
        status.conferences = dict(
            conn.execute("SELECT state, COUNT(*) FROM conferences GROUP BY state").fetchall()
        )
        for provider, code, at in conn.execute(
            "SELECT provider, error_code, updated_at FROM conferences c WHERE error_code != '' "
            "AND updated_at = (SELECT MAX(updated_at) FROM conferences d "
            "WHERE d.provider = c.provider AND d.error_code != '')"
        ):
            if provider not in status.providers:
                status.providers[provider] = ProviderError(code, at, False)


def _read_bridge(conn: Any, status: Status, tables: set[str] | None = None) -> None:
    status.bridge = {}
    if "cycles" not in (
        _tables(conn) if tables is None else tables
    ):  # a bridge from before the cycles were recorded
        return
    for account, ok_at, failed_at, error in conn.execute(
        "SELECT account, ok_at, failed_at, error FROM cycles ORDER BY account"
    ):
        status.bridge[account] = Account(ok_at or None, failed_at or None, error)


# --- output --------------------------------------------------------------------


def _ago(now: float, at: float | None) -> str:
    if not at:
        return "never"
    seconds = max(0, int(now - at))
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))
    return f"{stamp} ({seconds} s ago)"


def text(status: Status) -> str:
    lines = [f"state: {status.state_dir}"]
    age = f", oldest {int(status.oldest_job_age)} s old" if status.jobs else ""
    lines.append(f"provider jobs queued: {status.jobs} ({status.jobs_due} due){age}")
    lines.append(f"suspect creates: {status.suspects}")
    if status.letters:
        lines.append("letters: " + ", ".join(f"{k} {v}" for k, v in status.letters.items()))
    if status.conferences:
        lines.append(
            "conference records: "
            + ", ".join(f"{k} {v}" for k, v in sorted(status.conferences.items()))
        )
    for name, err in sorted(status.providers.items()):
        where = "queued job" if err.pending else "record"
        lines.append(
            f"provider {name}: last error {err.error} ({where}, {_ago(status.now, err.at)})"
        )
    if status.bridge is not None:
        if not status.bridge:
            lines.append("bridge: no cycle recorded yet")
        for name, account in status.bridge.items():
            line = f"bridge account {name}: last good cycle {_ago(status.now, account.last_ok)}"
            if account.last_failed and (account.last_ok or 0) < account.last_failed:
                line += f"; failing since {_ago(status.now, account.last_failed)}: "
                line += account.last_error
            lines.append(line)
    findings = status.findings()
    lines += findings or ["nothing to look at"]
    return "\n".join(lines) + "\n"


def as_json(status: Status) -> str:
    data = asdict(status)
    data["findings"] = status.findings()
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isfinite(value) and value == int(value):
        return str(int(value))
    return repr(float(value))


class _Metrics:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(
        self, name: str, kind: str, help_: str, samples: list[tuple[dict[str, str], float]]
    ) -> None:
        self.lines += [f"# HELP {name} {help_}", f"# TYPE {name} {kind}"]
        for labels, value in samples:
            inner = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
            self.lines.append(
                f"{name}{{{inner}}} {_number(value)}" if inner else f"{name} {_number(value)}"
            )


def prometheus(status: Status) -> str:
    """The Prometheus text format (version 0.0.4), for node_exporter's textfile collector."""
    m = _Metrics()
    m.add(
        "meetplugin_status_timestamp_seconds",
        "gauge",
        "When this status was read (unix time).",
        [({}, round(status.now, 3))],
    )
    m.add("meetplugin_jobs", "gauge", "Provider jobs in the outbox.", [({}, status.jobs)])
    m.add(
        "meetplugin_jobs_due",
        "gauge",
        "Provider jobs in the outbox whose next try is due.",
        [({}, status.jobs_due)],
    )
    m.add(
        "meetplugin_oldest_job_age_seconds",
        "gauge",
        "Age of the oldest provider job in the outbox (0 when it is empty).",
        [({}, round(status.oldest_job_age, 3))],
    )
    m.add(
        "meetplugin_suspects",
        "gauge",
        "Creates that got no answer: the provider may hold an unused room.",
        [({}, status.suspects)],
    )
    m.add(
        "meetplugin_letters",
        "gauge",
        "Invitation letters by state.",
        [({"state": k}, v) for k, v in sorted(status.letters.items())],
    )
    m.add(
        "meetplugin_conference_records",
        "gauge",
        "Conference records by state.",
        [({"state": k}, v) for k, v in sorted(status.conferences.items())],
    )
    m.add(
        "meetplugin_provider_last_error_timestamp_seconds",
        "gauge",
        "When a provider's last recorded error happened (unix time), with the error.",
        [
            ({"provider": k, "error": e.error[:120], "pending": str(e.pending).lower()}, e.at)
            for k, e in sorted(status.providers.items())
        ],
    )
    if status.bridge is not None:
        m.add(
            "meetplugin_bridge_last_success_timestamp_seconds",
            "gauge",
            "When the bridge last finished a cycle of this account without error (unix time).",
            [({"account": k}, a.last_ok or 0) for k, a in status.bridge.items()],
        )
        m.add(
            "meetplugin_bridge_last_failure_timestamp_seconds",
            "gauge",
            "When a cycle of this account last failed (unix time; 0: never).",
            [({"account": k}, a.last_failed or 0) for k, a in status.bridge.items()],
        )
    return "\n".join(m.lines) + "\n"
