"""CalDAV scheduling's surface (RFC 6638) on a real Radicale with `[scheduling] enabled`.

The requests are the ones Thunderbird sends (its CalDAV provider's bodies and
depths), then the python `caldav` library's scheduling helpers; with scheduling
off, Radicale's own answers byte for byte (the end of this file).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import caldav
import pytest
from harness import RadicaleServer, plugin_config

D = "{DAV:}"
C = "{urn:ietf:params:xml:ns:caldav}"

# Thunderbird's CalDavPropfindRequest: an XML header, one line, single-quoted namespaces.
HEADER = '<?xml version="1.0" encoding="UTF-8"?>\n'
TB_RESOURCETYPE = (  # checkDavResourceType, on the calendar, Depth 0
    HEADER + "<D:propfind xmlns:D='DAV:' xmlns:C='urn:ietf:params:xml:ns:caldav' "
    "xmlns:CS='http://calendarserver.org/ns/'><D:prop><D:resourcetype/><D:owner/>"
    "<D:current-user-principal/><D:current-user-privilege-set/><D:supported-report-set/>"
    "<C:supported-calendar-component-set/><CS:getctag/></D:prop></D:propfind>"
)
TB_PRINCIPAL = (  # checkPrincipalsNameSpace, on the principal, Depth 0
    HEADER + "<D:propfind xmlns:D='DAV:' xmlns:C='urn:ietf:params:xml:ns:caldav'><D:prop>"
    "<C:calendar-home-set/><C:calendar-user-address-set/><C:schedule-inbox-URL/>"
    "<C:schedule-outbox-URL/></D:prop></D:propfind>"
)
TB_ETAGS = (  # getUpdatedItems, on the inbox when it polls it, Depth 1
    HEADER + '<D:propfind xmlns:D="DAV:"><D:prop><D:getcontenttype/><D:resourcetype/>'
    "<D:getetag/></D:prop></D:propfind>"
)
MORE_PRINCIPAL = (
    HEADER + '<D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop>'
    "<C:schedule-default-calendar-URL/><C:calendar-user-type/><D:displayname/></D:prop>"
    "</D:propfind>"
)
MULTIGET = (
    HEADER + '<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
    "<D:prop><D:getetag/><C:calendar-data/></D:prop><D:href>{href}</D:href>"
    "</C:calendar-multiget>"
)

REPLY = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//meetplugin tests//EN
METHOD:REPLY
BEGIN:VEVENT
UID:reply-1@test
DTSTAMP:20261121T100000Z
DTSTART:20261125T100000Z
DTEND:20261125T110000Z
SUMMARY:Планёрка
ORGANIZER:mailto:alice@example.com
ATTENDEE;PARTSTAT=ACCEPTED:mailto:bob@example.com
END:VEVENT
END:VCALENDAR
""".replace("\n", "\r\n")


@pytest.fixture(scope="module")
def radicale_config(telemost) -> str:
    return plugin_config(telemost.url) + "[scheduling]\nenabled = true\n"


def propfind(radicale, user: str, path: str, body: str, depth: str = "0") -> ET.Element:
    r = radicale.session(user).request(
        "PROPFIND",
        f"{radicale.url}{path}",
        data=body.encode(),
        headers={"Depth": depth, "Content-Type": "text/xml; charset=utf-8"},
    )
    assert r.status_code == 207, r.text
    return ET.fromstring(r.content)


def found(multistatus: ET.Element, href: str | None = None) -> dict[str, ET.Element]:
    """The 200 properties of the response for `href` (the first one when None)."""
    for response in multistatus.findall(f"{D}response"):
        if href is not None and response.findtext(f"{D}href") != href:
            continue
        props = {}
        for propstat in response.findall(f"{D}propstat"):
            if "200" in (propstat.findtext(f"{D}status") or ""):
                for prop in propstat.find(f"{D}prop") or ():
                    props[prop.tag] = prop
        return props
    raise AssertionError(f"no response for {href}")


def missing(multistatus: ET.Element) -> set[str]:
    """The 404 properties of the first response."""
    response = multistatus.find(f"{D}response")
    return {
        prop.tag
        for propstat in response.findall(f"{D}propstat")
        if "404" in (propstat.findtext(f"{D}status") or "")
        for prop in propstat.find(f"{D}prop") or ()
    }


