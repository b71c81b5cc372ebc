"""End to end: a real Radicale with the plugin, driven over CalDAV, Telemost emulated.

The lifecycle runs on both state engines: the module's `radicale` keeps its records in
sqlite, then in PostgreSQL.
"""

from __future__ import annotations

import threading
import uuid

import caldav
import icalendar
import pytest
from harness import TOKEN, RadicaleServer, event, plugin_config, read, vevent

CAL = "alice/calendar"


@pytest.fixture(scope="module")
def radicale_config(telemost, module_state_url) -> str:
    return plugin_config(telemost.url, state_url=module_state_url)


def new_path() -> tuple[str, str]:
    uid = f"{uuid.uuid4()}@test"
    return uid, f"{CAL}/{uid}.ics"


def posts(telemost) -> list:
    return telemost.calls_of("POST")


# --- Jitsi, the default -----------------------------------------------------


@pytest.mark.parametrize(
    "keyword", ["jitsi", "Jitsi", "онлайн", "видеовстреча", "online", "ОНЛАЙН"]
)
def test_keyword_becomes_jitsi_link(radicale, telemost, keyword):
    uid, path = new_path()
    r = radicale.put("alice", path, event(uid, location=keyword, description="Обсудим планы"))
    assert r.status_code == 201
    assert "ETag" not in r.headers  # rewritten: the client must fetch the stored version
    cal, _ = read(radicale, path)
    ev = vevent(cal)
    url = str(ev["LOCATION"])
    assert url.startswith("https://meet.jit.si/Meet")
    description = str(ev["DESCRIPTION"])
    assert description.startswith("Обсудим планы\n\n")
    assert description.endswith(f"Встреча пройдёт по ссылке: {url}\nСервис: Jitsi Meet\n===")
    assert str(ev["CONFERENCE"]) == url
    assert ev["CONFERENCE"].params["VALUE"] == "URI"
    assert str(ev["X-MEETPLUGIN-PROVIDER"]) == "jitsi"
    assert str(ev["X-MEETPLUGIN-STATUS"]) == "active"
    assert posts(telemost) == []  # Jitsi makes no network call


def test_jitsi_room_is_stable_and_unguessable_per_event(radicale):
    uid1, path1 = new_path()
    uid2, path2 = new_path()
    radicale.put("alice", path1, event(uid1, location="jitsi"))
    radicale.put("alice", path2, event(uid2, location="jitsi"))
    url1 = str(vevent(read(radicale, path1)[0])["LOCATION"])
    url2 = str(vevent(read(radicale, path2)[0])["LOCATION"])
    assert url1 != url2
    assert uid1.split("@")[0] not in url1


def test_other_location_text_is_kept(radicale):
    uid, path = new_path()
    radicale.put("alice", path, event(uid, location="Переговорная 5; jitsi"))
    location = str(vevent(read(radicale, path)[0])["LOCATION"])
    assert location.startswith("Переговорная 5; https://meet.jit.si/")


# --- unmarked events: Radicale stays Radicale ---------------------------------


def test_unmarked_event_is_stored_byte_for_byte_like_plain_radicale(radicale, plain, telemost):
    uid, path = new_path()
    text = event(
        uid,
        location="Переговорная 5",
        description="Без видеосвязи #важно",
        extra="CATEGORIES:Работа\nX-CUSTOM:1",
    )
    r1, r2 = radicale.put("alice", path, text), plain.put("alice", path, text)
    assert (r1.status_code, r2.status_code) == (201, 201)
    assert r1.headers["ETag"] == r2.headers["ETag"]
    g1, g2 = radicale.get("alice", path), plain.get("alice", path)
    assert g1.content == g2.content
    assert g1.headers["ETag"] == r1.headers["ETag"]
    assert posts(telemost) == []


# --- Telemost ---------------------------------------------------------------

MARKERS = {
    "location": dict(location="telemost"),
    "location-cyrillic": dict(location="Телемост"),
    "tag-in-summary": dict(summary="Планёрка #telemost"),
    "categories": dict(extra="CATEGORIES:Работа,Telemost"),
    "x-meetplugin-provider": dict(extra="X-MEETPLUGIN-PROVIDER:telemost"),
    "x-telemost-required": dict(extra="X-TELEMOST-REQUIRED:TRUE"),
}


