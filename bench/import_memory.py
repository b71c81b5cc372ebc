"""RSS after one big import, plain Radicale and the plugin side by side (not pure).

Each round starts a fresh pair of servers (bench/servers.py: the same Radicale,
the same settings), imports one calendar of N events into both with one PUT
(plain first or plugin first, alternating), then edits and reads 20 of the events,
and reports VmRSS of both, then again after `--idle` seconds without requests
(the plugin gives freed heap back 2 s after an import or its provider calls,
state/heap.py). It shows how far apart two heaps are after a body of
several MB, which is what section 8 of bench/run.py reports as its own row:

    .venv-bench/bin/python bench/import_memory.py --events 10000 --rounds 3
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import events
from client import Client
from servers import Server


def rss(servers: dict[str, Server]) -> dict[str, float]:
    """Each server's VmRSS in MiB."""
    return {n: s.rss_kib() / 1024 for n, s in servers.items()}


def one_round(
    events_n: int, plugin_first: bool, idle: float
) -> dict[str, tuple[float, float, float, float]]:
    """{server: (RSS after start, after the import, after the edits, after idle)} in MiB."""
    base = Path(tempfile.mkdtemp(prefix="import-memory-"))
    names = ("plugin", "plain") if plugin_first else ("plain", "plugin")
    servers = {
        n: Server(n, base / n, plugin=n == "plugin", telemost_url="http://127.0.0.1:9")
        for n in names
    }
    try:
        for s in servers.values():
            s.start()
            s.ensure_users()
        started = rss(servers)
        uids = [events.new_uid() for _ in range(events_n)]
        body = events.calendar([events.vevent(uid, i) for i, uid in enumerate(uids)])
        for s in servers.values():
            Client(s.url, "alice").put_calendar("alice/big/", body)
        imported = rss(servers)
        for s in servers.values():
            c = Client(s.url, "alice")
            for j, uid in enumerate(uids[:20]):
                c.put(f"alice/big/{uid}.ics", events.event(uid, j, sequence=1))
                c.get(f"alice/big/{uid}.ics")
        edited = rss(servers)
        time.sleep(idle)  # what an admin's `ps` shows a little later: a time, not an event
        rested = rss(servers)
        return {n: (started[n], imported[n], edited[n], rested[n]) for n in servers}
    finally:
        for s in servers.values():
            s.stop()
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--idle", type=float, default=15.0, help="seconds before the last RSS")
    args = parser.parse_args()
    differences, rested = [], []
    for r in range(args.rounds):
        got = one_round(args.events, plugin_first=r % 2 == 1, idle=args.idle)
        plain, plugin = got["plain"], got["plugin"]
        differences.append(plugin[2] - plain[2])
        rested.append(plugin[3] - plain[3])
        print(
            f"round {r + 1}: RSS MiB plain/plugin after start {plain[0]:.1f}/{plugin[0]:.1f}, "
            f"after the import of {args.events} events {plain[1]:.1f}/{plugin[1]:.1f}, "
            f"after 20 edits {plain[2]:.1f}/{plugin[2]:.1f} "
            f"(plugin - plain {plugin[2] - plain[2]:+.1f}), {args.idle:g} s later "
            f"{plain[3]:.1f}/{plugin[3]:.1f} ({plugin[3] - plain[3]:+.1f})",
            flush=True,
        )
    print(
        f"plugin - plain after the import and edits: median {statistics.median(differences):+.1f}"
        f" MiB [{min(differences):+.1f} … {max(differences):+.1f}], {args.idle:g} s later "
        f"{statistics.median(rested):+.1f} MiB [{min(rested):+.1f} … {max(rested):+.1f}]"
        f" over {args.rounds} rounds"
    )


if __name__ == "__main__":
    main()
