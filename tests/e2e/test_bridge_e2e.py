"""The CalDAV bridge end to end: real Xandikos and a plain Radicale on loopback, the
Telemost emulator, the bridge in-process (one `cycle()` at a time, so every step
is deterministic). Each test gets its own calendar and its own bridge state."""

from __future__ import annotations

import uuid

import icalendar
import pytest
from bridge_support import (
    Dav,
    RewritingProxy,
    XandikosServer,
    bridge_config,
    editing_client_factory,
)
from harness import TOKEN, RadicaleServer, event, plugin_config

from bridge import config as bridge_config_module
from bridge.caldav_client import CalDAVClient
from bridge.runner import Bridge


def dav_for(name: str, request) -> Dav:
    if name == "xandikos":
        return Dav("xandikos", request.getfixturevalue("xandikos").url, "/alice/calendars/")
    return Dav("radicale", request.getfixturevalue("plain").url, "/alice/", "alice", "alice")


@pytest.fixture(params=["xandikos", "radicale"])
def dav(request) -> Dav:
    return dav_for(request.param, request)


@pytest.fixture
def cal(dav) -> str:
    return dav.mkcalendar()


@pytest.fixture
def make_bridge(tmp_path, telemost, monkeypatch):
    """Build bridges on the test's own state; closed at the end."""
    monkeypatch.setenv("TELEMOST_TOKEN", TOKEN)
    made: list[Bridge] = []

    def make(dav: Dav, calendars: str = "", client_factory=CalDAVClient, **account) -> Bridge:
        path = bridge_config(
            tmp_path / f"bridge{len(made)}", dav, plugin_config(telemost.url), calendars, **account
        )
        bridge = Bridge(bridge_config_module.load(str(path)), client_factory)
        made.append(bridge)
        return bridge

    yield make
    for bridge in made:
        bridge.close()


def new_event(cal: str, **kwargs) -> tuple[str, str, str]:
    uid = f"{uuid.uuid4()}@test"
    return uid, f"{cal}{uid}.ics", event(uid, **kwargs)


def vevents(text: str) -> list[icalendar.Event]:
    return [c for c in icalendar.Calendar.from_ical(text).subcomponents if c.name == "VEVENT"]


def first(text: str) -> icalendar.Event:
    return vevents(text)[0]


def settle_down(bridge: Bridge, most: int = 4):
    """Cycle until a cycle changes nothing; returns that idle cycle's report."""
    for _ in range(most):
        report = bridge.cycle()
        if not (report.changed or report.read or report.written or report.deleted):
            return report
    raise AssertionError(f"still busy after {most} cycles: {report.line()}")


def posts(telemost) -> list:
    return telemost.calls_of("POST")


def deleted_ids(telemost) -> list[str]:
    return [c.path.rsplit("/", 1)[1] for c in telemost.calls_of("DELETE")]


# --- create ---------------------------------------------------------------------


def test_keyword_gets_one_conference_and_the_link_written_back(dav, cal, make_bridge, telemost):
    bridge = make_bridge(dav, cal)
    uid, path, text = new_event(cal, location="Переговорная 5; телемост", description="Повестка")
    assert dav.put(path, text).status_code == 201
    report = bridge.cycle()
    assert (report.read, report.jobs) == (1, 1)
    stored, _ = dav.get(path)
    ev = first(stored)
    conf_id = str(ev["X-MEETPLUGIN-CONFERENCE-ID"])
    join_url = telemost.conferences[conf_id]["join_url"]
    assert str(ev["LOCATION"]) == f"Переговорная 5; {join_url}"
    assert str(ev["DESCRIPTION"]).startswith("Повестка\n\n=== Видеовстреча ===")
    assert f"Встреча пройдёт по ссылке: {join_url}" in str(ev["DESCRIPTION"])
    assert str(ev["CONFERENCE"]) == join_url
    assert len(posts(telemost)) == 1
    # The next cycle sees only our own write-backs: nothing is read, written or called.
    again = bridge.cycle()
    assert (again.read, again.written, again.jobs) == (0, 0, 0)
    assert again.ours >= 1
    idle = settle_down(bridge)
    assert idle.requests == 1 and idle.written == 0  # one PROPFIND for the calendar
    assert len(posts(telemost)) == 1
    assert dav.get(path)[0] == stored


