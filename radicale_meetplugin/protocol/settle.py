"""Step 3 of the engine: a provider call's outcome into the record and the event as it is now.

A mixin of `protocol.engine.Engine` (as Radicale's application is made of its
parts): it reads the state and the current text, works out the settlement,
and commits it only if the record is still the one it read. No I/O of its
own beyond the state store.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import icalendar

from radicale_meetplugin.core import i18n, ical, rewrite
from radicale_meetplugin.core.detect import Grammar, detect
from radicale_meetplugin.core.model import (
    ActionKind,
    Conference,
    EventKey,
    Job,
    Record,
    RecordState,
)
from radicale_meetplugin.protocol.effects import (
    AbandonAttempt,
    Expect,
    FinishAttempt,
    Letters,
    QueueJob,
    Settlement,
    Stale,
)
from radicale_meetplugin.protocol.ports import Outcome, StateStore
from radicale_meetplugin.providers.base import ProviderError

if TYPE_CHECKING:
    from radicale_meetplugin.mail.mailing import Mailing
    from radicale_meetplugin.protocol.effects import Effect

logger = logging.getLogger("radicale.meetplugin")


class Settling:
    """`settle`, `prepare_settle` and `finish_settle` of the engine, and the helpers both steps use."""

    if TYPE_CHECKING:  # what the engine gives its parts
        store: StateStore
        lang: str
        grammar: Grammar
        scheduled: frozenset[str]
        mailing: Mailing | None

        def commit(self, effects: Sequence[Effect]) -> list[Job]: ...

        def is_organizer(
            self, cal: icalendar.Calendar, owner: str, writer: str = "", accepted: str = ""
        ) -> bool: ...

        def reason_text(
            self,
            error_code: str,
            provider: str = "",
            detail: str = "",
            error: ProviderError | None = None,
        ) -> str: ...

        def label(self, provider: str) -> str: ...

    # --- helpers the engine's decision uses too --------------------------------

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
    def _delete_job(key: EventKey, conf: Conference) -> Job:
        return Job(0, ActionKind.DELETE, key, conf.provider, conference=conf)

    @staticmethod
    def _where(key: EventKey) -> str:
        return f"{key.calendar}/{key.uid}"

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
            with self.store.transaction():
                record = self.store.get(key)
                current = record is not None and self._about(record, job.conference)
                if outcome.conference and record and current:
                    self.store.put(
                        dataclasses.replace(
                            record,
                            conference=outcome.conference,
                            fingerprint=job.meeting.fingerprint() if job.meeting else "",
                        )
                    )
                elif outcome.conference:
                    logger.info(
                        "meetplugin: %s: update of an earlier %s conference done; "
                        "the record is about another one now",
                        self._where(key),
                        job.provider,
                    )
            return (self._note_update(job, outcome, current_text) if current else None), []
        for _try in range(3):  # the record changed between reading and committing: again
            settlement = self.prepare_settle(job, outcome, current_text)
            try:
                return settlement.text, self.finish_settle(settlement)
            except Stale:
                continue
        return None, []

    def _note_update(self, job: Job, outcome: Outcome, current_text: str | None) -> str | None:
        """A failed change is said in the event (the link stays); a later success drops it."""
        if current_text is None:
            return None
        try:
            cal = ical.parse(current_text)
        except ical.EventParseError:
            return None
        if not self.is_organizer(cal, job.key.owner):
            return None
        before = ical.to_text(cal)
        line = None
        if outcome.error is not None:
            # "forbidden" reads "refused to create": the conference exists, it was the change.
            code = "rejected" if outcome.error.code == "forbidden" else outcome.error.code
            reason = self.reason_text(code, job.provider, error=outcome.error)
            line = i18n.text(self.lang, "update_failed", reason=reason)
        rewrite.note_update(cal, line, self.lang)
        after = ical.to_text(cal)
        return after if after != before else None

    @staticmethod
    def _about(record: Record, conference: Conference | None) -> bool:
        """The record is still the active one of the conference a job was for."""
        now = record.conference
        return (
            record.state is RecordState.ACTIVE
            and now is not None
            and conference is not None
            and (now.provider, now.conference_id) == (conference.provider, conference.conference_id)
        )

    def prepare_settle(
        self,
        job: Job,
        outcome: Outcome,
        current_text: str | None,
        parsed: icalendar.Calendar | None = None,
    ) -> Settlement:
        """A create's outcome worked out on the event's current text; reads only.

        No lock is needed: `finish_settle` commits it only if the record is
        still the one read here, so it may be computed while others write.
        `parsed`: `current_text` already parsed (a kept `Decision.calendar`);
        it is changed in place.
        """
        key = job.key
        cal = parsed
        if cal is None and current_text is not None:
            try:
                cal = ical.parse(current_text)
            except ical.EventParseError:
                cal = None
        accepted = job.meeting.organizer if job.meeting else ""
        wanted = cal is not None and self._still_asked(cal, key, job.provider, accepted)
        fingerprint = job.meeting.fingerprint() if job.meeting else ""
        basis = self.store.get(key)
        mine = basis is not None and basis.attempt == job.attempt
        # What `finish_attempt` will find, as `Expect(basis)` makes sure it still is.
        waiting = mine and basis is not None and basis.state is RecordState.CREATING
        done = Settlement(key, effects=[Expect(key, basis)])
        effects = done.effects
        if job.old is not None:  # REPLACE: the old conference goes, whatever became of the new
            effects.append(QueueJob(self._delete_job(key, job.old)))
        conf, error = outcome.conference, outcome.error
        if conf is not None:
            if wanted and waiting:
                assert cal is not None
                record = Record(key, job.provider, RecordState.ACTIVE, conf, fingerprint)
                effects.append(FinishAttempt(key, job.attempt, record))
                shot = ical.Snapshot(cal)
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
                    effects.append(
                        QueueJob(
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
                if self.mailing is not None:
                    effects.append(Letters(key, cal))  # after FinishAttempt: sees it ACTIVE
                changes = shot.changes()
                done.text = ical.to_text(cal) if changes != [] else None
                done.changes = tuple(changes) if changes else None
                done.note = f"{job.provider} conference attached"
                return done
            # Nobody wants it any more (deleted, unmarked, or another attempt won).
            effects.append(AbandonAttempt(key, job.attempt, self._delete_job(key, conf)))
            done.text = self._unpend(cal, key, accepted) if mine and not wanted else None
            done.note = "conference no longer wanted, deleting it"
            return done
        assert error is not None
        if not wanted:
            if waiting:
                effects.append(FinishAttempt(key, job.attempt, None))
            done.text = self._unpend(cal, key, accepted) if mine else None
        elif waiting:
            assert cal is not None
            failed = Record(key, job.provider, RecordState.FAILED, None, fingerprint, error.code)
            effects.append(FinishAttempt(key, job.attempt, failed))
            before = ical.to_text(cal)
            rewrite.explain(cal, self.reason_text(error.code, job.provider, error=error), self.lang)
            after = ical.to_text(cal)
            done.text = after if after != before else None
        return done

    def finish_settle(
        self, settlement: Settlement, write: Callable[[], object] | None = None
    ) -> list[Job]:
        """Commit a settlement's record change and jobs, then `write` the event.

        The caller holds the store's lock and has checked that the event is
        still the version the settlement was worked out on. When the record
        changed since `prepare_settle`, this raises `Stale` and writes
        nothing. The record goes first: the compare-and-set on the attempt
        runs once, for the version about to be written. Were the event write
        to fail after it, the conference is recorded (never made twice, never
        lost) and the event gets its link at its next save; the other order
        could leave a link in the event for a conference the record disowns.
        """
        jobs = self.commit(settlement.effects)
        if settlement.note:
            logger.info("meetplugin: %s: %s", self._where(settlement.key), settlement.note)
        if write is not None:
            write()
        return jobs

    def _still_asked(
        self, cal: icalendar.Calendar, key: EventKey, provider: str, accepted: str = ""
    ) -> bool:
        """Does the organizer's event as it is now still ask for this provider's conference?

        Our own X-MEETPLUGIN-PROVIDER alone does not: clients keep it when a
        person deletes the keyword and the "link will appear" block.
        """
        if not self.is_organizer(cal, key.owner, accepted=accepted) or ical.is_cancelled(cal):
            return False
        detection = detect(cal, self.grammar)
        if detection.provider != provider:
            return False
        return detection.via != "x-provider" or self._shows_block(cal)

    @staticmethod
    def _shows_block(cal: icalendar.Calendar) -> bool:
        return any(
            rewrite.split_description(ical.text_of(comp, "DESCRIPTION"))[1]
            for comp in ical.vevents(cal)
        )

    def _unpend(
        self, cal: icalendar.Calendar | None, key: EventKey, accepted: str = ""
    ) -> str | None:
        """The create is not wanted any more: the "link will appear" marks go (organizer only)."""
        if cal is None or not self.is_organizer(cal, key.owner, accepted=accepted):
            return None
        before = ical.to_text(cal)
        if "X-MEETPLUGIN-STATUS:pending" not in before and not self._shows_block(cal):
            return None
        rewrite.clear(cal)
        for comp in ical.vevents(cal):
            comp.pop("X-MEETPLUGIN-PROVIDER", None)
        after = ical.to_text(cal)
        return after if after != before else None


__all__ = ["Settling"]
