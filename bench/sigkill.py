"""The SIGKILL suite in full: many trials of concurrent marked edits and a killed Radicale.

Each trial (tests/sigkill_trial.py) starts Radicale with the plugin on a fresh
storage (every third trial: two processes sharing it), edits marked events
from four threads while the Telemost emulator is ok, slow, blocked or failing,
SIGKILLs one process at a random moment, restarts it, drains the outbox and
counts hung requests, lost acknowledged edits, rooms no record references and
whether `meetplugin reconcile` lists each of them. Prints one line per trial
and the totals; exits 1 when any trial went wrong.

    .venv/bin/python bench/sigkill.py --trials 20
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from sigkill_trial import MODES, run_trial  # noqa: E402

COLUMNS = (
    "trial mode procs reqs acked cut 503 hung lost rooms orphans suspects unlisted "
    "broken pending in-call secs"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    print(COLUMNS)
    totals: dict[str, int] = {}
    failed = 0
    for n in range(1, args.trials + 1):
        mode = MODES[(n - 1) % len(MODES)]
        processes = 2 if n % 3 == 2 else 1
        with tempfile.TemporaryDirectory(prefix="sigkill-") as folder:
            f = run_trial(Path(folder), n, mode, processes, seed=args.seed + n)
        row = {
            "requests": f.requests,
            "acknowledged": f.acknowledged,
            "cut": f.cut,
            "refused": f.refused,
            "hung": f.hung,
            "lost": len(f.lost),
            "rooms": f.rooms,
            "orphans": f.orphans,
            "suspects": f.suspects,
            "unlisted": f.unlisted,
            "broken": f.broken,
            "pending": f.pending,
            "killed during a call": int(f.killed_during_call),
        }
        for k, v in row.items():
            totals[k] = totals.get(k, 0) + v
        failed += not f.ok
        print(
            f"{n:5d} {mode:7s} {processes:5d} "
            + " ".join(f"{v:5d}" for v in row.values())
            + f" {f.seconds:5.1f}"
            + ("" if f.ok else "  FAILED"),
            flush=True,
        )
        for line in f.lost:
            print("      lost:", line)
    print()
    print(f"trials: {args.trials}, failed: {failed}")
    for k, v in totals.items():
        print(f"  {k}: {v}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
