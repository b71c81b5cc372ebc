"""Which bridge instance writes an event: its id, the event's mark, the per-account lock.

Two bridges on one calendar (a cron `--once` with its state under a person's
home, a systemd unit with its own) would each make their own conference and
rewrite the event in turn. So every bridge instance has an id, made once and
kept in its state folder; every event it writes carries it as
``X-MEETPLUGIN-BRIDGE:<id>``; an event marked by another instance — or one that
shows a conference of ours while this instance has no record of it — is left
alone unless the bridge runs with ``--adopt``. On one machine a lock per
account (a lock file named after the account's URL and login, in a folder every
user shares) stops two bridge processes with different state folders from
following the same account at once; across machines the mark is what counts.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import secrets
import tempfile

import icalendar

from radicale_meetplugin.core import ical, rewrite
from radicale_meetplugin.core.detect import Grammar
from radicale_meetplugin.core.model import Conference, EventKey, Record, RecordState

MARK = "X-MEETPLUGIN-BRIDGE"
LOCK_DIR_ENV = "MEETPLUGIN_BRIDGE_LOCK_DIR"


def instance_id(state_dir: str) -> str:
    """This state folder's instance id: read, or made once (`bridge.id`, mode 600)."""
    path = os.path.join(state_dir, "bridge.id")
    try:
        with open(path, encoding="ascii") as f:
            found = f.read().strip()
        if found:
            return found
    except FileNotFoundError:
        pass
    made = secrets.token_hex(8)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # made meanwhile by another start on the same folder
        return instance_id(state_dir)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(made + "\n")
    return made


def mark_of(cal: icalendar.Calendar) -> str:
    """The instance id the event carries ("" when none)."""
    for comp in ical.vevents(cal):
        value = ical.text_of(comp, MARK).strip()
        if value:
            return value
    return ""


def stamp(text: str, instance: str) -> str:
    """`text` with this instance's mark in every VEVENT (unchanged if it is not readable)."""
    try:
        cal = ical.parse(text)
    except ical.EventParseError:
        return text
    if all(ical.text_of(c, MARK) == instance for c in ical.vevents(cal)):
        return text
    for comp in ical.vevents(cal):
        comp.pop(MARK, None)
        comp.add(MARK, icalendar.vText(instance), encode=False)
    return ical.to_text(cal)


def shows_ours(cal: icalendar.Calendar) -> bool:
    """The event shows a conference (or a pending one) of this software's bookkeeping."""
    return any(
        ical.text_of(comp, name)
        for comp in ical.vevents(cal)
        for name in ("X-MEETPLUGIN-CONFERENCE-ID", "X-MEETPLUGIN-PROVIDER")
    )


def adopted_record(cal: icalendar.Calendar, key: EventKey, grammar: Grammar) -> Record | None:
    """The conference the event shows, as a record of ours (None: it shows none complete)."""
    for comp in ical.vevents(cal):
        provider = ical.text_of(comp, "X-MEETPLUGIN-PROVIDER").strip()
        conf_id = ical.text_of(comp, "X-MEETPLUGIN-CONFERENCE-ID").strip()
        if not provider or not conf_id:
            continue
        urls = [str(v) for v in ical.values_of(comp, "CONFERENCE")]
        urls += list(rewrite.shown_links(cal, grammar))
        url = next((u for u in urls if u.startswith(("https://", "http://"))), "")
        if not url:
            continue
        fingerprint = ical.meeting_of(cal, key).fingerprint()
        return Record(
            key, provider, RecordState.ACTIVE, Conference(provider, conf_id, url), fingerprint
        )
    return None


def lock_dir() -> str:
    """A folder every user of the machine shares for the account locks."""
    configured = os.environ.get(LOCK_DIR_ENV, "")
    if configured:
        return configured
    if os.path.isdir("/run/lock") and os.access("/run/lock", os.W_OK | os.X_OK):
        return "/run/lock"
    return tempfile.gettempdir()


class AccountBusy(RuntimeError):
    """Another bridge process on this machine follows the account."""


class AccountLock:
    """An exclusive lock on one account (URL + login) for as long as this process runs it."""

    def __init__(self, url: str, username: str, folder: str | None = None) -> None:
        name = hashlib.sha256(f"{url.rstrip('/')}\n{username}".encode()).hexdigest()[:20]
        self.path = os.path.join(folder or lock_dir(), f"meetplugin-bridge-{name}.lock")
        self._fd: int | None = None

    def acquire(self, holder: str) -> None:
        """Take it, or raise AccountBusy saying who holds it."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except PermissionError:  # made by another user: a read-only handle locks as well
            fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                who = os.pread(fd, 300, 0).decode("utf-8", "replace").strip()
            finally:
                os.close(fd)
            raise AccountBusy(who or "another process") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, holder.encode(), 0)
        except OSError:
            pass  # a read-only handle: the lock holds, the note is only for people
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the handle releases the lock
            self._fd = None