def test_generic_keyword_gets_a_jitsi_link_without_provider_calls(dav, cal, make_bridge, telemost):
    bridge = make_bridge(dav, cal)
    _uid, path, text = new_event(cal, location="онлайн")
    dav.put(path, text)
    bridge.cycle()
    ev = first(dav.get(path)[0])
    assert str(ev["LOCATION"]).startswith("https://meet.jit.si/Meet")
    assert str(ev["X-MEETPLUGIN-PROVIDER"]) == "jitsi"
    assert telemost.calls == []


def test_unmarked_events_are_never_written(dav, cal, make_bridge, telemost):
    bridge = make_bridge(dav, cal)
    paths = []
    for i in range(5):
        _uid, path, text = new_event(cal, location=f"Room {i}", summary=f"Встреча {i}")
        dav.put(path, text)
        paths.append((path, dav.get(path)[1]))
    report = bridge.cycle()
    assert (report.read, report.written) == (5, 0)
    assert [dav.get(p)[1] for p, _ in paths] == [etag for _, etag in paths]
    assert telemost.calls == []


def test_a_refused_create_is_explained_once_and_not_retried_by_each_cycle(
    dav, cal, make_bridge, telemost
):
    telemost.personal_account = True  # 403 ApiRestrictedToOrganizations
    bridge = make_bridge(dav, cal)
    _uid, path, text = new_event(cal, location="telemost")
    dav.put(path, text)
    bridge.cycle()
    idle = settle_down(bridge)
    assert idle.requests == 1
    ev = first(dav.get(path)[0])
    assert "Видеовстреча не создана" in str(ev["DESCRIPTION"])
    assert str(ev["LOCATION"]) == "telemost"  # the person's keyword stays
    assert len(posts(telemost)) == 1


# --- edit, concurrent edit --------------------------------------------------------


def test_edit_keeps_the_one_conference(dav, cal, make_bridge, telemost):
    bridge = make_bridge(dav, cal)
    _uid, path, text = new_event(cal, location="telemost")
    dav.put(path, text)
    settle_down(bridge)
    stored, etag = dav.get(path)
    join_url = str(first(stored)["LOCATION"])
    edited = (
        stored.replace("SUMMARY:Планёрка", "SUMMARY:Планёрка (перенесена)")
        .replace("20261125T100000", "20261125T150000")
        .replace("20261125T110000", "20261125T160000")
    )
    assert dav.put(path, edited, etag).status_code in (200, 204)
    report = bridge.cycle()
    assert report.read == 1
    ev = first(dav.get(path)[0])
    assert str(ev["SUMMARY"]) == "Планёрка (перенесена)"
    assert str(ev["LOCATION"]) == join_url
    settle_down(bridge)
    assert len(posts(telemost)) == 1 and telemost.calls_of("DELETE") == []


def test_edit_between_read_and_write_is_kept_and_makes_no_second_conference(
    dav, cal, make_bridge, telemost
):
    """The person saves while the bridge works: its PUT gets 412; it reads again."""
    _uid, path, text = new_event(cal, location="telemost", description="Повестка")

    def person_edits(href: str, n: int) -> None:
        if n == 1:  # just before the bridge's first write (the "link pending" note)
            current, etag = dav.get(path)
            dav.put(path, current.replace("SUMMARY:Планёрка", "SUMMARY:Планёрка у Ивана"), etag)

    bridge = make_bridge(dav, cal, client_factory=editing_client_factory(person_edits))
    dav.put(path, text)
    report = bridge.cycle()
    assert report.conflicts == 1
    settle_down(bridge)
    ev = first(dav.get(path)[0])
    assert str(ev["SUMMARY"]) == "Планёрка у Ивана"  # the person's edit survived
    conf_id = str(ev["X-MEETPLUGIN-CONFERENCE-ID"])
    assert str(ev["LOCATION"]) == telemost.conferences[conf_id]["join_url"]
    assert len(posts(telemost)) == 1
    assert telemost.calls_of("DELETE") == []


