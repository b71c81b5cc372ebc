"""TrueConf end to end: a real Radicale with the plugin, the TrueConf emulator behind it.

The lifecycle a person sees: a keyword becomes a link; moving, renaming or
changing attendees is one PUT with the new fields; re-uploading changes
nothing; cancelling, deleting or removing the link deletes the conference; an
attendee's copy never touches it; a series gets one conference that works for
every occurrence; and a create whose answer was lost is never made twice.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import uuid

import icalendar
import pytest
from dateutil.rrule import rrulestr
from harness import (
    TOKEN,
    TRUECONF_SECRET,
    edit,
    event,
    plugin_config,
    read,
    settled,
    utc,
    vevent,
)

CAL = "alice/calendar"
SECRET = TRUECONF_SECRET
ORGANIZED = "ORGANIZER:mailto:alice@example.com\nATTENDEE:mailto:ivan@example.com\n"


@pytest.fixture(scope="module")
def radicale_config(tc) -> str:
    conf = plugin_config(
        "http://127.0.0.1:9/v1/telemost-api",
        provider_timeout="5",
        call_timeout="1",
        retry_initial="0.1",
        retry_max_delay="0.5",
    )
    conf += (
        "\n".join(
            [
                "[provider:trueconf]",
                "server_url = https://tc.example.ru",
                f"api_url = {tc.api_url}",
                f"token_url = {tc.token_url}",
                "client_id = meetplugin",
                "default_timezone = Europe/Moscow",
            ]
        )
        + "\n"
    )
    return conf


@pytest.fixture(scope="module")
def radicale_env() -> dict[str, str]:
    return {"TELEMOST_TOKEN": TOKEN, "TRUECONF_CLIENT_SECRET": SECRET}


@pytest.fixture(scope="module")
def radicale_secrets(tc):
    return lambda: [TOKEN, SECRET, *tc.issued]


def new_path() -> tuple[str, str]:
    uid = f"{uuid.uuid4()}@tc"
    return uid, f"{CAL}/{uid}.ics"


def created(radicale, tc, **kw) -> tuple[str, str, str]:
    uid, path = new_path()
    radicale.put("alice", path, event(uid, location="trueconf", **kw))
    conf_id = str(settled(radicale, path)["X-MEETPLUGIN-CONFERENCE-ID"])
    assert conf_id in tc.conferences
    tc.reset()
    return uid, path, conf_id


@pytest.mark.parametrize("location", ["trueconf", "ТруКонф", "Переговорная 5; trueconf"])
def test_keyword_becomes_a_trueconf_link(radicale, tc, location):
    uid, path = new_path()
    r = radicale.put(
        "alice", path, event(uid, location=location, description="Повестка", extra=ORGANIZED)
    )
    assert r.status_code == 201 and "ETag" not in r.headers
    ev = vevent(read(radicale, path)[0])
    conf_id = str(ev["X-MEETPLUGIN-CONFERENCE-ID"])
    url = f"https://tc.example.ru/c/{conf_id}"
    assert str(ev["LOCATION"]) == location.replace("trueconf", url).replace("ТруКонф", url)
    assert str(ev["CONFERENCE"]) == url and str(ev["X-MEETPLUGIN-PROVIDER"]) == "trueconf"
    assert str(ev["DESCRIPTION"]).endswith(
        f"Встреча пройдёт по ссылке: {url}\nСервис: TrueConf\n==="
    )
    (post,) = tc.calls_of("POST")
    assert post.body["id"] == conf_id and post.body["topic"] == "Планёрка"
    assert post.body["schedule"] == {
        "type": 1,
        "start_time": utc(2026, 11, 25, 7),
        "duration": 3600,
        "time_offset": 180,
    }
    assert post.body["invitations"] == [{"id": "ivan"}] and post.body["owner"] == "alice"
    assert tc.conferences[conf_id]["url"] == url


def test_moving_the_event_updates_the_schedule_once(radicale, tc):
    uid, path, conf_id = created(radicale, tc)
    mark = radicale.mark()

    def move(ev):
        ev["DTSTART"].dt = ev["DTSTART"].dt.replace(day=26, hour=15)
        ev["DTEND"].dt = ev["DTEND"].dt.replace(day=26, hour=17)

    edit(radicale, path, move)
    radicale.wait_for_log(f"{uid}: trueconf update done", start=mark)
    (put,) = tc.calls_of("PUT")
    assert put.path.endswith(f"/conferences/{conf_id}")
    assert put.body["schedule"] == {
        "type": 1,
        "start_time": utc(2026, 11, 26, 12),
        "duration": 7200,
        "time_offset": 180,
    }
    assert tc.conferences[conf_id]["schedule"]["start_time"] == utc(2026, 11, 26, 12)
    assert tc.calls_of("POST") == [] and tc.calls_of("DELETE") == []
    # The link is unchanged, and the client's next save of that version is no call.
    ev = vevent(read(radicale, path)[0])
    assert str(ev["LOCATION"]) == f"https://tc.example.ru/c/{conf_id}"
    stored = radicale.get("alice", path)
    radicale.put("alice", path, stored.text, **{"If-Match": stored.headers["ETag"]})
    assert len(tc.calls_of("PUT")) == 1


def test_renaming_updates_the_topic(radicale, tc):
    uid, path, conf_id = created(radicale, tc)
    mark = radicale.mark()
    edit(radicale, path, lambda ev: ev.__setitem__("SUMMARY", icalendar.vText("Ретро")))
    radicale.wait_for_log(f"{uid}: trueconf update done", start=mark)
    (put,) = tc.calls_of("PUT")
    assert put.body["topic"] == "Ретро" and tc.conferences[conf_id]["topic"] == "Ретро"


def test_an_attendee_change_updates_the_invitations(radicale, tc):
    uid, path, conf_id = created(radicale, tc, extra=ORGANIZED)
    mark = radicale.mark()
    edit(radicale, path, lambda ev: ev.add("ATTENDEE", "mailto:petr@example.com"))
    radicale.wait_for_log(f"{uid}: trueconf update done", start=mark)
    (put,) = tc.calls_of("PUT")
    assert put.body["invitations"] == [{"id": "ivan"}, {"id": "petr"}]
    assert [i["id"] for i in tc.conferences[conf_id]["invitations"]] == ["ivan", "petr"]


def test_reuploading_the_server_version_makes_no_call(radicale, tc):
    uid, path, conf_id = created(radicale, tc, extra=ORGANIZED + "RRULE:FREQ=DAILY;COUNT=3")
    stored = radicale.get("alice", path)
    for _ in range(3):
        r = radicale.put("alice", path, stored.text, **{"If-Match": stored.headers["ETag"]})
        assert r.status_code == 204 and r.headers.get("ETag") == stored.headers["ETag"]
    assert tc.calls == []


def test_a_401_midway_renews_the_token_without_failing_the_save(radicale, tc):
    uid, path, conf_id = created(radicale, tc)
    tc.revoke_tokens()
    mark = radicale.mark()
    edit(radicale, path, lambda ev: ev.__setitem__("SUMMARY", icalendar.vText("Новое")))
    radicale.wait_for_log(f"{uid}: trueconf update done after 1 try", start=mark)
    assert [c.status for c in tc.calls_of("PUT")] == [401, 200]
    assert len(tc.calls_of("POST", target="token")) == 1
    assert tc.conferences[conf_id]["topic"] == "Новое"


def _cancel(radicale, path):
    edit(radicale, path, lambda ev: ev.__setitem__("STATUS", icalendar.vText("CANCELLED")))


def _delete(radicale, path):
    assert radicale.delete("alice", path).status_code == 200


def _remove_link(radicale, path):
    def drop(ev):
        ev["LOCATION"] = icalendar.vText("Переговорная 5")
        ev["DESCRIPTION"] = icalendar.vText("")

    edit(radicale, path, drop)


@pytest.mark.parametrize("how", [_cancel, _delete, _remove_link])
def test_cancel_delete_or_removing_the_link_deletes_the_conference(radicale, tc, how):
    uid, path, conf_id = created(radicale, tc)
    mark = radicale.mark()
    how(radicale, path)
    radicale.wait_for_log(f"{uid}: trueconf delete done", start=mark)
    assert [c.path.rsplit("/", 1)[1] for c in tc.calls_of("DELETE")] == [conf_id]
    assert conf_id not in tc.conferences and tc.calls_of("POST") == []


def test_an_attendee_copy_makes_and_deletes_nothing(radicale, tc):
    uid = f"{uuid.uuid4()}@tc"
    text = event(
        uid,
        location="trueconf",
        extra="ORGANIZER:mailto:bob@example.com\nATTENDEE:mailto:alice@example.com",
    )
    assert radicale.put("alice", f"{CAL}/{uid}.ics", text).status_code == 201
    assert radicale.delete("alice", f"{CAL}/{uid}.ics").status_code == 200
    assert tc.calls == []


def test_a_series_gets_one_conference_that_works_for_every_occurrence(radicale, tc):
    uid, path = new_path()
    override = "\n".join(
        [
            "BEGIN:VEVENT",
            f"UID:{uid}",
            "DTSTAMP:20261121T100000Z",
            "RECURRENCE-ID;TZID=Europe/Moscow:20261202T100000",
            "DTSTART;TZID=Europe/Moscow:20261202T160000",
            "DTEND;TZID=Europe/Moscow:20261202T170000",
            "SUMMARY:Планёрка (перенесена)",
            "END:VEVENT",
        ]
    )
    radicale.put(
        "alice",
        path,
        event(uid, location="trueconf", extra="RRULE:FREQ=WEEKLY;COUNT=6", components=override),
    )
    (post,) = tc.calls_of("POST")
    assert post.body["schedule"] == {"type": -1}  # a permanent room, no expiry
    cal, _ = read(radicale, path)
    events = [c for c in cal.subcomponents if c.name == "VEVENT"]
    conf_id = str(events[0]["X-MEETPLUGIN-CONFERENCE-ID"])
    assert {str(e["LOCATION"]) for e in events} == {f"https://tc.example.ru/c/{conf_id}"}
    master = [e for e in events if "RECURRENCE-ID" not in e][0]
    starts = list(rrulestr("FREQ=WEEKLY;COUNT=6", dtstart=master["DTSTART"].dt))
    starts.append(events[1]["DTSTART"].dt)  # the moved occurrence
    for start in starts:
        assert tc.joinable(conf_id, start.timestamp() + 60), start
    # A single event, by contrast, has a one-time slot.
    _uid, _path, single = created(radicale, tc)
    assert tc.joinable(single, utc(2026, 11, 25, 7, 30))
    assert not tc.joinable(single, utc(2026, 12, 2, 7, 30))


def test_a_create_retried_after_a_timeout_never_makes_a_second_conference(radicale, tc):
    before = set(tc.conferences)
    tc.lose_answer_next("POST")  # made at the server, but the answer never comes
    uid, path = new_path()
    mark = radicale.mark()
    r = radicale.put("alice", path, event(uid, location="trueconf", description="Повестка"))
    assert r.status_code == 201
    radicale.wait_for_log(f"{uid}: trueconf create done", start=mark)
    made = set(tc.conferences) - before
    assert len(made) == 1
    assert [c.status for c in tc.calls_of("POST")] == [-1, 409]
    ev = vevent(read(radicale, path)[0])
    assert str(ev["LOCATION"]) == f"https://tc.example.ru/c/{made.pop()}"
    db = sqlite3.connect(radicale.folder / "collections" / ".meetplugin" / "records.sqlite")
    try:  # a provider with our own ids needs no suspect entry
        assert db.execute("SELECT COUNT(*) FROM suspects WHERE uid=?", (uid,)).fetchone()[0] == 0
    finally:
        db.close()


# --- faults on update and delete (the style of test_faults.py) ------------------------------


def _arm(tc, method: str, fault: str) -> None:
    if fault == "timeout":
        tc.hang_next(method)
    elif fault == "token-503":
        tc.revoke_tokens()  # the API says 401, then the token endpoint is down once
        tc.fail_next("POST", 503, {"error": "temporarily_unavailable"}, target="token")
    elif fault == "non-json":
        tc.fail_next(method, 502, raw=b"<html>Bad Gateway</html>")
    elif fault == "429":
        tc.fail_next(
            method,
            429,
            {"error": {"code": 429, "message": "Too Many Requests"}},
            headers={"Retry-After": "1"},
        )
    else:
        tc.fail_next(
            method,
            int(fault),
            {
                "error": {
                    "code": int(fault),
                    "message": "m",
                    "errors": [{"reason": "internalError"}],
                }
            },
        )


FAULTS = ["500", "503", "429", "timeout", "token-503", "non-json"]


@pytest.mark.parametrize("fault", FAULTS)
def test_an_update_survives_a_temporary_fault(radicale, tc, fault):
    uid, path, conf_id = created(radicale, tc)
    _arm(tc, "PUT", fault)
    mark = radicale.mark()
    edit(radicale, path, lambda ev: ev.__setitem__("SUMMARY", icalendar.vText("После сбоя")))
    radicale.wait_for_log(f"{uid}: trueconf update done", start=mark)
    assert tc.conferences[conf_id]["topic"] == "После сбоя"
    assert tc.calls_of("PUT")[-1].status == 200 and tc.calls_of("POST") == []
    if fault == "429":  # Retry-After honoured: the refused call is tried again a second later
        puts = tc.calls_of("PUT")
        refused = next(c for c in puts if c.status == 429)
        assert any(c.at - refused.at >= 1.0 and c.status == 200 for c in puts)


@pytest.mark.parametrize("fault", FAULTS)
def test_a_delete_is_retried_until_done(radicale, tc, fault):
    uid, path, conf_id = created(radicale, tc)
    _arm(tc, "DELETE", fault)
    mark = radicale.mark()
    assert radicale.delete("alice", path).status_code == 200
    radicale.wait_for_log(f"{uid}: trueconf delete done", start=mark)
    assert conf_id not in tc.conferences


def test_an_update_refused_for_good_is_logged_and_the_event_kept(radicale, tc):
    uid, path, conf_id = created(radicale, tc)
    tc.fail_next(
        "PUT",
        403,
        {"error": {"code": 403, "message": "Forbidden", "errors": [{"reason": "forbidden"}]}},
    )
    mark = radicale.mark()
    edit(radicale, path, lambda ev: ev.__setitem__("SUMMARY", icalendar.vText("Запрещено")))
    radicale.wait_for_log(f"{uid}: trueconf update: forbidden", start=mark)
    ev = vevent(read(radicale, path)[0])
    assert str(ev["SUMMARY"]) == "Запрещено"
    assert str(ev["LOCATION"]) == f"https://tc.example.ru/c/{conf_id}"
    assert [c.status for c in tc.calls_of("PUT")] == [403]


def test_reconcile_lists_our_orphans_at_the_server_and_no_one_elses(radicale, tc):
    orphan = "meet_" + "0" * 32  # ours by its prefix, but no event owns it
    tc.conferences[orphan] = {"id": orphan, "topic": "lost", "schedule": {"type": -1}}
    tc.conferences["5576502892"] = {
        "id": "5576502892",
        "topic": "someone else's",
        "schedule": {"type": -1},
    }
    try:
        dry = subprocess.run(
            [
                sys.executable,
                "-m",
                "radicale_meetplugin.cli",
                "reconcile",
                "-C",
                str(radicale.folder / "radicale.conf"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "TELEMOST_TOKEN": TOKEN, "TRUECONF_CLIENT_SECRET": SECRET},
        )
    finally:
        del tc.conferences[orphan], tc.conferences["5576502892"]
    assert f"trueconf conference {orphan} belongs to no event" in dry.stdout, dry.stderr
    assert "5576502892" not in dry.stdout and "trueconf: its API cannot list" not in dry.stdout
    assert [c.query.get("page_id") for c in tc.calls_of("GET")] == ["1"]
    assert SECRET not in dry.stdout + dry.stderr


def test_mode_and_guest_access_chosen_per_event(radicale, tc):
    uid, path = new_path()
    radicale.put("alice", path, event(uid, location="trueconf:селектор+гости", extra=ORGANIZED))
    (post,) = tc.calls_of("POST")
    assert post.body["type"] == 3 and post.body["allow_guests"] is True
    ev = vevent(read(radicale, path)[0])
    assert str(ev["X-MEETPLUGIN-OPTIONS"]) == "guests=yes&mode=selector"
    assert str(ev["LOCATION"]).startswith("https://tc.example.ru/c/")
    uid, path = new_path()
    radicale.put("alice", path, event(uid, location="trueconf", extra=ORGANIZED))
    post = tc.calls_of("POST")[-1]
    assert post.body["type"] == 0 and "allow_guests" not in post.body  # the admin's defaults


def test_an_edit_made_while_the_create_is_pending_reaches_the_server(radicale, tc):
    hold = tc.hold_next("POST")
    uid, path = new_path()
    mark = radicale.mark()
    saver = __import__("threading").Thread(
        target=lambda: radicale.put("alice", path, event(uid, location="trueconf"))
    )
    saver.start()
    try:
        assert hold.entered.wait(30)
        # The create is in flight; the person moves the event meanwhile.
        edited = event(uid, location="trueconf", start="20261127T090000", end="20261127T100000")
        radicale.put("alice", path, edited)
    finally:
        hold.release.set()
        saver.join(30)
    radicale.wait_for_log(f"{uid}: trueconf update done", start=mark)
    (put,) = tc.calls_of("PUT")
    assert put.body["schedule"]["start_time"] == utc(2026, 11, 27, 6)  # 09:00 Moscow
    assert len(tc.calls_of("POST")) == 1
    assert str(vevent(read(radicale, path)[0])["LOCATION"]).startswith("https://tc.example.ru/c/")


@pytest.mark.parametrize(
    "word,mode,expected",
    [
        ("все на экране", "all_on_screen", 0),
        ("all-on-screen", "all_on_screen", 0),
        ("видеоселектор", "selector", 3),
        ("video-selector", "selector", 3),
        ("ролевая", "moderated", 3),
        ("moderated", "moderated", 3),
        ("лекция", "lecture", 1),
        ("lecture", "lecture", 1),
    ],
)
def test_the_seeds_modes_in_russian_and_english(radicale, tc, word, mode, expected):
    uid, path = new_path()
    radicale.put("alice", path, event(uid, location=f"Офис; trueconf:{word}", extra=ORGANIZED))
    (post,) = tc.calls_of("POST")
    assert post.body["type"] == expected and post.status == 200
    ev = vevent(read(radicale, path)[0])
    assert str(ev["X-MEETPLUGIN-OPTIONS"]) == f"mode={mode}"
    assert str(ev["LOCATION"]).startswith("Офис; https://tc.example.ru/c/")


def test_an_outsider_is_not_invited_as_the_namesake_user(radicale, tc):
    people = "\n".join(
        [
            "ORGANIZER:mailto:alice@example.com",
            "ATTENDEE:mailto:alice@example.com",
            "ATTENDEE:mailto:Petr@Example.com",
            "ATTENDEE;CN=Иван Петров:mailto:Ivan.Petrov@partner.ru",
        ]
    )
    uid, path = new_path()
    radicale.put("alice", path, event(uid, location="trueconf", extra=people))
    (post,) = tc.calls_of("POST")
    assert post.body["invitations"] == [{"id": "petr"}]  # not "ivan.petrov"
    conf_id = str(vevent(read(radicale, path)[0])["X-MEETPLUGIN-CONFERENCE-ID"])
    assert [i["id"] for i in tc.conferences[conf_id]["invitations"]] == ["petr"]
