"""Radicale stays Radicale: for events without markers, the plugin's server answers exactly
as plain Radicale does — status, ETag, body — across PUT, GET, PROPFIND, REPORT (query and
sync-collection with tokens), PROPPATCH, MOVE, collection PUT and DELETE."""

from __future__ import annotations

import re

import pytest
from harness import RadicaleServer, event

SYNC = """<?xml version="1.0" encoding="utf-8"?>
<D:sync-collection xmlns:D="DAV:"><D:sync-token>{token}</D:sync-token>
<D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>"""
QUERY = """<?xml version="1.0" encoding="utf-8"?>
<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
<D:prop><D:getetag/><C:calendar-data/></D:prop>
<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">
<C:time-range start="20261101T000000Z" end="20261201T000000Z"/>
</C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"""
PROPPATCH = """<?xml version="1.0" encoding="utf-8"?>
<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:displayname>Работа</D:displayname>
</D:prop></D:set></D:propertyupdate>"""


_TOKEN = re.compile(r"http://radicale\.org/ns/sync/[0-9a-f]{64}")


def normal(text: str, tokens: dict) -> str:
    """Only what differs between two equal servers: port, clock, and sync tokens (whose
    history starts from random bytes): each server's tokens are numbered in order seen."""
    text = re.sub(r"127\.0\.0\.1:\d+", "HOST", text)
    text = re.sub(r"<getlastmodified>[^<]*</getlastmodified>", "<getlastmodified/>", text)
    return _TOKEN.sub(lambda m: tokens.setdefault(m.group(0), f"TOKEN{len(tokens)}"), text)


@pytest.fixture(scope="module")
def pair(tmp_path_factory, radicale):
    plain = RadicaleServer(tmp_path_factory.mktemp("parity-plain"), plugin=False).start()
    plain.ensure_user("alice")
    yield (radicale, {}), (plain, {})
    plain.stop()


def both(pair, method: str, path: str, body: str = "", **headers: str):
    answers = []
    for server, tokens in pair:
        mine = {v: k for k, v in tokens.items()}  # a numbered token back to this server's own
        data = re.sub(r"TOKEN\d+", lambda m: mine[m.group(0)], body)
        r = server.session("alice").request(
            method, f"{server.url}/{path}", data=data.encode(), headers=headers
        )
        answers.append((r.status_code, r.headers.get("ETag"), normal(r.text, tokens)))
    if answers[0] != answers[1]:
        import difflib

        diff = difflib.unified_diff(
            answers[0][2].replace("><", ">\n<").splitlines(),
            answers[1][2].replace("><", ">\n<").splitlines(),
            lineterm="",
        )
        raise AssertionError(
            f"{method} {path}: {answers[0][:2]} vs {answers[1][:2]}\n" + "\n".join(diff)
        )
    return answers[0]


def test_the_same_answers_as_plain_radicale(pair):
    col = "alice/parity/"
    both(pair, "MKCALENDAR", col)
    _, _, sync = both(pair, "REPORT", col, SYNC.format(token=""), Depth="1")
    token = re.search(r"<sync-token>([^<]+)</sync-token>", sync).group(1)
    assert token.startswith("TOKEN")
    events = {
        f"p{i}@parity": event(
            f"p{i}@parity",
            location=loc,
            summary=f"Встреча {i}",
            description="Повестка; итоги, план\\nвторая строка",
        )
        for i, loc in enumerate(
            # a link that is no meeting link: pasted meeting links get a CONFERENCE (tested apart)
            ["Переговорная 5", "", "https://example.org/agenda/1", "Офис, 3 этаж"]
        )
    }
    for uid, text in events.items():
        both(pair, "PUT", f"{col}{uid}.ics", text, **{"Content-Type": "text/calendar"})
    both(pair, "GET", f"{col}p0@parity.ics")
    both(pair, "PROPFIND", col, "", Depth="1")
    both(pair, "REPORT", col, QUERY, Depth="1")
    _, _, changed = both(pair, "REPORT", col, SYNC.format(token=token), Depth="1")
    assert changed.count("<response>") == len(events)
    both(pair, "PROPPATCH", col, PROPPATCH)
    both(pair, "MKCALENDAR", "alice/parity2/")
    both(pair, "MOVE", f"{col}p1@parity.ics", "", Destination="/alice/parity2/p1@parity.ics")
    both(pair, "DELETE", f"{col}p2@parity.ics")
    whole = "".join(events.values()).replace(
        "END:VCALENDAR\r\nBEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//meetplugin tests//EN\r\n", ""
    )
    both(pair, "PUT", "alice/imported-parity/", whole, **{"Content-Type": "text/calendar"})
    both(pair, "GET", "alice/imported-parity/")
    both(pair, "REPORT", col, SYNC.format(token=token), Depth="1")
    both(pair, "DELETE", "alice/parity2/")
