"""Local attendees over Radicale's storage: who they are, deliveries, their answers (not pure).

`RadicaleCalendars` is the `Calendars` port of mail/mailing.py for the plugin:

- who a local attendee is: an address whose login (the reverse of the owner
  addresses, `Settings.logins_of`) has a home in the storage;
- their default calendar: the first calendar collection of the home, by href
  order, that takes VEVENTs, not a scheduling inbox or outbox (none: no
  delivery, SCHEDULE-STATUS 5.3);
- `deliver`: the attendee's copy written with Radicale's own storage API under
  its lock, taken by the outbox's worker (never inside a save);
- `answered`: an attendee saved their own copy (a PUT into their calendar, under
  the request's lock): their PARTSTAT goes on their ATTENDEE of the organizer's
  copy, and nothing else changes;
- `apply_answer`: the checks every answer passes, local or by e-mail (the UID is
  one this server scheduled, the organizer's copy exists and is the organizer's,
  the person is one of its attendees, the SEQUENCE is not older than what they
  were last sent), then the one write.

The attendee copies are written past the plugin's own upload: they are never
provisioned or rewritten, and the plugin sees them as attendee copies when their
owner saves them.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import sqlite3
from collections.abc import Callable
from typing import Any

from radicale import pathutils
from radicale.storage import multifilesystem

from radicale_meetplugin.config import Settings
from radicale_meetplugin.core import ical
from radicale_meetplugin.core.model import EventKey
from radicale_meetplugin.mail import itip
from radicale_meetplugin.mail.mailing import DeliveryError
from radicale_meetplugin.radicale import scheduling
from radicale_meetplugin.radicale.items import prepared_item

logger = logging.getLogger("radicale.meetplugin")

_base_upload = multifilesystem.Collection.upload


class RadicaleCalendars:
    """Local users' calendars over one Radicale storage (the server's or an admin tool's)."""

    def __init__(
        self,
        storage: Callable[[], Any],
        settings: Settings,
        records: Any,
        lock: Callable[[], contextlib.AbstractContextManager[object]],
        max_occurrence: int,
    ) -> None:
        self._storage = storage  # a multifilesystem.Storage, asked for each time
        self.settings = settings
        self.records = records  # state.records.RecordStore
        self.lock = lock  # Radicale's exclusive lock, for writes not made inside a request
        self.max_occurrence = max_occurrence

    # --- who is who -----------------------------------------------------------------

    def _home(self, user: str) -> Any:
        if not user or not pathutils.is_safe_path_component(user):
            return None
        storage = self._storage()
        col = next(iter(storage.discover(f"/{user}/", depth="0")), None)
        return col if isinstance(col, multifilesystem.Collection) and col.is_principal else None

    def user_of(self, addr: str) -> str | None:
        for login in self.settings.logins_of(addr):
            if self._home(login) is not None:
                return login
        return None

    def calendars(self, user: str) -> list[multifilesystem.Collection]:
        """The user's calendar collections, by href order."""
        if self._home(user) is None:
            return []
        found = [
            col
            for col in self._storage().discover(f"/{user}/", depth="1")
            if isinstance(col, multifilesystem.Collection)
            and col.tag == "VCALENDAR"
            and col.path != user
            and scheduling.box_kind(col) is None  # a scheduling inbox or outbox is no calendar
        ]
        return sorted(found, key=lambda col: col.path)

    def default_calendar(self, user: str) -> multifilesystem.Collection | None:
        """The first calendar of the home (href order) that takes VEVENTs (the rule the
        principal's schedule-default-calendar-URL answers)."""
        path = scheduling.default_calendar(self._storage(), user)
        if path is None:
            return None
        col = next(iter(self._storage().discover(pathutils.unstrip_path(path, True))), None)
        return col if isinstance(col, multifilesystem.Collection) else None

    def has_calendar(self, user: str) -> bool:
        return self.default_calendar(user) is not None

    @staticmethod
    def find(col: multifilesystem.Collection, uid: str) -> str:
        """The href of the event with `uid` in `col`, "" if none."""
        name = f"{uid}.ics"
        if pathutils.is_safe_filesystem_path_component(name):
            item = col._get(name, verify_href=False)
            if item is not None and item.uid == uid:
                return name
        for item in col.get_all():
            if item.uid == uid and item.href:
                return str(item.href)
        return ""

    def _write(self, col: multifilesystem.Collection, href: str, text: str) -> None:
        _base_upload(col, href, prepared_item(col.path, text, self.max_occurrence))

    # --- deliveries (the outbox) ----------------------------------------------------

    def deliver(self, key: EventKey, addr: str, build: Callable[[str | None], str | None]) -> str:
        with self.lock():
            user = self.user_of(addr)
            if user is None:
                raise DeliveryError(f"{addr} is no user here")
            found: tuple[multifilesystem.Collection, str] | None = None
            for col in self.calendars(user):
                href = self.find(col, key.uid)
                if href:
                    found = (col, href)
                    break
            existing = None
            if found is not None:
                item = found[0]._get(found[1], verify_href=False)
                existing = item.serialize() if item is not None else None
            text = build(existing)
            if text is None:
                return "nothing to change"
            if found is None:
                target = self.default_calendar(user)
                if target is None:
                    raise DeliveryError(f"{user} has no calendar for events ({itip.NO_CALENDAR})")
                name = f"{key.uid}.ics"
                if not pathutils.is_safe_filesystem_path_component(name):
                    name = hashlib.sha256(key.uid.encode()).hexdigest()[:32] + ".ics"
                found = (target, name)
            self._write(found[0], found[1], text)
            return f"{found[0].path}/{found[1]}"

    # --- answers ----------------------------------------------------------------------

    def answered(self, owner: str, text: str) -> None:
        """`owner` saved an event into their own calendar (the request holds the lock).

        When it is their copy of a meeting a user here organizes, their PARTSTAT
        goes on the organizer's copy. Never raises: a save is never refused for it.
        """
        try:
            cal = ical.parse(text)
            organizer = ical.organizer_address(cal)
            mine = self.settings.address_list(owner)
            if not organizer or organizer in mine:
                return  # their own event (or no scheduling object)
            chief = self.user_of(organizer)
            if chief is None or chief == owner:
                return  # organized elsewhere: its organizer's server takes the answer
            for addr in mine:
                answers = itip.partstats(cal, addr)
                if not answers:
                    continue
                uid = str(ical.vevents(cal)[0].get("UID", ""))
                try:
                    done = self.apply_answer(uid, addr, answers, itip.sequence_of(cal), chief)
                except itip.Rejected as e:
                    logger.info("meetplugin: %s: answer of %s not taken: %s", uid, addr, e)
                else:
                    if done:
                        logger.info(
                            "meetplugin: %s: %s answered %s (in their calendar)",
                            done,
                            addr,
                            "/".join(sorted(set(answers.values()))),
                        )
                return
        except ical.EventParseError:
            return
        except sqlite3.OperationalError as e:  # the state file is busy: the answer waits
            logger.warning("meetplugin: an attendee's answer was not taken now: %s", e)
        except Exception:
            logger.exception("meetplugin: an attendee's answer was not taken")

    def apply_answer(
        self,
        uid: str,
        attendee: str,
        answers: dict[str, str],
        sequence: int,
        organizer_user: str | None = None,
    ) -> str:
        """Put an attendee's answer on the organizer's copy; where (or "" when unchanged).

        Raises `itip.Rejected` with the reason when no copy may take it. The
        caller holds Radicale's exclusive lock.
        """
        keys = [
            key
            for key in self.records.mail_keys_of_uid(uid)
            if organizer_user is None or key.owner == organizer_user
        ]
        if not keys:
            raise itip.Rejected("the UID is not a meeting scheduled here")
        reasons: list[str] = []
        for key in keys:
            col = next(iter(self._storage().discover(f"/{key.calendar}/", depth="0")), None)
            if not isinstance(col, multifilesystem.Collection):
                reasons.append("the organizer's calendar is gone")
                continue
            href = self.find(col, uid)
            item = col._get(href, verify_href=False) if href else None
            if item is None:
                reasons.append("the organizer's copy is gone")
                continue
            cal = ical.parse(item.serialize())
            chief = ical.organizer_address(cal)  # none: the calendar owner's own event
            if chief and chief not in self.settings.address_list(key.owner):
                reasons.append("the stored copy is not the organizer's")
                continue
            if not itip.is_attendee(cal, attendee):
                reasons.append(f"{attendee} is not an attendee of it")
                continue
            last = self.records.last_sequence_to(key, attendee)
            floor = last if last is not None else itip.sequence_of(cal)
            if sequence < floor:
                reasons.append(f"SEQUENCE {sequence} is older than {floor}")
                continue
            if not itip.apply_partstats(cal, attendee, answers):
                return ""  # already so
            self._write(col, href, ical.to_text(cal))
            return f"{key.calendar}/{uid}"
        raise itip.Rejected("; ".join(dict.fromkeys(reasons)))
