"""The pipeline around one event change: gather -> plan -> apply -> commit; call; settle.

Shells (the Radicale adapter, the bridge) drive it through `protocol.session`:

1. ``decide`` while they hold their store's lock: `gather` reads the facts
   (record, pending job, the stored text) and changes nothing; `plan` picks one
   action; `_apply` rewrites the event and lists the effects (records, jobs,
   letters) as data, with no I/O. ``commit`` then writes those effects in one
   transaction. ``on_put`` is the two together.
2. ``call(job)`` with no lock held: one provider call (the outbox runs it).
3. ``settle(job, outcome, current_text)`` (`protocol.settle`, a part of the
   engine): the record is updated and the event's *current* text gets the
   link (or the explanation). Nothing a person typed meanwhile is overwritten.
   For a create it is two steps: ``prepare_settle`` works it out with no lock
   (reads only) and ``finish_settle`` commits it under the store's lock, only
   if the record is still the one it read.

The engine's ports (the state store, users' own provider accounts) are in
`protocol.ports`.

With ``[mail] enabled``, the effects include the invitation letters
(`mail.mailing`) for an organizer's event whose link is in place, and the
cancellations when it is cancelled or deleted; the outbox sends them.
With ``[scheduling] enabled`` and a shell that knows its users' calendars
(`attach_calendars`: the Radicale adapter), every organizer's event with
attendees is scheduled (RFC 6638): its attendees get SCHEDULE-STATUS in the
same write as the link, and the letters' queue also delivers to local
attendees' calendars.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Generic, TypeVar

import icalendar

from radicale_meetplugin.config import Settings
from radicale_meetplugin.core import i18n, ical, links, rewrite
from radicale_meetplugin.core.detect import Grammar, detect, might_ask
from radicale_meetplugin.core.model import (
    Action,
    ActionKind,
    Conference,
    EventKey,
    Job,
    Meeting,
    Record,
    RecordState,
)
from radicale_meetplugin.core.plan import Facts, plan
from radicale_meetplugin.protocol.effects import (
    AbandonAttempt,
    BeginCreate,
    Cancellations,
    Decision,
    DropRecord,
    Effect,
    Expect,
    FinishAttempt,
    ForgetLetters,
    Letters,
    MoveRecord,
    PutRecord,
    QueueJob,
    ShareLetters,
    Stale,
)
from radicale_meetplugin.protocol.ports import Outcome, StateStore, UserSource
from radicale_meetplugin.protocol.settle import Settling

if TYPE_CHECKING:  # mail is loaded only when [mail] is enabled
    from radicale_meetplugin.mail.mailer import Mailer
    from radicale_meetplugin.mail.mailing import Calendars, Mailing
from radicale_meetplugin.providers import (
    Provider,
    ProviderError,
    ProviderPlugin,
    reason_text,
)
from radicale_meetplugin.providers.access import Groups, allowed, no_groups

logger = logging.getLogger("radicale.meetplugin")


def build_grammar(settings: Settings, plugins: Mapping[str, ProviderPlugin]) -> Grammar:
    """Keywords and properties of every provider we know, enabled or not."""
    keywords: dict[str, str] = {}
    markers: dict[str, str] = {}
    link_properties: dict[str, tuple[str, ...]] = {}
    for name, plugin in plugins.items():
        options = settings.providers.get(name)
        extra = options["keywords"] if options else ()
        for word in (name, *plugin.keywords, *extra):
            keywords[word.casefold()] = name
        for prop in plugin.marker_properties:
            markers[prop.upper()] = name
        link_properties[name] = tuple(p.upper() for p in plugin.link_properties)
    generic = frozenset(w.casefold() for w in settings.main["generic_keywords"])
    return Grammar(
        keywords,
        generic,
        settings.main["default_provider"],
        frozenset(plugins),
        markers,
        link_properties,
    )


S = TypeVar("S", bound=StateStore)


class Engine(Settling, Generic[S]):
    """One engine per state store; `store` is that store's own type for the shells."""

    store: S

    def __init__(
        self,
        settings: Settings,
        providers: Mapping[str, Provider],
        plugins: Mapping[str, ProviderPlugin],
        store: S,
        per_user: Mapping[str, UserSource] | None = None,
    ) -> None:
        self.settings = settings
        self.providers = dict(providers)  # enabled, with the service account's credentials
        self.per_user = dict(per_user or {})  # providers that also take users' own credentials
        self.plugins = dict(plugins)  # every provider we know of
        self.store = store
        self.lang = settings.main["language"]
        self.grammar = build_grammar(settings, plugins)
        self._slots = threading.BoundedSemaphore(settings.main["max_concurrency"])
        self.enabled = frozenset({*self.providers, *self.per_user})
        self.masks = (
            links.masks_from_config(settings.pasted_link_masks)
            if settings.main["pasted_links"]
            else ()
        )
        # Providers that take updates (schedule or options), as their config decided:
        # the service account's instance, else what users' accounts are built with.
        capabilities = {
            n: (self.providers[n] if n in self.providers else self.per_user[n]).capabilities
            for n in self.enabled
        }
        self.scheduled = frozenset(n for n, c in capabilities.items() if c.schedule or c.options)
        self.mailing: Mailing | None = None
        if settings.mail["enabled"]:
            from radicale_meetplugin.mail.mailing import Mailing

            self.mailing = Mailing(settings, store)
        self.mailer: Mailer | None = None  # bootstrap puts the SMTP sender here for the outbox
        self.groups: Groups = no_groups  # bootstrap: users' groups for `users = @group`
        self.state_dir = ""  # bootstrap: the folder of the local state files (secrets, ids)

    def attach_calendars(self, calendars: Calendars) -> None:
        """The shell knows its users' calendars: with [scheduling] enabled, schedule."""
        if not self.settings.scheduling["enabled"]:
            return
        if self.mailing is None:
            from radicale_meetplugin.mail.mailing import Mailing

            self.mailing = Mailing(self.settings, self.store)
        self.mailing.calendars = calendars
        logger.info(
            "meetplugin: scheduling on (RFC 6638): local attendees %s, e-mails %s",
            "get invitations in their calendar"
            if self.settings.scheduling["local_delivery"]
            else "are mailed like others",
            "on" if self.settings.mail["enabled"] else "off",
        )

    @property
    def scheduling(self) -> bool:
        """The server schedules organizers' events (RFC 6638)."""
        return self.mailing is not None and self.mailing.calendars is not None

    # --- facts -------------------------------------------------------------

    def provider_for(self, name: str, owner: str) -> Provider | None:
        """The owner's own account at the provider, else the service account, else None."""
        source = self.per_user.get(name)
        mine = source.get(owner) if source is not None else None
        return mine or self.providers.get(name)

    def may_create(self, name: str, owner: str) -> bool:
        """The provider's `users` allow-list lets the owner create rooms (own credentials do)."""
        options = self.settings.providers.get(name)
        entries = options.values.get("users", ()) if options else ()
        if not entries or allowed(entries, owner, self.groups):
            return True
        source = self.per_user.get(name)
        return source is not None and source.get(owner) is not None

    def label(self, provider: str) -> str:
        plugin = self.plugins.get(provider)
        return plugin.label(self.lang) if plugin else provider

    def is_organizer(
        self, cal: icalendar.Calendar, owner: str, writer: str = "", accepted: str = ""
    ) -> bool:
        """The event is organized by whoever may have a conference for it."""
        return self.organizer_check(cal, owner, writer, accepted)[0]

    def organizer_check(
        self, cal: icalendar.Calendar, owner: str, writer: str = "", accepted: str = ""
    ) -> tuple[bool, str]:
        """(is the event organized here, why), for the decision, the log and `explain`.

        The calendar owner organizes an event without ORGANIZER, and one whose
        ORGANIZER is one of the owner's addresses. In a shared calendar, the
        authenticated `writer` organizes it when ORGANIZER is one of the
        writer's addresses. `accepted`: the ORGANIZER a queued job was decided
        for (the writer is not known any more when it settles).
        """
        address = ical.organizer_address(cal)
        if not address:
            return True, "no ORGANIZER: the calendar owner's own event"
        for who in dict.fromkeys(w for w in (owner, writer) if w):
            if self._addresses_match(address, who):
                role = "the calendar owner" if who == owner else "the writer"
                return True, f"ORGANIZER {address} is an address of {who} ({role})"
        if accepted and address == _bare(accepted):
            return True, f"ORGANIZER {address} is the one the conference was asked for"
        known = ", ".join(sorted(self.settings.addresses_of(owner))) or f"login {owner}"
        whose = f"{owner}'s" + (f" or the writer {writer}'s" if writer and writer != owner else "")
        return False, (
            f"ORGANIZER {address} is none of {whose} addresses ({known}): an attendee's copy"
        )

    def _addresses_match(self, address: str, user: str) -> bool:
        mine = self.settings.addresses_of(user)
        if mine:
            return address in mine
        login = user.lower()  # no addresses configured: the login is the address or its name
        return address == login or address.split("@", 1)[0] == login

    def reason_text(
        self,
        error_code: str,
        provider: str = "",
        detail: str = "",
        error: ProviderError | None = None,
    ) -> str:
        return reason_text(
            self.lang, error_code, self.plugins, provider, detail, error, self.enabled
        )

    # --- step 1: under the lock ----------------------------------------------

    def on_put(
        self,
        key: EventKey,
        text: str,
        stored_text: Callable[[], str | None] = lambda: None,
        href: str = "",
        writer: str = "",
    ) -> Decision:
        """Decide and commit: the text to store and the jobs to run."""
        decision = self.decide(key, text, stored_text, href, writer)
        decision.jobs = self.commit(decision.effects)
        return decision

    def decide(
        self,
        key: EventKey,
        text: str,
        stored_text: Callable[[], str | None] = lambda: None,
        href: str = "",
        writer: str = "",
        asks: bool = True,
        keep: bool = False,
    ) -> Decision:
        """Gather -> plan -> apply for one saved event; reads the state, writes nothing.

        `writer`: the authenticated user who saves it, when the shell knows (a
        shared calendar's writer organizes the events whose ORGANIZER is theirs).
        `asks` False: the caller already found `text` unable to ask (`may_ask`
        on the same content): with no record, it is not ours. `keep`: the
        decision also holds the rewritten calendar (`Decision.calendar`), for a
        caller that settles a create on it without parsing the text again.
        """
        record = basis = self.store.get(key)
        if record is None and not (asks and self.may_ask(text)):
            logger.info("meetplugin: %s: ignore: no marker", self._where(key))
            return Decision()  # the fast path: not ours, stored byte for byte
        try:
            cal = ical.parse(text)
        except ical.EventParseError as e:
            logger.warning(
                "meetplugin: %s: cannot read the event, stored as sent: %s", self._where(key), e
            )
            return Decision(basis=basis)
        shot = ical.Snapshot(cal)  # whether the text changes, without serialising it twice
        effects: list[Effect] = []
        if record is None:
            record = self._adoptable(key, cal, effects)
        detection = detect(cal, self.grammar)
        options, bad_word = self._options(cal, detection, record)
        meeting = dataclasses.replace(ical.meeting_of(cal, key), options=options)
        conf = record.conference if record else None
        organizer, why = self.organizer_check(cal, key.owner, writer)
        if not organizer:
            logger.info("meetplugin: %s: left alone: %s", self._where(key), why)
        facts = Facts(
            organizer=organizer,
            detection=detection,
            record=record,
            record_stale=bool(
                record
                and record.state is RecordState.CREATING
                and not self.store.pending_job_for(key, record.attempt)
            ),
            unchanged=bool(
                record
                and (
                    record.state is RecordState.FAILED
                    or (
                        record.state is RecordState.ACTIVE
                        and record.provider in self.scheduled
                        and record.fingerprint != meeting.fingerprint()
                    )
                )
                and self._same(stored_text(), ical.to_text(cal))  # (not rewritten yet)
            ),
            cancelled=ical.is_cancelled(cal),
            invalid_times=ical.ends_before_start(cal),
            link_present=bool(conf and rewrite.link_present(cal, conf.join_url)),
            fingerprint=meeting.fingerprint(),
            enabled=self.enabled,
            scheduled=self.scheduled,
        )
        action = plan(facts)
        if action.kind in (ActionKind.CREATE, ActionKind.REPLACE) and not self.may_create(
            action.provider, key.owner
        ):  # seed 000 §1.1: not on the provider's allow-list; no call
            action = (
                Action(ActionKind.FAIL, action.provider, "not_allowed")
                if action.kind is ActionKind.CREATE
                else Action(ActionKind.KEEP, record.provider if record else action.provider)
            )
        if (
            bad_word
            and action.kind
            in (ActionKind.CREATE, ActionKind.REPLACE, ActionKind.UPDATE, ActionKind.KEEP)
            and facts.organizer
        ):
            action = Action(ActionKind.FAIL, detection.provider, "unknown_option", detail=bad_word)
            if record is not None and record.state is RecordState.ACTIVE:
                action = Action(ActionKind.KEEP, record.provider)  # keep what exists; say nothing
        if not (
            action.kind is ActionKind.KEEP
            and facts.unchanged
            and record is not None
            and record.state is RecordState.ACTIVE
        ):
            effects.extend(self._apply(action, key, cal, record, meeting, href))
        # else: a re-upload of a version whose change failed: kept as stored (its note
        # included), the record as it was, so the next real edit tries the change again
        if self.masks and facts.organizer and action.kind in (ActionKind.IGNORE, ActionKind.CLEAR):
            # never into an attendee's copy: not even a pasted link's CONFERENCE
            links.mark_conferences(cal, links.pasted(cal, self.masks))
        if facts.organizer and self.mailing is not None:
            if self.scheduling and not facts.cancelled:
                self._statuses(key, cal)
            effects.append(Letters(key, cal))
        changes = shot.changes()  # None: components added or removed
        after = ical.to_text(cal) if changes != [] else None
        if detection.note and facts.organizer and action.kind is ActionKind.IGNORE:
            # LOCATION names a service but does not ask for it: say why, once per save.
            logger.info("meetplugin: %s: no conference: %s", self._where(key), detection.note)
        else:
            logger.info(
                "meetplugin: %s: %s%s%s",
                self._where(key),
                action.kind.value,
                f" ({action.provider})" if action.provider else "",
                _why(action, facts),
            )
        return Decision(
            after,
            effects,
            action,
            basis=basis,
            reusable=record is basis,  # an adopted record: read from another calendar
            changes=tuple(changes) if changes else None,
            calendar=cal if keep and after is not None else None,
        )

    def may_ask(self, text: str) -> bool:
        """Cheap test on the raw text: can it hold a marker or a pasted link at all?

        With scheduling on, an event with attendees is always looked at.
        """
        return (
            might_ask(text, self.grammar)
            or self._may_hold_link(text)
            or (self.scheduling and self.schedules(text))
        )

    @staticmethod
    def schedules(text: str) -> bool:
        """Cheap test on the raw text: can it have attendees to schedule?"""
        return "ATTENDEE" in text.upper()

    def commit(self, effects: Sequence[Effect]) -> list[Job]:
        """Write one decision's effects in one transaction; the jobs queued, with their ids.

        An `Expect` or `FinishAttempt` that finds the record changed raises
        `Stale`, and nothing is committed.
        """
        if not effects:
            return []
        jobs: list[Job] = []
        letters = 0
        store = self.store
        with store.transaction():
            for effect in effects:
                if isinstance(effect, PutRecord):
                    store.put(effect.record)
                elif isinstance(effect, DropRecord):
                    jobs.extend(_some(store.drop(effect.key, effect.then)))
                elif isinstance(effect, BeginCreate):
                    jobs.append(
                        store.begin_create(
                            effect.key, effect.provider, effect.fingerprint, effect.job
                        )
                    )
                elif isinstance(effect, QueueJob):
                    jobs.append(store.enqueue(effect.job))
                elif isinstance(effect, MoveRecord):
                    jobs.extend(_some(store.move(effect.old, effect.new)))
                elif isinstance(effect, ShareLetters):
                    store.copy_letters(effect.old, effect.new)
                elif isinstance(effect, ForgetLetters):
                    store.forget_letters(effect.key)
                elif isinstance(effect, Letters):
                    letters += self._mail(effect.key, effect.calendar)
                elif isinstance(effect, Cancellations):
                    letters += self._mail_deleted(effect.key)
                elif isinstance(effect, Expect):
                    if not store.holds(effect.key, effect.record):
                        raise Stale(effect.key)
                elif isinstance(effect, FinishAttempt):
                    stored = store.finish_attempt(effect.key, effect.attempt, effect.record)
                    if not stored and effect.record is not None:  # (forgetting answers False)
                        raise Stale(effect.key)
                elif isinstance(effect, AbandonAttempt):
                    jobs.append(store.abandon_attempt(effect.key, effect.attempt, effect.orphan))
        if letters and self.mailing is not None:
            self.mailing.wake()  # after the commit: the sender must see them
        return jobs

    def _options(
        self, cal: icalendar.Calendar, detection, record: Record | None
    ) -> tuple[tuple[tuple[str, str], ...], str]:
        """(options, an unknown option word or "") from typed words, else the lasting property."""
        provider = detection.provider or (record.provider if record else "")
        plugin = self.plugins.get(provider)
        if plugin is None:
            return (), ""
        words = plugin.words()
        if detection.option_words:
            chosen: dict[str, str] = {}
            for word in detection.option_words:
                if word not in words:
                    return (), word
                key, value = words[word]
                chosen[key] = value
            return tuple(sorted(chosen.items())), ""
        for comp in ical.vevents(cal):
            text = ical.text_of(comp, "X-MEETPLUGIN-OPTIONS")
            if text:
                known = set(words.values())
                return tuple(p for p in rewrite.parse_options(text) if p in known), ""
        return (), ""

    def _may_hold_link(self, text: str) -> bool:
        """Cheap test on the raw text: a pasted meeting link, or our mark of one."""
        if not self.masks or "://" not in text:
            return False
        if "X-MEETPLUGIN-PASTED" in text:
            return True
        # The property name's colon is no part of a link: "LOCATION:https://…" is two words.
        values = " ".join(line.replace(":", " ", 1) for line in ical.unfold(text))
        return any(True for _ in links.find(values.replace("\\n", " "), self.masks))

    def _adoptable(
        self, key: EventKey, cal: icalendar.Calendar, effects: list[Effect]
    ) -> Record | None:
        """The owner's event came here with its conference from another of their calendars.

        A move (PUT here + DELETE there, as Thunderbird does it) or a copy: either
        way this event now refers to the same conference, which lives on until
        the last organizer copy that refers to it goes.
        """
        shown = ""
        for comp in ical.vevents(cal):
            shown = shown or ical.text_of(comp, "X-MEETPLUGIN-CONFERENCE-ID")
        found = self.store.find_adoptable(key, shown) if shown else None
        if found is None:
            return None
        logger.info(
            "meetplugin: %s: refers to the conference of %s", self._where(key), found.key.calendar
        )
        record = dataclasses.replace(found, key=key)
        effects.extend((PutRecord(record), ShareLetters(found.key, key)))
        return record

    def _dropped(self, key: EventKey, conf: Conference | None) -> list[Effect]:
        """Forget this event's record; its conference goes unless another copy holds it."""
        if conf is not None and self.store.sharing(key, conf):
            logger.info(
                "meetplugin: %s: another copy of the event holds the %s conference: it stays",
                self._where(key),
                conf.provider,
            )
            return [DropRecord(key), *([ForgetLetters(key)] if self.mailing is not None else [])]
        return [DropRecord(key, self._delete_job(key, conf) if conf else None)]

    @staticmethod
    def _same(stored: str | None, normalized_new: str) -> bool:
        if stored is None:
            return False
        try:
            return ical.to_text(ical.parse(stored)) == normalized_new
        except ical.EventParseError:
            return False

    def _apply(
        self,
        action: Action,
        key: EventKey,
        cal: icalendar.Calendar,
        record: Record | None,
        meeting: Meeting,
        href: str,
    ) -> list[Effect]:
        """Rewrite `cal` for the action and list what the state must record; no I/O."""
        kind = action.kind
        conf = record.conference if record else None
        if kind is ActionKind.KEEP:
            if record and record.state is RecordState.ACTIVE and conf:
                self._attach(cal, conf, force=False, options=meeting.options)
                if record.fingerprint != meeting.fingerprint():
                    return [
                        PutRecord(dataclasses.replace(record, fingerprint=meeting.fingerprint()))
                    ]
            return []
        if kind is ActionKind.CLEAR:
            rewrite.clear(cal)
            return [DropRecord(key)]
        if kind is ActionKind.FAIL:
            message = self.reason_text(action.error_code, action.provider, action.detail)
            rewrite.explain(cal, message, self.lang)
            return [
                PutRecord(
                    Record(
                        key,
                        action.provider or "-",
                        RecordState.FAILED,
                        fingerprint=meeting.fingerprint(),
                        error_code=action.error_code,
                    )
                )
            ]
        if kind is ActionKind.DELETE:
            rewrite.detach(cal, conf.join_url if conf else "", self.grammar)
            return self._dropped(key, conf)
        if kind in (ActionKind.CREATE, ActionKind.REPLACE):
            provider = self.provider_for(action.provider, key.owner)
            if provider is None:  # enabled, but no credentials for this user
                source = self.per_user.get(action.provider)
                unreadable = getattr(source, "unreadable", None)
                code = (
                    "token_unreadable"
                    if unreadable is not None and unreadable(key.owner)
                    else "no_credentials"
                )
                failed = Action(ActionKind.FAIL, action.provider, code)
                return self._apply(failed, key, cal, record, meeting, href)
            old = conf if kind is ActionKind.REPLACE else None
            stale = tuple(
                u
                for u in (
                    *rewrite.shown_links(cal, self.grammar),
                    *((old.join_url,) if old else ()),
                )
                if u
            )  # links we put there before: replaced, never appended to
            if not provider.capabilities.network:  # computed here (Jitsi): no job, no wait
                new = provider.create(meeting)
                self._attach(cal, new, force=True, old_urls=stale, options=meeting.options)
                active = Record(key, provider.name, RecordState.ACTIVE, new, meeting.fingerprint())
                return [
                    PutRecord(active),
                    *([QueueJob(self._delete_job(key, old))] if old else []),
                ]
            rewrite.pending(
                cal,
                provider.name,
                i18n.text(self.lang, "pending", provider=self.label(provider.name)),
                self.lang,
                self.grammar,
                drop_urls=stale,
            )
            job = Job(0, kind, key, provider.name, meeting=meeting, old=old, href=href)
            return [BeginCreate(key, provider.name, meeting.fingerprint(), job)]
        if kind is ActionKind.UPDATE and record and conf:
            self._attach(cal, conf, force=False, options=meeting.options)
            job = Job(0, kind, key, record.provider, meeting=meeting, conference=conf, href=href)
            return [QueueJob(job)]
        return []  # IGNORE, PENDING

    def on_delete(self, key: EventKey) -> list[Job]:
        """The event is gone from the calendar that holds its record."""
        return self.commit(self.deleted(key))

    def deleted(self, key: EventKey) -> list[Effect]:
        record = self.store.get(key)
        conf = record.conference if record else None
        if conf is not None and self.store.sharing(key, conf):
            return self._dropped(key, conf)  # the other copy goes on: nobody is told
        effects: list[Effect] = [Cancellations(key)] if self.mailing is not None else []
        if record is None:
            return effects
        logger.info("meetplugin: %s: deleted, conference goes too", self._where(key))
        return [*effects, *self._dropped(key, conf)]

    def on_delete_calendar(self, path: str) -> list[Job]:
        effects: list[Effect] = []
        for record in self.store.under(path):
            effects.extend(self.deleted(record.key))
        if self.mailing is not None:  # invitations of events whose link went earlier
            effects.extend(Cancellations(key) for key in self.store.mail_keys_under(path))
        return self.commit(effects)

    def on_move(self, old: EventKey, new: EventKey) -> list[Job]:
        """The conference follows its event; one the move overwrites is deleted."""
        if old == new:
            return []
        if self.store.get(old) is None and (
            self.mailing is None or self.store.mail_state(old) is None
        ):
            return self.on_delete(new)  # nothing moves; whatever was at `new` is gone
        return self.commit([MoveRecord(old, new)])

    # --- step 2: no lock ---------------------------------------------------

    def call(self, job: Job) -> Outcome:
        """One provider call for the job; errors come back in the outcome."""
        provider = self.provider_for(job.provider, job.key.owner)
        if provider is None:  # disabled since: a delete waits for it to come back
            return Outcome(
                error=ProviderError("provider_disabled", temporary=job.kind is ActionKind.DELETE)
            )
        try:
            with self._slots:
                if job.kind in (ActionKind.CREATE, ActionKind.REPLACE):
                    assert job.meeting is not None
                    return Outcome(conference=provider.create(job.meeting))
                assert job.conference is not None
                if job.kind is ActionKind.UPDATE:
                    assert job.meeting is not None
                    return Outcome(conference=provider.update(job.conference, job.meeting))
                provider.delete(job.conference)
                return Outcome(conference=job.conference)
        except ProviderError as e:
            return Outcome(error=e)
        except Exception as e:  # a bug must not lose the event
            logger.error(
                "meetplugin: %s: %s %s failed unexpectedly: %s",
                self._where(job.key),
                job.provider,
                job.kind.value,
                type(e).__name__,
            )
            return Outcome(error=ProviderError("unavailable", temporary=True))

    # --- invitation letters (only with [mail] enabled) ----------------------

    def _mail(self, key: EventKey, cal: icalendar.Calendar) -> int:
        """Queue the letters this version of the organizer's event calls for; how many."""
        if self.mailing is None:
            return 0
        try:
            record = self.store.get(key)
            active = record is not None and record.state is RecordState.ACTIVE
            pending = record is not None and record.state is RecordState.CREATING
            return self.mailing.consider(
                key, cal, record.conference if active and record else None, pending
            )
        except Exception:  # letters never cost the event
            logger.exception("meetplugin: %s: invitation e-mails not queued", self._where(key))
            return 0

    def _statuses(self, key: EventKey, cal: icalendar.Calendar) -> None:
        """SCHEDULE-STATUS on the organizer's attendees, in the text about to be stored."""
        import datetime as dt

        from radicale_meetplugin.mail import plan as mail_plan

        assert self.mailing is not None
        try:
            now = dt.datetime.now(dt.UTC)
            if not mail_plan.is_over(cal, now):
                self.mailing.mark_statuses(key, cal)
        except Exception:  # statuses never cost the event
            logger.exception("meetplugin: %s: SCHEDULE-STATUS not set", self._where(key))

    def _mail_deleted(self, key: EventKey) -> int:
        if self.mailing is None:
            return 0
        try:
            return self.mailing.deleted(key)
        except Exception:
            logger.exception("meetplugin: %s: cancellation e-mails not queued", self._where(key))
            return 0


def _why(action: Action, facts: Facts) -> str:
    """Why an event gets no (new) conference, for the admin's log line; "" when it does."""
    kind = action.kind
    if kind is ActionKind.FAIL:
        detail = f" {action.detail}" if action.detail and action.detail != action.provider else ""
        return f": not provisioned: {action.error_code}{detail}"
    if kind is ActionKind.PENDING:
        return ": a provider call for it is under way"
    if kind is ActionKind.CLEAR:
        return ": the marker is gone" if not facts.detection.asked else ": cancelled"
    if kind is ActionKind.KEEP and facts.unchanged:
        return ": the same text again (a re-upload is not a retry)"
    if kind is not ActionKind.IGNORE:
        return ""
    if not facts.organizer:
        return ": attendee copy (the calendar's owner is not the organizer)"
    if facts.cancelled:
        return ": cancelled"
    return ": no marker"


def _bare(value: str) -> str:
    """An ORGANIZER value as `organizer_address` gives it: no `mailto:`, lower-case."""
    text = value.strip()
    if text.lower().startswith("mailto:"):
        text = text[7:]
    return text.strip().lower()


def _some(job: Job | None) -> Iterator[Job]:
    if job is not None:
        yield job
