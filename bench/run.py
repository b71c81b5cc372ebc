"""What the plugin costs Radicale, against plain Radicale, A/B interleaved (not pure).

Both servers are real processes from this venv on loopback ports, with the same
settings. The Telemost emulator, the concurrent clients, the isolation load and
the lock watcher run in processes of their own; this process only times its own
sequential requests and collects the rest. Every comparison is made of rounds:
each round measures a window on both servers (the order alternates), and a table
cell is the median of the per-window values with their range in brackets.

    python bench/run.py --quick                  # a smoke run, a few minutes
    python bench/run.py                          # the full run (20-30 minutes)
    python bench/run.py --markdown bench/README.md
"""

from __future__ import annotations

import argparse
import bisect
import collections
import concurrent.futures
import contextlib
import dataclasses
import gc
import multiprocessing
import os
import platform
import queue
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for extra in (str(HERE), str(ROOT / "tests")):  # spawned processes inherit sys.path
    if extra not in sys.path:
        sys.path.insert(0, extra)

import events  # noqa: E402
import radicale  # noqa: E402
import stats  # noqa: E402
import workers  # noqa: E402
from client import SYNC, BenchError, Client, query  # noqa: E402
from servers import TOKEN, Server  # noqa: E402
from stats import Spread  # noqa: E402

NAMES = ("plain", "plugin")
PROVIDER_SLOTS = 4  # the plugin's default max_concurrency: provider calls at once
# RSS after a load is read this long after it, on both servers: what `ps` shows once the
# burst is over (the plugin gives freed heap back 2 s after its work; state/heap.py).
REST_S = 15.0
ARENA_MAX = os.environ.get("MALLOC_ARENA_MAX", "")  # in both servers' environment when set
BEGIN, END = "<!-- bench:results:begin -->", "<!-- bench:results:end -->"


@dataclasses.dataclass
class Sizes:
    windows: int = 5
    samples: int = 400
    clients: int = 8
    prefill: int = 200
    iso_rounds: int = 3
    iso_samples: int = 400
    iso_burst: int = 16
    iso_delay: float = 2.0
    lock_windows: int = 3
    lock_samples: int = 400
    sizes: tuple[int, ...] = (100, 1000, 10000)
    growth_rounds: int = 3
    growth_samples: int = 40
    mem_unmarked: int = 20000
    mem_marked: int = 2000
    mem_every: int = 1000
    mem_every_marked: int = 100
    import_events: int = 1000
    import_rounds: int = 2
    time_limit: float = 3600.0


HELP = {
    "windows": "A/B rounds of sections 1, 2 and 3 (one window per server each)",
    "samples": "requests per window and server in sections 1-3 (p99 needs hundreds)",
    "clients": "concurrent client processes in section 1",
    "prefill": "events in alice's and bob's calendars before anything is timed",
    "iso_rounds": "section 4 rounds: a quiet and a busy window on both servers each",
    "iso_samples": "section 4: bob's requests of each kind per window",
    "iso_burst": "section 4: meeting creations kept waiting on the provider",
    "iso_delay": "section 4: seconds the provider takes per call",
    "lock_windows": "section 5: A/B rounds",
    "lock_samples": "section 5: writes of each kind per window and server",
    "sizes": "section 6: calendar sizes, e.g. 100,1000,10000",
    "growth_rounds": "section 6: A/B rounds per size",
    "growth_samples": "section 6: requests per window at 100 events (fewer when bigger)",
    "mem_unmarked": "section 8: unmarked PUTs of the long run",
    "mem_marked": "section 8: meetings created and deleted in the long run",
    "mem_every": "section 8: RSS sampled every this many unmarked PUTs",
    "mem_every_marked": "section 8: RSS sampled every this many meetings",
    "import_events": "section 7: events in the imported calendar (every 10th a meeting)",
    "import_rounds": "section 7: A/B rounds",
    "time_limit": "seconds; what is left after it is skipped",
}


QUICK = Sizes(
    windows=2,
    samples=60,
    prefill=60,
    iso_rounds=1,
    iso_samples=40,
    lock_windows=2,
    lock_samples=30,
    sizes=(100, 1000),
    growth_rounds=2,
    growth_samples=10,
    mem_unmarked=600,
    mem_marked=60,
    mem_every=200,
    mem_every_marked=20,
    import_events=200,
    import_rounds=1,
    time_limit=900.0,
)


def rounds(n: int) -> Iterator[tuple[int, tuple[str, str]]]:
    """Round r measures both servers; who goes first alternates (ABBA cancels drift)."""
    for r in range(n):
        yield r, NAMES if r % 2 == 0 else NAMES[::-1]


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines)


class TimeUp(Exception):
    """The time limit is reached: the rest is skipped, what was measured is reported."""