@pytest.mark.parametrize("marker", MARKERS)
def test_each_marker_creates_exactly_one_telemost_conference(radicale, telemost, marker):
    uid, path = new_path()
    r = radicale.put("alice", path, event(uid, **MARKERS[marker]))
    assert r.status_code == 201 and "ETag" not in r.headers
    calls = posts(telemost)
    assert len(calls) == 1
    assert calls[0].authorization == f"OAuth {TOKEN}"
    assert calls[0].body == {"waiting_room_level": "ORGANIZATION"}
    ev = vevent(read(radicale, path)[0])
    conf_id = str(ev["X-MEETPLUGIN-CONFERENCE-ID"])
    join_url = telemost.conferences[conf_id]["join_url"]
    assert join_url in str(ev["LOCATION"])
    assert str(ev["X-TELEMOST-CONFERENCE"]) == join_url
    assert str(ev["CONFERENCE"]) == join_url
    assert "Сервис: Яндекс Телемост" in str(ev["DESCRIPTION"])
    assert "#telemost" not in str(ev["SUMMARY"])


def test_caldav_client_round_trip_keeps_one_conference(radicale, telemost):
    client = caldav.DAVClient(url=f"{radicale.url}/alice/", username="alice", password="alice")
    calendar = client.calendar(url=f"{radicale.url}/{CAL}/")
    uid = f"{uuid.uuid4()}@test"
    created = calendar.add_event(event(uid, location="телемост", description="Повестка"))
    created.load()
    ev = created.icalendar_component
    join_url = str(ev["LOCATION"])
    assert join_url.startswith("https://telemost.yandex.ru/j/")
    # The client saves the server's version back, then the person edits the title and time.
    for _ in range(3):
        created.save()
    created.icalendar_component["SUMMARY"] = "Планёрка (перенесена)"
    created.icalendar_component["DTSTART"].dt = created.icalendar_component["DTSTART"].dt.replace(
        hour=15
    )
    created.icalendar_component.pop("DTEND")
    created.save()
    again = calendar.event_by_uid(uid)
    ev = again.icalendar_component
    assert str(ev["LOCATION"]) == join_url
    assert str(ev["SUMMARY"]) == "Планёрка (перенесена)"
    assert len(posts(telemost)) == 1
    assert telemost.calls_of("DELETE") == []
    assert telemost.calls_of("PATCH") == []  # rooms are timeless: moving needs no call


@pytest.mark.parametrize(
    "extra",
    [
        "",
        "RRULE:FREQ=WEEKLY;BYDAY=MO,WE;COUNT=5",
        'ATTENDEE;CN="Иванов, Иван";PARTSTAT=NEEDS-ACTION:mailto:ivan@example.com\n'
        "ORGANIZER;CN=Alice:mailto:alice@example.com",
        "REQUEST-STATUS:2.0;Success",
    ],
)
def test_reupload_of_the_server_version_changes_no_byte(radicale, telemost, extra):
    uid, path = new_path()
    radicale.put(
        "alice", path, event(uid, location="telemost", description="Повестка, итоги", extra=extra)
    )
    stored = radicale.get("alice", path)
    for _ in range(3):
        r = radicale.put("alice", path, stored.text, **{"If-Match": stored.headers["ETag"]})
        assert r.status_code == 204
        assert r.headers.get("ETag") == stored.headers["ETag"]  # not a byte changed
        again = radicale.get("alice", path)
        assert again.content == stored.content
        stored = again
    assert len(posts(telemost)) == 1


def test_organizer_delete_deletes_the_conference(radicale, telemost):
    uid, path = new_path()
    radicale.put("alice", path, event(uid, location="telemost"))
    conf_id = str(vevent(read(radicale, path)[0])["X-MEETPLUGIN-CONFERENCE-ID"])
    assert radicale.delete("alice", path).status_code == 200
    deletes = telemost.calls_of("DELETE")
    assert [c.path.rsplit("/", 1)[1] for c in deletes] == [conf_id]
    assert conf_id not in telemost.conferences