def test_edit_before_the_late_link_lands_is_kept(dav, cal, make_bridge, telemost):
    """412 on the write of the provider's answer (the outbox's settle)."""
    _uid, path, text = new_event(cal, location="telemost")

    def person_edits(href: str, n: int) -> None:
        if n == 2:  # the first write is the pending note, the second brings the link
            current, etag = dav.get(path)
            dav.put(path, current.replace("SUMMARY:Планёрка", "SUMMARY:Ретро"), etag)

    bridge = make_bridge(dav, cal, client_factory=editing_client_factory(person_edits))
    dav.put(path, text)
    bridge.cycle()
    settle_down(bridge)
    ev = first(dav.get(path)[0])
    assert str(ev["SUMMARY"]) == "Ретро"
    assert str(ev["LOCATION"]).startswith("https://telemost.yandex.ru/j/")
    assert len(posts(telemost)) == 1 and telemost.calls_of("DELETE") == []


# --- delete, cancel ------------------------------------------------------------


def test_organizer_delete_deletes_the_conference(dav, cal, make_bridge, telemost):
    bridge = make_bridge(dav, cal)
    _uid, path, text = new_event(
        cal,
        location="telemost",
        extra="ORGANIZER:mailto:alice@example.com\nATTENDEE:mailto:bob@example.com",
    )
    dav.put(path, text)
    settle_down(bridge)
    conf_id = str(first(dav.get(path)[0])["X-MEETPLUGIN-CONFERENCE-ID"])
    dav.delete(path)
    report = bridge.cycle()
    assert report.deleted == 1
    assert deleted_ids(telemost) == [conf_id]
    assert conf_id not in telemost.conferences
    settle_down(bridge)
    assert len(telemost.calls_of("DELETE")) == 1


def test_cancelling_deletes_the_conference_and_keeps_the_event(dav, cal, make_bridge, telemost):
    bridge = make_bridge(dav, cal)
    _uid, path, text = new_event(cal, location="telemost")
    dav.put(path, text)
    settle_down(bridge)
    stored, etag = dav.get(path)
    conf_id = str(first(stored)["X-MEETPLUGIN-CONFERENCE-ID"])
    dav.put(path, stored.replace("END:VEVENT", "STATUS:CANCELLED\r\nEND:VEVENT", 1), etag)
    settle_down(bridge)
    assert deleted_ids(telemost) == [conf_id]
    ev = first(dav.get(path)[0])
    assert "X-MEETPLUGIN-CONFERENCE-ID" not in ev and "CONFERENCE" not in ev


# --- recurring, attendee copy ------------------------------------------------------


def test_recurring_series_gets_one_conference_and_overrides_carry_the_link(
    dav, cal, make_bridge, telemost
):
    bridge = make_bridge(dav, cal)
    uid, path, _ = new_event(cal)
    text = event(
        uid,
        location="telemost",
        extra="RRULE:FREQ=WEEKLY;COUNT=5",
        components="BEGIN:VEVENT\nUID:" + uid + "\nDTSTAMP:20261121T100000Z\n"
        "RECURRENCE-ID;TZID=Europe/Moscow:20261202T100000\n"
        "DTSTART;TZID=Europe/Moscow:20261202T120000\n"
        "DTEND;TZID=Europe/Moscow:20261202T130000\n"
        "SUMMARY:Планёрка (позже)\nLOCATION:telemost\nEND:VEVENT",
    )
    dav.put(path, text)
    settle_down(bridge)
    events = vevents(dav.get(path)[0])
    assert len(events) == 2
    join_url = telemost.conferences[str(events[0]["X-MEETPLUGIN-CONFERENCE-ID"])]["join_url"]
    for ev in events:
        assert str(ev["LOCATION"]) == join_url
        assert str(ev["CONFERENCE"]) == join_url
    assert len(posts(telemost)) == 1


def test_attendee_copy_is_never_provisioned_nor_written(dav, cal, make_bridge, telemost):
    bridge = make_bridge(dav, cal)
    _uid, path, text = new_event(
        cal,
        location="telemost",
        extra="ORGANIZER:mailto:bob@example.com\n"
        "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:alice@example.com",
    )
    dav.put(path, text)
    before = dav.get(path)
    report = bridge.cycle()
    assert (report.read, report.written, report.jobs) == (1, 0, 0)
    assert dav.get(path) == before
    dav.delete(path)
    settle_down(bridge)
    assert telemost.calls == []


