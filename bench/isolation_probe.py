"""Why another user waits while meetings queue on a slow provider (not pure).

Section 4's load (bench/run.py: alice's creations kept waiting on a Telemost
that takes 2 s per call, plain Radicale getting the same writes), looked at
from two sides, on both servers, rounds alternating which goes first:

- bob does nothing but GET one of his events, back to back, for `--seconds`:
  his latency (p50, p95, p99, max), the same GETs as Radicale timed them
  itself (its log, ms resolution), and the server's CPU time meanwhile;
  both servers' RSS after start and after each round;
- then, with bob idle, a watcher times the storage lock file's holds for
  `--seconds` (bench/workers.py: lock_watch): the share of the time the
  lock was held, and the holds over 2 ms (the writes).

Bob sends his next GET only when the last one is answered, so a write delays
about one of his GETs: his p99 moves once the writes outnumber 1 % of his GETs.
The GETs over 10 ms, set beside the holds over 2 ms, show it.

    .venv-bench/bin/python bench/isolation_probe.py --rounds 2 --seconds 30

With TMPDIR=/dev/shm in front, both servers keep their storage in tmpfs,
where fsync costs nothing: what difference is left is not the disk.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import statistics
import time

import run
from run import Bench
from stats import mib, pct

# A GET that took this long waited for a write (quiet p50 is 2-3 ms, p99 4-6 ms).
SLOW_MS = 10.0
TIMED = re.compile(r"GET response status for '/bob/.* in ([\d.]+) seconds")


def locked(holds: list[tuple[int, float, float, bool]], t0: float, t1: float) -> tuple:
    """(share of [t0, t1] the lock was held by anyone, the holds over 2 ms in ms)."""
    spans = sorted((o, c) for _, o, c, _ in holds if o >= t0 and c <= t1)
    total, current = 0.0, None
    for o, c in spans:
        if current is None or o > current[1]:
            if current:
                total += current[1] - current[0]
            current = [o, c]
        else:
            current[1] = max(current[1], c)
    if current:
        total += current[1] - current[0]
    return total / (t1 - t0), sorted((c - o) * 1e3 for o, c in spans if c - o > 0.002)


def probe(b: Bench, name: str, seconds: float) -> dict:
    server = b.servers[name]
    with b.busy(name) as info:
        log_start = server.log_path.stat().st_size
        cpu = server.cpu_seconds()
        client, uids, got = b.client(name, "bob"), b.uids["bob"], []
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            got.append(client.get(f"bob/calendar/{uids[len(got) % len(uids)]}.ics") * 1e3)
        cpu = server.cpu_seconds() - cpu
        with open(server.log_path, encoding="utf-8", errors="replace") as f:
            f.seek(log_start)
            inside = [float(m.group(1)) * 1e3 for m in TIMED.finditer(f.read())]
        with b.watch_locks([name]) as holds:
            t0 = time.monotonic()
            time.sleep(seconds)  # the watcher records meanwhile: nothing to await
            t1 = time.monotonic()
    share, writes = locked(holds, t0, t1)
    return {"get": got, "inside": inside, "cpu": cpu, "share": share, "writes": writes, **info}


def rss(b: Bench) -> str:
    return ", ".join(f"{n} {mib(s.rss_kib())}" for n, s in b.servers.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    b = Bench(dataclasses.replace(run.Sizes(), prefill=200), "4")
    try:
        b.start()
        print("RSS after start: " + rss(b), flush=True)
        for r, order in run.rounds(args.rounds):
            for name in order:
                p = probe(b, name, args.seconds)
                get, inside, writes = p["get"], p["inside"], p["writes"]
                slow = sum(1 for t in get if t > SLOW_MS)
                print(
                    f"round {r + 1} {name:6}: bob's {len(get)} GETs p50 {pct(get, 0.5):.1f} "
                    f"p95 {pct(get, 0.95):.1f} p99 {pct(get, 0.99):.1f} max {max(get):.1f} ms; "
                    f"{slow} over {SLOW_MS:g} ms ({slow / len(get):.2%}); "
                    f"in Radicale p99 {pct(inside, 0.99):.0f} p99.5 {pct(inside, 0.995):.0f} ms; "
                    f"server CPU {p['cpu']:.2f} s; lock held {p['share']:.1%}, "
                    f"{len(writes)} holds over 2 ms (median "
                    f"{statistics.median(writes or [0]):.1f}, max {max(writes or [0]):.1f} ms); "
                    f"{p['made']} meetings made; RSS now {rss(b)}",
                    flush=True,
                )
    finally:
        b.stop()


if __name__ == "__main__":
    main()
