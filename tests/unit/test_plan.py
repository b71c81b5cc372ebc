"""Every lifecycle rule as a table row: facts in, one action out."""

from __future__ import annotations

import pytest

from radicale_meetplugin.core.detect import Detection
from radicale_meetplugin.core.model import ActionKind as A
from radicale_meetplugin.core.model import Conference, EventKey, Record, RecordState
from radicale_meetplugin.core.plan import Facts, plan

KEY = EventKey("alice", "alice/calendar", "u@t")
CONF = Conference("telemost", "1", "https://telemost.yandex.ru/j/1")
ACTIVE = Record(KEY, "telemost", RecordState.ACTIVE, CONF, "fp")
CREATING = Record(KEY, "telemost", RecordState.CREATING, None, "fp", attempt="a")
FAILED = Record(KEY, "telemost", RecordState.FAILED, None, "fp", "auth")
ENABLED = frozenset({"telemost", "jitsi"})

TELEMOST_TYPED = Detection(provider="telemost", via="location", fresh=True)
TELEMOST_CATEGORY = Detection(provider="telemost", via="categories")
JITSI_TYPED = Detection(provider="jitsi", via="location", fresh=True)
NONE = Detection()


def facts(**kw) -> Facts:
    kw.setdefault("enabled", ENABLED)
    kw.setdefault("fingerprint", "fp")
    return Facts(**kw)


ROWS = [
    # (name, facts, expected kind, expected provider)
    ("new, no marker", facts(), A.IGNORE, ""),
    ("new, marker", facts(detection=TELEMOST_TYPED), A.CREATE, "telemost"),
    ("new, marker, attendee copy", facts(detection=TELEMOST_TYPED, organizer=False), A.IGNORE, ""),
    ("new, marker, cancelled", facts(detection=TELEMOST_TYPED, cancelled=True), A.IGNORE, ""),
    (
        "new, marker, end before start",
        facts(detection=TELEMOST_TYPED, invalid_times=True),
        A.FAIL,
        "telemost",
    ),
    (
        "new, unknown provider",
        facts(detection=Detection(unknown="zoom", via="x-provider")),
        A.FAIL,
        "",
    ),
    (
        "new, provider not set up",
        facts(detection=TELEMOST_TYPED, enabled=frozenset({"jitsi"})),
        A.FAIL,
        "telemost",
    ),
    ("deleted, no record", facts(deleted=True), A.IGNORE, ""),
    ("deleted, record", facts(deleted=True, record=ACTIVE), A.DELETE, "telemost"),
    ("deleted, attendee copy has no record", facts(deleted=True, organizer=False), A.IGNORE, ""),
    ("re-upload, link kept", facts(record=ACTIVE, detection=TELEMOST_CATEGORY), A.KEEP, "telemost"),
    ("edit without marker, link kept", facts(record=ACTIVE), A.KEEP, "telemost"),
    (
        "options changed, scheduled provider",
        facts(record=ACTIVE, fingerprint="new", scheduled=frozenset({"telemost"})),
        A.UPDATE,
        "telemost",
    ),
    (
        "options changed, re-upload of the stored version (a failed change)",
        facts(record=ACTIVE, fingerprint="new", scheduled=frozenset({"telemost"}), unchanged=True),
        A.KEEP,
        "telemost",
    ),
    (
        "time moved, timeless provider",
        facts(record=ACTIVE, fingerprint="moved"),
        A.KEEP,
        "telemost",
    ),
    (
        "time moved, scheduled provider",
        facts(record=ACTIVE, fingerprint="moved", scheduled=frozenset({"telemost"})),
        A.UPDATE,
        "telemost",
    ),
    ("cancelled by organizer", facts(record=ACTIVE, cancelled=True), A.DELETE, "telemost"),
    ("link removed from both", facts(record=ACTIVE, link_present=False), A.DELETE, "telemost"),
    (
        "link removed, only a category left",
        facts(record=ACTIVE, link_present=False, detection=TELEMOST_CATEGORY),
        A.DELETE,
        "telemost",
    ),
    (
        "link removed, keyword typed again",
        facts(record=ACTIVE, link_present=False, detection=TELEMOST_TYPED),
        A.KEEP,
        "telemost",
    ),
    ("another provider typed", facts(record=ACTIVE, detection=JITSI_TYPED), A.REPLACE, "jitsi"),
    (
        "attendee copy with a record is left alone",
        facts(record=ACTIVE, organizer=False, link_present=False),
        A.IGNORE,
        "",
    ),
    ("call in flight", facts(record=CREATING, detection=TELEMOST_TYPED), A.PENDING, "telemost"),
    (
        "abandoned attempt, still asked",
        facts(record=CREATING, record_stale=True, detection=TELEMOST_TYPED),
        A.CREATE,
        "telemost",
    ),
    (
        "failed, re-upload",
        facts(record=FAILED, detection=TELEMOST_TYPED, unchanged=True),
        A.KEEP,
        "telemost",
    ),
    ("failed, edited", facts(record=FAILED, detection=TELEMOST_TYPED), A.CREATE, "telemost"),
    ("failed, marker removed", facts(record=FAILED), A.CLEAR, "telemost"),
    (
        "failed, cancelled",
        facts(record=FAILED, detection=TELEMOST_TYPED, cancelled=True),
        A.CLEAR,
        "telemost",
    ),
    (
        "failed, still invalid",
        facts(record=FAILED, detection=TELEMOST_TYPED, invalid_times=True),
        A.FAIL,
        "telemost",
    ),
]


@pytest.mark.parametrize("name,given,kind,provider", ROWS, ids=[r[0] for r in ROWS])
def test_lifecycle_rule(name, given, kind, provider):
    action = plan(given)
    assert (action.kind, action.provider) == (kind, provider)


def test_failures_name_their_reason():
    assert plan(facts(detection=TELEMOST_TYPED, invalid_times=True)).error_code == "invalid_times"
    unknown = plan(facts(detection=Detection(unknown="zoom", via="x-provider")))
    assert (unknown.error_code, unknown.detail) == ("unknown_provider", "zoom")
    off = plan(facts(detection=TELEMOST_TYPED, enabled=frozenset()))
    assert (off.error_code, off.detail) == ("provider_disabled", "telemost")