def test_delete_of_a_conference_already_gone_counts_as_done(radicale, telemost):
    uid, path = new_path()
    radicale.put("alice", path, event(uid, location="telemost"))
    conf_id = str(vevent(read(radicale, path)[0])["X-MEETPLUGIN-CONFERENCE-ID"])
    telemost.conferences.pop(conf_id)  # deleted in the Telemost app meanwhile
    assert radicale.delete("alice", path).status_code == 200
    assert [c.status for c in telemost.calls_of("DELETE")] == [404]
    assert "Traceback" not in radicale.log


def test_cancelled_event_deletes_conference_and_drops_bookkeeping(radicale, telemost):
    uid, path = new_path()
    radicale.put("alice", path, event(uid, location="telemost", description="Повестка"))
    r = radicale.put(
        "alice",
        path,
        event(uid, location="telemost", description="Повестка", extra="STATUS:CANCELLED"),
    )
    assert r.status_code == 204
    assert len(telemost.calls_of("DELETE")) == 1
    ev = vevent(read(radicale, path)[0])
    assert str(ev["STATUS"]) == "CANCELLED"
    for name in (
        "CONFERENCE",
        "X-MEETPLUGIN-PROVIDER",
        "X-MEETPLUGIN-CONFERENCE-ID",
        "X-TELEMOST-CONFERENCE",
    ):
        assert name not in ev
    assert str(ev["DESCRIPTION"]) == "Повестка"
    assert len(posts(telemost)) == 1  # cancelled: not created again


def test_removing_the_link_deletes_the_conference(radicale, telemost):
    uid, path = new_path()
    radicale.put("alice", path, event(uid, location="telemost", description="Повестка"))
    cal, etag = read(radicale, path)
    ev = vevent(cal)
    ev["LOCATION"] = icalendar.vText("Переговорная 5")
    ev["DESCRIPTION"] = icalendar.vText("Повестка")
    r = radicale.put("alice", path, cal.to_ical().decode(), **{"If-Match": etag})
    assert r.status_code == 204
    assert len(telemost.calls_of("DELETE")) == 1
    ev = vevent(read(radicale, path)[0])
    assert str(ev["LOCATION"]) == "Переговорная 5"
    assert "X-MEETPLUGIN-CONFERENCE-ID" not in ev and "CONFERENCE" not in ev
    # ...and saving it again creates nothing.
    radicale.put("alice", path, radicale.get("alice", path).text)
    assert len(posts(telemost)) == 1


def test_link_kept_in_description_only_keeps_the_conference(radicale, telemost):
    uid, path = new_path()
    radicale.put("alice", path, event(uid, location="telemost"))
    cal, _ = read(radicale, path)
    vevent(cal)["LOCATION"] = icalendar.vText("Переговорная 5")
    radicale.put("alice", path, cal.to_ical().decode())
    ev = vevent(read(radicale, path)[0])
    assert str(ev["LOCATION"]) == "Переговорная 5"  # the person's choice stays
    assert telemost.calls_of("DELETE") == []


# --- attendee copies --------------------------------------------------------


def test_attendee_copy_is_never_provisioned_nor_deleted(radicale, telemost):
    uid, path = new_path()
    text = event(
        uid,
        location="telemost",
        extra="ORGANIZER;CN=Bob:mailto:bob@example.com\n"
        "ATTENDEE;PARTSTAT=ACCEPTED:mailto:alice@example.com",
    )
    r = radicale.put("alice", path, text)
    assert r.status_code == 201 and "ETag" in r.headers
    assert posts(telemost) == []
    assert radicale.get("alice", path).text.count("telemost") == 1
    assert radicale.delete("alice", path).status_code == 200
    assert telemost.calls_of("DELETE") == []


