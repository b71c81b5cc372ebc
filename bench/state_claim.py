"""How long a worker's claim of one provider job takes, on sqlite and on PostgreSQL.

Queues N delete jobs in a records store, then claims each once (the claim's
transaction: the row read FOR UPDATE SKIP LOCKED on PostgreSQL, its lease
written, the job read back), and lists the due rows once. Prints the median and
the 99th percentile per claim. PostgreSQL runs in a throwaway cluster on
loopback (tests/pg_support.py), so the figures are round trips over loopback,
not a network.

    .venv/bin/python bench/state_claim.py            # 2000 jobs
    .venv/bin/python bench/state_claim.py --jobs 500
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from pg_support import PgCluster  # noqa: E402

from radicale_meetplugin.core.model import ActionKind, EventKey, Job  # noqa: E402
from radicale_meetplugin.state.records import RecordStore  # noqa: E402


def measure(target: str, jobs: int) -> tuple[float, float, float]:
    """(median claim ms, p99 claim ms, one due() listing ms)."""
    store = RecordStore(target)
    try:
        ids = [
            store.enqueue(Job(0, ActionKind.DELETE, EventKey("a", "a/c", f"{n}"), "jitsi")).id
            for n in range(jobs)
        ]
        took = []
        for i in ids:
            started = time.perf_counter()
            store.jobs_queue.claim(i, "bench:1:x", 60, lambda holder: True)
            took.append(time.perf_counter() - started)
        started = time.perf_counter()
        store.jobs_queue.due(time.time() + 100, limit=100)
        listing = time.perf_counter() - started
    finally:
        store.close()
    took.sort()
    return statistics.median(took) * 1e3, took[int(len(took) * 0.99)] * 1e3, listing * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    args = parser.parse_args()
    cluster = PgCluster().start()
    try:
        folder = tempfile.mkdtemp(prefix="meetplugin-claim-")
        for name, target in (
            ("sqlite", os.path.join(folder, "records.sqlite")),
            ("postgresql", cluster.database()),
        ):
            median, p99, listing = measure(target, args.jobs)
            print(
                f"{name:<11} claim median {median:.3f} ms, p99 {p99:.3f} ms; due() {listing:.2f} ms"
            )
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
