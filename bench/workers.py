"""Processes besides the timing one: emulator, load, lock watcher (not pure: sockets, inotify)."""

from __future__ import annotations

import concurrent.futures
import ctypes
import os
import select
import struct
import threading
import time
from collections import Counter

import events
import requests
from client import Client

# --- the Telemost emulator, driven over a pipe ---------------------------------


def emulator_main(conn, token: str) -> None:
    """Serve the Telemost API on loopback; obey ("delay", s), ("reset_peak",), ("stats",)
    and ("stop",), answering each."""
    from emulators.telemost import TelemostEmulator

    emu = TelemostEmulator(token=token).start()
    conn.send(emu.url)
    while True:
        command, *args = conn.recv()
        if command == "delay":
            emu.delay = float(args[0])
            conn.send(True)
        elif command == "reset_peak":
            with emu._lock:
                emu.peak_in_flight = emu.in_flight
            conn.send(True)
        elif command == "stats":
            with emu._lock:
                counts = Counter(call.method for call in emu.calls)
                conn.send({"in_flight": emu.in_flight, "peak": emu.peak_in_flight, **dict(counts)})
        elif command == "stop":
            emu.stop()
            conn.send(True)
            return


# --- load generators -------------------------------------------------------------


def warm(seconds: float) -> int:
    """Keeps a pool worker busy for a moment, so that every worker gets started."""
    time.sleep(seconds)
    return os.getpid()


def wait_until(at: float) -> None:
    """Start together with the other clients (time.monotonic is system-wide on Linux)."""
    delay = at - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def creations(
    base: str, user: str, calendar: str, n: int, start_at: float, first: int, keyword: str = ""
) -> tuple[list[float], float, float]:
    """One client: n new events (timed PUT), each deleted again at once (untimed).

    Returns the PUT latencies and the client's first and last moment.
    """
    client = Client(base, user)
    wait_until(start_at)
    began = time.monotonic()
    latencies = []
    for k in range(n):
        uid = events.new_uid()
        path = f"{calendar}{uid}.ics"
        text = events.event(
            uid, first + k, location=keyword or None, meeting=bool(keyword), owner=user
        )
        latencies.append(client.put(path, text, create=True))
        client.delete(path)
    return latencies, began, time.monotonic()


