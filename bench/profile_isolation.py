"""Where the time goes while 16 saves wait for a slow provider (the benchmark's section 4).

Records the plugin's Radicale with py-spy (CPU-active samples only) while another
user reads, and prints the top functions and the plugin's share. Needs py-spy:

    .venv-bench/bin/pip install py-spy && .venv-bench/bin/python bench/profile_isolation.py
"""

from __future__ import annotations

import collections
import concurrent.futures
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from emulators.telemost import TelemostEmulator  # noqa: E402
from harness import TOKEN, RadicaleServer, event, plugin_config  # noqa: E402

KEYS = (
    "do_GET",
    "do_PROPFIND",
    "do_PUT",
    "RadicaleAdapter.settle",
    "Engine.on_put",
    "as_radicale_item",
    "Outbox._run",
    "Engine.settle",
    "fsync",
)


def main() -> None:
    spy_bin = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    emu = TelemostEmulator(token=TOKEN).start()
    server = RadicaleServer(
        Path(tempfile.mkdtemp(prefix="profile-")),
        plugin_config(emu.url, provider_timeout="8", call_timeout="30"),
        env={"TELEMOST_TOKEN": TOKEN},
    ).start()
    out = Path(tempfile.mkdtemp()) / "profile.raw"
    try:
        server.ensure_user("alice")
        server.ensure_user("bob")
        for _ in range(50):
            uid = f"{uuid.uuid4()}@p"
            server.put("bob", f"bob/calendar/{uid}.ics", event(uid))
        emu.delay = 2.0
        assert server.process
        spy = subprocess.Popen(
            [
                spy_bin,
                "record",
                "-p",
                str(server.process.pid),
                "-d",
                "9",
                "-r",
                "200",
                "-f",
                "raw",
                "-o",
                str(out),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.5)  # let py-spy attach before the load starts
        with concurrent.futures.ThreadPoolExecutor(16) as pool:

            def save(_):
                uid = f"{uuid.uuid4()}@m"
                return server.put(
                    "alice", f"alice/calendar/{uid}.ics", event(uid, location="telemost")
                ).status_code

            saves = [pool.submit(save, i) for i in range(16)]
            bob = server.session("bob")
            until = time.time() + 7
            while time.time() < until:
                bob.get(f"{server.url}/bob/calendar/")
                bob.request("PROPFIND", f"{server.url}/bob/calendar/", headers={"Depth": "1"})
            spy.wait()
            for f in saves:
                f.result()
    finally:
        server.stop()
        emu.stop()
    own, inclusive, total = collections.Counter(), collections.Counter(), 0
    for line in out.read_text().splitlines():
        match = re.match(r"^(.*) (\d+)$", line)
        if not match:
            continue
        frames, count = match.group(1).split(";"), int(match.group(2))
        total += count
        own[re.sub(r":\d+\)", ")", frames[-1])] += count
        for frame in {re.sub(r":\d+\)", ")", f) for f in frames}:
            inclusive[frame] += count
    print(f"{total} CPU-active samples")
    print("-- most time in (own)")
    for frame, count in own.most_common(10):
        print(f"{count / total:6.1%} {frame[:110]}")
    print("-- inclusive: requests and the plugin")
    for frame, count in inclusive.most_common(3000):
        if any(k in frame for k in KEYS):
            print(f"{count / total:6.1%} {frame[:110]}")


if __name__ == "__main__":
    main()
