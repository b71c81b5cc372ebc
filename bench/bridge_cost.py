"""What one bridge cycle costs, by calendar size: requests, bytes, wall time.

Starts a CalDAV server on loopback (plain Radicale by default, or Xandikos),
fills one calendar per size with unmarked events, points a bridge at it (Jitsi,
no provider network) and measures, per size and per way of following
(WebDAV sync, or ETag listings):

- initial scan: the first cycle, which reads every event once (for context);
- idle cycle: nothing changed — the figure that must not grow with the size;
- single change: one event gets `jitsi` in its Location (read, link written back);
- own write-back: the next cycle, which only recognises the bridge's own write;
- plain edit: one unmarked event edited (read, nothing written).

Requests and bytes are counted by the bridge's HTTP hook (request line, headers
and bodies both ways). Not part of `make test`:

    .venv/bin/python bench/bridge_cost.py                      # 100, 1000, 10000 events
    .venv/bin/python bench/bridge_cost.py --sizes 100,1000 --server xandikos

Radicale's calendars are filled by writing event files into its storage folder
(PUTting 10 000 events takes minutes); Xandikos's by PUT, so keep it small.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from bridge_support import Dav, XandikosServer, bridge_config  # noqa: E402
from harness import RadicaleServer, event  # noqa: E402

from bridge import config as bridge_config_module  # noqa: E402
from bridge.runner import Bridge, Report  # noqa: E402

IDLE_SAMPLES = 3


def bench_event(i: int) -> tuple[str, str]:
    uid = f"ev{i}-{uuid.uuid4().hex[:8]}@bench"
    return uid, event(
        uid,
        summary=f"Встреча {i}",
        location=f"Room {i % 20}",
        description="Без видеосвязи",
        tzid="",
        start="20261125T100000Z",
        end="20261125T110000Z",
    )


def fill_radicale(server: RadicaleServer, dav: Dav, size: int) -> str:
    """Event files written into the storage, then one PROPFIND so Radicale builds its
    caches: the server's one-off warm-up is not the bridge's cost."""
    cal = dav.mkcalendar()
    folder = server.storage / "collection-root" / cal.strip("/")
    for i in range(size):
        uid, text = bench_event(i)
        (folder / f"{uid}.ics").write_text(text, encoding="utf-8")
    r = dav.http.request(
        "PROPFIND",
        dav.url + cal,
        timeout=3600,
        headers={"Depth": "1", "Content-Type": "application/xml"},
        data=(
            '<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop><d:getetag/><d:sync-token/>'
            "</d:prop></d:propfind>"
        ),
    )
    assert r.status_code == 207, r.status_code
    return cal


def fill_by_put(dav: Dav, size: int) -> str:
    cal = dav.mkcalendar()
    for i in range(size):
        uid, text = bench_event(i)
        assert dav.put(f"{cal}{uid}.ics", text).status_code == 201
    return cal


def some_event(dav: Dav, cal: str, skip: int = 0) -> str:
    body = (
        '<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop><d:getetag/></d:prop></d:propfind>'
    )
    r = dav.http.request(
        "PROPFIND",
        dav.url + cal,
        data=body,
        headers={"Depth": "1", "Content-Type": "application/xml"},
    )
    hrefs = sorted(
        set(
            part.split("</", 1)[0]
            for part in r.text.split("href>")[1:]
            if part.split("</", 1)[0].endswith(".ics")
        )
    )
    return hrefs[skip]


def bare_propfind_ms(dav: Dav, cal: str) -> float:
    """The server's own time for the one request of an idle cycle (no bridge involved)."""
    body = (
        '<?xml version="1.0"?><d:propfind xmlns:d="DAV:" '
        'xmlns:cs="http://calendarserver.org/ns/"><d:prop><cs:getctag/><d:sync-token/>'
        "</d:prop></d:propfind>"
    )
    took = []
    for _ in range(IDLE_SAMPLES):
        started = time.monotonic()
        r = dav.http.request(
            "PROPFIND",
            dav.url + cal,
            data=body,
            timeout=600,
            headers={"Depth": "0", "Content-Type": "application/xml"},
        )
        took.append(time.monotonic() - started)
        assert r.status_code == 207
    return statistics.median(took) * 1000


