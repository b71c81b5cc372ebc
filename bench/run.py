"""What the plugin costs Radicale, measured against plain Radicale in the same run.

Starts plain Radicale and Radicale with the plugin side by side on loopback
(same Radicale, same settings), a Telemost emulator, and drives both from this
process with the same bounded workload. Prints medians and ratios (plugin / plain).

    .venv/bin/python bench/run.py            # full run (about 5 minutes)
    .venv/bin/python bench/run.py --quick    # smaller sizes, for a first look
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import platform
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import radicale  # noqa: E402
from emulators.telemost import TelemostEmulator  # noqa: E402
from harness import TOKEN, RadicaleServer, event, plugin_config  # noqa: E402

QUERY = """<?xml version="1.0" encoding="utf-8"?>
<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
<D:prop><D:getetag/></D:prop><C:filter><C:comp-filter name="VCALENDAR">
<C:comp-filter name="VEVENT"><C:time-range start="20261125T000000Z" end="20261126T000000Z"/>
</C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"""
SYNC = """<?xml version="1.0" encoding="utf-8"?>
<D:sync-collection xmlns:D="DAV:"><D:sync-token/><D:sync-level>1</D:sync-level>
<D:prop><D:getetag/></D:prop></D:sync-collection>"""

rows: list[tuple[str, str, str, str]] = []


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def row(name: str, plain: str, plugin: str, ratio: str = "") -> None:
    rows.append((name, plain, plugin, ratio))
    print(f"  {name:58} {plain:>14} {plugin:>14} {ratio:>8}", flush=True)


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def puts(
    server: RadicaleServer,
    user: str,
    path: str,
    n: int,
    concurrency: int,
    location: str = "Переговорная 5",
) -> tuple[list[float], float]:
    session_local = threading.local()

    def one(_):
        session = getattr(session_local, "s", None) or server.session(user)
        session_local.s = session
        uid = f"{uuid.uuid4()}@bench"
        body = event(uid, location=location, description="Повестка: итоги недели").encode()
        started = time.perf_counter()
        r = session.put(
            f"{server.url}/{path}{uid}.ics", data=body, headers={"Content-Type": "text/calendar"}
        )
        took = time.perf_counter() - started
        assert r.status_code == 201, r.status_code
        return took

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        latencies = list(pool.map(one, range(n)))
    return latencies, n / (time.perf_counter() - started)


def compare_latency(name: str, plain: list[float], plugin: list[float]) -> None:
    for label, q in (("p50", 0.5), ("p95", 0.95)):
        a, b = pct(plain, q), pct(plugin, q)
        row(f"{name} {label}", ms(a), ms(b), f"{b / a:.2f}")


def calendar_body(n: int, marked_every: int = 0, location: str = "telemost") -> str:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//bench//EN"]
    for i in range(n):
        marked = marked_every and i % marked_every == 0
        text = event(
            f"grow-{i}@bench",
            location=location if marked else "Офис",
            start=f"202611{1 + i % 28:02d}T100000",
            end=f"202611{1 + i % 28:02d}T110000",
        )
        body = text.split("\r\n")
        lines += body[body.index("BEGIN:VEVENT") : body.index("END:VCALENDAR")]
    lines.append("END:VCALENDAR")
    return "\r\n".join(lines) + "\r\n"


def rss_peak_kib(server: RadicaleServer) -> int:
    assert server.process
    with open(f"/proc/{server.process.pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes and counts")
    parser.add_argument(
        "--sections",
        default="123456",
        help="which parts to run, e.g. 4 for the growth table only (default: all)",
    )
    parser.add_argument(
        "--sizes", default="", help="calendar sizes for the growth table, e.g. 100,1000,10000"
    )
    args = parser.parse_args()
    n_seq, n_conc = (60, 120) if args.quick else (200, 400)
    sizes = (100, 1000) if args.quick else (100, 1000, 10000)
    if args.sizes:
        sizes = tuple(int(x) for x in args.sizes.split(","))
    reps = 10 if args.quick else 30

    print(
        f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"Radicale {radicale.VERSION}, {platform.platform()}"
    )
    print(f"date: {time.strftime('%Y-%m-%d')}")
    emu = TelemostEmulator(token=TOKEN).start()
    base = Path(tempfile.mkdtemp(prefix="meetplugin-bench-"))
    plain = RadicaleServer(base / "plain", plugin=False).start()
    plugin = RadicaleServer(
        base / "plugin",
        plugin_config(emu.url, provider_timeout="8", call_timeout="30"),
        env={"TELEMOST_TOKEN": TOKEN},
    ).start()
    servers = (plain, plugin)
    try:
        for server in servers:
            server.ensure_user("alice")
            server.ensure_user("bob")
        idle = [rss_peak_kib(server) for server in servers]
        print(f"\n  {'':58} {'plain':>14} {'plugin':>14} {'ratio':>8}")

        if "1" in args.sections:
            # 1. Ordinary events (no marker).
            for n, conc in ((n_seq, 1), (n_conc, 8)):
                lat_plain, thr_plain = puts(plain, "alice", "alice/calendar/", n, conc)
                lat_plugin, thr_plugin = puts(plugin, "alice", "alice/calendar/", n, conc)
                what = "sequential" if conc == 1 else f"{conc} clients"
                compare_latency(f"1. PUT ordinary event, {what},", lat_plain, lat_plugin)
                row(
                    f"1. PUT ordinary event, {what}, throughput",
                    f"{thr_plain:.0f}/s",
                    f"{thr_plugin:.0f}/s",
                    f"{thr_plugin / thr_plain:.2f}",
                )

        if "2" in args.sections:
            # 2. Marked events with an instant provider: the plugin's own overhead.
            base_lat, _ = puts(plugin, "alice", "alice/calendar/", reps * 2, 1)
            for keyword in ("jitsi", "telemost"):
                lat, _ = puts(plugin, "alice", "alice/calendar/", reps * 2, 1, location=keyword)
                row(
                    f"2. PUT marked ({keyword}), overhead over an ordinary PUT, p50",
                    "",
                    f"+{ms(pct(lat, 0.5) - pct(base_lat, 0.5))}",
                )

        if "3" in args.sections:
            # 3. Isolation: a 2 s provider and 16 marked saves; another user's requests.
            def others(server: RadicaleServer) -> dict[str, list[float]]:
                s = server.session("bob")
                out: dict[str, list[float]] = {"GET": [], "PROPFIND": [], "REPORT": [], "PUT": []}
                for _ in range(reps):
                    out["GET"].append(timed(lambda: s.get(f"{server.url}/bob/calendar/")))
                    out["PROPFIND"].append(
                        timed(
                            lambda: s.request(
                                "PROPFIND", f"{server.url}/bob/calendar/", headers={"Depth": "1"}
                            )
                        )
                    )
                    out["REPORT"].append(
                        timed(
                            lambda: s.request(
                                "REPORT",
                                f"{server.url}/bob/calendar/",
                                data=QUERY,
                                headers={"Depth": "1"},
                            )
                        )
                    )
                    uid = f"{uuid.uuid4()}@iso"
                    out["PUT"].append(
                        timed(
                            lambda: s.put(
                                f"{server.url}/bob/calendar/{uid}.ics",
                                data=event(uid).encode(),
                                headers={"Content-Type": "text/calendar"},
                            )
                        )
                    )
                return out

            puts(plugin, "bob", "bob/calendar/", 50, 4)
            quiet = others(plugin)
            emu.delay = 2.0
            load = concurrent.futures.ThreadPoolExecutor(16)
            marked = [
                load.submit(puts, plugin, "alice", "alice/calendar/", 1, 1, "telemost")
                for _ in range(16)
            ]
            # Measure while the provider stalls: the 16 saves are stored (those not allowed to
            # wait have answered) and the provider calls are under way.
            concurrent.futures.wait(
                marked, timeout=30, return_when=concurrent.futures.FIRST_COMPLETED
            )
            deadline = time.monotonic() + 30
            while (
                sum(f.done() for f in marked) < 12 or emu.in_flight < 4
            ) and time.monotonic() < deadline:
                time.sleep(0.01)
            busy = others(plugin)
            for f in marked:
                f.result()
            load.shutdown()
            emu.delay = 0.0
            for op in busy:
                for label, q in (("p50", 0.5), ("p95", 0.95)):
                    a, b = pct(quiet[op], q), pct(busy[op], q)
                    row(
                        f"3. bob's {op} while 16 saves wait for a 2 s provider, {label}",
                        f"{ms(a)} quiet",
                        f"{ms(b)}",
                        f"{b / a:.2f}",
                    )

        if "4" in args.sections:
            # 4. Growth: calendars of 100 .. 10 000 events.
            for size in sizes:
                body = calendar_body(size)
                for server in servers:
                    r = server.session("alice").put(
                        f"{server.url}/alice/grow{size}/",
                        data=body.encode(),
                        headers={"Content-Type": "text/calendar"},
                    )
                    assert r.status_code == 201, r.status_code
                for name, fn in (
                    (
                        "REPORT calendar-query",
                        lambda srv: srv.session("alice").request(
                            "REPORT",
                            f"{srv.url}/alice/grow{size}/",
                            data=QUERY,
                            headers={"Depth": "1"},
                        ),
                    ),
                    (
                        "REPORT sync-collection",
                        lambda srv: srv.session("alice").request(
                            "REPORT",
                            f"{srv.url}/alice/grow{size}/",
                            data=SYNC,
                            headers={"Depth": "1"},
                        ),
                    ),
                    (
                        "PUT",
                        lambda srv: srv.put(
                            "alice", f"alice/grow{size}/{uuid.uuid4()}.ics", event(location="Офис")
                        ),
                    ),
                ):
                    count = max(3, reps // (10 if size >= 10000 else 1))
                    a, b = [], []
                    for _ in range(count):  # alternate, so drift hits both alike
                        a.append(timed(lambda: fn(plain)))
                        b.append(timed(lambda: fn(plugin)))
                    row(
                        f"4. {name}, {size} events, p50",
                        ms(pct(a, 0.5)),
                        ms(pct(b, 0.5)),
                        f"{pct(b, 0.5) / pct(a, 0.5):.2f}",
                    )

        if "5" in args.sections:
            # 5. Import: 1000 events, 100 of them marked, provider 50 ms per call.
            emu.delay = 0.05
            emu.peak_in_flight = 0
            posts_before = len(emu.calls_of("POST"))
            body = calendar_body(1000, marked_every=10)
            took_plain = timed(
                lambda: plain.session("alice").put(
                    f"{plain.url}/alice/import/",
                    data=body.encode(),
                    headers={"Content-Type": "text/calendar"},
                )
            )
            mark = plugin.mark()
            started_import = time.perf_counter()
            took_plugin = timed(
                lambda: plugin.session("alice").put(
                    f"{plugin.url}/alice/import/",
                    data=body.encode(),
                    headers={"Content-Type": "text/calendar"},
                )
            )
            for i in range(0, 1000, 10):
                plugin.wait_for_log(
                    f"grow-{i}@bench: telemost create done", timeout=300, start=mark
                )
            all_done = time.perf_counter()
            emu.delay = 0.0
            row(
                "5. import 1000 events (100 marked), PUT answered in",
                ms(took_plain),
                ms(took_plugin),
                f"{took_plugin / took_plain:.2f}",
            )
            row("5. import: all 100 links in the events after", "", ms(all_done - started_import))
            row(
                "5. import: provider calls / peak concurrent calls",
                "",
                f"{len(emu.calls_of('POST')) - posts_before} / {emu.peak_in_flight}",
            )

        if "6" in args.sections:
            # 6. Memory.
            row(
                "6. RSS of the Radicale process after start",
                f"{idle[0] / 1024:.1f} MiB",
                f"{idle[1] / 1024:.1f} MiB",
                f"{idle[1] / idle[0]:.2f}",
            )
            a, b = rss_peak_kib(plain), rss_peak_kib(plugin)
            row(
                "6. peak RSS of the Radicale process (whole run)",
                f"{a / 1024:.1f} MiB",
                f"{b / 1024:.1f} MiB",
                f"{b / a:.2f}",
            )
    finally:
        for server in servers:
            server.stop()
        emu.stop()


if __name__ == "__main__":
    main()
