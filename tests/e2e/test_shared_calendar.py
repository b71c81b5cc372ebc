"""A shared calendar (Radicale rights from a file): the writer organizes their own events."""

from __future__ import annotations

import json
import uuid

import icalendar
from harness import RadicaleServer, event

RIGHTS = """\
[own]
user: .+
collection: {user}(/.*)?
permissions: RrWw
[team]
user: alice|bob
collection: team(/.*)?
permissions: RrWw
[principals]
user: .+
collection: [^/]*
permissions: R
[root]
user: .+
collection:
permissions: R
"""


def vevent_of(text: str) -> icalendar.Event:
    [ev] = icalendar.Calendar.from_ical(text).walk("VEVENT")
    return ev


def test_the_writer_of_a_shared_calendar_gets_conferences_for_their_events(tmp_path):
    rights = tmp_path / "rights"
    rights.write_text(RIGHTS)
    server = RadicaleServer(
        tmp_path / "r",
        "[meetplugin]\nowner_addresses = {user}@example.com\nlanguage = en\n",
        rights=f"type = from_file\nfile = {rights}",
    )
    meet = server.storage / "collection-root" / "team" / "meet"
    meet.mkdir(parents=True)
    (meet / ".Radicale.props").write_text(json.dumps({"tag": "VCALENDAR"}))
    server.start()
    try:
        uid = f"{uuid.uuid4()}@test"
        path = f"team/meet/{uid}.ics"
        mine = "ORGANIZER:mailto:alice@example.com\nATTENDEE:mailto:bob@example.com"
        r = server.put("alice", path, event(uid, location="jitsi", extra=mine))
        assert r.status_code in (200, 201), r.text
        assert "ETag" not in r.headers  # rewritten
        ev = vevent_of(server.get("bob", path).text)
        assert str(ev["LOCATION"]).startswith("https://meet.jit.si/")
        assert "CONFERENCE" in ev

        # bob writes an event whose organizer is carol: an attendee's copy, left alone
        other = f"{uuid.uuid4()}@test"
        carols = "ORGANIZER:mailto:carol@example.org\nATTENDEE:mailto:bob@example.com"
        r = server.put(
            "bob", f"team/meet/{other}.ics", event(other, location="jitsi", extra=carols)
        )
        assert r.status_code in (200, 201) and "ETag" in r.headers
        assert str(vevent_of(server.get("bob", f"team/meet/{other}.ics").text)["LOCATION"]) == (
            "jitsi"
        )
        server.wait_for_log(rf"team/meet/{other}: left alone: ORGANIZER carol@example.org")
    finally:
        server.stop()
    assert "Traceback" not in server.log, server.log[-3000:]