def test_attendee_deleting_their_copy_keeps_the_organizers_conference(radicale, telemost):
    uid = f"{uuid.uuid4()}@test"
    organizer = "ORGANIZER:mailto:alice@example.com\nATTENDEE:mailto:bob@example.com"
    radicale.put("alice", f"{CAL}/{uid}.ics", event(uid, location="telemost", extra=organizer))
    assert len(posts(telemost)) == 1
    shown = radicale.get("alice", f"{CAL}/{uid}.ics").text
    # Bob's client stores the invitation (with the link) in Bob's calendar, then deletes it.
    assert radicale.put("bob", f"bob/calendar/{uid}.ics", shown).status_code == 201
    assert radicale.delete("bob", f"bob/calendar/{uid}.ics").status_code == 200
    assert telemost.calls_of("DELETE") == []
    assert len(posts(telemost)) == 1


# --- recurring events --------------------------------------------------------


def test_recurring_series_gets_one_conference_and_overrides_carry_it(radicale, telemost):
    uid, path = new_path()
    override = "\n".join(
        [
            "BEGIN:VEVENT",
            f"UID:{uid}",
            "DTSTAMP:20261121T100000Z",
            "RECURRENCE-ID;TZID=Europe/Moscow:20261202T100000",
            "DTSTART;TZID=Europe/Moscow:20261202T120000",
            "DTEND;TZID=Europe/Moscow:20261202T130000",
            "SUMMARY:Планёрка (перенесена)",
            "LOCATION:telemost",
            "END:VEVENT",
        ]
    )
    text = event(uid, location="telemost", extra="RRULE:FREQ=WEEKLY;COUNT=10", components=override)
    radicale.put("alice", path, text)
    assert len(posts(telemost)) == 1
    cal, _ = read(radicale, path)
    events = [c for c in cal.subcomponents if c.name == "VEVENT"]
    assert len(events) == 2
    links = {str(e["LOCATION"]) for e in events}
    assert len(links) == 1 and links.pop().startswith("https://telemost.yandex.ru/j/")
    # An EXDATE and a cancelled occurrence do not delete the series' conference.
    master = [e for e in events if "RECURRENCE-ID" not in e][0]
    master.add("EXDATE", master["DTSTART"].dt.replace(day=9))
    [e for e in events if "RECURRENCE-ID" in e][0]["STATUS"] = "CANCELLED"
    radicale.put("alice", path, cal.to_ical().decode())
    assert telemost.calls_of("DELETE") == []
    assert len(posts(telemost)) == 1


# --- import and move -----------------------------------------------------------


def calendar_of(*events_text: str) -> str:
    body = []
    for text in events_text:
        lines = text.split("\r\n")
        body += lines[lines.index("BEGIN:VEVENT") : lines.index("END:VCALENDAR")]
    return (
        "\r\n".join(["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//t//EN", *body, "END:VCALENDAR"])
        + "\r\n"
    )


def test_calendar_import_follows_the_same_rules(radicale, telemost):
    marked = [f"{uuid.uuid4()}@imp" for _ in range(2)]
    plain_uid = f"{uuid.uuid4()}@imp"
    texts = [
        event(marked[0], location="telemost"),
        event(marked[1], location="jitsi"),
        event(plain_uid, location="Офис"),
    ]
    mark = radicale.mark()
    r = radicale.put("alice", "alice/imported/", calendar_of(*texts))
    assert r.status_code == 201
    radicale.wait_for_log(f"{marked[0]}: telemost create done", start=mark)  # imports don't wait
    assert len(posts(telemost)) == 1
    whole = icalendar.Calendar.from_ical(radicale.get("alice", "alice/imported/").text)
    by_uid = {str(e["UID"]): e for e in whole.walk("VEVENT")}
    assert str(by_uid[marked[0]]["LOCATION"]).startswith("https://telemost.yandex.ru/j/")
    assert str(by_uid[marked[1]]["LOCATION"]).startswith("https://meet.jit.si/")
    assert str(by_uid[plain_uid]["LOCATION"]) == "Офис"
    # Importing again without the Telemost event deletes its conference, nothing else.
    mark = radicale.mark()
    r = radicale.put("alice", "alice/imported/", calendar_of(texts[1], texts[2]))
    assert r.status_code == 201
    radicale.wait_for_log(f"{marked[0]}: telemost delete done", start=mark)  # imports don't wait
    assert len(telemost.calls_of("DELETE")) == 1
    assert len(posts(telemost)) == 1


