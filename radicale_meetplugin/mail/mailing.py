"""Invitation letters for the engine: plan and queue them; build each one when it is sent.

The engine calls `consider` under the storage lock whenever an organizer's event
was judged (a save, a late link landing) and `deleted` when an event is gone.
One sqlite transaction reads what the people were told, plans the letters
(`mail_plan`) and queues them, with the event text they show and the new state.
Nothing heavy happens there: the outbox's sender calls `render` (`imip`) for each
letter just before handing it to the SMTP server, outside any lock.

Letters only ever carry a link the server made: an event without an active
conference of ours gets none (except the cancellation of one that had it).

With `[scheduling] enabled` (the Radicale shell attaches its `Calendars`), the
server schedules every organizer's event with attendees, link or not (a link
still pending holds the round back until it lands): attendees who are users
here are reached in their calendar (a `LOCAL` row of the same queue, delivered
by mail/delivery.py through the shell), the others by e-mail, and the
organizer's copy gets SCHEDULE-STATUS on each attendee (`mark_statuses`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

import icalendar

from radicale_meetplugin.config import Settings
from radicale_meetplugin.core import ical, rewrite
from radicale_meetplugin.core.model import Conference, EventKey
from radicale_meetplugin.mail import imip, itip
from radicale_meetplugin.mail import plan as mail_plan
from radicale_meetplugin.state.letters import Mail, Outgoing, Round, Told

logger = logging.getLogger("radicale.meetplugin")


class DeliveryError(Exception):
    """An invitation could not be put into a local attendee's calendar (not retried)."""


class Calendars(Protocol):
    """The users of this server and their calendars (the Radicale shell's), for scheduling."""

    def user_of(self, addr: str) -> str | None:
        """The login of the user here whose address `addr` is; None: nobody here."""
        ...

    def has_calendar(self, user: str) -> bool:
        """The user has a calendar an invitation can go to (their default calendar)."""
        ...

    def deliver(self, key: EventKey, addr: str, build: Callable[[str | None], str | None]) -> str:
        """Under the store's lock: the attendee's copy of `key`'s event becomes
        `build(their current text or None)` (None: nothing to write); says where.
        Raises `DeliveryError`."""
        ...


