"""Videomost end to end: a real Radicale with the plugin, the Videomost emulator behind it.

The same lifecycle as TrueConf, through the adapter's default (configurable)
contract; with the default ``client_ids = false`` a create whose answer was
lost is recorded as a suspect, as for Telemost.
"""

from __future__ import annotations

import re
import sqlite3
import uuid

import icalendar
import pytest
from dateutil.rrule import rrulestr
from harness import (
    TOKEN,
    VIDEOMOST_TOKEN,
    edit,
    event,
    plugin_config,
    read,
    settled,
    utc,
    vevent,
)

CAL = "alice/calendar"
VM_TOKEN = VIDEOMOST_TOKEN
JOIN = re.compile(r"https://vm\.example\.ru/service/join/\?confid=([0-9a-f]{32})&confpass=\d+")


@pytest.fixture(scope="module")
def radicale_config(vm) -> str:
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
                "[provider:videomost]",
                "server_url = https://vm.example.ru",
                f"api_url = {vm.api_url}",
                "keywords = вм",
            ]
        )
        + "\n"
    )
    return conf


@pytest.fixture(scope="module")
def radicale_env() -> dict[str, str]:
    return {"TELEMOST_TOKEN": TOKEN, "VIDEOMOST_TOKEN": VM_TOKEN}


@pytest.fixture(scope="module")
def radicale_secrets():
    return lambda: [TOKEN, VM_TOKEN]


def new_path() -> tuple[str, str]:
    uid = f"{uuid.uuid4()}@vm"
    return uid, f"{CAL}/{uid}.ics"


def created(radicale, vm, **kw) -> tuple[str, str, str]:
    uid, path = new_path()
    radicale.put("alice", path, event(uid, location="videomost", **kw))
    conf_id = str(settled(radicale, path)["X-MEETPLUGIN-CONFERENCE-ID"])
    assert conf_id in vm.conferences
    vm.reset()
    return uid, path, conf_id


@pytest.mark.parametrize("location", ["videomost", "Видеомост", "вм"])
def test_keyword_becomes_a_videomost_link(radicale, vm, location):
    uid, path = new_path()
    r = radicale.put(
        "alice",
        path,
        event(
            uid,
            location=location,
            extra="ORGANIZER:mailto:alice@example.com\nATTENDEE:mailto:ivan@example.com",
        ),
    )
    assert r.status_code == 201 and "ETag" not in r.headers
    ev = vevent(read(radicale, path)[0])
    match = JOIN.fullmatch(str(ev["LOCATION"]))
    assert match and match.group(1) == str(ev["X-MEETPLUGIN-CONFERENCE-ID"])
    assert str(ev["CONFERENCE"]) == str(ev["LOCATION"])
    assert "Сервис: Videomost" in str(ev["DESCRIPTION"])
    (post,) = vm.calls_of("POST")
    assert post.body == {
        "name": "Планёрка",
        "start_time": utc(2026, 11, 25, 7),
        "duration": 3600,
        "time_offset": 180,
        "participants": ["ivan@example.com"],
    }
    assert vm.conferences[match.group(1)]["join_url"] == str(ev["LOCATION"])


def _move(ev):
    ev["DTSTART"].dt = ev["DTSTART"].dt.replace(hour=12)
    ev["DTEND"].dt = ev["DTEND"].dt.replace(hour=14)


@pytest.mark.parametrize(
    "change,field,value",
    [
        (_move, "start_time", utc(2026, 11, 25, 9)),
        (lambda ev: ev.__setitem__("SUMMARY", icalendar.vText("Ретро")), "name", "Ретро"),
        (
            lambda ev: ev.add("ATTENDEE", "mailto:petr@example.com"),
            "participants",
            ["petr@example.com"],
        ),
    ],
)
def test_a_change_is_one_update_with_the_new_fields(radicale, vm, change, field, value):
    uid, path, conf_id = created(radicale, vm)
    link = vm.conferences[conf_id]["join_url"]
    mark = radicale.mark()
    edit(radicale, path, change)
    radicale.wait_for_log(f"{uid}: videomost update done", start=mark)
    (put,) = vm.calls_of("PUT")
    assert put.body[field] == value and vm.conferences[conf_id][field] == value
    assert vm.calls_of("POST") == [] and vm.calls_of("DELETE") == []
    assert str(vevent(read(radicale, path)[0])["LOCATION"]) == link