def test_move_between_own_calendars_keeps_the_conference(radicale, telemost):
    s = radicale.session("alice")
    assert s.request("MKCALENDAR", f"{radicale.url}/alice/work/").status_code == 201
    uid, path = new_path()
    radicale.put("alice", path, event(uid, location="telemost"))
    r = s.request(
        "MOVE",
        f"{radicale.url}/{path}",
        headers={"Destination": f"{radicale.url}/alice/work/{uid}.ics"},
    )
    assert r.status_code in (201, 204)
    assert telemost.calls_of("DELETE") == []
    # The record moved with it: deleting it in the new calendar deletes the conference.
    assert radicale.delete("alice", f"alice/work/{uid}.ics").status_code == 200
    assert len(telemost.calls_of("DELETE")) == 1


# --- invalid requests lose nothing ----------------------------------------------


def test_end_before_start_is_stored_with_an_explanation(radicale, telemost):
    uid, path = new_path()
    r = radicale.put(
        "alice",
        path,
        event(
            uid,
            location="telemost",
            description="Повестка",
            start="20261125T110000",
            end="20261125T100000",
        ),
    )
    assert r.status_code == 201
    assert posts(telemost) == []
    ev = vevent(read(radicale, path)[0])
    assert str(ev["LOCATION"]) == "telemost"
    assert str(ev["DESCRIPTION"]).startswith(
        "Повестка\n\n=== Видеовстреча ===\nВидеовстреча не создана: окончание события раньше"
    )
    assert str(ev["X-MEETPLUGIN-STATUS"]) == "error"


def test_unknown_provider_is_explained(radicale, telemost):
    uid, path = new_path()
    radicale.put("alice", path, event(uid, extra="X-MEETPLUGIN-PROVIDER:webex"))
    ev = vevent(read(radicale, path)[0])
    assert "сервис «webex» неизвестен" in str(ev["DESCRIPTION"])
    assert posts(telemost) == []


@pytest.mark.parametrize(
    "status,body,words",
    [
        (
            401,
            {"error": "UnauthorizedError", "description": "Unauthorized", "message": "x"},
            "не принял учётные данные сервера (код 401)",
        ),
        (
            403,
            {"error": "ApiRestrictedToOrganizations", "description": "d", "message": "m"},
            "только аккаунтам организаций",
        ),
    ],
)
def test_provider_refusal_is_explained_and_no_secret_leaks(radicale, telemost, status, body, words):
    telemost.fail_next("POST", status, body)
    uid, path = new_path()
    r = radicale.put("alice", path, event(uid, location="telemost", description="Повестка"))
    assert r.status_code == 201
    ev = vevent(read(radicale, path)[0])
    assert str(ev["LOCATION"]) == "telemost"  # stored as sent
    assert words in str(ev["DESCRIPTION"])
    assert "CONFERENCE" not in ev
    assert f"{uid}: telemost create" in radicale.log
    assert TOKEN not in radicale.log and TOKEN not in radicale.get("alice", path).text
    # The client re-uploading that version is not a retry...
    radicale.put("alice", path, radicale.get("alice", path).text)
    assert len(posts(telemost)) == 1
    # ...an edit is, and now the provider says yes.
    cal, _ = read(radicale, path)
    vevent(cal)["SUMMARY"] = icalendar.vText("Планёрка, вторая попытка")
    radicale.put("alice", path, cal.to_ical().decode())
    assert len(posts(telemost)) == 2
    ev = vevent(read(radicale, path)[0])
    assert str(ev["LOCATION"]).startswith("https://telemost.yandex.ru/j/")
    assert str(ev["X-MEETPLUGIN-STATUS"]) == "active"
    assert "не создана" not in str(ev["DESCRIPTION"])


