"""Plain data shared by every part of the pipeline (no I/O)."""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class EventKey:
    """What a conference belongs to: (owner, calendar, UID)."""

    owner: str
    calendar: str  # Radicale collection path, e.g. "alice/work"
    uid: str

    def as_text(self) -> str:
        return f"{self.owner}\x1f{self.calendar}\x1f{self.uid}"


@dataclass(frozen=True)
class Meeting:
    """What a provider needs to know about an event."""

    key: EventKey
    summary: str = ""
    start: str = ""  # ISO text with zone (or date for all-day); "" if absent
    end: str = ""
    tzid: str = ""
    rrule: str = ""
    organizer: str = ""
    attendees: tuple[str, ...] = ()
    options: tuple[tuple[str, str], ...] = ()  # per-event provider options, sorted (key, value)
    # More than one occurrence although there is no RRULE (RDATE, or overrides only).
    recurring: bool = False

    def option(self, key: str, default: str = "") -> str:
        return dict(self.options).get(key, default)

    @property
    def repeats(self) -> bool:
        """A series: one conference must serve every occurrence."""
        return bool(self.rrule) or self.recurring

    def fingerprint(self) -> str:
        """Stable digest of the fields a provider with a schedule or options cares about."""
        parts = [
            self.summary,
            self.start,
            self.end,
            self.tzid,
            self.rrule,
            self.organizer,
            *sorted(self.attendees),
            *(f"{k}={v}" for k, v in self.options),
        ]
        if self.recurring:  # only then, so that older fingerprints stay valid
            parts.append("\x1erecurring")
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Conference:
    """A conference that exists at a provider."""

    provider: str
    conference_id: str
    join_url: str
    extra: Mapping[str, str] = field(default_factory=dict)


class RecordState(str, enum.Enum):
    CREATING = "creating"  # intent recorded, provider call in flight
    ACTIVE = "active"  # conference exists and is attached to the event
    FAILED = "failed"  # the provider refused; explanation is in the event


@dataclass(frozen=True)
class Record:
    """Server-side truth: which conference belongs to which event."""

    key: EventKey
    provider: str
    state: RecordState
    conference: Conference | None = None
    fingerprint: str = ""
    error_code: str = ""
    attempt: str = ""  # id of the in-flight attempt (CREATING)
    updated_at: float = 0.0


class ActionKind(str, enum.Enum):
    IGNORE = "ignore"  # not ours: store exactly as sent
    KEEP = "keep"  # conference stays; refresh what the event shows
    CREATE = "create"
    UPDATE = "update"  # push schedule/topic/attendees to the provider
    REPLACE = "replace"  # delete the old conference, create one at another provider
    DELETE = "delete"  # delete the conference, strip it from a still-existing event
    FAIL = "fail"  # store as sent with an explanation, no provider call
    CLEAR = "clear"  # the user gave up after a failure: drop the explanation
    PENDING = "pending"  # a call for this event is in flight: store as sent


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    provider: str = ""
    error_code: str = ""
    detail: str = ""  # extra words for the explanation (e.g. the unknown name)


@dataclass(frozen=True)
class Job:
    """A provider call in the outbox: durable, retried until done or given up."""

    id: int
    kind: ActionKind  # CREATE, REPLACE, UPDATE or DELETE
    key: EventKey
    provider: str
    attempt: str = ""  # CREATE/REPLACE: the record's attempt id
    meeting: Meeting | None = None
    conference: Conference | None = None  # UPDATE/DELETE: the one to act on
    old: Conference | None = None  # REPLACE: deleted once the new one exists
    href: str = ""  # where the event is stored ("" = find by UID)
    tries: int = 0
    created_at: float = 0.0
    last_error: str = ""
    interrupted: bool = False  # an earlier run died mid-call: its outcome is unknown
