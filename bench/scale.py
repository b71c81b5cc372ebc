"""The bridge over many accounts with 1, 2 and 4 shared workers on one state (not pure).

For each number of accounts N (200 and 2 000 by default) and of workers W (1, 2, 4):
a fresh plain Radicale with ``[auth] type = none`` (any login is a user, so
accounts cost nothing to make) gets N users with one calendar each, their events
written as files into its storage (5 per account, every tenth marked ``jitsi``: no
provider network); W ``meetplugin-bridge`` processes with ``workers = shared``
start together on one fresh state — a database of a throwaway PostgreSQL cluster
when ``initdb`` is there, else the sqlite state folder — and are timed:

- drain: from the start of the workers until every account has had its first
  cycle (the initial scan: every event read, the marked ones written back), read
  from the shared state's per-account cycle records;
- idle requests per account: the CalDAV requests of each worker's first cycle
  that finds nothing changed, summed over the workers, per account;
- the throughput ratios of 2 and 4 workers to 1.

The whole run stops by itself (``--budget``, 14 min by default): a run that
would not fit is left out and said so. Not part of ``make test``:

    make bench-scale                                   # the default sizes
    .venv-bench/bin/python bench/scale.py --accounts 50 --workers 1,2 --state sqlite
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from servers import free_port  # noqa: E402

from bridge.state import BridgeState  # noqa: E402

EVENTS = 5  # per account
MARK_EVERY = 10  # every tenth event asks for a conference


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        load = os.getloadavg()
        return f"load average: {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}"


def event(uid: str, i: int, marked: bool) -> str:
    location = "jitsi" if marked else f"Room {i % 20}"
    return "\r\n".join(
        [
            "BEGIN:VCALENDAR",
            "VERSION:2.0",
            "PRODID:-//meetplugin bench//EN",
            "BEGIN:VEVENT",
            f"UID:{uid}",
            "DTSTAMP:20261121T100000Z",
            "DTSTART:20261125T100000Z",
            "DTEND:20261125T110000Z",
            f"SUMMARY:Встреча {i}",
            f"LOCATION:{location}",
            "END:VEVENT",
            "END:VCALENDAR",
            "",
        ]
    )


class Radicale:
    """Plain Radicale, any login accepted, N users' calendars written as files."""

    def __init__(self, folder: Path, users: list[str]) -> None:
        self.folder = folder
        self.storage = folder / "collections"
        self.port = 0
        self.process: subprocess.Popen | None = None
        n = 0
        for user in users:
            cal = self.storage / "collection-root" / user / "calendar"
            cal.mkdir(parents=True)
            (cal / ".Radicale.props").write_text(
                json.dumps({"tag": "VCALENDAR", "C:supported-calendar-component-set": "VEVENT"})
            )
            for _ in range(EVENTS):
                uid = f"{uuid.uuid4().hex}@bench"
                (cal / f"{uid}.ics").write_text(event(uid, n, n % MARK_EVERY == 0))
                n += 1
        self.events = n
        self.marked = (n + MARK_EVERY - 1) // MARK_EVERY

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Radicale:
        import requests

        self.port = free_port()
        conf = self.folder / "radicale.conf"
        conf.write_text(
            f"[server]\nhosts = 127.0.0.1:{self.port}\n"
            "[auth]\ntype = none\n[rights]\ntype = owner_only\n"
            f"[storage]\nfilesystem_folder = {self.storage}\n"
            "[logging]\nlevel = warning\n"
        )
        with open(self.folder / "radicale.log", "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "radicale", "--config", str(conf)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                requests.options(self.url + "/", timeout=2)
                return self
            except requests.ConnectionError:
                time.sleep(0.05)  # polling a port: no event to await from another process
        raise RuntimeError("Radicale did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Result:
    accounts: int
    workers: int
    events: int
    marked: int
    drain: float = 0.0
    idle_requests: float = 0.0
    written: int = 0
    load: str = ""
    note: str = ""


def bridge_conf(folder: Path, url: str, users: list[str], state_url: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "meetplugin.conf").write_text(
        "[meetplugin]\ndefault_provider = jitsi\nowner_addresses = {user}@example.com\n"
        "[provider:jitsi]\nbase_url = https://meet.jit.si\n"
    )
    (folder / "password").write_text("any")
    (folder / "password").chmod(0o600)
    lines = [
        "[bridge]",
        "meetplugin_config = meetplugin.conf",
        "state_dir = state",
        "interval = 5",
        "http_timeout = 60",
        "workers = shared",
        f"state_url = {state_url}",
        "",
    ]
    for user in users:
        lines += [
            f"[account:{user}]",
            f"url = {url}/",
            f"username = {user}",
            "password_file = password",
            "auth = basic",
            "",
        ]
    path = folder / "bridge.conf"
    path.write_text("\n".join(lines))
    return path


IDLE = re.compile(r"bridge: cycle: (\d+) calendars, 0 changed; 0 read, 0 written.* (\d+) requests")
WRITTEN = re.compile(r"bridge: cycle: .*?(\d+) written")


def one_run(work: Path, accounts: int, n_workers: int, state_url: str, deadline: float) -> Result:
    users = [f"u{i:05d}" for i in range(accounts)]
    server = Radicale(work / "radicale", users).start()
    result = Result(accounts, n_workers, server.events, server.marked)
    conf = bridge_conf(work / "bridge", server.url, users, state_url)
    logs = [work / f"worker{i}.log" for i in range(n_workers)]
    procs: list[subprocess.Popen] = []
    state = None
    try:
        load_before = os.getloadavg()[0]
        started = time.monotonic()
        env = {**os.environ, "MEETPLUGIN_BRIDGE_LOCK_DIR": str(work)}
        for log in logs:
            with open(log, "wb") as out:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "bridge", "-C", str(conf), "--verbose"],
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        env=env,
                        cwd=ROOT,
                    )
                )
        state_path = state_url or str(work / "bridge" / "state" / "bridge.sqlite")
        while state is None:  # the first worker makes it
            if time.monotonic() > deadline:
                raise TimeoutError("no state")
            try:
                state = BridgeState(state_path)
            except Exception:
                time.sleep(0.2)  # polling another process's start-up
        while True:  # every account through its first cycle
            done = sum(1 for ok, _f, _e in state.cycles().values() if ok)
            if done >= accounts:
                break
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise TimeoutError(
                    f"{done} of {accounts} accounts drained after "
                    f"{time.monotonic() - started:.0f} s"
                )
            time.sleep(0.2)  # polling the shared state: the workers are other processes
        result.drain = time.monotonic() - started
        result.load = f"{load_before:.2f} → {os.getloadavg()[0]:.2f}"
        # One idle cycle per worker after the drain: their requests, per account.
        marks = [len(log.read_text(errors="replace").splitlines()) for log in logs]
        idle: dict[int, tuple[int, int]] = {}
        while len(idle) < n_workers:
            for i, log in enumerate(logs):
                if i in idle:
                    continue
                for line in log.read_text(errors="replace").splitlines()[marks[i] :]:
                    m = IDLE.search(line)
                    if m:
                        idle[i] = (int(m.group(1)), int(m.group(2)))
                        break
            if time.monotonic() > deadline:
                raise TimeoutError("no idle cycle")
            time.sleep(0.2)  # polling the workers' logs
        calendars = sum(c for c, _r in idle.values())
        result.idle_requests = sum(r for _c, r in idle.values()) / max(1, calendars)
        if calendars != accounts:
            result.note = f"idle cycles covered {calendars} of {accounts} accounts"
        result.written = sum(
            int(m.group(1))
            for log in logs
            for m in WRITTEN.finditer(log.read_text(errors="replace"))
        )
    except TimeoutError as e:
        result.note = f"stopped: {e}"
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if state is not None:
            state.close()
        server.stop()
    return result


