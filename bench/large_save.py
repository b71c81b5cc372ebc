"""Does one large marked save freeze other users? Plain Radicale and the plugin, side by side.

While alice saves one large event marked `jitsi` (a weekly series with N
overrides, or a description of M MB), bob saves small events in a loop; the
probe reports bob's PUT latency during alice's save (median, p95, max) on plain
Radicale and on Radicale with the plugin, and the ratio. Each server gets the
same saves, alternating plain / plugin, `--rounds` times. The target (issue
"never hang", item 6): bob's latency with the plugin within 2x of plain's.

    .venv/bin/python bench/large_save.py                # 10 000 overrides and 5 MB
    .venv/bin/python bench/large_save.py --overrides 2000 --megabytes 1 --rounds 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from harness import RadicaleServer, event, plugin_config  # noqa: E402


def series(uid: str, overrides: int) -> str:
    """A weekly series with `overrides` moved occurrences, as Thunderbird writes them."""
    head = event(uid, location="jitsi", extra="RRULE:FREQ=DAILY;COUNT=10000")  # Radicale's limit
    body = head.split("END:VEVENT")[0] + "END:VEVENT\n"
    parts = [body]
    for i in range(overrides):
        day = time.strftime("%Y%m%d", time.gmtime(1795000000 + 86400 * i))
        parts.append(
            "BEGIN:VEVENT\n"
            f"UID:{uid}\nDTSTAMP:20261121T100000Z\n"
            f"RECURRENCE-ID;TZID=Europe/Moscow:{day}T100000\n"
            f"DTSTART;TZID=Europe/Moscow:{day}T110000\n"
            f"DTEND;TZID=Europe/Moscow:{day}T120000\n"
            f"SUMMARY:Планёрка {i}\nLOCATION:jitsi\nEND:VEVENT\n"
        )
    return "".join(parts) + "END:VCALENDAR\n"


def big_description(uid: str, megabytes: float) -> str:
    words = "Повестка встречи: обсуждение плана работ. " * int(megabytes * 1024 * 1024 / 80)
    return event(uid, location="jitsi", description=words)


def probe(server: RadicaleServer, payload: str, uid: str) -> dict:
    """Bob's PUT latencies while alice saves `payload`; and how long alice's save took."""
    bob = server.session("bob")
    latencies: list[float] = []
    done = threading.Event()
    status: list[int] = []
    took: list[float] = []

    def alice() -> None:
        try:
            started = time.monotonic()
            r = server.put("alice", f"alice/calendar/{uid}.ics", payload)
            took.append(time.monotonic() - started)
            status.append(r.status_code)
        finally:
            done.set()  # even when the save failed: bob stops

    thread = threading.Thread(target=alice)
    thread.start()
    deadline = time.monotonic() + 600  # bounded: stops by itself
    while not done.is_set() and time.monotonic() < deadline:
        small = f"{uuid.uuid4()}@bob"
        started = time.monotonic()
        r = bob.put(
            f"{server.url}/bob/calendar/{small}.ics",
            data=event(small, location="Room 5").encode(),
            headers={"Content-Type": "text/calendar"},
        )
        latencies.append(time.monotonic() - started)
        assert r.status_code in (200, 201), r.status_code
    thread.join()
    assert status and status[0] in (200, 201), f"alice's save failed: {status}"
    latencies.sort()
    return {
        "alice_s": took[0],
        "bob_n": len(latencies),
        "bob_p50_ms": 1000 * statistics.median(latencies),
        "bob_p95_ms": 1000 * latencies[max(0, int(len(latencies) * 0.95) - 1)],
        "bob_max_ms": 1000 * latencies[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--overrides", type=int, default=10000)
    parser.add_argument("--megabytes", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()}")
    base = Path(tempfile.mkdtemp(prefix="large-save-"))
    raise_limits = "max_content_length = 200000000"  # goes under [server]
    servers = {
        "plain": RadicaleServer(base / "plain", plugin=False, server_options=raise_limits),
        "plugin": RadicaleServer(
            base / "plugin",
            plugin_config("http://127.0.0.1:9"),
            server_options=raise_limits,
            env={"TELEMOST_TOKEN": "unused"},  # the probe saves Jitsi events only
        ),
    }
    for server in servers.values():
        server.start()
        server.ensure_user("alice")
        server.ensure_user("bob")
    payloads = {
        f"{args.overrides} overrides": lambda uid: series(uid, args.overrides),
        f"{args.megabytes:g} MB description": lambda uid: big_description(uid, args.megabytes),
    }
    try:
        for name, make in payloads.items():
            results: dict[str, list[dict]] = {"plain": [], "plugin": []}
            for _round in range(args.rounds):
                for kind in ("plain", "plugin"):  # interleaved
                    uid = f"{uuid.uuid4()}@big"
                    results[kind].append(probe(servers[kind], make(uid), uid))
            print(f"\n{name} ({args.rounds} rounds, bob's PUTs during alice's save):")
            for kind, rows in results.items():
                p95 = statistics.median(r["bob_p95_ms"] for r in rows)
                worst = max(r["bob_max_ms"] for r in rows)
                save = statistics.median(r["alice_s"] for r in rows)
                n = sum(r["bob_n"] for r in rows)
                print(
                    f"  {kind:6} alice's save {save:6.2f} s; bob n={n:4d} "
                    f"p95 {p95:7.1f} ms, max {worst:7.1f} ms"
                )
            ratio = max(r["bob_max_ms"] for r in results["plugin"]) / max(
                r["bob_max_ms"] for r in results["plain"]
            )
            print(f"  bob's worst PUT, plugin / plain: {ratio:.2f} (target <= 2)")
    finally:
        for server in servers.values():
            server.stop()


if __name__ == "__main__":
    main()
