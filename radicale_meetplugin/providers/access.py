"""Who may create rooms at a provider: `users = alice, @group` and a group file (reads files).

The groups come from a file in Apache's htgroup format (``group: member member``),
the format of Radicale's own ``[group] type = htgroup``: the plugin reads Radicale's
file when that is set, else ``[meetplugin] groups_file``. The file is read again
when it changes.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable

logger = logging.getLogger("radicale.meetplugin")

Groups = Callable[[str], frozenset[str]]  # user -> the groups they are in


def no_groups(user: str) -> frozenset[str]:
    return frozenset()


def parse_htgroup(text: str) -> dict[str, frozenset[str]]:
    """member -> groups, from `group: member member` lines (# comments, blank lines)."""
    members: dict[str, set[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or ":" not in line:
            continue
        group, _, names = line.partition(":")
        group = group.strip()
        if not group:
            continue
        for name in names.split():
            members.setdefault(name, set()).add(group)
    return {name: frozenset(groups) for name, groups in members.items()}


class GroupFile:
    """The groups of a user, from an htgroup file; re-read when its size or mtime changes."""

    def __init__(self, path: str) -> None:
        self.path = os.path.expanduser(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._members: dict[str, frozenset[str]] = {}

    def __call__(self, user: str) -> frozenset[str]:
        try:
            st = os.stat(self.path)
        except OSError as e:
            logger.warning("meetplugin: groups file %s: %s", self.path, e.strerror)
            return frozenset()
        stamp = (st.st_mtime_ns, st.st_size)
        with self._lock:
            if stamp != self._stamp:
                try:
                    with open(self.path, encoding="utf-8") as f:
                        self._members = parse_htgroup(f.read())
                except (OSError, UnicodeDecodeError) as e:
                    logger.warning("meetplugin: groups file %s cannot be read: %s", self.path, e)
                    return frozenset()
                self._stamp = stamp
            return self._members.get(user, frozenset())


def allowed(entries: Iterable[str], user: str, groups: Groups) -> bool:
    """May `user` create rooms? An empty list lets everyone; `@name` is a group."""
    entries = tuple(entries)
    if not entries:
        return True
    names = {e for e in entries if not e.startswith("@")}
    if user in names:
        return True
    wanted = {e[1:] for e in entries if e.startswith("@") and len(e) > 1}
    return bool(wanted and wanted & groups(user))