def hrefs(element: ET.Element) -> list[str]:
    return [h.text or "" for h in element.findall(f"{D}href")]


def test_options_advertises_auto_schedule_on_the_home_thunderbird_asks(radicale):
    """Thunderbird's checkServerCaps: OPTIONS on the calendar's parent (the home)."""
    for path in ("/alice/", "/alice/calendar/", "/"):
        r = radicale.session("alice").options(f"{radicale.url}{path}")
        assert r.status_code == 200
        features = [f.strip() for f in r.headers["DAV"].split(",")]
        assert features[0] == "1" and features.count("calendar-auto-schedule") == 1, features
        assert "calendar-access" in features


def test_calendar_stays_a_calendar_for_thunderbird(radicale):
    ms = propfind(radicale, "alice", "/alice/calendar/", TB_RESOURCETYPE)
    props = found(ms)
    assert {e.tag for e in props[f"{D}resourcetype"]} == {f"{C}calendar", f"{D}collection"}
    principal = props[f"{D}current-user-principal"]
    assert hrefs(principal) == ["/alice/"]


def test_principal_answers_what_thunderbird_asks(radicale):
    ms = propfind(radicale, "alice", "/alice/", TB_PRINCIPAL)
    props = found(ms)
    assert hrefs(props[f"{C}calendar-home-set"]) == ["/alice/"]
    addresses = hrefs(props[f"{C}calendar-user-address-set"])
    assert addresses == ["mailto:alice@example.com", "/alice/"]  # the first mailto: is primary
    assert hrefs(props[f"{C}schedule-inbox-URL"]) == ["/alice/inbox/"]
    assert hrefs(props[f"{C}schedule-outbox-URL"]) == ["/alice/outbox/"]
    assert not missing(ms)


def test_principal_default_calendar_and_user_type(radicale):
    ms = propfind(radicale, "alice", "/alice/", MORE_PRINCIPAL)
    props = found(ms)
    assert hrefs(props[f"{C}schedule-default-calendar-URL"]) == ["/alice/calendar/"]
    assert props[f"{C}calendar-user-type"].text == "INDIVIDUAL"


def test_boxes_are_made_with_their_own_resource_types(radicale):
    propfind(radicale, "bob", "/bob/", TB_PRINCIPAL)  # made on first use
    ms = propfind(radicale, "bob", "/bob/", TB_ETAGS, depth="1")
    types = {
        r.findtext(f"{D}href"): {
            e.tag for e in found(ms, r.findtext(f"{D}href"))[f"{D}resourcetype"]
        }
        for r in ms.findall(f"{D}response")
    }
    assert types["/bob/inbox/"] == {f"{D}collection", f"{C}schedule-inbox"}
    assert types["/bob/outbox/"] == {f"{D}collection", f"{C}schedule-outbox"}
    assert types["/bob/calendar/"] == {f"{D}collection", f"{C}calendar"}
    assert (radicale.storage / "collection-root" / "bob" / "inbox").is_dir()


def test_allprop_shows_no_mark_of_ours(radicale):
    propfind(radicale, "alice", "/alice/", TB_PRINCIPAL)
    for body in (None, HEADER + '<D:propfind xmlns:D="DAV:"><D:propname/></D:propfind>'):
        r = radicale.session("alice").request(
            "PROPFIND", f"{radicale.url}/alice/inbox/", data=body, headers={"Depth": "0"}
        )
        assert r.status_code == 207
        assert "meetplugin" not in r.text and "schedule-box" not in r.text
        assert "schedule-inbox" in r.text


def test_inbox_is_listed_read_and_emptied_as_thunderbird_does(radicale):
    propfind(radicale, "alice", "/alice/", TB_PRINCIPAL)
    # a scheduling message, delivered by the server (written into its storage folder)
    (radicale.storage / "collection-root" / "alice" / "inbox" / "reply-1.ics").write_text(REPLY)
    ms = propfind(radicale, "alice", "/alice/inbox/", TB_ETAGS, depth="1")
    item = found(ms, "/alice/inbox/reply-1.ics")
    assert item[f"{D}getcontenttype"].text.startswith("text/calendar")
    assert item[f"{D}getetag"].text
    r = radicale.session("alice").request(
        "REPORT",
        f"{radicale.url}/alice/inbox/",
        data=MULTIGET.format(href="/alice/inbox/reply-1.ics").encode(),
        headers={"Depth": "1", "Content-Type": "text/xml; charset=utf-8"},
    )
    assert r.status_code == 207 and "PARTSTAT=ACCEPTED" in r.text
    assert "METHOD:REPLY" in radicale.get("alice", "alice/inbox/reply-1.ics").text
    assert radicale.delete("alice", "alice/inbox/reply-1.ics").status_code == 200
    assert radicale.get("alice", "alice/inbox/reply-1.ics").status_code == 404
    assert not (radicale.storage / "collection-root" / "alice" / "inbox" / "reply-1.ics").exists()