def test_provider_down_stores_the_event_at_once_and_the_link_follows(radicale, telemost):
    telemost.fail_next("POST", 503, raw=b"<html>Service Unavailable</html>")
    uid, path = new_path()
    mark = radicale.mark()
    r = radicale.put("alice", path, event(uid, location="telemost", description="Повестка"))
    assert r.status_code == 201 and "ETag" not in r.headers
    radicale.wait_for_log(f"{uid}: telemost conference attached", start=mark)
    ev = vevent(read(radicale, path)[0])
    assert str(ev["LOCATION"]).startswith("https://telemost.yandex.ru/j/")
    assert str(ev["DESCRIPTION"]).startswith("Повестка\n\n=== Видеовстреча ===\nВстреча пройдёт")
    assert [c.status for c in posts(telemost)] == [503, 201]
    assert "Service Unavailable" not in radicale.log


def test_malformed_icalendar_gets_radicales_400(radicale, telemost):
    r = radicale.put(
        "alice", f"{CAL}/bad.ics", "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nLOCATION:telemost\r\n"
    )
    assert r.status_code == 400
    assert posts(telemost) == []


# --- the storage lock is never held during a provider call ------------------------


def test_other_users_are_served_while_telemost_is_slow(radicale, telemost):
    hold = telemost.hold_next("POST")
    uid, path = new_path()
    result = {}
    putter = threading.Thread(
        target=lambda: result.update(r=radicale.put("alice", path, event(uid, location="telemost")))
    )
    putter.start()
    try:
        assert hold.entered.wait(30), "the provider call never started"
        # Alice's PUT is inside the Telemost call now. Bob is not blocked:
        assert radicale.get("bob", "bob/calendar/").status_code == 200
        r = radicale.session("bob").request(
            "PROPFIND", f"{radicale.url}/bob/calendar/", headers={"Depth": "1"}
        )
        assert r.status_code == 207
        assert (
            radicale.put(
                "bob", f"bob/calendar/{uuid.uuid4()}.ics", event(location="Офис")
            ).status_code
            == 201
        )
        assert "r" not in result  # ...while Alice's save still waits for Telemost
    finally:
        hold.release.set()
        putter.join(30)
    assert result["r"].status_code == 201
    ev = vevent(read(radicale, path)[0])
    assert str(ev["LOCATION"]).startswith("https://telemost.yandex.ru/j/")


# --- a provider slower than the budget never blocks the save ------------------------


@pytest.fixture(scope="module")
def impatient(tmp_path_factory, telemost):
    server = RadicaleServer(
        tmp_path_factory.mktemp("impatient"),
        plugin_config(telemost.url, provider_timeout="0.5", call_timeout="10"),
        env={"TELEMOST_TOKEN": TOKEN},
    ).start()
    server.ensure_user("alice")
    yield server
    server.stop()


def test_provider_slower_than_the_budget_never_blocks_the_save(impatient, telemost):
    hold = telemost.hold_next("POST")
    uid, path = new_path()
    mark = impatient.mark()
    try:
        r = impatient.put("alice", path, event(uid, location="telemost", description="Повестка"))
        assert hold.entered.is_set()
        assert r.status_code == 201  # answered within the budget, Telemost still holds the call
        ev = vevent(read(impatient, path)[0])
        assert str(ev["LOCATION"]) == "telemost"
        assert "Ссылка на встречу появится здесь, как только ответит Яндекс Телемост" in str(
            ev["DESCRIPTION"]
        )
        assert str(ev["X-MEETPLUGIN-STATUS"]) == "pending"
    finally:
        hold.release.set()
    # The late answer is not lost: the link lands in the event, and only one room exists.
    impatient.wait_for_log(f"{uid}: telemost conference attached", start=mark)
    ev = vevent(read(impatient, path)[0])
    assert str(ev["LOCATION"]).startswith("https://telemost.yandex.ru/j/")
    assert len(posts(telemost)) == 1


def test_all_day_event_gets_a_link_and_cancelling_it_deletes_the_conference(radicale, telemost):
    uid, path = new_path()
    text = event(uid, location="telemost", tzid="", start="20261125", end="20261126")
    text = text.replace("DTSTART:20261125", "DTSTART;VALUE=DATE:20261125").replace(
        "DTEND:20261126", "DTEND;VALUE=DATE:20261126"
    )
    radicale.put("alice", path, text)
    cal, _ = read(radicale, path)
    assert str(vevent(cal)["LOCATION"]).startswith("https://telemost.yandex.ru/j/")
    vevent(cal)["STATUS"] = icalendar.vText("CANCELLED")  # the link stays; the status cancels
    radicale.put("alice", path, cal.to_ical().decode())
    assert len(telemost.calls_of("DELETE")) == 1
    assert "internal error" not in radicale.log