class Mailing:
    def __init__(self, settings: Settings, store, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.options = settings.mail
        self.mail_on = bool(settings.mail["enabled"])  # e-mails at all (else: only local)
        self.calendars: Calendars | None = None  # scheduling on: the shell's users' calendars
        self.store = store
        self.lang = self.options["language"] or settings.main["language"]
        self.clock = clock
        # The outbox's sender, called by the engine once queued letters are committed.
        self.wake: Callable[[], None] = lambda: None
        self._parsed: dict[int, icalendar.Calendar] = {}  # round id -> its event, while sending
        self._parsed_lock = threading.Lock()

    # --- the engine's hooks ------------------------------------------------------

    def consider(
        self,
        key: EventKey,
        cal: icalendar.Calendar,
        conference: Conference | None,
        pending: bool = False,
    ) -> int:
        """The organizer's event as stored now; returns how many letters were queued.

        `pending`: a conference is being made for it (its link has not landed yet).
        """
        cancelled = ical.is_cancelled(cal)
        url = conference.join_url if conference else ""
        linked = bool(url and rewrite.link_present(cal, url))
        if self.calendars is None:
            if not cancelled and not linked:
                return 0  # no link of ours in it (yet, or any more): nothing to tell
        elif pending and not cancelled:
            return 0  # scheduling: the invitations wait for the link, then go once
        return self._round(key, cal, url if linked else "", cancelled)

    def deleted(self, key: EventKey) -> int:
        """The event is gone: whoever holds an invitation gets a cancellation."""
        told = self.store.mail_state(key)
        if told is None or told.sent.cancelled or not told.sent.recipients or not told.snapshot:
            return 0
        try:
            cal = ical.parse(told.snapshot)
        except ical.EventParseError:
            return 0
        return self._round(key, cal, "", cancelled=True)

    # --- one round of letters -------------------------------------------------------

    def _round(self, key: EventKey, cal: icalendar.Calendar, url: str, cancelled: bool) -> int:
        now = dt.datetime.fromtimestamp(self.clock(), dt.UTC)
        if mail_plan.is_over(cal, now):
            return 0  # tidying up old meetings tells nobody anything
        organizer = self._organizer(key, cal)
        if organizer is None:
            logger.info(
                "meetplugin: %s/%s: no usable ORGANIZER address and none configured "
                "for %s: no invitation e-mails",
                key.calendar,
                key.uid,
                key.owner,
            )
            return 0
        view = mail_plan.view_of(
            cal,
            organizer.address,
            url,
            cancelled=cancelled,
            send_to_organizer=self.options["send_to_organizer"] and self.mail_on,
            route=lambda addr: self._routes(key.owner, addr),
        )
        if self._nothing_new(self.store.mail_state(key), view):
            return 0  # the common case (a save that changes nothing people see): no write
        text = ical.to_text(cal)

        def decide(told: Told | None) -> Round:
            if self._nothing_new(told, view):  # another process got here first
                return Round([], None)
            letters, sent = mail_plan.plan(told.sent if told else None, view)
            if sent is None:
                return Round([], None)
            outgoing = [
                Outgoing(
                    letter.sequence,
                    mail_plan.person_of(recipient),
                    itip.LOCAL if recipient.startswith(mail_plan.LOCAL_PREFIX) else letter.method,
                    letter.kind,
                )
                for letter in letters
                for recipient in letter.recipients
            ]
            # The state keeps the text a later cancellation shows; the round, what these show.
            return Round(
                outgoing, Told(sent, "" if sent.cancelled else text), text if outgoing else "", url
            )

        ids = self.store.mail_round(key, decide)
        if ids:
            logger.info(
                "meetplugin: %s/%s: %d invitation e-mail(s) queued", key.calendar, key.uid, len(ids)
            )
            if view.skipped:
                logger.warning(
                    "meetplugin: %s/%s: no e-mail to %s: not a usable address",
                    key.calendar,
                    key.uid,
                    ", ".join(view.skipped),
                )
        return len(ids)

    # --- scheduling (RFC 6638) ----------------------------------------------------

    def _local_user(self, owner: str, addr: str) -> str | None:
        """The user here an attendee is (not the organizer's own login), if delivery is on."""
        if self.calendars is None or not self.settings.scheduling["local_delivery"]:
            return None
        user = self.calendars.user_of(addr)
        return user if user is not None and user != owner else None

    def _routes(self, owner: str, addr: str) -> tuple[str, ...]:
        """How one attendee is reached: in their calendar here, by e-mail, both or not at all."""
        user = self._local_user(owner, addr)
        routes: list[str] = []
        if user is not None and self.calendars is not None and self.calendars.has_calendar(user):
            routes.append(mail_plan.LOCAL_PREFIX + addr)
        if self.mail_on and (user is None or self.settings.scheduling["email_local"]):
            routes.append(addr)
        return tuple(routes)

    def mark_statuses(self, key: EventKey, cal: icalendar.Calendar) -> bool:
        """SCHEDULE-STATUS on each attendee of the organizer's copy; True if it changed."""
        if self.calendars is None:
            return False
        organizer = self._organizer(key, cal)

        def status(addr: str | None) -> str:
            if addr is None:
                return itip.INVALID
            user = self._local_user(key.owner, addr)
            if user is not None:
                assert self.calendars is not None
                if self.calendars.has_calendar(user):
                    return itip.DELIVERED
                if self.mail_on and self.settings.scheduling["email_local"]:
                    return itip.SENT
                logger.warning(
                    "meetplugin: %s/%s: %s (user %s) has no calendar for events: "
                    "no invitation delivered",
                    key.calendar,
                    key.uid,
                    addr,
                    user,
                )
                return itip.NO_CALENDAR
            return itip.SENT if self.mail_on else itip.NOT_DELIVERED

        return itip.mark_statuses(cal, organizer.address if organizer else "", status)

    def attendee_copy(self, mail: Mail, existing: str | None) -> str | None:
        """The local attendee's copy a `LOCAL` row makes; None: nothing to write."""
        cancelling = mail.kind in ("cancel", "uninvite")
        if cancelling and existing is None:
            return None  # never had it: nothing to cancel
        cal = self._event_of(mail)
        organizer = self._organizer(mail.key, cal)
        if organizer is None:
            raise DeliveryError("the event has no usable ORGANIZER")
        before = ical.parse(existing) if existing is not None else None
        if before is not None and ical.organizer_address(before) != organizer.address:
            raise DeliveryError("the calendar holds another event with this UID")
        now = dt.datetime.fromtimestamp(self.clock(), dt.UTC)
        copy = itip.attendee_copy(
            cal, mail.kind, mail.sequence, organizer, mail.recipient, before, now
        )
        return ical.to_text(copy)

    @staticmethod
    def _nothing_new(told: Told | None, view: mail_plan.View) -> bool:
        letters, sent = mail_plan.plan(told.sent if told else None, view)
        return not letters and (sent is None or (told is not None and told.sent == sent))

    # --- one letter, when it is sent ---------------------------------------------------

    def render(self, mail: Mail) -> tuple[str, bytes]:
        """(envelope sender, the whole message) of a queued letter."""
        cal = self._event_of(mail)
        organizer = self._organizer(mail.key, cal)
        if organizer is None:
            raise ValueError("the event has no usable ORGANIZER")
        if self.options["sender_policy"] == "organizer":
            sender, reply_to = organizer, None
        else:
            sender, reply_to = imip.Person(self.options["sender"], organizer.name), organizer
        digest = hashlib.sha256(
            "\x1f".join(
                (mail.key.as_text(), str(mail.sequence), mail.recipient, mail.method)
            ).encode()
        ).hexdigest()
        envelope = imip.Envelope(
            sender,
            self._person(cal, mail.recipient, organizer),
            reply_to,
            f"<{digest[:32]}@{sender.address.rpartition('@')[2]}>",
        )
        now = dt.datetime.fromtimestamp(self.clock(), dt.UTC)
        message = imip.message(
            cal,
            mail.kind,
            mail.sequence,
            envelope,
            organizer,
            mail.join_url,
            self.lang,
            now,
            rsvp=self.calendars is not None,  # scheduling: the answers come back
        )
        return sender.address, message.as_bytes()

    def _event_of(self, mail: Mail) -> icalendar.Calendar:
        with self._parsed_lock:
            cal = self._parsed.get(mail.round_id)
        if cal is None:
            cal = ical.parse(mail.snapshot)  # an empty snapshot raises: nothing to show
            with self._parsed_lock:
                if len(self._parsed) > 16:
                    self._parsed.clear()
                self._parsed[mail.round_id] = cal
        return cal

    # --- people -------------------------------------------------------------------

    def _organizer(self, key: EventKey, cal: icalendar.Calendar) -> imip.Person | None:
        """The ORGANIZER (the engine checked it is the owner's); else the owner's address."""
        for comp in ical.vevents(cal):
            if "ORGANIZER" in comp:
                return imip.person(comp["ORGANIZER"])
        for candidate in self.settings.address_list(key.owner):
            who = imip.person(icalendar.vCalAddress(f"mailto:{candidate.strip()}"))
            if who is not None:
                return who
        return None

    @staticmethod
    def _person(cal: icalendar.Calendar, addr: str, organizer: imip.Person) -> imip.Person:
        if addr == organizer.address:
            return organizer
        for who in imip.participants(cal, organizer.address):
            if who.address == addr:
                return who
        return imip.Person(addr)