def test_clients_cannot_write_into_a_box_or_delete_it(radicale):
    propfind(radicale, "alice", "/alice/", TB_PRINCIPAL)
    for box in ("inbox", "outbox"):
        assert radicale.put("alice", f"alice/{box}/x.ics", REPLY).status_code == 403
        assert radicale.delete("alice", f"alice/{box}/").status_code == 403
        assert (radicale.storage / "collection-root" / "alice" / box).is_dir()
    alice = radicale.session("alice")
    for method, path in (("MKCOL", "/alice/inbox/sub/"), ("MKCALENDAR", "/alice/outbox/sub/")):
        assert alice.request(method, f"{radicale.url}{path}").status_code == 403
    patch = (
        HEADER + '<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:displayname>x'
        "</D:displayname></D:prop></D:set></D:propertyupdate>"
    )
    r = alice.request("PROPPATCH", f"{radicale.url}/alice/inbox/", data=patch.encode())
    assert r.status_code == 403
    from harness import event

    assert radicale.put("alice", "alice/calendar/move-me.ics", event(uid="move-me")).status_code
    r = alice.request(
        "MOVE",
        f"{radicale.url}/alice/calendar/move-me.ics",
        headers={"Destination": f"{radicale.url}/alice/inbox/move-me.ics"},
    )
    assert r.status_code == 403
    assert radicale.get("alice", "alice/calendar/move-me.ics").status_code == 200
    r = alice.request(
        "MOVE",
        f"{radicale.url}/alice/calendar/move-me.ics",
        headers={"Destination": f"{radicale.url}/alice/calendar/moved.ics"},
    )
    assert r.status_code in (201, 204)  # a move between calendars stays Radicale's
    assert radicale.session("bob").options(f"{radicale.url}/alice/inbox/").status_code == 200
    r = radicale.session("bob").request(
        "PROPFIND", f"{radicale.url}/alice/inbox/", headers={"Depth": "1"}
    )
    assert r.status_code == 403  # owner_only: bob never reads alice's inbox


def test_events_in_calendars_still_get_their_link(radicale):
    from harness import event

    r = radicale.put("alice", "alice/calendar/sched-1.ics", event(uid="sched-1", location="jitsi"))
    assert r.status_code == 201
    assert "meet.jit.si" in radicale.get("alice", "alice/calendar/sched-1.ics").text


def test_caldav_library_scheduling_helpers(radicale):
    client = caldav.DAVClient(url=f"{radicale.url}/", username="alice", password="alice")
    principal = client.principal()
    assert principal.calendar_user_address_set() == [
        "mailto:alice@example.com",
        "/alice/",
    ]
    assert str(principal.calendar_home_set.url).endswith("/alice/")
    inbox = principal.schedule_inbox()
    outbox = principal.schedule_outbox()
    assert str(inbox.url).endswith("/alice/inbox/")
    assert str(outbox.url).endswith("/alice/outbox/")
    (radicale.storage / "collection-root" / "alice" / "inbox" / "reply-2.ics").write_text(
        REPLY.replace("reply-1@test", "reply-2@test")
    )
    items = list(inbox.get_items())  # by sync-collection, as the library does
    assert [i.icalendar_component["uid"] for i in items] == ["reply-2@test"]
    items[0].delete()
    assert radicale.get("alice", "alice/inbox/reply-2.ics").status_code == 404
    # the boxes are not calendars: a client lists only the calendar
    names = sorted(str(c.url).rstrip("/").rsplit("/", 1)[-1] for c in principal.calendars())
    assert names == ["calendar"]
    assert principal.get_vcal_address().params["cutype"] == "INDIVIDUAL"


