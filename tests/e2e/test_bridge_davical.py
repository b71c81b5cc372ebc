"""The CalDAV bridge against DAViCal (Debian's package, on loopback, with its own
scheduling): alice's marked event is provisioned; bob's copy, which DAViCal itself
delivers to bob's calendar, is never written by the bridge, so DAViCal never sends
alice a REPLY in bob's name. Skipped (with the reason) only when DAViCal cannot be
installed or started here."""

from __future__ import annotations

import uuid
from pathlib import Path

import icalendar
import pytest
import requests
from bridge_support import Dav, editing_client_factory
from davical_support import DavicalServer, Unavailable
from harness import TOKEN, event, plugin_config

from bridge import config as bridge_config_module
from bridge.caldav_client import CalDAVClient
from bridge.runner import Bridge

ALICE, BOB = "alice@example.com", "bob@example.com"


@pytest.fixture(scope="module")
def davical(tmp_path_factory):
    server = DavicalServer(tmp_path_factory.mktemp("davical"))
    try:
        server.start()
    except Unavailable as e:
        pytest.skip(f"DAViCal is not available here: {e}")
    yield server
    server.stop()
    assert "PHP Fatal error" not in server.error_log(), server.error_log()


def person(server: DavicalServer, user: str) -> Dav:
    return Dav(user, server.root, f"/caldav.php/{user}/", user, user)


def recording_client_factory(puts: list[str]):
    class RecordingClient(CalDAVClient):
        def put(self, href: str, text: str, etag: str):
            puts.append(href)
            return super().put(href, text, etag)

    return RecordingClient


def write_config(
    folder: Path,
    davical: DavicalServer,
    telemost_url: str,
    *users: str,
    discover: bool = False,
    calendar: str = "calendar",
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "meetplugin.conf").write_text(plugin_config(telemost_url))
    lines = [
        "[bridge]",
        "meetplugin_config = meetplugin.conf",
        "state_dir = state",
        "http_timeout = 30",
    ]
    for user in users:
        (folder / f"{user}.password").write_text(user)
        (folder / f"{user}.password").chmod(0o600)
        lines += [
            "",
            f"[account:{user}]",
            f"url = {davical.url}/",
            f"username = {user}",
            f"password_file = {user}.password",
            f"addresses = {user}@example.com",
            "calendars = all" if discover else f"calendars = /caldav.php/{user}/{calendar}/",
        ]
    path = folder / "bridge.conf"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def make_bridge(tmp_path, davical, telemost, monkeypatch):
    monkeypatch.setenv("TELEMOST_TOKEN", TOKEN)
    made: list[Bridge] = []

    def make(
        *users: str,
        puts: list[str] | None = None,
        discover: bool = False,
        factory=None,
        calendar: str = "calendar",
    ) -> Bridge:
        folder = tmp_path / f"bridge{len(made)}"
        path = write_config(
            folder, davical, telemost.url, *users, discover=discover, calendar=calendar
        )
        if factory is None:
            factory = recording_client_factory(puts) if puts is not None else CalDAVClient
        bridge = Bridge(bridge_config_module.load(str(path)), factory)
        made.append(bridge)
        return bridge

    yield make
    for bridge in made:
        bridge.close()


def first(text: str) -> icalendar.Event:
    return next(c for c in icalendar.Calendar.from_ical(text).subcomponents if c.name == "VEVENT")


def members(dav: Dav, collection: str) -> list[str]:
    """The hrefs inside a collection (Depth 1), the collection itself left out."""
    r = dav.http.request("PROPFIND", dav.url + collection, headers={"Depth": "1"})
    assert r.status_code == 207, (collection, r.status_code, r.text[:300])
    hrefs = [
        h.split("</", 1)[0]
        for h in r.text.split("<href>")[1:]
        if h.split("</", 1)[0].startswith(collection)
    ]
    return sorted({requests.utils.unquote(h) for h in hrefs} - {collection})


@pytest.mark.parametrize("discover", [False, True], ids=["listed-calendar", "calendar-home"])
def test_the_bridge_provisions_an_event_on_davical(davical, make_bridge, telemost, discover):
    user = "carol" if discover else "alice"  # carol's home holds only this test's event
    dav = person(davical, user)
    uid = f"{uuid.uuid4()}@test"
    path = f"/caldav.php/{user}/calendar/{uid}.ics"
    assert dav.put(path, event(uid, location="телемост")).status_code == 201
    bridge = make_bridge(user, discover=discover)
    report = bridge.cycle()
    assert report.errors == 0 and report.jobs == 1, report.line()
    ev = first(dav.get(path)[0])
    join_url = telemost.conferences[str(ev["X-MEETPLUGIN-CONFERENCE-ID"])]["join_url"]
    assert str(ev["LOCATION"]) == join_url
    assert str(ev["CONFERENCE"]) == join_url
    assert "=== Видеовстреча ===" in str(ev["DESCRIPTION"])
    for _ in range(3):  # it settles: its own write is recognised, nothing more happens
        idle = bridge.cycle()
    assert (idle.read, idle.written, idle.jobs, idle.requests) == (0, 0, 0, 1), idle.line()
    assert len(telemost.calls_of("POST")) == 1


