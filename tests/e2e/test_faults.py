"""Fault injection: every provider failure, for create and delete, against a real Radicale.

Each case asserts: the event is stored at once (nothing lost), the link arrives
later (temporary faults) or an explanation stays (permanent ones), the provider
holds exactly the right number of conferences, and no secret reaches the log.
Telemost rooms are timeless, so it has no update call to break. The module runs on both
state engines (sqlite, PostgreSQL).
"""

from __future__ import annotations

import time
import uuid

import pytest
from harness import event, plugin_config, read, vevent

CAL = "alice/calendar"


@pytest.fixture(scope="module")
def radicale_config(telemost, module_state_url) -> str:
    # The shared `radicale` checks at the end: no secret in the log, at any level, in any
    # case below; no Traceback; one engine, one outbox per process.
    return plugin_config(
        telemost.url,
        provider_timeout="2",
        call_timeout="1",
        retry_initial="0.1",
        retry_max_delay="0.5",
        state_url=module_state_url,
    )


def jobs_left(radicale) -> int:
    db = radicale.state()
    try:
        return db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
    finally:
        db.close()


def suspects_of(radicale, uid: str) -> int:
    db = radicale.state()
    try:
        return db.execute("SELECT COUNT(*) FROM suspects WHERE uid=?", (uid,)).fetchone()[0]
    finally:
        db.close()


def html(status):
    return dict(status=status, raw=b"<html><body>Bad Gateway</body></html>")


def telemost_error(status, code):
    return dict(status=status, body={"error": code, "description": "d", "message": "m"})


TEMPORARY = {
    "timeout": None,
    "refused": None,
    "500": telemost_error(500, "InternalError"),
    "502": html(502),
    "503": telemost_error(503, "ServiceUnavailable"),
    "429": dict(status=429, body={"error": "TooManyRequests"}, headers={"Retry-After": "1"}),
    "non-json": None,
}
PERMANENT = {
    "401": telemost_error(401, "UnauthorizedError"),
    "403": telemost_error(403, "ApiRestrictedToOrganizations"),
}


def arm(telemost, method: str, fault: str) -> None:
    if fault == "timeout":
        telemost.hang_next(method)
    elif fault == "refused":
        telemost.down()
    elif fault == "non-json":
        if method == "POST":
            telemost.fail_next("POST", 201, raw=b"<html>created?</html>")
        else:
            telemost.fail_next(method, 502, raw=b"<html>proxy</html>")
    else:
        telemost.fail_next(method, **(TEMPORARY.get(fault) or PERMANENT[fault]))


@pytest.mark.parametrize("fault", TEMPORARY)
def test_create_survives_a_temporary_fault(radicale, telemost, fault):
    before = set(telemost.conferences)
    telemost.calls.clear()
    uid = f"{uuid.uuid4()}@faults"
    path = f"{CAL}/{uid}.ics"
    mark = radicale.mark()
    arm(telemost, "POST", fault)
    try:
        r = radicale.put("alice", path, event(uid, location="telemost", description="Повестка"))
        assert r.status_code == 201
        ev = vevent(read(radicale, path)[0])  # stored at once, the person's text intact
        assert str(ev["DESCRIPTION"]).startswith("Повестка")
    finally:
        if fault == "refused":
            telemost.up()
    radicale.wait_for_log(f"{uid}: telemost create done", start=mark)
    made = set(telemost.conferences) - before
    assert len(made) == 1, "exactly one conference for the event"
    ev = vevent(read(radicale, path)[0])
    assert str(ev["LOCATION"]) == telemost.conferences[made.pop()]["join_url"]
    if fault == "429":
        first, second = telemost.calls_of("POST")[:2]
        assert second.at - first.at >= 1.0  # Retry-After honoured
    assert jobs_left(radicale) == 0
    # A call that may have reached Telemost (no answer, or an unreadable 2xx) is recorded.
    assert suspects_of(radicale, uid) == (1 if fault in ("timeout", "non-json") else 0)


@pytest.mark.parametrize("fault", PERMANENT)
def test_create_refused_for_good_leaves_an_explanation(radicale, telemost, fault):
    before = set(telemost.conferences)
    uid = f"{uuid.uuid4()}@faults"
    path = f"{CAL}/{uid}.ics"
    mark = radicale.mark()
    arm(telemost, "POST", fault)
    radicale.put("alice", path, event(uid, location="telemost", description="Повестка"))
    radicale.wait_for_log(f"{uid}: telemost create done", start=mark)
    ev = vevent(read(radicale, path)[0])
    assert "Видеовстреча не создана" in str(ev["DESCRIPTION"])
    assert str(ev["X-MEETPLUGIN-STATUS"]) == "error"
    assert set(telemost.conferences) == before
    assert jobs_left(radicale) == 0  # permanent: no more tries


def created(radicale, telemost) -> tuple[str, str, str]:
    uid = f"{uuid.uuid4()}@faults"
    path = f"{CAL}/{uid}.ics"
    radicale.put("alice", path, event(uid, location="telemost"))
    conf_id = str(vevent(read(radicale, path)[0])["X-MEETPLUGIN-CONFERENCE-ID"])
    assert conf_id in telemost.conferences
    return uid, path, conf_id


@pytest.mark.parametrize("fault", TEMPORARY)
def test_delete_is_retried_until_done(radicale, telemost, fault):
    uid, path, conf_id = created(radicale, telemost)
    mark = radicale.mark()
    arm(telemost, "DELETE", fault)
    try:
        assert radicale.delete("alice", path).status_code == 200
        assert radicale.get("alice", path).status_code == 404
    finally:
        if fault == "refused":
            recovered = time.monotonic()
            telemost.up()
    radicale.wait_for_log(f"{uid}: telemost delete done", start=mark)
    assert conf_id not in telemost.conferences
    assert jobs_left(radicale) == 0
    if fault == "refused":
        assert time.monotonic() - recovered < 10


@pytest.mark.parametrize("fault", PERMANENT)
def test_delete_refused_for_good_is_logged(radicale, telemost, fault):
    uid, path, conf_id = created(radicale, telemost)
    mark = radicale.mark()
    arm(telemost, "DELETE", fault)
    assert radicale.delete("alice", path).status_code == 200
    radicale.wait_for_log(f"{uid}: telemost delete done", start=mark)
    assert f"{uid}: telemost conference not deleted" in radicale.log
    assert conf_id in telemost.conferences  # the provider refused: it stays, and the log says so
    assert jobs_left(radicale) == 0
    telemost.conferences.pop(conf_id)