# --- scheduling off: Radicale's own answers, byte for byte ----------------------------


@pytest.fixture(scope="module")
def off(tmp_path_factory, telemost, radicale_env):
    """The plugin with its default config: `[scheduling]` off."""
    server = RadicaleServer(
        tmp_path_factory.mktemp("sched-off"), plugin_config(telemost.url), env=radicale_env
    )
    server.start()
    server.ensure_user("alice")
    yield server
    server.stop()
    assert "Traceback" not in server.log, server.log[-3000:]


PROPNAME = HEADER + '<D:propfind xmlns:D="DAV:"><D:propname/></D:propfind>'


@pytest.mark.parametrize(
    "path, body, depth",
    [
        ("/alice/", TB_PRINCIPAL, "0"),
        ("/alice/", MORE_PRINCIPAL, "0"),
        ("/alice/", PROPNAME, "0"),
        ("/alice/", None, "0"),  # allprop
        ("/alice/", TB_ETAGS, "1"),
        ("/alice/calendar/", TB_RESOURCETYPE, "0"),
    ],
)
def test_off_answers_as_plain_radicale(off, plain, path, body, depth):
    answers = []
    for server in (off, plain):
        r = server.session("alice").request(
            "PROPFIND",
            f"{server.url}{path}",
            data=body.encode() if body else None,
            headers={"Depth": depth},
        )
        answers.append((r.status_code, r.headers["DAV"], r.headers["Content-Type"], r.content))
    assert answers[0] == answers[1]
    assert b"/alice/inbox/" not in answers[0][3] and b"mailto:" not in answers[0][3]


def test_off_options_as_plain_radicale(off, plain):
    for path in ("/", "/alice/", "/alice/calendar/"):
        answers = []
        for server in (off, plain):
            r = server.session("alice").options(f"{server.url}{path}")
            answers.append((r.status_code, r.headers["DAV"], r.headers["Allow"], r.content))
        assert answers[0] == answers[1]
        assert "calendar-auto-schedule" not in answers[0][1]


def test_off_makes_no_boxes(off, plain):
    off.session("alice").request("PROPFIND", f"{off.url}/alice/", data=TB_PRINCIPAL.encode())
    home = off.storage / "collection-root" / "alice"
    assert not (home / "inbox").exists() and not (home / "outbox").exists()
    statuses = [s.put("alice", "alice/inbox/x.ics", REPLY).status_code for s in (off, plain)]
    assert statuses[0] == statuses[1] == 409  # no such collection, as in plain Radicale


# --- busy time through the outbox (RFC 6638 §5) -----------------------------------------

# Thunderbird's CalDavFreeBusyRequest, as it serialises it (Originator/Recipient headers too)
TB_FREEBUSY = """BEGIN:VCALENDAR
PRODID:-//Mozilla.org/NONSGML Mozilla Calendar V1.1//EN
VERSION:2.0
METHOD:REQUEST
BEGIN:VFREEBUSY
UID:fb-1@test
DTSTAMP:20261120T090000Z
DTSTART:20261124T000000Z
DTEND:20261127T000000Z
ORGANIZER:mailto:alice@example.com
ATTENDEE;PARTSTAT=NEEDS-ACTION;ROLE=REQ-PARTICIPANT;CUTYPE=INDIVIDUAL:mailto:{who}
END:VFREEBUSY
END:VCALENDAR
""".replace("\n", "\r\n")


def busy_request(radicale, user: str, outbox: str, who: str, organizer: str = ""):
    body = TB_FREEBUSY.format(who=who)
    if organizer:
        body = body.replace("mailto:alice@example.com", f"mailto:{organizer}")
    return radicale.session(user).post(
        f"{radicale.url}{outbox}",
        data=body.encode(),
        headers={
            "Content-Type": "text/calendar; charset=utf-8",
            "Originator": "mailto:alice@example.com",
            "Recipient": f"mailto:{who}",
        },
    )