def test_move_while_the_link_is_pending_still_gets_the_link(radicale, telemost):
    s = radicale.session("alice")
    s.request("MKCALENDAR", f"{radicale.url}/alice/moved/")
    telemost.fail_next("POST", 503, {"error": "Unavailable"})  # the first try fails: pending
    uid, path = new_path()
    mark = radicale.mark()
    radicale.put("alice", path, event(uid, location="telemost"))
    assert str(vevent(read(radicale, path)[0])["X-MEETPLUGIN-STATUS"]) == "pending"
    r = s.request(
        "MOVE",
        f"{radicale.url}/{path}",
        headers={"Destination": f"{radicale.url}/alice/moved/{uid}.ics"},
    )
    assert r.status_code in (201, 204)
    radicale.wait_for_log(f"alice/moved/{uid}: telemost create done", start=mark)
    ev = vevent(read(radicale, f"alice/moved/{uid}.ics")[0])
    assert str(ev["LOCATION"]).startswith("https://telemost.yandex.ru/j/")
    assert len([c for c in posts(telemost) if c.status == 201]) == 1


def test_move_overwriting_an_event_with_a_conference_deletes_that_conference(radicale, telemost):
    s = radicale.session("alice")
    s.request("MKCALENDAR", f"{radicale.url}/alice/target/")
    uid = f"{uuid.uuid4()}@test"
    radicale.put("alice", f"{CAL}/{uid}.ics", event(uid, location="telemost"))
    radicale.put("alice", f"alice/target/{uid}.ics", event(uid, location="telemost"))
    first, second = (
        str(vevent(read(radicale, p)[0])["X-MEETPLUGIN-CONFERENCE-ID"])
        for p in (f"{CAL}/{uid}.ics", f"alice/target/{uid}.ics")
    )
    r = s.request(
        "MOVE",
        f"{radicale.url}/{CAL}/{uid}.ics",
        headers={"Destination": f"{radicale.url}/alice/target/{uid}.ics", "Overwrite": "T"},
    )
    assert r.status_code in (201, 204)
    assert second not in telemost.conferences  # overwritten with its event
    assert first in telemost.conferences  # moved with its event
    radicale.delete("alice", f"alice/target/{uid}.ics")
    assert first not in telemost.conferences


def test_client_side_move_by_put_and_delete_keeps_the_one_conference(radicale, telemost):
    """Thunderbird moves an event to another calendar as PUT there + DELETE here."""
    s = radicale.session("alice")
    s.request("MKCALENDAR", f"{radicale.url}/alice/other/")
    uid, path = new_path()
    radicale.put("alice", path, event(uid, location="telemost", description="Повестка"))
    shown = radicale.get("alice", path).text
    link = str(vevent(icalendar.Calendar.from_ical(shown))["LOCATION"])
    r = radicale.put("alice", f"alice/other/{uid}.ics", shown)
    assert r.status_code == 201 and "ETag" in r.headers  # nothing to rewrite
    assert radicale.delete("alice", path).status_code == 200
    assert len(posts(telemost)) == 1 and telemost.calls_of("DELETE") == []
    ev = vevent(read(radicale, f"alice/other/{uid}.ics")[0])
    assert str(ev["LOCATION"]) == link
    radicale.delete("alice", f"alice/other/{uid}.ics")
    assert len(telemost.calls_of("DELETE")) == 1