def edits(base: str, user: str, calendar: str, uids: list[str], n: int, sequence: int) -> int:
    """n edits (PUT of an existing href, If-Match), cycling over `uids`; the size stays."""
    client = Client(base, user)
    for k in range(n):
        i = k % len(uids)
        path = f"{calendar}{uids[i]}.ics"
        client.put(path, events.event(uids[i], i, sequence=sequence + k // len(uids)))
    return n


def marked_creations(base: str, user: str, calendar: str, n: int, first: int) -> int:
    """n meetings created and deleted again, Jitsi and Telemost in turn."""
    client = Client(base, user)
    for k in range(n):
        uid = events.new_uid()
        path = f"{calendar}{uid}.ics"
        keyword = "jitsi" if k % 2 else "телемост"
        client.put(
            path,
            events.event(uid, first + k, location=keyword, meeting=True, owner=user),
            create=True,
        )
        client.delete(path)
    return n


def isolation_load(
    base: str,
    user: str,
    calendar: str,
    keyword: str,
    burst: int,
    rate: float,
    stop,
    ready,
    out,
) -> None:
    """Keep `burst` meeting creations waiting on the provider until `stop` is set.

    A burst of `burst` creations, then one more every 1/`rate` s (the provider's
    throughput), so about `burst` stay queued all the time. `ready` is set once half
    of the burst was answered. After `stop`: every event made is deleted again, and
    the counts go to `out`. A connection reset is retried (twice) and counted.
    """
    local = threading.local()
    made: list[str] = []
    answered = [0]
    resets = [0]
    guard = threading.Lock()
    latencies: list[float] = []

    def one(i: int) -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = Client(base, user)
        uid = events.new_uid()
        path = f"{calendar}{uid}.ics"
        text = events.event(uid, i, location=keyword, meeting=True, owner=user)
        for attempt in range(3):
            try:
                took = client.put(path, text, create=True)
                break
            except requests.ConnectionError:
                # Radicale's listen queue overflowed (docs/limits.md, "Load on a busy
                # server"): a client tries again, so does this one, and the count is
                # reported. A reset after the request arrived fails the retry (412).
                with guard:
                    resets[0] += 1
                if attempt == 2:
                    raise
                client = local.client = Client(base, user)
        with guard:
            made.append(path)
            latencies.append(took)
            answered[0] += 1
            if answered[0] >= burst // 2:
                ready.set()

    pool = concurrent.futures.ThreadPoolExecutor(burst * 2)
    futures = [pool.submit(one, i) for i in range(burst)]
    step = 1.0 / rate
    next_at = time.monotonic() + step
    i = burst
    while not stop.wait(max(0.0, next_at - time.monotonic())):
        futures.append(pool.submit(one, i))
        i += 1
        next_at += step
    concurrent.futures.wait(futures, timeout=120)
    errors = [str(f.exception()) for f in futures if f.done() and f.exception()]
    pool.shutdown()
    client = Client(base, user)
    for path in made:
        client.delete(path)
    out.put({"made": len(made), "errors": errors[:3], "latencies": latencies, "resets": resets[0]})


# --- the lock watcher -------------------------------------------------------------

IN_OPEN, IN_CLOSE_WRITE, IN_CLOSE_NOWRITE = 0x20, 0x08, 0x10


def lock_watch(paths: list[str], ready, stop, out) -> None:
    """Record when each lock file is held: from its open to its close, seen by inotify.

    Radicale opens its storage lock file, flocks it, and closes it to release the
    lock, once per lock taken. With one writer at a time and no readers, the time
    between the open and the close is the time the lock was held (plus the flock
    call, ~µs uncontended). Sends ("holds", [(file index, opened, closed, timed)]):
    a hold is not timed when two opens came before a close (overlapping holders
    cannot be told apart) or its open and close arrived in one read.
    """
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    fd = libc.inotify_init1(os.O_CLOEXEC)
    if fd < 0:
        out.put(("error", f"inotify_init1: errno {ctypes.get_errno()}"))
        return
    watches = {}
    for index, path in enumerate(paths):
        wd = libc.inotify_add_watch(fd, path.encode(), IN_OPEN | IN_CLOSE_WRITE | IN_CLOSE_NOWRITE)
        if wd < 0:
            out.put(("error", f"inotify_add_watch {path}: errno {ctypes.get_errno()}"))
            return
        watches[wd] = index
    depth = dict.fromkeys(watches.values(), 0)
    opened = dict.fromkeys(watches.values(), 0.0)
    clean = dict.fromkeys(watches.values(), True)
    opened_in = dict.fromkeys(watches.values(), -1)
    holds: list[tuple[int, float, float, bool]] = []
    batch = 0
    ready.set()
    while not stop.is_set():
        readable, _, _ = select.select([fd], [], [], 0.2)
        if not readable:
            continue
        data = os.read(fd, 65536)
        now = time.monotonic()
        batch += 1
        offset = 0
        while offset < len(data):
            wd, mask, _cookie, length = struct.unpack_from("iIII", data, offset)
            offset += 16 + length
            index = watches.get(wd)
            if index is None:
                continue
            if mask & IN_OPEN:
                if depth[index] == 0:
                    opened[index], clean[index], opened_in[index] = now, True, batch
                else:
                    clean[index] = False
                depth[index] += 1
            elif mask & (IN_CLOSE_WRITE | IN_CLOSE_NOWRITE) and depth[index] > 0:
                depth[index] -= 1
                if depth[index] == 0:
                    timed = clean[index] and opened_in[index] != batch
                    holds.append((index, opened[index], now, timed))
    os.close(fd)
    out.put(("holds", holds))