def test_outbox_answers_a_local_attendees_busy_time(radicale):
    from harness import event

    propfind(radicale, "alice", "/alice/", TB_PRINCIPAL)
    propfind(radicale, "bob", "/bob/", TB_PRINCIPAL)
    busy = event(uid="bob-busy", start="20261125T100000Z", end="20261125T110000Z", tzid="")
    free = event(
        uid="bob-free",
        start="20261125T130000Z",
        end="20261125T140000Z",
        tzid="",
        extra="TRANSP:TRANSPARENT",
    )
    assert radicale.put("bob", "bob/calendar/busy.ics", busy).status_code == 201
    assert radicale.put("bob", "bob/calendar/free.ics", free).status_code == 201
    r = busy_request(radicale, "alice", "/alice/outbox/", "bob@example.com")
    assert r.status_code == 200, r.text
    answer = ET.fromstring(r.content)
    assert answer.tag == f"{C}schedule-response"
    (response,) = answer.findall(f"{C}response")
    assert response.findtext(f"{C}recipient/{D}href") == "mailto:bob@example.com"
    assert response.findtext(f"{C}request-status").startswith("2.0")
    data = response.findtext(f"{C}calendar-data")
    import icalendar

    (fb,) = icalendar.Calendar.from_ical(data).walk("VFREEBUSY")
    assert str(icalendar.Calendar.from_ical(data)["METHOD"]) == "REPLY"
    assert str(fb["UID"]) == "fb-1@test"
    assert str(fb["ATTENDEE"]) == "mailto:bob@example.com"
    periods = fb["FREEBUSY"] if isinstance(fb["FREEBUSY"], list) else [fb["FREEBUSY"]]
    assert [p.to_ical().decode() for p in periods] == ["20261125T100000Z/20261125T110000Z"]
    assert "Планёрка" not in r.text  # busy time only, never what the meeting is


def test_outbox_unknown_attendee_and_refusals(radicale):
    propfind(radicale, "alice", "/alice/", TB_PRINCIPAL)
    propfind(radicale, "bob", "/bob/", TB_PRINCIPAL)
    r = busy_request(radicale, "alice", "/alice/outbox/", "stranger@example.org")
    assert r.status_code == 200
    assert ET.fromstring(r.content).findtext(f"{C}response/{C}request-status").startswith("3.7")
    # someone else's outbox; an ORGANIZER that is not the sender; no busy-time request
    assert busy_request(radicale, "alice", "/bob/outbox/", "bob@example.com").status_code == 403
    r = busy_request(radicale, "alice", "/alice/outbox/", "bob@example.com", "bob@example.com")
    assert r.status_code == 403 and "organizer-allowed" in r.text
    r = radicale.session("alice").post(
        f"{radicale.url}/alice/outbox/",
        data=REPLY.encode(),
        headers={"Content-Type": "text/calendar"},
    )
    assert r.status_code == 403 and "valid-scheduling-message" in r.text
    # the inbox and calendars take no POST, as in Radicale
    assert busy_request(radicale, "alice", "/alice/inbox/", "bob@example.com").status_code == 405


def test_outbox_refuses_a_busy_time_request_for_too_many_people(radicale):
    """Each recipient is looked up under Radicale's lock: one request may not hold it long."""
    from radicale_meetplugin.radicale import scheduling

    propfind(radicale, "alice", "/alice/", TB_PRINCIPAL)
    line = "ATTENDEE;PARTSTAT=NEEDS-ACTION;ROLE=REQ-PARTICIPANT;CUTYPE=INDIVIDUAL:mailto:{who}"
    many = "\r\n".join(
        line.format(who=f"p{n}@example.org") for n in range(scheduling.MAX_BUSY_RECIPIENTS + 1)
    )
    body = TB_FREEBUSY.format(who="bob@example.com").replace(
        line.format(who="bob@example.com"), many
    )
    r = radicale.session("alice").post(
        f"{radicale.url}/alice/outbox/",
        data=body.encode(),
        headers={"Content-Type": "text/calendar"},
    )
    assert r.status_code == 403 and "valid-scheduling-message" in r.text
    # the same person named many times is answered once
    same = "\r\n".join([line.format(who="bob@example.com")] * 500)
    body = TB_FREEBUSY.format(who="bob@example.com").replace(
        line.format(who="bob@example.com"), same
    )
    r = radicale.session("alice").post(
        f"{radicale.url}/alice/outbox/",
        data=body.encode(),
        headers={"Content-Type": "text/calendar"},
    )
    assert r.status_code == 200
    assert len(ET.fromstring(r.content).findall(f"{C}response")) == 1
