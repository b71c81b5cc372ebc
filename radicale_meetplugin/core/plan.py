"""What to do with one event change: the lifecycle rules as one pure function.

The engine gathers the facts (`Facts`); `plan` decides one `Action`. Every rule
of DESIGN.md "Lifecycle rules" is a row here and a row in tests/unit/test_plan.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from radicale_meetplugin.core.detect import Detection
from radicale_meetplugin.core.model import Action, ActionKind, Record, RecordState


@dataclass(frozen=True)
class Facts:
    deleted: bool = False  # the event is gone (DELETE, or absent from an imported calendar)
    organizer: bool = True  # the calendar owner organizes it (no ORGANIZER counts as theirs)
    detection: Detection = field(default_factory=Detection)
    record: Record | None = None  # the server-side record for (owner, calendar, UID)
    record_stale: bool = False  # a CREATING record whose attempt was abandoned (crash, timeout)
    unchanged: bool = False  # the client sent back exactly what is stored (a re-upload)
    cancelled: bool = False  # STATUS:CANCELLED on the series, not one occurrence
    invalid_times: bool = False  # ends before it starts
    link_present: bool = True  # the record's join URL is still in LOCATION or DESCRIPTION
    fingerprint: str = ""  # Meeting.fingerprint() of the new event
    enabled: frozenset[str] = frozenset()  # providers usable now
    scheduled: frozenset[str] = frozenset()  # providers that take time/topic/attendee updates


def _ask(facts: Facts) -> Action:
    """A new request for a conference, checked before any provider call."""
    det = facts.detection
    if det.unknown:
        return Action(ActionKind.FAIL, error_code="unknown_provider", detail=det.unknown)
    if det.provider not in facts.enabled:
        return Action(ActionKind.FAIL, det.provider, "provider_disabled", detail=det.provider)
    if facts.invalid_times:
        return Action(ActionKind.FAIL, det.provider, "invalid_times")
    return Action(ActionKind.CREATE, det.provider)


def plan(facts: Facts) -> Action:
    rec, det = facts.record, facts.detection
    if facts.deleted:
        # Only the calendar that holds the record can lose it: an attendee's copy has none.
        return Action(ActionKind.DELETE, rec.provider) if rec else Action(ActionKind.IGNORE)
    if not facts.organizer:
        return Action(ActionKind.IGNORE)  # attendee copy: never create, update or delete

    if rec is None:
        if not det.asked or facts.cancelled:
            return Action(ActionKind.IGNORE)
        return _ask(facts)

    if rec.state is RecordState.CREATING and not facts.record_stale:
        return Action(ActionKind.PENDING, rec.provider)

    if rec.state is not RecordState.ACTIVE:  # FAILED, or an abandoned attempt
        if not det.asked or facts.cancelled:
            return Action(ActionKind.CLEAR, rec.provider)
        if facts.unchanged and rec.state is RecordState.FAILED:
            return Action(ActionKind.KEEP, rec.provider)  # a re-upload is not a retry
        return _ask(facts)

    # ACTIVE
    if facts.cancelled:
        return Action(ActionKind.DELETE, rec.provider)
    switching = (
        det.provider and det.provider != rec.provider and (det.fresh or det.via == "x-provider")
    )
    if switching and det.provider in facts.enabled and not facts.invalid_times:
        return Action(ActionKind.REPLACE, det.provider)
    retyped = det.fresh and det.provider == rec.provider
    if not facts.link_present and not retyped:
        return Action(ActionKind.DELETE, rec.provider)
    if (
        rec.provider in facts.scheduled
        and facts.fingerprint != rec.fingerprint
        and not facts.unchanged  # a re-upload (of a failed change's note) is not a retry
    ):
        return Action(ActionKind.UPDATE, rec.provider)
    return Action(ActionKind.KEEP, rec.provider)