PASTED = "https://meet.jit.si/MeetCarolsRoom"


@pytest.mark.parametrize(
    "location,description",
    [("онлайн", ""), (PASTED, f"Ссылка: {PASTED}")],
    ids=["keyword", "pasted-link"],
)
def test_davical_delivers_bobs_copy_and_the_bridge_never_writes_it(
    davical, make_bridge, location, description
):
    """A REPLY in bob's name must never reach alice because of the bridge (issue 12, item 1)."""
    alice, bob = person(davical, "alice"), person(davical, "bob")
    uid = f"{uuid.uuid4()}@test"
    path = f"/caldav.php/alice/calendar/{uid}.ics"
    invitation = event(
        uid,
        location=location,
        description=description,
        start="20301115T070000Z",  # UTC: DAViCal's scheduling fails on a TZID without VTIMEZONE
        end="20301115T080000Z",
        tzid="",
        extra="\n".join(
            [
                f"ORGANIZER;CN=Alice:mailto:{ALICE}",
                f"ATTENDEE;CN=Alice;PARTSTAT=ACCEPTED;ROLE=CHAIR:mailto:{ALICE}",
                f"ATTENDEE;CN=Bob;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:{BOB}",
            ]
        ),
    )
    assert alice.put(path, invitation).status_code == 201
    inbox_before = members(alice, "/caldav.php/alice/.in/")  # DAViCal makes it when scheduling
    copies = [h for h in members(bob, "/caldav.php/bob/calendar/") if uid in h]
    assert len(copies) == 1, "DAViCal's own scheduling put bob's copy into his calendar"
    bob_copy = copies[0]

    puts: list[str] = []
    bridge = make_bridge("alice", "bob", puts=puts)
    for _ in range(4):  # alice's event gets its link; DAViCal updates bob's copy; and again
        report = bridge.cycle()
        assert report.errors == 0, report.line()

    ev = first(alice.get(path)[0])
    link = str(ev["LOCATION"])
    assert link.startswith("https://meet.jit.si/")
    copy_text, _etag = bob.get(bob_copy)
    assert link in copy_text, "DAViCal delivered the link to bob's copy"
    assert all(p.startswith("/caldav.php/alice/") for p in puts), puts
    if location == "онлайн":
        assert puts  # alice's own event was written: the link went in
    assert "X-MEETPLUGIN" not in copy_text  # nothing of ours in bob's copy
    # No REPLY in bob's name: alice's schedule inbox holds nothing new, bob's answer is unchanged.
    assert members(alice, "/caldav.php/alice/.in/") == inbox_before
    bob_line = [a for a in ev.get("ATTENDEE") if BOB in str(a)][0]
    assert bob_line.params.get("PARTSTAT") == "NEEDS-ACTION"


def test_an_idle_cron_run_costs_one_request_on_davical(davical, tmp_path, telemost, monkeypatch):
    """DAViCal asks for Basic: from the second run on it goes with the first request."""
    monkeypatch.setenv("TELEMOST_TOKEN", TOKEN)
    carol = person(davical, "carol")
    calendar = carol.mkcalendar().rstrip("/").rsplit("/", 1)[1]  # an empty calendar of its own
    path = write_config(tmp_path / "cron", davical, telemost.url, "carol", calendar=calendar)
    costs = []
    for _ in range(3):  # each run a fresh process state, the same state folder
        bridge = Bridge(bridge_config_module.load(str(path)))
        try:
            report = bridge.run_once()
        finally:
            bridge.close()
        assert report.errors == 0, report.line()
        costs.append(report.requests)
    assert costs[1:] == [1, 1], costs  # one PROPFIND, no 401 first


def test_an_edit_between_read_and_write_is_kept_on_davical(davical, make_bridge, telemost):
    """alice saves while the bridge works: DAViCal answers its If-Match with 412."""
    alice = person(davical, "alice")
    calendar = alice.mkcalendar()  # its own calendar: only this test's event
    uid = f"{uuid.uuid4()}@test"
    path = f"{calendar}{uid}.ics"

    def alice_edits(href: str, n: int) -> None:
        if n == 1:  # just before the bridge's first write
            current, etag = alice.get(path)
            edited = current.replace("SUMMARY:Планёрка", "SUMMARY:Планёрка у Ивана")
            assert alice.put(path, edited, etag).status_code in (201, 204)

    assert alice.put(path, event(uid, location="телемост")).status_code == 201
    bridge = make_bridge(
        "alice",
        factory=editing_client_factory(alice_edits),
        calendar=calendar.rstrip("/").rsplit("/", 1)[1],
    )
    report = bridge.cycle()
    assert report.conflicts == 1, report.line()
    for _ in range(3):
        bridge.cycle()
    ev = first(alice.get(path)[0])
    assert str(ev["SUMMARY"]) == "Планёрка у Ивана"  # the person's edit survived
    join_url = telemost.conferences[str(ev["X-MEETPLUGIN-CONFERENCE-ID"])]["join_url"]
    assert str(ev["LOCATION"]) == join_url
    assert len(telemost.calls_of("POST")) == 1 and telemost.calls_of("DELETE") == []