def table(results: list[Result], engine: str) -> str:
    base = {r.accounts: r for r in results if r.workers == 1 and r.drain}
    rows = [
        f"| accounts | workers | events (marked) | drain s | accounts/s | × 1 worker "
        f"| idle requests / account | written | load 1 min (before → after) | state: {engine} |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in results:
        if not r.drain:
            rows.append(
                f"| {r.accounts} | {r.workers} | {r.events} ({r.marked}) | – | – | – | – | – "
                f"| {r.load} | {r.note} |"
            )
            continue
        one = base.get(r.accounts)
        ratio = f"{one.drain / r.drain:.2f}" if one else "–"
        rows.append(
            f"| {r.accounts} | {r.workers} | {r.events} ({r.marked}) | {r.drain:.1f} "
            f"| {r.accounts / r.drain:.1f} | {ratio} | {r.idle_requests:.2f} | {r.written} "
            f"| {r.load} | {r.note} |"
        )
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", default="200,2000")
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--state", choices=("auto", "sqlite", "postgresql"), default="auto")
    parser.add_argument("--budget", type=float, default=14 * 60, help="seconds for everything")
    args = parser.parse_args()
    began = time.monotonic()
    deadline = began + args.budget
    sizes = [int(x) for x in args.accounts.split(",")]
    counts = [int(x) for x in args.workers.split(",")]
    print(f"# {platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"# before: {uptime()}")
    cluster = None
    engine = "sqlite (WAL, one state folder)"
    if args.state != "sqlite":
        try:
            from pg_support import PgCluster

            cluster = PgCluster().start()
            engine = "PostgreSQL (throwaway cluster on loopback)"
        except Exception as e:
            if args.state == "postgresql":
                raise
            print(f"# PostgreSQL unavailable ({e}); sqlite instead")
    results: list[Result] = []
    try:
        for accounts in sizes:
            for n in counts:
                left = deadline - time.monotonic()
                if left < 20:
                    results.append(Result(accounts, n, 0, 0, note="not run: time budget spent"))
                    continue
                work = Path(tempfile.mkdtemp(prefix=f"meetplugin-scale-{accounts}-{n}-"))
                try:
                    url = cluster.database("scale") if cluster is not None else ""
                    r = one_run(work, accounts, n, url, deadline)
                finally:
                    shutil.rmtree(work, ignore_errors=True)
                results.append(r)
                print(
                    f"# {accounts} accounts, {n} worker(s): drain {r.drain:.1f} s, "
                    f"idle {r.idle_requests:.2f} req/account {r.note}",
                    flush=True,
                )
    finally:
        if cluster is not None:
            cluster.stop()
    print(f"# after: {uptime()}; {time.monotonic() - began:.0f} s in all")
    print(table(results, engine))
    return 0


if __name__ == "__main__":
    sys.exit(main())