def edit(dav: Dav, href: str, old: str, new: str) -> None:
    text, etag = dav.get(href)
    assert old in text, (old, text[:300])
    assert dav.put(href, text.replace(old, new, 1), etag).status_code in (200, 201, 204)


def row(server: str, size: int, mode: str, step: str, report: Report, seconds=None) -> str:
    took = report.seconds if seconds is None else seconds
    return (
        f"| {server:8} | {size:>6} | {mode:4} | {step:16} | {report.requests:>8} | "
        f"{report.bytes / 1024:>10.1f} | {took * 1000:>9.1f} |"
    )


def measure(
    server_name: str, dav: Dav, cal: str, size: int, mode: str, folder: Path, first: int
) -> list[str]:
    """The rows for one bridge following `cal`; it edits events `first` and `first + 1`."""
    conf = bridge_config(folder, dav, "", cal, sync="etag" if mode == "etag" else "auto")
    conf.write_text(conf.read_text().replace("http_timeout = 10", "http_timeout = 600"))
    bridge = Bridge(bridge_config_module.load(str(conf)))
    out = []
    try:
        initial = bridge.cycle()
        assert initial.read == size, initial.line()
        out.append(row(server_name, size, mode, "initial scan", initial))
        for _ in range(3):
            if not bridge.cycle().changed:
                break
        idles = [bridge.cycle() for _ in range(IDLE_SAMPLES)]
        assert all(r.read == 0 and r.changed == 0 for r in idles), idles[-1].line()
        out.append(
            row(
                server_name,
                size,
                mode,
                "idle cycle",
                idles[-1],
                statistics.median(r.seconds for r in idles),
            )
        )
        marked = some_event(dav, cal, first)
        edit(dav, marked, "LOCATION:Room", "LOCATION:jitsi; Room")
        single = bridge.cycle()
        assert single.read == 1 and single.written == 1, single.line()
        out.append(row(server_name, size, mode, "single change", single))
        echo = bridge.cycle()
        assert echo.read == 0 and echo.written == 0, echo.line()
        out.append(row(server_name, size, mode, "own write-back", echo))
        edit(dav, some_event(dav, cal, first + 1), "SUMMARY:Встреча", "SUMMARY:Перенесено:")
        plain = bridge.cycle()
        assert plain.read == 1 and plain.written == 0, plain.line()
        out.append(row(server_name, size, mode, "plain edit", plain))
    finally:
        bridge.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--server", choices=("radicale", "xandikos"), default="radicale")
    parser.add_argument(
        "--modes",
        default="sync,etag",
        help="sync (RFC 6578) and/or etag (listings), comma-separated",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    modes = [m.strip() for m in args.modes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="bridge-cost-"))
    if args.server == "radicale":
        server = RadicaleServer(work / "radicale", plugin=False).start()
        server.ensure_user("alice")
        dav = Dav("radicale", server.url, "/alice/", "alice", "alice")
    else:
        server = XandikosServer(work / "xandikos").start()
        dav = Dav("xandikos", server.url, "/alice/calendars/")
    print("| server   | events | mode | step             | requests |  bytes KiB |   time ms |")
    print("|----------|-------:|------|------------------|---------:|-----------:|----------:|")
    notes: list[str] = []
    try:
        for size in sizes:
            started = time.monotonic()
            cal = (
                fill_radicale(server, dav, size)
                if args.server == "radicale"
                else fill_by_put(dav, size)
            )
            print(
                f"(filled {size} events in {time.monotonic() - started:.1f} s)",
                file=sys.stderr,
                flush=True,
            )
            for n, mode in enumerate(modes):
                for line in measure(
                    args.server, dav, cal, size, mode, work / f"bridge-{size}-{mode}", 2 * n
                ):
                    print(line, flush=True)
            notes.append(
                f"{args.server}, {size} events: a bare PROPFIND of the calendar's "
                f"ctag and sync token, without the bridge: "
                f"{bare_propfind_ms(dav, cal):.1f} ms"
            )
    finally:
        server.stop()
    print()
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()
