"""How long after a provider comes back does the link appear in the event?

Starts Radicale with the plugin and the Telemost emulator on loopback, takes the
emulator down, saves marked events, brings it back after `--down` seconds and
measures, per event, the time from recovery to the link being written. Run with
the default retry settings and with tuned ones:

    .venv/bin/python bench/recovery.py
    .venv/bin/python bench/recovery.py --retry-initial 1 --retry-max-delay 10
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from emulators.telemost import TelemostEmulator  # noqa: E402
from harness import TOKEN, RadicaleServer, event, plugin_config  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5)
    parser.add_argument("--down", type=float, default=20, help="seconds the provider is down")
    parser.add_argument("--retry-initial", default="5")
    parser.add_argument("--retry-max-delay", default="3600")
    args = parser.parse_args()
    emu = TelemostEmulator(token=TOKEN).start()
    server = RadicaleServer(
        Path(tempfile.mkdtemp(prefix="recovery-")),
        plugin_config(
            emu.url,
            provider_timeout="1",
            call_timeout="5",
            retry_initial=args.retry_initial,
            retry_max_delay=args.retry_max_delay,
        ),
        env={"TELEMOST_TOKEN": TOKEN},
    ).start()
    try:
        server.ensure_user("alice")
        emu.down()
        mark = server.mark()
        uids = [f"{uuid.uuid4()}@recovery" for _ in range(args.events)]
        saved = []
        for uid in uids:
            started = time.monotonic()
            r = server.put("alice", f"alice/calendar/{uid}.ics", event(uid, location="telemost"))
            saved.append(time.monotonic() - started)
            assert r.status_code == 201
        time.sleep(args.down)  # the outage itself: what is measured starts after it
        emu.up()
        recovered = time.monotonic()
        waits = []
        for uid in uids:
            server.wait_for_log(f"{uid}: telemost conference attached", timeout=7200, start=mark)
            waits.append(time.monotonic() - recovered)
        lost = [
            u for u in uids if server.get("alice", f"alice/calendar/{u}.ics").status_code != 200
        ]
        print(
            f"retry_initial={args.retry_initial}s retry_max_delay={args.retry_max_delay}s, "
            f"provider down {args.down:.0f}s, {args.events} events"
        )
        print(f"  save while down: max {max(saved) * 1000:.0f} ms (the event is stored at once)")
        print(f"  recovery -> link: median {statistics.median(waits):.1f}s, max {max(waits):.1f}s")
        print(
            f"  events lost: {len(lost)}, conferences at provider: {len(emu.conferences)} "
            f"for {len(uids)} events"
        )
    finally:
        server.stop()
        emu.stop()


if __name__ == "__main__":
    main()
