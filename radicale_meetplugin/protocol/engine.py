"""The pipeline around one event change: detect -> plan -> provision -> rewrite.

Shells (the Radicale adapter, the bridge) use it in three steps:

1. ``on_put`` / ``on_delete`` / ``on_move`` while they hold their storage lock:
   pure decisions, the record and the outbox jobs written in one transaction,
   no network. They return the text to store and the jobs to run.
2. ``call(job)`` with no lock held: one provider call (the outbox runs it).
3. ``settle(job, outcome, current_text)`` under the lock again: the record is
   updated and the event's *current* text gets the link (or the explanation).
   Nothing a person typed meanwhile is overwritten.

With ``[mail] enabled``, steps 1 and 3 also queue the invitation letters
(`mailing.py`) for an organizer's event whose link is in place, and the
cancellations when it is cancelled or deleted; the outbox sends them.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

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
from radicale_meetplugin.mail.mailing import Mailing
from radicale_meetplugin.providers import (
    Capabilities,
    Provider,
    ProviderError,
    ProviderPlugin,
    reason_text,
)
from radicale_meetplugin.state.records import RecordStore

logger = logging.getLogger("radicale.meetplugin")


class UserSource(Protocol):
    capabilities: Capabilities  # decided by the provider's config, like an instance's

    def get(self, user: str) -> Provider | None: ...


@dataclass
class Outcome:
    conference: Conference | None = None
    error: ProviderError | None = None


@dataclass
class Decision:
    text: str | None = None  # what to store instead of what was sent; None: as sent
    jobs: list[Job] = field(default_factory=list)  # queued provider calls
    action: Action = Action(ActionKind.IGNORE)


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


class Engine:
    def __init__(
        self,
        settings: Settings,
        providers: Mapping[str, Provider],
        plugins: Mapping[str, ProviderPlugin],
        store: RecordStore,
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
        self.mailing = Mailing(settings, store) if settings.mail["enabled"] else None
        self.mailer = None  # bootstrap puts the SMTP sender here for the outbox

    # --- facts -------------------------------------------------------------

    def provider_for(self, name: str, owner: str) -> Provider | None:
        """The owner's own account at the provider, else the service account, else None."""
        source = self.per_user.get(name)
        mine = source.get(owner) if source is not None else None
        return mine or self.providers.get(name)

    def label(self, provider: str) -> str:
        plugin = self.plugins.get(provider)
        return plugin.label(self.lang) if plugin else provider

    def is_organizer(self, cal: icalendar.Calendar, owner: str) -> bool:
        """The calendar owner organizes the event (no ORGANIZER: it is theirs)."""
        address = ical.organizer_address(cal)
        if not address:
            return True
        mine = self.settings.addresses_of(owner)
        if mine:
            return address in mine
        return address.split("@", 1)[0] == owner.lower()

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
    ) -> Decision:
        record = self.store.get(key)
        if record is None and not might_ask(text, self.grammar) and not self._may_hold_link(text):
            return Decision()  # the fast path: not ours, stored byte for byte
        try:
            cal = ical.parse(text)
        except ical.EventParseError as e:
            logger.warning(
                "meetplugin: %s: cannot read the event, stored as sent: %s", self._where(key), e
            )
            return Decision()
        before = ical.to_text(cal)
        if record is None:
            record = self._adopt(key, cal)
        detection = detect(cal, self.grammar)
        options, bad_word = self._options(cal, detection, record)
        meeting = dataclasses.replace(ical.meeting_of(cal, key), options=options)
        conf = record.conference if record else None
        facts = Facts(
            organizer=self.is_organizer(cal, key.owner),
            detection=detection,
            record=record,
            record_stale=bool(
                record
                and record.state is RecordState.CREATING
                and not self.store.pending_job_for(key, record.attempt)
            ),
            unchanged=bool(
                record and record.state is RecordState.FAILED and self._same(stored_text(), before)
            ),
            cancelled=ical.is_cancelled(cal),
            invalid_times=ical.ends_before_start(cal),
            link_present=bool(conf and rewrite.link_present(cal, conf.join_url)),
            fingerprint=meeting.fingerprint(),
            enabled=self.enabled,
            scheduled=self.scheduled,
        )
        action = plan(facts)
        if (
            bad_word
            and action.kind
            in (ActionKind.CREATE, ActionKind.REPLACE, ActionKind.UPDATE, ActionKind.KEEP)
            and facts.organizer
        ):
            action = Action(ActionKind.FAIL, detection.provider, "unknown_option", detail=bad_word)
            if record is not None and record.state is RecordState.ACTIVE:
                action = Action(ActionKind.KEEP, record.provider)  # keep what exists; say nothing
        jobs = self._act(action, key, cal, record, meeting, href)
        if self.masks and action.kind in (ActionKind.IGNORE, ActionKind.CLEAR):
            links.mark_conferences(cal, links.pasted(cal, self.masks))
        if facts.organizer:
            self._mail(key, cal)
        after = ical.to_text(cal)
        if action.kind not in (ActionKind.IGNORE, ActionKind.PENDING):
            logger.info(
                "meetplugin: %s: %s%s",
                self._where(key),
                action.kind.value,
                f" ({action.provider})" if action.provider else "",
            )
        return Decision(after if after != before else None, jobs, action)

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
        unfolded = text.replace("\r\n ", "").replace("\r\n\t", "").replace("\n ", "")
        return any(True for _ in links.find(unfolded.replace("\\n", " "), self.masks))

    def _adopt(self, key: EventKey, cal: icalendar.Calendar) -> Record | None:
        """The owner moved this event here from another of their calendars by PUT + DELETE."""
        shown = ""
        for comp in ical.vevents(cal):
            shown = shown or ical.text_of(comp, "X-MEETPLUGIN-CONFERENCE-ID")
        record = self.store.adopt(key, shown) if shown else None
        if record is not None:
            logger.info(
                "meetplugin: %s: conference taken over from %s",
                self._where(key),
                "another calendar of the owner",
            )
        return record

    @staticmethod
    def _same(stored: str | None, normalized_new: str) -> bool:
        if stored is None:
            return False
        try:
            return ical.to_text(ical.parse(stored)) == normalized_new
        except ical.EventParseError:
            return False

    def _act(
        self,
        action: Action,
        key: EventKey,
        cal: icalendar.Calendar,
        record: Record | None,
        meeting: Meeting,
        href: str,
    ) -> list[Job]:
        kind = action.kind
        conf = record.conference if record else None
        if kind is ActionKind.KEEP:
            if record and record.state is RecordState.ACTIVE and conf:
                self._attach(cal, conf, force=False, options=meeting.options)
                if record.fingerprint != meeting.fingerprint():
                    self.store.put(dataclasses.replace(record, fingerprint=meeting.fingerprint()))
            return []
        if kind is ActionKind.CLEAR:
            rewrite.clear(cal)
            self.store.drop(key)
            return []
        if kind is ActionKind.FAIL:
            message = self.reason_text(action.error_code, action.provider, action.detail)
            rewrite.explain(cal, message, self.lang)
            self.store.put(
                Record(
                    key,
                    action.provider or "-",
                    RecordState.FAILED,
                    fingerprint=meeting.fingerprint(),
                    error_code=action.error_code,
                )
            )
            logger.warning("meetplugin: %s: no conference: %s", self._where(key), action.error_code)
            return []
        if kind is ActionKind.DELETE:
            rewrite.detach(cal, conf.join_url if conf else "", self.grammar)
            job = self.store.drop(key, self._delete_job(key, conf) if conf else None)
            return [job] if job else []
        if kind in (ActionKind.CREATE, ActionKind.REPLACE):
            provider = self.provider_for(action.provider, key.owner)
            if provider is None:  # enabled, but no credentials for this user
                return self._act(
                    Action(ActionKind.FAIL, action.provider, "no_credentials"),
                    key,
                    cal,
                    record,
                    meeting,
                    href,
                )
            old = conf if kind is ActionKind.REPLACE else None
            stale = tuple(
                u
                for u in (
                    *rewrite.shown_links(cal, self.grammar),
                    *((old.join_url,) if old else ()),
                )
                if u
            )  # links we put there before: replaced, never appended to
            if not provider.capabilities.network:
                new = provider.create(meeting)
                self._attach(cal, new, force=True, old_urls=stale, options=meeting.options)
                self.store.put(
                    Record(key, provider.name, RecordState.ACTIVE, new, meeting.fingerprint())
                )
                return [self.store.enqueue(self._delete_job(key, old))] if old else []
            rewrite.pending(
                cal,
                provider.name,
                i18n.text(self.lang, "pending", provider=self.label(provider.name)),
                self.lang,
                self.grammar,
                drop_urls=stale,
            )
            job = self.store.begin_create(
                key,
                provider.name,
                meeting.fingerprint(),
                Job(0, kind, key, provider.name, meeting=meeting, old=old, href=href),
            )
            return [job]
        if kind is ActionKind.UPDATE and record and conf:
            self._attach(cal, conf, force=False, options=meeting.options)
            return [
                self.store.enqueue(
                    Job(0, kind, key, record.provider, meeting=meeting, conference=conf, href=href)
                )
            ]
        return []  # IGNORE, PENDING

    @staticmethod
    def _delete_job(key: EventKey, conf: Conference) -> Job:
        return Job(0, ActionKind.DELETE, key, conf.provider, conference=conf)

    def on_delete(self, key: EventKey) -> list[Job]:
        """The event is gone from the calendar that holds its record."""
        self._mail_deleted(key)
        record = self.store.get(key)
        if record is None:
            return []
        logger.info("meetplugin: %s: deleted, conference goes too", self._where(key))
        conf = record.conference
        job = self.store.drop(key, self._delete_job(key, conf) if conf else None)
        return [job] if job else []

    def on_delete_calendar(self, path: str) -> list[Job]:
        jobs: list[Job] = []
        for record in self.store.under(path):
            jobs.extend(self.on_delete(record.key))
        if self.mailing is not None:  # invitations of events whose link went earlier
            for key in self.store.mail_keys_under(path):
                self._mail_deleted(key)
        return jobs

    def on_move(self, old: EventKey, new: EventKey) -> list[Job]:
        """The conference follows its event; one the move overwrites is deleted."""
        if old == new:
            return []
        if self.store.get(old) is None and (
            self.mailing is None or self.store.mail_state(old) is None
        ):
            return self.on_delete(new)  # nothing moves; whatever was at `new` is gone
        job = self.store.move(old, new)
        return [job] if job else []

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

    # --- step 3: under the lock again --------------------------------------

    def settle(
        self, job: Job, outcome: Outcome, current_text: str | None
    ) -> tuple[str | None, list[Job]]:
        """Put a final outcome into the record and into the event as it is now.

        Returns the event's new text (None: leave it) and newly queued jobs
        (deleting a conference nobody wants any more).
        """
        key = job.key
        if job.kind is ActionKind.DELETE:
            if outcome.error is None:
                logger.info("meetplugin: %s: %s conference deleted", self._where(key), job.provider)
            else:
                logger.warning(
                    "meetplugin: %s: %s conference not deleted: %s",
                    self._where(key),
                    job.provider,
                    outcome.error,
                )
            return None, []
        if job.kind is ActionKind.UPDATE:
            record = self.store.get(key)
            if outcome.conference and record and record.state is RecordState.ACTIVE:
                self.store.put(
                    dataclasses.replace(
                        record,
                        conference=outcome.conference,
                        fingerprint=job.meeting.fingerprint() if job.meeting else "",
                    )
                )
            return None, []
        return self._settle_create(job, outcome, current_text)

    def _settle_create(
        self, job: Job, outcome: Outcome, current_text: str | None
    ) -> tuple[str | None, list[Job]]:
        key = job.key
        cal = None
        if current_text is not None:
            try:
                cal = ical.parse(current_text)
            except ical.EventParseError:
                cal = None
        wanted = (
            cal is not None
            and self.is_organizer(cal, key.owner)
            and not ical.is_cancelled(cal)
            and detect(cal, self.grammar).provider == job.provider
        )
        fingerprint = job.meeting.fingerprint() if job.meeting else ""
        queued: list[Job] = []
        if job.old is not None:  # REPLACE: the old conference goes, whatever became of the new
            queued.append(self.store.enqueue(self._delete_job(key, job.old)))
        conf, error = outcome.conference, outcome.error
        if conf is not None:
            orphan = self._delete_job(key, conf)
            record = Record(key, job.provider, RecordState.ACTIVE, conf, fingerprint)
            if wanted and self.store.finish_attempt(key, job.attempt, record):
                assert cal is not None
                before = ical.to_text(cal)
                self._attach(
                    cal,
                    conf,
                    force=True,
                    old=job.old,
                    old_urls=tuple(
                        u for u in rewrite.shown_links(cal, self.grammar) if u != conf.join_url
                    ),
                    options=job.meeting.options if job.meeting else (),
                )
                # Edited while the create was pending: push the edit to a scheduled provider.
                now = dataclasses.replace(
                    ical.meeting_of(cal, key), options=job.meeting.options if job.meeting else ()
                )
                if job.provider in self.scheduled and now.fingerprint() != fingerprint:
                    queued.append(
                        self.store.enqueue(
                            Job(
                                0,
                                ActionKind.UPDATE,
                                key,
                                job.provider,
                                meeting=now,
                                conference=conf,
                                href=job.href,
                            )
                        )
                    )
                self._mail(key, cal)
                after = ical.to_text(cal)
                logger.info(
                    "meetplugin: %s: %s conference attached", self._where(key), job.provider
                )
                return (after if after != before else None), queued
            # Nobody wants it any more (deleted, unmarked, or another attempt won).
            logger.info(
                "meetplugin: %s: conference no longer wanted, deleting it", self._where(key)
            )
            return None, [*queued, self.store.abandon_attempt(key, job.attempt, orphan)]
        assert error is not None
        failed = Record(key, job.provider, RecordState.FAILED, None, fingerprint, error.code)
        if self.store.finish_attempt(key, job.attempt, failed if wanted else None) and wanted:
            assert cal is not None
            before = ical.to_text(cal)
            rewrite.explain(cal, self.reason_text(error.code, job.provider, error=error), self.lang)
            after = ical.to_text(cal)
            return (after if after != before else None), queued
        return None, queued

    # --- invitation letters (only with [mail] enabled) ----------------------

    def _mail(self, key: EventKey, cal: icalendar.Calendar) -> None:
        """Queue the letters this version of the organizer's event calls for."""
        if self.mailing is None:
            return
        try:
            record = self.store.get(key)
            active = record is not None and record.state is RecordState.ACTIVE
            self.mailing.consider(key, cal, record.conference if active and record else None)
        except Exception:  # letters never cost the event
            logger.exception("meetplugin: %s: invitation e-mails not queued", self._where(key))

    def _mail_deleted(self, key: EventKey) -> None:
        if self.mailing is None:
            return
        try:
            self.mailing.deleted(key)
        except Exception:
            logger.exception("meetplugin: %s: cancellation e-mails not queued", self._where(key))

    # --- helpers -----------------------------------------------------------

    def _attach(
        self,
        cal: icalendar.Calendar,
        conf: Conference,
        force: bool,
        old: Conference | None = None,
        old_urls: tuple[str, ...] = (),
        options: tuple[tuple[str, str], ...] = (),
    ) -> None:
        old_urls = (*old_urls, *((old.join_url,) if old else ()))
        rewrite.attach(
            cal,
            conf,
            self.label(conf.provider),
            self.lang,
            self.grammar,
            force_location=force,
            old_urls=old_urls,
            options=options,
        )

    @staticmethod
    def _where(key: EventKey) -> str:
        return f"{key.calendar}/{key.uid}"
