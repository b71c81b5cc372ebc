"""Where a process's resident memory lies, by kind of mapping, from /proc/PID/smaps (not pure).

    python bench/memory_map.py PID [PID ...]

Kinds: the main malloc arena ([heap]), glibc's per-thread arenas (a read-write
mapping followed by the rest of its 64 MiB reservation), Python's own 1 MiB
object arenas, thread stacks (8 MiB), other anonymous mappings, and files
(code and data of the interpreter and its libraries). Run it while
isolation_probe.py runs (its servers: `pgrep -f radicale-bench`) to see which
kind grows under load.
"""

from __future__ import annotations

import os
import re
import sys
from collections import Counter

MAPPING = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$")
ARENA_RESERVATION = 64 << 20  # HEAP_MAX_SIZE on 64-bit glibc


def mappings(pid: int) -> list[tuple[int, int, str, str, int]]:
    """(start, end, permissions, name, Rss in KiB) of each mapping."""
    out: list[tuple[int, int, str, str, int]] = []
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            m = MAPPING.match(line)
            if m:
                out.append((int(m.group(1), 16), int(m.group(2), 16), m.group(3), m.group(4), 0))
            elif line.startswith("Rss:") and out:
                out[-1] = (*out[-1][:4], int(line.split()[1]))
    return out


def kind(maps: list[tuple[int, int, str, str, int]], i: int) -> str:
    start, end, perm, name, _ = maps[i]
    after = maps[i + 1] if i + 1 < len(maps) else None
    if name == "[heap]":
        return "main arena"
    if name.startswith("/"):
        return "files"
    if name:
        return "kernel"
    if perm == "---p":
        return "reserved"
    if perm == "rw-p" and end - start == 1 << 20:
        return "Python arenas"
    if (
        perm == "rw-p"
        and after is not None
        and after[0] == end
        and after[2] == "---p"
        and not after[3]
        and after[1] - start == ARENA_RESERVATION
    ):
        return "thread arenas"
    if perm == "rw-p" and end - start == 8 << 20:
        return "thread stacks"
    return "other anonymous"


def main() -> None:
    for pid in map(int, sys.argv[1:]):
        maps = mappings(pid)
        rss: Counter[str] = Counter()
        count: Counter[str] = Counter()
        for i, mapping in enumerate(maps):
            k = kind(maps, i)
            rss[k] += mapping[4]
            count[k] += 1
        threads = len(os.listdir(f"/proc/{pid}/task"))
        cells = (f"{k} {v / 1024:.1f} MiB ({count[k]})" for k, v in sorted(rss.items()) if v)
        print(f"{pid}: {threads} threads; " + "; ".join(cells), flush=True)


if __name__ == "__main__":
    main()
