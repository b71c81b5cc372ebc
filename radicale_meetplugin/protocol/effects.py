"""What one decision asks of the state, as plain data (pure): records, jobs, letters.

The engine's step 1 returns these instead of writing; `Engine.commit` writes
them in one transaction. A unit test can assert the effects of a save with no
database behind it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from radicale_meetplugin.core.ical import Change
from radicale_meetplugin.core.model import Action, ActionKind, EventKey, Job, Record


@dataclass(frozen=True)
class PutRecord:
    """Store this record as it is (insert or replace)."""

    record: Record


@dataclass(frozen=True)
class DropRecord:
    """Forget the record of `key`; with `then`, queue that job (its deletion) atomically."""

    key: EventKey
    then: Job | None = None


@dataclass(frozen=True)
class BeginCreate:
    """Record the intent to create (state CREATING, a new attempt) with its provider job."""

    key: EventKey
    provider: str
    fingerprint: str
    job: Job


@dataclass(frozen=True)
class QueueJob:
    """A provider call to make (an update, or deleting a conference nobody wants)."""

    job: Job


@dataclass(frozen=True)
class MoveRecord:
    """The record, its jobs and its letters' state follow the event from `old` to `new`."""

    old: EventKey
    new: EventKey


@dataclass(frozen=True)
class ShareLetters:
    """A copy of the event at `new` starts from what the people of `old` were told."""

    old: EventKey
    new: EventKey


@dataclass(frozen=True)
class ForgetLetters:
    """This copy goes while another holds the conference: its people hear nothing."""

    key: EventKey


@dataclass(frozen=True)
class Letters:
    """Queue the invitation letters this version of the organizer's event calls for."""

    key: EventKey
    calendar: Any = field(compare=False)  # the icalendar.Calendar as stored


@dataclass(frozen=True)
class Cancellations:
    """The event is gone: whoever holds an invitation gets a cancellation."""

    key: EventKey


@dataclass(frozen=True)
class Expect:
    """The record of `key` must still be `record` (None: none); else nothing is committed."""

    key: EventKey
    record: Record | None


@dataclass(frozen=True)
class FinishAttempt:
    """Store the create attempt's result (None: forget the record); it must still wait for it."""

    key: EventKey
    attempt: str
    record: Record | None


@dataclass(frozen=True)
class AbandonAttempt:
    """The attempt made a conference nobody wants: forget the attempt, queue `orphan`."""

    key: EventKey
    attempt: str
    orphan: Job


class Stale(Exception):
    """An `Expect` or a `FinishAttempt` found the record changed: the commit is rolled back."""


Effect = (
    PutRecord
    | DropRecord
    | BeginCreate
    | QueueJob
    | MoveRecord
    | ShareLetters
    | ForgetLetters
    | Letters
    | Cancellations
    | Expect
    | FinishAttempt
    | AbandonAttempt
)


@dataclass
class Settlement:
    """A create job's outcome worked out on the event as read (nothing written yet).

    `text` is the event's new text (None: leave it); `effects` start with an
    `Expect` of the record it was worked out from, so committing them on a
    record that changed meanwhile fails as a whole (`Stale`).
    """

    key: EventKey
    text: str | None = None
    effects: list[Effect] = field(default_factory=list)
    note: str = ""  # what to log once it is committed
    changes: tuple[Change, ...] | None = None  # what `text` changed (see Decision.changes)


@dataclass
class Decision:
    """Step 1's answer: the text to store (None: as sent), its effects, and after commit its jobs."""

    text: str | None = None
    effects: list[Effect] = field(default_factory=list)
    action: Action = Action(ActionKind.IGNORE)
    jobs: list[Job] = field(default_factory=list)  # filled by Engine.commit (with their ids)
    # What the decision read of the state: it holds as long as the record is still this one.
    basis: Record | None = None
    reusable: bool = True  # False: it also read what a record alone does not show
    # The properties `text` changed, for a shell that edits its own serialisation in
    # place (None: not known, the whole text counts).
    changes: tuple[Change, ...] | None = None
    # The parsed calendar `text` was written from, when the caller asked to keep it
    # (`Engine.decide(keep=True)`) to work on further; whoever takes it owns it.
    calendar: Any = None


__all__ = [
    "AbandonAttempt",
    "BeginCreate",
    "Cancellations",
    "Decision",
    "DropRecord",
    "Effect",
    "Expect",
    "FinishAttempt",
    "ForgetLetters",
    "Letters",
    "MoveRecord",
    "PutRecord",
    "QueueJob",
    "Settlement",
    "ShareLetters",
    "Stale",
]