def test_another_owners_copy_gets_its_own_link_in_place_of_the_old_one(radicale, telemost):
    uid, path = new_path()
    radicale.put("alice", path, event(uid, location="Офис; telemost", description="Повестка"))
    shown = radicale.get("alice", path).text
    alices = str(vevent(icalendar.Calendar.from_ical(shown))["X-MEETPLUGIN-CONFERENCE-ID"])
    # Bob imports Alice's exported event (no ORGANIZER: it is his now).
    radicale.put("bob", f"bob/calendar/{uid}.ics", shown)
    ev = vevent(read(radicale, f"bob/calendar/{uid}.ics", user="bob")[0])
    bobs = str(ev["X-MEETPLUGIN-CONFERENCE-ID"])
    assert bobs != alices and len(posts(telemost)) == 2
    assert str(ev["LOCATION"]) == f"Офис; {telemost.conferences[bobs]['join_url']}"
    assert (
        telemost.conferences[alices]["join_url"]
        not in radicale.get("bob", f"bob/calendar/{uid}.ics").text
    )
    assert [str(c) for c in ical_values(ev, "CONFERENCE")] == [
        telemost.conferences[bobs]["join_url"]
    ]
    # Bob deleting his copy never touches Alice's conference.
    radicale.delete("bob", f"bob/calendar/{uid}.ics")
    assert alices in telemost.conferences and bobs not in telemost.conferences


def ical_values(ev, name):
    value = ev.get(name)
    return value if isinstance(value, list) else [value]


def test_max_waiting_saves_0_makes_no_save_wait(tmp_path, telemost):
    """`max_waiting_saves = 0`: a save with a held provider returns at once, the link follows."""
    server = RadicaleServer(
        tmp_path / "nowait",
        plugin_config(
            telemost.url, provider_timeout="30", call_timeout="30", max_waiting_saves="0"
        ),
        env={"TELEMOST_TOKEN": TOKEN},
    ).start()
    server.ensure_user("alice")
    hold = telemost.hold_next("POST")
    try:
        uid = f"{uuid.uuid4()}@nowait"
        saved = server.session("alice").put(  # it used to wait the whole 30 s budget
            f"{server.url}/{CAL}/{uid}.ics",
            data=event(uid, location="telemost").encode(),
            headers={"Content-Type": "text/calendar"},
            timeout=15,
        )
        assert saved.status_code == 201 and hold.entered.wait(30)
        assert "появится здесь" in server.get("alice", f"{CAL}/{uid}.ics").text
        hold.release.set()
        server.wait_for_log(r"written with the telemost result")
        assert "telemost.yandex.ru" in server.get("alice", f"{CAL}/{uid}.ics").text
    finally:
        hold.release.set()
        server.stop()


def test_a_slow_provider_never_takes_every_connection(tmp_path, telemost):
    """With 4 connection slots, at most 2 saves wait for the provider; the rest return at once."""
    server = RadicaleServer(
        tmp_path / "slots",
        plugin_config(telemost.url, provider_timeout="30"),
        env={"TELEMOST_TOKEN": TOKEN},
        server_options="max_connections = 4",
    ).start()
    server.ensure_user("alice")
    server.ensure_user("bob")
    holds = [telemost.hold_next("POST") for _ in range(3)]
    results: dict[int, object] = {}
    threads = []
    try:
        for i in range(2):  # two saves wait inside Telemost: they keep their connections
            uid = f"{uuid.uuid4()}@slots"
            t = threading.Thread(
                target=lambda i=i, uid=uid: results.update(
                    {i: server.put("alice", f"{CAL}/{uid}.ics", event(uid, location="telemost"))}
                )
            )
            t.start()
            threads.append(t)
            assert holds[i].entered.wait(30)
        uid = f"{uuid.uuid4()}@slots"
        third = server.session("alice").put(  # without the cap this would wait for Telemost
            f"{server.url}/{CAL}/{uid}.ics",
            data=event(uid, location="telemost").encode(),
            headers={"Content-Type": "text/calendar"},
            timeout=15,
        )
        assert third.status_code == 201 and holds[2].entered.wait(30)
        assert "появится здесь" in server.get("alice", f"{CAL}/{uid}.ics").text
        assert server.get("bob", "bob/calendar/").status_code == 200  # others are served
        assert results == {}
    finally:
        for hold in holds:
            hold.release.set()
        for t in threads:
            t.join(30)
        server.stop()
    assert sorted(r.status_code for r in results.values()) == [201, 201]