def test_account_addresses_make_the_owner_the_organizer(dav, cal, make_bridge, telemost):
    """An ORGANIZER address outside the plugin's templates, named in the account."""
    bridge = make_bridge(dav, cal, addresses="a.ivanova@corp.example")
    _uid, path, text = new_event(
        cal, location="telemost", extra="ORGANIZER:mailto:A.Ivanova@corp.example"
    )
    dav.put(path, text)
    settle_down(bridge)
    assert str(first(dav.get(path)[0])["LOCATION"]).startswith("https://telemost.yandex.ru/j/")
    assert len(posts(telemost)) == 1


# --- moving between two followed calendars --------------------------------------------


def test_event_moved_between_calendars_keeps_its_conference(dav, make_bridge, telemost):
    one, two = dav.mkcalendar(), dav.mkcalendar()
    bridge = make_bridge(dav, f"{one}, {two}")
    uid, path, text = new_event(one, location="telemost")
    dav.put(path, text)
    settle_down(bridge)
    stored, _ = dav.get(path)
    join_url = str(first(stored)["LOCATION"])
    # A client moves it: PUT into the other calendar, DELETE here; the bridge sees both at once.
    dav.put(f"{two}{uid}.ics", stored)
    dav.delete(path)
    settle_down(bridge)
    assert str(first(dav.get(f"{two}{uid}.ics")[0])["LOCATION"]) == join_url
    assert len(posts(telemost)) == 1 and telemost.calls_of("DELETE") == []


# --- the cost of following -------------------------------------------------------


def test_idle_cycle_costs_the_same_whatever_the_calendar_holds(dav, cal, make_bridge, telemost):
    bridge = make_bridge(dav, cal)
    empty = settle_down(bridge)
    for i in range(30):
        _uid, path, text = new_event(cal, location="jitsi" if i % 10 == 0 else f"Room {i}")
        dav.put(path, text)
    busy = bridge.cycle()
    assert (busy.read, busy.written) == (30, 3)
    full = settle_down(bridge)
    assert full.requests == empty.requests == 1
    assert full.bytes < empty.bytes + 200  # the calendar's tags grow a little, not the listing
    assert (full.read, full.written, full.jobs) == (0, 0, 0)
    assert telemost.calls == []


def test_a_forgotten_sync_token_means_one_listing_and_no_repeated_work(
    dav, cal, make_bridge, telemost
):
    bridge = make_bridge(dav, cal)
    for kw in ("telemost", "Room 1", "jitsi"):
        _uid, path, text = new_event(cal, location=kw)
        dav.put(path, text)
    settle_down(bridge)
    from bridge.state import CalendarState

    stored = bridge.state.calendar("alice", cal)
    bridge.state.save_calendar(
        "alice", cal, CalendarState("", "http://example.invalid/sync/1", stored.mode)
    )
    report = bridge.cycle()
    assert report.changed == 1
    assert (report.read, report.written, report.jobs) == (0, 0, 0)
    assert bridge.state.calendar("alice", cal).token not in ("", "http://example.invalid/sync/1")
    assert len(posts(telemost)) == 1


def test_without_sync_it_follows_etag_listings(dav, cal, make_bridge, telemost):
    bridge = make_bridge(dav, cal, sync="etag")
    _uid, path, text = new_event(cal, location="telemost")
    dav.put(path, text)
    first_cycle = bridge.cycle()
    assert first_cycle.read == 1
    idle = settle_down(bridge)
    assert idle.requests == 1  # the ctag did not change: no listing
    assert bridge.state.calendar("alice", cal).mode == "etag"
    conf_id = str(first(dav.get(path)[0])["X-MEETPLUGIN-CONFERENCE-ID"])
    dav.delete(path)
    assert bridge.cycle().deleted == 1
    assert deleted_ids(telemost) == [conf_id]
    assert len(posts(telemost)) == 1