def test_reuploading_the_server_version_makes_no_call(radicale, vm):
    uid, path, conf_id = created(radicale, vm)
    stored = radicale.get("alice", path)
    for _ in range(3):
        r = radicale.put("alice", path, stored.text, **{"If-Match": stored.headers["ETag"]})
        assert r.status_code == 204
    assert vm.calls == []


def _cancel(radicale, path):
    edit(radicale, path, lambda ev: ev.__setitem__("STATUS", icalendar.vText("CANCELLED")))


def _delete(radicale, path):
    assert radicale.delete("alice", path).status_code == 200


def _remove_link(radicale, path):
    def drop(ev):
        ev["LOCATION"] = icalendar.vText("Офис")
        ev.pop("DESCRIPTION")

    edit(radicale, path, drop)


@pytest.mark.parametrize("how", [_cancel, _delete, _remove_link])
def test_cancel_delete_or_removing_the_link_deletes_the_conference(radicale, vm, how):
    uid, path, conf_id = created(radicale, vm)
    mark = radicale.mark()
    how(radicale, path)
    radicale.wait_for_log(f"{uid}: videomost delete done", start=mark)
    assert [c.path.rsplit("/", 1)[1] for c in vm.calls_of("DELETE")] == [conf_id]
    assert conf_id not in vm.conferences


def test_an_attendee_copy_makes_and_deletes_nothing(radicale, vm):
    uid = f"{uuid.uuid4()}@vm"
    text = event(
        uid,
        location="videomost",
        extra="ORGANIZER:mailto:bob@example.com\nATTENDEE:mailto:alice@example.com",
    )
    assert radicale.put("alice", f"{CAL}/{uid}.ics", text).status_code == 201
    assert radicale.delete("alice", f"{CAL}/{uid}.ics").status_code == 200
    assert vm.calls == []


def test_a_series_gets_one_conference_that_works_for_every_occurrence(radicale, vm):
    uid, path = new_path()
    radicale.put(
        "alice", path, event(uid, location="videomost", extra="RRULE:FREQ=DAILY;INTERVAL=3;COUNT=8")
    )
    (post,) = vm.calls_of("POST")
    assert (post.body["start_time"], post.body["duration"]) == (None, None)
    ev = vevent(read(radicale, path)[0])
    conf_id = str(ev["X-MEETPLUGIN-CONFERENCE-ID"])
    for start in rrulestr("FREQ=DAILY;INTERVAL=3;COUNT=8", dtstart=ev["DTSTART"].dt):
        assert vm.joinable(conf_id, start.timestamp() + 60), start


def test_a_lost_create_answer_is_retried_and_recorded_as_a_suspect(radicale, vm):
    """Without client ids the server picks the id: a retry may leave one unused room."""
    before = set(vm.conferences)
    vm.lose_answer_next("POST")
    uid, path = new_path()
    mark = radicale.mark()
    radicale.put("alice", path, event(uid, location="videomost"))
    radicale.wait_for_log(f"{uid}: videomost create done", start=mark)
    ev = vevent(read(radicale, path)[0])
    assert str(ev["X-MEETPLUGIN-CONFERENCE-ID"]) in set(vm.conferences) - before
    assert [c.status for c in vm.calls_of("POST")] == [-1, 201]
    db = sqlite3.connect(radicale.folder / "collections" / ".meetplugin" / "records.sqlite")
    try:
        assert db.execute("SELECT COUNT(*) FROM suspects WHERE uid=?", (uid,)).fetchone()[0] == 1
    finally:
        db.close()