class Bench:
    def __init__(self, sizes: Sizes, sections: str, aa: bool = False) -> None:
        self.z = sizes
        self.sections = sections
        self.started = time.monotonic()
        self.deadline = self.started + sizes.time_limit
        self.blocks: list[str] = []
        self.notes: list[str] = []
        self.ctx = multiprocessing.get_context("spawn")
        self.base = Path(tempfile.mkdtemp(prefix="radicale-bench-"))
        self.emu_conn, child = self.ctx.Pipe()
        self.emu_process = self.ctx.Process(
            target=workers.emulator_main, args=(child, TOKEN), daemon=True
        )
        self.emu_process.start()
        if not self.emu_conn.poll(60):
            raise RuntimeError("the Telemost emulator did not start")
        telemost_url = self.emu_conn.recv()
        self.servers = {
            "plain": Server("plain", self.base / "plain", plugin=False),
            # --aa: the "plugin" column is a second plain Radicale (the noise floor).
            "plugin": Server(
                "plugin", self.base / "plugin", plugin=not aa, telemost_url=telemost_url
            ),
        }
        self.pool = concurrent.futures.ProcessPoolExecutor(sizes.clients, mp_context=self.ctx)
        self.clients: dict[tuple[str, str], Client] = {}
        self.uids: dict[str, list[str]] = {}  # prefilled events per user (same on both)
        self.cursor = {(name, user): 0 for name in NAMES for user in ("alice", "bob")}
        self.rss: dict[str, dict[str, int]] = {}
        self.iso_put_wait: dict[str, list[float]] = {}
        self.memory: tuple[dict, str] | None = None  # section 8's runs, for report_8
        self.children: list = []  # the load and watcher processes started on the way

    # --- plumbing -------------------------------------------------------------

    def emu(self, *command) -> object:
        self.emu_conn.send(command)
        if not self.emu_conn.poll(30):
            raise RuntimeError(f"the emulator did not answer {command}")
        return self.emu_conn.recv()

    def client(self, name: str, user: str) -> Client:
        key = (name, user)
        if key not in self.clients:
            self.clients[key] = Client(self.servers[name].url, user)
        return self.clients[key]

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise TimeUp

    def emit(self, block: str) -> None:
        self.blocks.append(block)
        print("\n" + block + "\n", flush=True)

    def settle_provider(self, timeout: float = 120) -> None:
        """Wait until every conference made was deleted again and no call is under way."""
        deadline = time.monotonic() + timeout
        calm = 0
        while time.monotonic() < deadline:
            s = self.emu("stats")
            assert isinstance(s, dict)
            calm = calm + 1 if s["in_flight"] == 0 and s.get("POST", 0) == s.get("DELETE", 0) else 0
            if calm >= 3:
                return
            time.sleep(0.1)  # the outbox is in another process: poll its effect
        raise BenchError(f"the plugin's provider jobs did not settle in {timeout} s: {s}")

    def snapshot(self, label: str, rest: float = REST_S) -> None:
        time.sleep(rest)  # a point in time after the load, not an event to await
        self.rss[label] = {name: s.rss_kib() for name, s in self.servers.items()}

    # --- life -------------------------------------------------------------------

    def start(self) -> None:
        for server in self.servers.values():
            server.start()
            server.ensure_users()
        # Start every pool worker now (spawned, with imports), not inside a window.
        list(self.pool.map(workers.warm, [0.3] * self.z.clients))
        self.snapshot("after start", rest=0.0)
        # The same events, byte for byte, in both servers.
        self.uids = {u: [events.new_uid() for _ in range(self.z.prefill)] for u in ("alice", "bob")}
        for name in NAMES:
            for user, uids in self.uids.items():
                c = self.client(name, user)
                for i, uid in enumerate(uids):
                    c.put(f"{user}/calendar/{uid}.ics", events.event(uid, i), create=True)

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()
        try:
            self.emu("stop")
        except Exception:
            pass
        self.emu_process.join(10)
        if self.emu_process.is_alive():
            self.emu_process.kill()
        self.pool.shutdown(cancel_futures=True)

    def kill_all(self) -> None:
        """SIGKILL every process this run started (the hard time limit)."""
        for server in self.servers.values():
            if server.process and server.process.poll() is None:
                server.process.kill()
        processes = [
            self.emu_process,
            *self.children,
            *getattr(self.pool, "_processes", {}).values(),
        ]
        for process in processes:
            if process.is_alive():
                process.kill()

    # --- measuring helpers -----------------------------------------------------

    def creations(self, name: str, n: int, keyword: str = "", verify: str = "") -> list[float]:
        """n new events in alice's calendar (timed PUT), each deleted at once (untimed)."""
        c = self.client(name, "alice")
        out = []
        for k in range(n):
            uid = events.new_uid()
            path = f"alice/calendar/{uid}.ics"
            text = events.event(uid, k, location=keyword or None, meeting=bool(keyword))
            out.append(c.put(path, text, create=True))
            if k == 0 and verify and verify not in c.text(path):
                raise BenchError(f"{name}: no {verify!r} in the event after the save")
            c.delete(path)
        return out

    def edits(self, name: str, user: str, n: int) -> list[float]:
        """n edits of the user's existing events (If-Match), SEQUENCE counted up."""
        c = self.client(name, user)
        uids = self.uids[user]
        out = []
        for _ in range(n):
            done = self.cursor[(name, user)]
            self.cursor[(name, user)] += 1
            i = done % len(uids)
            path = f"{user}/calendar/{uids[i]}.ics"
            out.append(c.put(path, events.event(uids[i], i, sequence=1 + done // len(uids))))
        return out

    def concurrent(self, name: str, n: int) -> tuple[list[float], float]:
        """`clients` processes create (and delete) n events together: latencies, PUTs/s."""
        k = self.z.clients
        per = max(1, n // k)
        at = time.monotonic() + 0.3
        futures = [
            self.pool.submit(
                workers.creations,
                self.servers[name].url,
                "alice",
                "alice/calendar/",
                per,
                at,
                1000 * j,
            )
            for j in range(k)
        ]
        results = [f.result(timeout=600) for f in futures]
        latencies = [x for lat, _, _ in results for x in lat]
        span = max(e for _, _, e in results) - min(b for _, b, _ in results)
        return latencies, len(latencies) / span

    def timed(self, fn: Callable[[], list[float]]) -> list[float]:
        """Run a window with the collector off (a pause of ours is not the server's)."""
        gc.collect()
        gc.disable()
        try:
            return fn()
        finally:
            gc.enable()

    # --- A/B tables -------------------------------------------------------------

    def ab_rows(
        self,
        label: str,
        windows: dict[str, list[list[float]]],
        targets: dict[str, float] | None = None,
        difference: bool = False,
    ) -> list[list[str]]:
        rows = []
        targets = targets or {}
        for stat, q in stats.QUANTILES:
            a = stats.per_window(windows["plain"], q)
            b = stats.per_window(windows["plugin"], q)
            if difference:
                d = Spread.of([y - x for x, y in zip(a, b, strict=False)])
                compared = stats.signed_ms(d)
                value = d.mid * 1000
            else:
                r = Spread.of(stats.ratios(b, a))
                compared, value = stats.ratio(r), r.mid
            target = ""
            if stat in targets:
                limit = targets[stat]
                unit = " ms" if difference else "×"
                target = (
                    f"≤ {'+' if difference else ''}{limit:g}{unit}: {stats.verdict(value, limit)}"
                )
            n = min(len(w) for w in windows["plain"] + windows["plugin"]) if windows["plain"] else 0
            rows.append(
                [
                    f"{label} ({len(windows['plain'])}×{n})" if stat == "p50" else "",
                    stat,
                    stats.ms(Spread.of(a)),
                    stats.ms(Spread.of(b)),
                    compared,
                    target,
                ]
            )
        return rows

    AB_HEADER = ["Scenario (windows×samples)", "", "Plain", "Plugin", "Plugin / plain", "Target"]

    # --- sections ---------------------------------------------------------------

    def section_1(self) -> None:
        """Unmarked PUTs: new events (sequential and concurrent) and edits."""
        seq: dict[str, list] = {n: [] for n in NAMES}
        edit: dict[str, list] = {n: [] for n in NAMES}
        conc: dict[str, list] = {n: [] for n in NAMES}
        rate: dict[str, list] = {n: [] for n in NAMES}
        cpu_new: dict[str, list[float]] = {n: [] for n in NAMES}
        cpu_edit: dict[str, list[float]] = {n: [] for n in NAMES}
        note = ""

        def cpu_ms(name: str, fn: Callable[[], list[float]], into: dict) -> list[float]:
            """Run a window; note the server's CPU milliseconds per request of it."""
            server = self.servers[name]
            before = server.cpu_seconds()
            out = self.timed(fn)
            into[name].append((server.cpu_seconds() - before) * 1000 / len(out))
            return out

        try:
            for _, order in rounds(self.z.windows):
                self.check_time()
                for name in order:
                    seq[name].append(
                        cpu_ms(name, lambda: self.creations(name, self.z.samples), cpu_new)
                    )
                    edit[name].append(
                        cpu_ms(name, lambda: self.edits(name, "alice", self.z.samples), cpu_edit)
                    )
                    lat, per_s = self.concurrent(name, self.z.samples)
                    conc[name].append(lat)
                    rate[name].append(per_s)
        except TimeUp:
            note = "\n\nStopped early at the time limit."
        done = min(len(seq["plain"]), len(seq["plugin"]))
        for d in (seq, edit, conc, rate, cpu_new, cpu_edit):
            for name in NAMES:
                del d[name][done:]
        target = {"p50": 1.02, "p95": 1.02}
        rows = self.ab_rows("new event, sequential", seq, target)
        rows += self.ab_rows(f"new event, {self.z.clients} clients", conc, target)
        rows += self.ab_rows("edit of an event (If-Match), sequential", edit, target)
        a, b = Spread.of(rate["plain"]), Spread.of(rate["plugin"])
        r = Spread.of(stats.ratios(rate["plugin"], rate["plain"]))
        rows.append(
            [
                f"new event, {self.z.clients} clients: throughput",
                "",
                f"{a.mid:.0f} [{a.lo:.0f}–{a.hi:.0f}]/s",
                f"{b.mid:.0f} [{b.lo:.0f}–{b.hi:.0f}]/s",
                stats.ratio(r),
                "",
            ]
        )
        for label, cpu in (
            ("server CPU per new event (its PUT and untimed DELETE)", cpu_new),
            ("server CPU per edit", cpu_edit),
        ):
            if not cpu["plain"]:
                continue
            a, b = Spread.of(cpu["plain"]), Spread.of(cpu["plugin"])
            r = Spread.of(stats.ratios(cpu["plugin"], cpu["plain"]))
            rows.append(
                [
                    label,
                    "",
                    f"{a.mid:.2f} [{a.lo:.2f}–{a.hi:.2f}] ms",
                    f"{b.mid:.2f} [{b.lo:.2f}–{b.hi:.2f}] ms",
                    stats.ratio(r),
                    "",
                ]
            )
        self.emit(
            "### 1. Unmarked PUT (an event without a keyword)\n\n"
            f"Thunderbird's PUT of a new personal event (`If-None-Match: *`) into a calendar of "
            f"{self.z.prefill} events; each is deleted again after its timed PUT (untimed), so "
            f"the size stays. The {self.z.clients} clients are {self.z.clients} processes, "
            "each creating and deleting in turn. Edits replace existing events. Server CPU is "
            "the server process's user and system time over a sequential window, per request: "
            "unlike latency it leaves out the waits for the disk (Radicale syncs every write), "
            "which move whole windows by tens of milliseconds on a shared machine.\n\n"
            + table(self.AB_HEADER, rows)
            + note
        )

    def section_2(self) -> None:
        """Reads of a calendar of constant size."""
        ops = ("GET", "PROPFIND", "REPORT")
        windows: dict[str, dict[str, list]] = {op: {n: [] for n in NAMES} for op in ops}
        uids = self.uids["bob"]
        note = ""

        def window(name: str) -> dict[str, list[float]]:
            c = self.client(name, "bob")
            out: dict[str, list[float]] = {op: [] for op in ops}
            gc.collect()
            gc.disable()
            try:
                for k in range(self.z.samples):
                    out["GET"].append(c.get(f"bob/calendar/{uids[k % len(uids)]}.ics"))
                    out["PROPFIND"].append(c.propfind("bob/calendar/"))
                    out["REPORT"].append(c.report("bob/calendar/", query(events.day_of(k))))
            finally:
                gc.enable()
            return out

        try:
            for _, order in rounds(self.z.windows):
                self.check_time()
                for name in order:
                    got = window(name)
                    for op in ops:
                        windows[op][name].append(got[op])
        except TimeUp:
            note = "\n\nStopped early at the time limit."
        target = {"p50": 1.02, "p95": 1.02}
        rows = self.ab_rows("GET of one event", windows["GET"], target)
        rows += self.ab_rows("PROPFIND Depth 1 (etags)", windows["PROPFIND"], target)
        rows += self.ab_rows("REPORT calendar-query, one day", windows["REPORT"], target)
        self.emit(
            "### 2. Reads\n\n"
            f"Bob's calendar of {self.z.prefill} events; the three requests take turns.\n\n"
            + table(self.AB_HEADER, rows)
            + note
        )

    def section_3(self) -> None:
        """Marked saves with an instant provider, against plain storing the same text."""
        self.emu("delay", 0.0)
        kinds = (("jitsi", "https://meet.jit.si/"), ("телемост", "telemost.yandex.ru/j/"))
        windows: dict[str, dict[str, list]] = {k: {n: [] for n in NAMES} for k, _ in kinds}
        note = ""
        try:
            for _, order in rounds(self.z.windows):
                self.check_time()
                for name in order:
                    for keyword, link in kinds:
                        verify = link if name == "plugin" else ""
                        windows[keyword][name].append(
                            self.timed(
                                lambda: self.creations(name, self.z.samples, keyword, verify)
                            )
                        )
                    if name == "plugin":
                        self.settle_provider()
        except TimeUp:
            note = "\n\nStopped early at the time limit."
        rows = []
        for keyword, _ in kinds:
            label = "Jitsi (no API call)" if keyword == "jitsi" else "Telemost (emulator, 0 delay)"
            rows += self.ab_rows(
                f"new meeting, {label}", windows[keyword], {"p50": 10.0}, difference=True
            )
        header = [*self.AB_HEADER]
        header[4] = "Plugin − plain"
        self.emit(
            "### 3. Marked save with an instant provider\n\n"
            "Thunderbird's PUT of a new meeting (organizer, two attendees, the keyword in "
            "LOCATION). Plain Radicale stores the same text; the plugin answers after the "
            "link is written into the event (checked on the first save of each window). "
            "Each meeting is deleted again after its timed PUT (untimed; the plugin's "
            "delete job finishes before the next PUT).\n\n" + table(header, rows) + note
        )

    def bob_window(self, name: str, n: int) -> dict[str, list[float]]:
        """Bob's requests: GET, PROPFIND, REPORT and an edit (PUT), n of each, in turn."""
        c = self.client(name, "bob")
        uids = self.uids["bob"]
        out: dict[str, list[float]] = {"GET": [], "PROPFIND": [], "REPORT": [], "PUT": []}
        gc.collect()
        gc.disable()
        try:
            for k in range(n):
                out["GET"].append(c.get(f"bob/calendar/{uids[k % len(uids)]}.ics"))
                out["PROPFIND"].append(c.propfind("bob/calendar/"))
                out["REPORT"].append(c.report("bob/calendar/", query(events.day_of(k))))
                out["PUT"].extend(self.edits(name, "bob", 1))
        finally:
            gc.enable()
        return out

    @contextlib.contextmanager
    def busy(self, name: str) -> Iterator[dict]:
        """Alice's meetings kept waiting on a slow provider (another process) while the
        block runs. The dict yielded gets, after the block, the load's counts ("made",
        "resets", …) and the provider's stats at the block's end ("provider")."""
        z = self.z
        self.emu("delay", z.iso_delay)
        stop, ready, out = self.ctx.Event(), self.ctx.Event(), self.ctx.Queue()
        load = self.ctx.Process(
            target=workers.isolation_load,
            args=(
                self.servers[name].url,
                "alice",
                "alice/calendar/",
                "телемост",
                z.iso_burst,
                PROVIDER_SLOTS / z.iso_delay,
                stop,
                ready,
                out,
            ),
            daemon=True,
        )
        load.start()
        self.children.append(load)
        info: dict = {}
        try:
            if not ready.wait(120):
                raise BenchError(f"{name}: the isolation load did not get going")
            if name == "plugin":  # the provider is busy with the first calls
                deadline = time.monotonic() + 30
                while self.emu("stats")["in_flight"] < 1:  # type: ignore[index]
                    if time.monotonic() > deadline:
                        raise BenchError("no provider call under way")
                    time.sleep(0.01)
            yield info
            info["provider"] = self.emu("stats")
        finally:
            self.emu("delay", 0.0)
            stop.set()
        try:
            counts = out.get(timeout=600)
        except queue.Empty as e:
            raise BenchError(f"{name}: the isolation load did not finish") from e
        load.join(30)
        if counts["errors"]:
            raise BenchError(f"{name}: the isolation load failed: {counts['errors']}")
        if name == "plugin":
            self.settle_provider()
        info.update(counts)

    @contextlib.contextmanager
    def watch_locks(self, names: Sequence[str]) -> Iterator[list]:
        """The storage lock files of `names`' servers watched while the block runs. The
        list yielded gets, after the block, each hold: (index in names, opened, closed,
        timed) (bench/workers.py: lock_watch)."""
        stop, ready, out = self.ctx.Event(), self.ctx.Event(), self.ctx.Queue()
        paths = [str(self.servers[n].lock_file) for n in names]
        watcher = self.ctx.Process(
            target=workers.lock_watch, args=(paths, ready, stop, out), daemon=True
        )
        watcher.start()
        self.children.append(watcher)
        if not ready.wait(60):
            raise BenchError("the lock watcher did not start")
        holds: list = []
        try:
            yield holds
        finally:
            stop.set()
        message = out.get(timeout=60)
        watcher.join(10)
        if message[0] != "holds":
            raise BenchError(f"lock watcher: {message[1]}")
        holds.extend(message[1])

    def busy_window(self, name: str) -> tuple[dict[str, list[float]], dict]:
        """Bob's window while alice's meetings queue on a slow provider (another process)."""
        with self.busy(name) as info:
            result = self.bob_window(name, self.z.iso_samples)
        return result, info

    def section_4(self) -> None:
        """Isolation: another user's requests while creations wait on a slow provider."""
        z = self.z
        ops = ("GET", "PROPFIND", "REPORT", "PUT")
        w: dict = {(n, phase): [] for n in NAMES for phase in ("quiet", "busy")}
        made: list[int] = []
        resets = dict.fromkeys(NAMES, 0)
        note = ""
        try:
            for r, order in rounds(z.iso_rounds):
                for name in order:
                    phases = ("quiet", "busy") if (r // 2) % 2 == 0 else ("busy", "quiet")
                    for phase in phases:
                        self.check_time()
                        if phase == "quiet":
                            w[(name, "quiet")].append(self.bob_window(name, z.iso_samples))
                        else:
                            got, info = self.busy_window(name)
                            w[(name, "busy")].append(got)
                            made.append(info["made"])
                            resets[name] += info["resets"]
        except TimeUp:
            note = "\n\nStopped early at the time limit."
        complete = min(len(v) for v in w.values())
        rows = []
        for op in ops:
            stat_list = [*stats.QUANTILES, ("max", 1.0)] if op == "PUT" else stats.QUANTILES
            for stat, q in stat_list:
                cells = [f"{op} ({complete}×{z.iso_samples})" if stat == "p50" else "", stat]
                values = {}
                for name in NAMES:
                    quiet = stats.per_window([x[op] for x in w[(name, "quiet")][:complete]], q)
                    busy = stats.per_window([x[op] for x in w[(name, "busy")][:complete]], q)
                    ratio = Spread.of(stats.ratios(busy, quiet))
                    values[name] = ratio.mid
                    cells += [
                        stats.ms(Spread.of(quiet)),
                        stats.ms(Spread.of(busy)),
                        stats.ratio(ratio),
                    ]
                limit = {"p95": 1.1, "p99": 1.2}.get(stat)
                cells.append(
                    f"≤ {limit}×: {stats.verdict(values['plugin'], limit)}" if limit else ""
                )
                rows.append(cells)
        for name in NAMES:
            quiet = [stats.pct(x["PUT"], 0.5) for x in w[(name, "quiet")][:complete]]
            busy = w[(name, "busy")][:complete]
            self.iso_put_wait[name] = [
                stats.pct(b["PUT"], 0.99) - q for b, q in zip(busy, quiet, strict=True)
            ] + [max(b["PUT"]) - q for b, q in zip(busy, quiet, strict=True)]
        header = [
            "Bob's request (windows×samples)",
            "",
            "Plain quiet",
            "Plain busy",
            "Plain busy/quiet",
            "Plugin quiet",
            "Plugin busy",
            "Plugin busy/quiet",
            "Target (plugin)",
        ]
        self.emit(
            "### 4. Isolation: one user's slow provider, another user's requests\n\n"
            f"Busy: a separate process keeps about {z.iso_burst} of alice's meeting creations "
            f"waiting on a Telemost that takes {z.iso_delay:g} s per call (a burst of "
            f"{z.iso_burst}, then {PROVIDER_SLOTS / z.iso_delay:g}/s, the rate the plugin's "
            f"{PROVIDER_SLOTS} provider slots drain). Plain Radicale gets the very same writes "
            "(its control). Quiet: no load. Bob, in the timing process, reads and edits his "
            f"own calendar of {z.prefill} events. Ratios are busy/quiet of the same server and "
            f"round. Meetings made per busy window: {sorted(made)}. Connections of alice's "
            f"reset and tried again (Radicale's listen queue overflowing, docs/limits.md): "
            f"plain {resets['plain']}, plugin {resets['plugin']}.\n\n" + table(header, rows) + note
        )

    def section_5(self) -> None:
        """How long each write holds Radicale's exclusive storage lock."""
        z = self.z
        self.emu("delay", 0.0)
        # (server, kind, window) -> [(PUT start, PUT end, DELETE start, DELETE end)]
        spans: dict[tuple[str, str, int], list[tuple[float, float, float, float]]] = {}
        note = ""
        window_count = 0
        with self.watch_locks(NAMES) as holds:
            try:
                for r, order in rounds(z.lock_windows):
                    self.check_time()
                    for name in order:
                        c = self.client(name, "alice")
                        for kind, keyword in (("personal", ""), ("meeting", "телемост")):
                            got = spans.setdefault((name, kind, r), [])
                            for k in range(z.lock_samples):
                                uid = events.new_uid()
                                path = f"alice/calendar/{uid}.ics"
                                text = events.event(
                                    uid, k, location=keyword or None, meeting=bool(keyword)
                                )
                                t0 = time.monotonic()
                                c.put(path, text, create=True)
                                t1 = time.monotonic()
                                c.delete(path)
                                got.append((t0, t1, t1, time.monotonic()))
                        if name == "plugin":
                            self.settle_provider()
                    window_count = r + 1
            except TimeUp:
                note = "\n\nStopped early at the time limit."
        # Attribute each hold to the request that was under way when its open was seen.
        by_server: dict[str, list[tuple[float, float, bool]]] = {n: [] for n in NAMES}
        for index, opened, closed, clean in holds:
            by_server[NAMES[index]].append((opened, closed, clean))
        series: dict[tuple[str, str], list[list[float]]] = collections.defaultdict(
            lambda: [[] for _ in range(window_count)]
        )
        dropped = {n: 0 for n in NAMES}
        later = {n: 0 for n in NAMES}  # meetings whose link came in a write-back
        for name in NAMES:
            requests_ = []  # (start, which, sample id)
            for (n, kind, r), got in spans.items():
                if n != name or r >= window_count:
                    continue
                for k, (p0, _p1, d0, _d1) in enumerate(got):
                    requests_.append((p0, "put", (kind, r, k)))
                    requests_.append((d0, "delete", (kind, r, k)))
            requests_.sort()
            starts = [s for s, _, _ in requests_]
            owned: dict[tuple, list[tuple[float, bool]]] = {}
            for opened, closed, clean in by_server[name]:
                i = bisect.bisect_right(starts, opened) - 1
                if i < 0:
                    continue
                _, which, sample = requests_[i]
                owned.setdefault((which, sample), []).append((closed - opened, clean))
            for (n, kind, r), got in spans.items():
                if n != name or r >= window_count:
                    continue
                # Every request first takes a short shared lock (Radicale's principal
                # check), then the PUT its exclusive one. The plugin's new meeting is
                # stored with its link in that one write when the provider answers within
                # the save; otherwise a write-back follows (a third hold).
                expected = (2, 3) if (name == "plugin" and kind == "meeting") else (2,)
                for k in range(len(got)):
                    put = owned.get(("put", (kind, r, k)), [])
                    delete = owned.get(("delete", (kind, r, k)), [])
                    if (
                        len(put) not in expected
                        or len(delete) != 2
                        or not all(c for _, c in put[1:])
                    ):
                        dropped[name] += 1
                        continue
                    series[(f"{kind} PUT", name)][r].append(put[1][0])
                    if len(put) == 3:
                        series[("write-back", name)][r].append(put[2][0])
                        later[name] += 1
        rows = []
        reference = series.get(("meeting PUT", "plain"), [])

        def row(label: str, key: tuple[str, str], target: float | None = None) -> None:
            windows = [w for w in series.get(key, []) if w]
            if not windows:
                rows.append([label, "", "–", "–", "–", "–", ""])
                return
            cells = [f"{label} ({len(windows)}×{min(len(w) for w in windows)})"]
            for _, q in stats.QUANTILES:
                cells.append(stats.ms(Spread.of(stats.per_window(windows, q))))
            ref = [w for w in reference if w]
            r = Spread.of(stats.ratios(stats.per_window(windows, 0.5), stats.per_window(ref, 0.5)))
            cells.append(stats.ratio(r))
            cells.append(f"≤ {target}×: {stats.verdict(r.mid, target)}" if target else "")
            cells.insert(1, "")
            rows.append(cells)

        row("plain: PUT of a new personal event", ("personal PUT", "plain"))
        row("plugin: PUT of a new personal event", ("personal PUT", "plugin"))
        row("plain: PUT of a new Telemost meeting", ("meeting PUT", "plain"))
        row("plugin: the same PUT, its one write (with the link)", ("meeting PUT", "plugin"), 1.2)
        row(
            f"plugin: the link write-back (the link later: {later['plugin']} meetings)",
            ("write-back", "plugin"),
            1.2,
        )
        waits = []
        for name in NAMES:
            if self.iso_put_wait.get(name):
                k = len(self.iso_put_wait[name]) // 2
                p99 = Spread.of(self.iso_put_wait[name][:k])
                worst = Spread.of(self.iso_put_wait[name][k:])
                waits.append([name, stats.ms(p99), stats.ms(worst)])
        header = ["Write (windows×samples)", "", "p50", "p95", "p99", "p50 / plain meeting PUT"]
        header.append("Target")
        if waits:
            wait_table = "\n\n" + table(
                ["Bob's edit while busy (section 4)", "p99 − quiet p50", "max − quiet p50"], waits
            )
        else:
            wait_table = ""
        self.emit(
            "### 5. Exclusive storage lock hold per write\n\n"
            "Seen from outside: a watcher process gets inotify events for Radicale's storage "
            "lock file, which Radicale opens, flocks and closes once per lock taken "
            "(each request first takes it shared for a moment to check the user's principal; "
            "then a write takes it exclusively); the time from open to close is the hold (timestamps taken on receipt, so "
            "scheduler delays of the watcher add noise in both directions). Only this "
            "process writes, one request at a time, so holds do not overlap; holds are "
            "attributed to the request under way, and a sample with an unexpected number "
            "of holds is dropped "
            f"(dropped: plain {dropped['plain']}, plugin {dropped['plugin']}). The second "
            "table is the other measure: how much longer than its quiet p50 bob's edit took "
            "in section 4's busy windows (p99 and worst), i.e. the wait for the lock plus CPU "
            "contention, felt by another user.\n\n" + table(header, rows) + wait_table + note
        )

    def section_6(self) -> None:
        """Growth: the same requests on calendars of 100 .. 10 000 events."""
        z = self.z
        rows = []
        note = ""
        try:
            for size in z.sizes:
                self.check_time()
                uids = [events.new_uid() for _ in range(size)]
                body = events.calendar([events.vevent(uid, i) for i, uid in enumerate(uids)])
                path = f"alice/grow{size}/"
                imported = {}
                for name in NAMES:
                    imported[name] = self.client(name, "alice").put_calendar(path, body)
                k = max(3, round(z.growth_samples * 10 / size**0.5))
                ops: dict[str, Callable[[Client, int], float]] = {
                    "PUT (edit)": lambda c, j: c.put(
                        f"{path}{uids[j % size]}.ics",
                        events.event(uids[j % size], j % size, sequence=1 + j // size),
                    ),
                    "GET of one event": lambda c, j: c.get(f"{path}{uids[(j * 7) % size]}.ics"),
                    "PROPFIND Depth 1": lambda c, j: c.propfind(path),
                    "REPORT calendar-query, one day": lambda c, j: c.report(
                        path, query(events.day_of(j))
                    ),
                    "REPORT sync-collection": lambda c, j: c.report(path, SYNC),
                }
                windows = {op: {n: [] for n in NAMES} for op in ops}
                done = {n: 0 for n in NAMES}
                for _, order in rounds(z.growth_rounds):
                    self.check_time()
                    for name in order:
                        c = self.client(name, "alice")
                        for op, fn in ops.items():
                            start = done[name]
                            windows[op][name].append(
                                self.timed(lambda: [fn(c, start + j) for j in range(k)])
                            )
                        done[name] += k
                rows.append(
                    [
                        f"{size} events: import (one PUT)",
                        stats.ms(Spread.of([imported["plain"]])),
                        stats.ms(Spread.of([imported["plugin"]])),
                        f"{imported['plugin'] / imported['plain']:.2f}",
                        "",
                    ]
                )
                for op in ops:
                    a = stats.per_window(windows[op]["plain"], 0.5)
                    b = stats.per_window(windows[op]["plugin"], 0.5)
                    r = Spread.of(stats.ratios(b, a))
                    ok = "met" if 0.95 <= r.mid <= 1.05 else "**missed**"
                    rows.append(
                        [
                            f"{size} events: {op} ({len(a)}×{k})",
                            stats.ms(Spread.of(a)),
                            stats.ms(Spread.of(b)),
                            stats.ratio(r),
                            f"1.00 ± 0.05: {ok}",
                        ]
                    )
                for name in NAMES:
                    self.client(name, "alice").delete(path)
        except TimeUp:
            note = "\n\nStopped early at the time limit."
        self.emit(
            "### 6. Growth\n\n"
            "A calendar of each size is imported with one PUT (the same text on both), then "
            "the requests take turns; edits replace existing events, so the size stays. "
            "Cells are p50s.\n\n"
            + table(
                ["Request (windows×samples)", "Plain", "Plugin", "Plugin / plain", "Target"], rows
            )
            + note
        )

    def section_7(self) -> None:
        """Import: one PUT of a whole calendar, every 10th event a meeting."""
        z = self.z
        n = z.import_events
        marked = len(range(0, n, 10))
        answered: dict[str, list[float]] = {name: [] for name in NAMES}
        links_after: list[float] = []
        peaks: list[int] = []
        note = ""
        try:
            for r, order in rounds(z.import_rounds):
                self.check_time()
                uids = [events.new_uid() for _ in range(n)]
                body = events.calendar(
                    [
                        events.vevent(
                            uid,
                            i,
                            location="телемост" if i % 10 == 0 else None,
                            meeting=i % 10 == 0,
                        )
                        for i, uid in enumerate(uids)
                    ]
                )
                path = f"alice/import{r}/"
                for name in order:
                    c = self.client(name, "alice")
                    if name == "plugin":
                        self.emu("delay", 0.05)
                        self.emu("reset_peak")
                    started = time.monotonic()
                    answered[name].append(c.put_calendar(path, body))
                    if name == "plugin":
                        deadline = started + 600
                        while c.text(path).count("telemost.yandex.ru/j/") < marked:
                            if time.monotonic() > deadline:
                                raise BenchError("the import's links did not all arrive")
                            time.sleep(0.2)  # the links land in another process
                        links_after.append(time.monotonic() - started)
                        peaks.append(self.emu("stats")["peak"])  # type: ignore[index]
                        self.emu("delay", 0.0)
                    c.delete(path)
                    if name == "plugin":
                        self.settle_provider()
        except TimeUp:
            note = "\n\nStopped early at the time limit."
        a, b = Spread.of(answered["plain"]), Spread.of(answered["plugin"])
        rows = [
            [
                f"PUT of the whole calendar answered ({a.n} rounds)",
                stats.ms(a),
                stats.ms(b),
                stats.ratio(Spread.of(stats.ratios(answered["plugin"], answered["plain"]))),
            ],
            [
                f"all {marked} links in the events after",
                "",
                stats.ms(Spread.of(links_after)),
                "",
            ],
            [
                "provider calls at once, at most",
                "",
                str(max(peaks)) if peaks else "–",
                f"(max_concurrency {PROVIDER_SLOTS})",
            ],
        ]
        self.emit(
            "### 7. Import\n\n"
            f"One PUT of a calendar of {n} events, every 10th a Telemost meeting; the "
            "provider takes 50 ms per call. The links follow the answer: the plugin's "
            "calendar is fetched every 0.2 s until all are in.\n\n"
            + table(["Import", "Plain", "Plugin", "Plugin / plain"], rows)
            + note
        )

    def long_run(
        self, label: str, total: int, every: int, task: Callable[[str, int, int], tuple]
    ) -> list[tuple[int, int, int]]:
        """`total` writes in chunks on both servers at once; RSS of both after each chunk."""
        samples = [(0, *(self.servers[n].rss_kib() for n in NAMES))]
        done = 0
        while done < total:
            self.check_time()
            n = min(every, total - done)
            futures = [self.pool.submit(*task(name, n, done)) for name in NAMES]
            for f in futures:
                f.result(timeout=3600)
            done += n
            samples.append((done, *(self.servers[name].rss_kib() for name in NAMES)))
            print(f"  {label}: {done}/{total}, RSS {samples[-1][1:]} KiB", flush=True)
        return samples

    def section_8(self) -> None:
        """Memory: RSS after the request load and over a long run (the table: `report_8`).

        It runs before sections 6 and 7: their imports of calendars of thousands of
        events grow both heaps by a hundred MiB and more, which Python keeps (arenas
        with a few live objects left), so a long run after them could never show
        growth, and the difference of the two servers after them is that of two
        fragmented heaps (it moves by several MiB from run to run,
        bench/import_memory.py: +5 to +13 MiB). Their RSS is a row of its own.
        """
        z = self.z
        ran = [c for c in "12345" if c in self.sections]
        self.snapshot(
            f"after the request load (section{'s' * (len(ran) > 1)} {', '.join(ran)})"
            if ran
            else "before the long run"
        )
        self.emu("delay", 0.0)
        note = ""
        runs: dict[str, list[tuple[int, int, int]]] = {}
        try:
            runs["unmarked"] = self.long_run(
                "unmarked PUTs",
                z.mem_unmarked,
                z.mem_every,
                lambda name, n, done: (
                    workers.edits,
                    self.servers[name].url,
                    "alice",
                    "alice/calendar/",
                    self.uids["alice"],
                    n,
                    1000 + done // max(1, len(self.uids["alice"])),
                ),
            )
            runs["marked"] = self.long_run(
                "marked PUTs",
                z.mem_marked,
                z.mem_every_marked,
                lambda name, n, done: (
                    workers.marked_creations,
                    self.servers[name].url,
                    "alice",
                    "alice/calendar/",
                    n,
                    done,
                ),
            )
            self.settle_provider()
        except TimeUp:
            note = "\n\nStopped early at the time limit."
        self.snapshot("after the long run")
        self.memory = (runs, note)

    def report_8(self) -> None:
        """Section 8's table, once the sections after it (6 and 7, the imports) ran."""
        z = self.z
        assert self.memory is not None
        runs, note = self.memory
        if set("67") & set(self.sections):
            self.snapshot("after the imports of sections 6 and 7")
        rows = []
        for label, kib in self.rss.items():
            a, b = kib["plain"], kib["plugin"]
            target = ""
            if label.startswith("after the request load"):
                target = f"≤ +12 MiB: {stats.verdict((b - a) / 1024, 12)}"
            rows.append(
                [f"RSS {label}", stats.mib(a), stats.mib(b), f"+{stats.mib(b - a)}", target]
            )
        peak = {n: self.servers[n].peak_kib() for n in NAMES}
        rows.append(
            [
                "peak RSS (VmHWM, whole run)",
                stats.mib(peak["plain"]),
                stats.mib(peak["plugin"]),
                f"+{stats.mib(peak['plugin'] - peak['plain'])}",
                "",
            ]
        )
        long_rows, detail = [], []
        for kind, samples in runs.items():
            if len(samples) < 3:
                continue
            # The first chunk is the warm-up: growth is measured from its end.
            warm, last = samples[1], samples[-1]
            count = last[0] - warm[0]
            growth = [(last[i] - warm[i]) / 1024 for i in (1, 2)]
            slope = [
                stats.slope([s[0] for s in samples[1:]], [s[i] for s in samples[1:]]) * 1000 / 1024
                for i in (1, 2)
            ]
            target = f"≤ +1 MiB: {stats.verdict(growth[1], 1.0)}" if kind == "unmarked" else ""
            long_rows += [
                [
                    f"{kind}: RSS after {warm[0]} PUTs (warm-up)",
                    stats.mib(warm[1]),
                    stats.mib(warm[2]),
                    "",
                ],
                [f"{kind}: RSS after {last[0]} PUTs", stats.mib(last[1]), stats.mib(last[2]), ""],
                [
                    f"{kind}: growth over the last {count} PUTs",
                    f"{growth[0]:+.1f} MiB",
                    f"{growth[1]:+.1f} MiB",
                    target,
                ],
                [
                    f"{kind}: slope (least squares)",
                    f"{slope[0]:+.2f} MiB/1000",
                    f"{slope[1]:+.2f} MiB/1000",
                    "",
                ],
            ]
            detail.append(
                f"- {kind}, RSS (MiB) plain/plugin after n PUTs: "
                + ", ".join(f"{s[0]}: {s[1] / 1024:.1f}/{s[2] / 1024:.1f}" for s in samples)
            )
        if long_rows:
            rows_long = "\n\n" + table(["Long run", "Plain", "Plugin", "Target"], long_rows)
        else:
            rows_long = ""
        self.emit(
            "### 8. Memory of the Radicale process\n\n"
            f"VmRSS at the checkpoints ({REST_S:g} s after the load before them, on both "
            "servers: the plugin gives freed heap back 2 s after its work), VmHWM for the "
            "peak. The plugin's process lets its threads share 2 malloc arenas "
            "(`malloc_arenas`), Radicale's own threads included; plain Radicale has glibc's "
            "default"
            + (
                f" unless MALLOC_ARENA_MAX is set, as in this run (={ARENA_MAX}: both servers "
                "alike, so the difference is the plugin's own)"
                if ARENA_MAX
                else " (`MALLOC_ARENA_MAX=2 make bench` sets it for both: the plugin's own share)"
            )
            + ". The long run: unmarked edits of "
            f"alice's {z.prefill} events ({z.mem_unmarked}, RSS every {z.mem_every}), then "
            f"meetings created and deleted, Jitsi and Telemost in turn ({z.mem_marked}, RSS "
            f"every {z.mem_every_marked}); one client process per server, both servers at "
            "once. This section runs after section 5 and before 6 and 7: their imports "
            "(one PUT of up to 10 000 events) leave both heaps 150 MiB and more bigger "
            "and fragmented, which would hide any growth of the long run; the RSS after "
            "them is the row of its own, and its difference moves by several MiB from "
            "run to run (`bench/import_memory.py` measures it on fresh servers).\n\n"
            + table(["Measure", "Plain", "Plugin", "Plugin − plain", "Target"], rows)
            + rows_long
            + ("\n\n" + "\n".join(detail) if detail else "")
            + note
        )


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def write_markdown(path: Path, text: str) -> None:
    """Replace the results between the markers of an existing file, or write the file."""
    block = f"{BEGIN}\n{text}\n{END}"
    if path.exists():
        old = path.read_text()
        if BEGIN in old and END in old:
            head, rest = old.split(BEGIN, 1)
            tail = rest.split(END, 1)[1]
            path.write_text(head + block + tail)
            return
    path.write_text(block + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run")
    parser.add_argument(
        "--sections", default="12345678", help="which sections to run, e.g. 17 (default: all)"
    )
    parser.add_argument(
        "--aa",
        action="store_true",
        help="A/A control: the plugin's column is a second plain Radicale, so every ratio "
        "shows the noise floor of this machine (sections 1, 2, 6 and 8 only)",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the servers' folders (storage, logs) after the run; a failed run keeps them",
    )
    parser.add_argument(
        "--markdown",
        type=Path,
        help="write the results to this file; in a file with the results markers "
        "(bench/README.md) only the part between them is replaced",
    )
    for field in dataclasses.fields(Sizes):
        flag = "--" + field.name.replace("_", "-")
        full, quick = getattr(Sizes(), field.name), getattr(QUICK, field.name)
        if field.name == "sizes":
            full, quick = ",".join(map(str, full)), ",".join(map(str, quick))
        parser.add_argument(
            flag,
            type=str if field.name == "sizes" else type(field.default),
            help=f"{HELP[field.name]} (default {full}; --quick {quick})",
        )
    args = parser.parse_args()
    if args.aa and set(args.sections) - set("1268"):
        parser.error("--aa runs sections 1, 2, 6 and 8 only (the others need the plugin)")
    sizes = dataclasses.replace(QUICK) if args.quick else Sizes()
    for field in dataclasses.fields(Sizes):
        value = getattr(args, field.name)
        if value is not None:
            if field.name == "sizes":
                value = tuple(int(x) for x in value.split(","))
            setattr(sizes, field.name, value)

    load_before = load()
    machine = (
        f"{cpu_model()}, {os.cpu_count()} cores; Python {platform.python_version()}; "
        f"Radicale {radicale.VERSION}; {platform.system()} {platform.release()}"
    )
    header = [
        f"Run of {time.strftime('%Y-%m-%d %H:%M %Z')}, commit {commit()}"
        + (" (quick: a smoke run, small counts)" if args.quick else ""),
        f"Machine: {machine}",
        f"Load average (1/5/15 min) before: {load_before}",
        *([f"Both servers' environment: MALLOC_ARENA_MAX={ARENA_MAX}"] if ARENA_MAX else []),
        *(
            [
                "**A smoke run with small counts on whatever load the machine had: not a "
                "measurement to quote.**"
            ]
            if args.quick
            else []
        ),
        *(
            [
                "**A/A control: the column headed Plugin is a second plain Radicale; every "
                "difference and ratio below is noise.**"
            ]
            if args.aa
            else []
        ),
        "Command: `python bench/run.py "
        + " ".join(shlex.quote(a) for a in sys.argv[1:] if a)
        + "`",
    ]
    print("\n".join(header), flush=True)

    bench = Bench(sizes, args.sections, aa=args.aa)

    # A hard stop well after the limit, should a request hang beyond every timeout.
    def hard_stop() -> None:
        print("benchmark: hard time limit reached, stopping", file=sys.stderr, flush=True)
        bench.kill_all()
        os._exit(3)

    watchdog = threading.Timer(sizes.time_limit + 600, hard_stop)
    watchdog.daemon = True
    watchdog.start()
    status = 0
    try:
        bench.start()
        # Memory (8) before the big imports of 6 and 7 (see section_8); its table last.
        for section in "12345867":
            if section not in args.sections:
                continue
            began = time.monotonic()
            try:
                getattr(bench, f"section_{section}")()
            except TimeUp:
                bench.emit(f"### Section {section}: skipped, the time limit was reached")
            print(f"  (section {section}: {time.monotonic() - began:.0f} s)", flush=True)
        if bench.memory is not None:
            bench.report_8()
    except Exception as e:  # a failed run still reports what it measured, and why it stopped
        if not isinstance(e, BenchError):
            traceback.print_exc()
        print(f"benchmark: {e}", file=sys.stderr)
        bench.notes.append(f"**The run failed:** {type(e).__name__}: {e}")
        status = 2
    finally:
        problems = {n: s.log_problems() for n, s in bench.servers.items()}
        bench.stop()
        watchdog.cancel()
        if args.keep or status or any(problems.values()):
            print(f"servers' folders and logs kept in {bench.base}", flush=True)
        else:
            shutil.rmtree(bench.base, ignore_errors=True)
    header.append(
        f"Load average after: {load()}; took {(time.monotonic() - bench.started) / 60:.1f} min"
    )
    for name, lines in problems.items():
        if lines:
            bench.notes.append(
                f"**{name} logged {len(lines)} errors or plugin warnings**, first: `{lines[0][:200]}`"
            )
    text = "\n".join(f"- {h}" for h in header) + "\n"
    if bench.notes:
        text += "\n" + "\n".join(f"- {n}" for n in bench.notes) + "\n"
    text += "\n" + "\n\n".join(bench.blocks) + "\n"
    print("\n" + "\n".join(header[-1:] + bench.notes), flush=True)
    if args.markdown:
        write_markdown(args.markdown, text)
        print(f"results written to {args.markdown}")
    return status


if __name__ == "__main__":
    sys.exit(main())