# --- discovery ------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["xandikos", "radicale"])
def test_all_calendars_of_the_home_are_found_and_followed(tmp_path, make_bridge, telemost, kind):
    if kind == "xandikos":
        server = XandikosServer(tmp_path / "x").start()
        dav = Dav("xandikos", server.url, "/alice/calendars/")
        default = "/alice/calendars/calendar/"
    else:
        server = RadicaleServer(tmp_path / "r", plugin=False).start()
        server.ensure_user("alice")
        dav = Dav("radicale", server.url, "/alice/", "alice", "alice")
        default = "/alice/calendar/"
    try:
        bridge = make_bridge(dav)  # calendars = all: found through the principal
        other = dav.mkcalendar()
        paths = []
        for calendar in (default, other):
            _uid, path, text = new_event(calendar, location="telemost")
            dav.put(path, text)
            paths.append(path)
        report = bridge.cycle()
        assert report.calendars == 2 and report.read == 2
        settle_down(bridge)
        for path in paths:
            assert str(first(dav.get(path)[0])["LOCATION"]).startswith("https://telemost")
        assert len(posts(telemost)) == 2
        # Deleting a whole calendar deletes the conferences of its events.
        conf_id = str(first(dav.get(paths[1])[0])["X-MEETPLUGIN-CONFERENCE-ID"])
        assert dav.http.delete(dav.url + other).status_code in (200, 204)
        bridge.cycle()
        assert deleted_ids(telemost) == [conf_id]
        assert settle_down(bridge).requests == 1
    finally:
        server.stop()


# --- servers that rewrite what they are sent -------------------------------------------


@pytest.fixture
def proxy_for(plain):
    made: list[RewritingProxy] = []

    def make(**kwargs) -> tuple[RewritingProxy, Dav]:
        proxy = RewritingProxy(plain.url, **kwargs).start()
        made.append(proxy)
        return proxy, Dav("proxy", proxy.url, "/alice/", "alice", "alice")

    yield make
    for proxy in made:
        proxy.stop()


EXTRAS = ("X-", "CONFERENCE")


@pytest.mark.parametrize("behaviour", ["drops", "refuses"])
def test_a_server_dropping_or_refusing_our_properties_still_gets_the_link_once(
    proxy_for, make_bridge, telemost, behaviour
):
    proxy, dav = (
        proxy_for(drop=EXTRAS) if behaviour == "drops" else proxy_for(refuse=("CONFERENCE",))
    )
    cal = dav.mkcalendar()
    bridge = make_bridge(dav, cal)
    _uid, path, text = new_event(cal, location="telemost", description="Повестка")
    dav.put(path, text)
    bridge.cycle()
    idle = settle_down(bridge)
    assert idle.requests == 1
    stored, _ = dav.get(path)
    ev = first(stored)
    join_url = telemost.conferences[str(max(telemost.conferences, key=int))]["join_url"]
    assert str(ev["LOCATION"]) == join_url
    assert f"Встреча пройдёт по ссылке: {join_url}" in str(ev["DESCRIPTION"])
    assert "CONFERENCE" not in ev
    if behaviour == "drops":
        assert "X-MEETPLUGIN-CONFERENCE-ID" not in ev
    else:
        assert proxy.refused >= 1
    writes = len(proxy.puts)
    # The person edits the title: the bridge writes at most once more and calls no provider.
    current, etag = dav.get(path)
    dav.put(path, current.replace("SUMMARY:Планёрка", "SUMMARY:Итоги"), etag)
    writes_by_person = 1
    settle_down(bridge)
    assert len(proxy.puts) - writes - writes_by_person <= 1
    assert str(first(dav.get(path)[0])["LOCATION"]) == join_url
    assert len(posts(telemost)) == 1 and telemost.calls_of("DELETE") == []
    # ... and deleting it still deletes the conference, from the bridge's own record.
    dav.delete(path)
    settle_down(bridge)
    assert len(telemost.calls_of("DELETE")) == 1


def test_a_failing_calendar_does_not_hold_up_the_others(proxy_for, make_bridge, telemost):
    proxy, dav = proxy_for()
    sick, well = dav.mkcalendar(), dav.mkcalendar()
    bridge = make_bridge(dav, f"{sick}, {well}")
    settle_down(bridge)
    paths = []
    for calendar in (sick, well):
        _uid, path, text = new_event(calendar, location="jitsi")
        dav.put(path, text)
        paths.append(path)
    proxy.broken.add(("REPORT", sick))
    report = bridge.cycle()
    assert report.errors == 1 and report.written == 1
    assert "meet.jit.si" in dav.get(paths[1])[0] and "meet.jit.si" not in dav.get(paths[0])[0]
    proxy.broken.clear()
    assert bridge.cycle().written == 1  # the sick calendar catches up from its old token
    assert "meet.jit.si" in dav.get(paths[0])[0]
