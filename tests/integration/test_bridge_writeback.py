"""The bridge's write-back rules against an in-memory CalDAV server, with the engine and
the bridge's state on sqlite: If-Match, a server that answers 412, refuses properties or
keeps changing what it is sent."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from harness import event

from bridge import config, follow
from bridge.caldav_client import PutResult, Resource
from bridge.state import BridgeState
from bridge.writeback import Link, Tally, Writer
from radicale_meetplugin import bootstrap
from radicale_meetplugin.protocol.session import MAX_CONFLICTS


@dataclass
class Stored:
    etag: str
    text: str


class MemoryServer:
    """Just enough CalDAV for Writer: GET, PUT with If-Match, the ETag of one event."""

    def __init__(self) -> None:
        self.items: dict[str, Stored] = {}
        self.puts: list[str] = []
        self.n = 0
        self.rewrite: Callable[[str], str] = lambda t: t  # what the server makes of a PUT
        self.refuse: tuple[str, ...] = ()
        self.before_put: Callable[[str], None] | None = None
        self.give_etag = True

    def store(self, href: str, text: str) -> Resource:
        self.n += 1
        self.items[href] = Stored(f'"e{self.n}"', text)
        return self.get(href)

    def touch(self, href: str) -> Resource:
        """The server changes the event's ETag by itself (say, a scheduling step)."""
        return self.store(href, self.items[href].text)

    def get(self, href: str) -> Resource | None:
        item = self.items.get(href)
        return Resource(href, item.etag, item.text) if item else None

    def etag(self, href: str) -> str:
        return self.items[href].etag if href in self.items else ""

    def put(self, href: str, text: str, etag: str) -> PutResult:
        if self.before_put:
            self.before_put(href)
        self.puts.append(text)
        if href in self.items and self.items[href].etag != etag:
            return PutResult(412)
        if any(name in text for name in self.refuse):
            return PutResult(403)
        stored = self.store(href, self.rewrite(text))
        return PutResult(201, stored.etag if self.give_etag else "")


@pytest.fixture
def writer(tmp_path, state_url):
    """On both engines: the records and the bridge's state in sqlite files or one database."""
    engine = bootstrap.build_engine("", str(tmp_path), default_state_url=state_url)
    state = BridgeState(state_url or str(tmp_path / "bridge.sqlite"))
    server = MemoryServer()
    account = config.Account("a", "http://dav.invalid/", owner="alice")
    link = Link(account, server)  # type: ignore[arg-type]
    yield Writer(engine, state), link, server, state
    state.close()
    engine.store.close()


CAL = "/alice/cal/"


def drop_ours(text: str) -> str:
    unfolded = text.replace("\r\n ", "").replace("\n ", "")
    return "".join(
        line
        for line in unfolded.splitlines(keepends=True)
        if not line.startswith(("X-MEETPLUGIN", "CONFERENCE"))
    )


def test_a_rewritten_event_is_written_with_if_match_and_remembered(writer):
    w, link, server, state = writer
    res = server.store(CAL + "1.ics", event("1@x", location="jitsi"))
    tally = Tally()
    w.judge(link, CAL, res, tally)
    assert tally.written == 1 and len(server.puts) == 1
    item = state.item("a", CAL + "1.ics")
    assert item.etag == item.written_etag == server.etag(CAL + "1.ics")
    assert follow.handled(item.known(), server.etag(CAL + "1.ics"))


def test_no_etag_from_put_is_looked_up(writer):
    w, link, server, state = writer
    server.give_etag = False
    res = server.store(CAL + "1.ics", event("1@x", location="jitsi"))
    w.judge(link, CAL, res, Tally())
    assert state.item("a", CAL + "1.ics").written_etag == server.etag(CAL + "1.ics")


def test_a_server_that_keeps_changing_our_write_gets_it_at_most_twice(writer):
    """Our ETag recognition fails (the server re-tags what we wrote) and it drops
    our X- properties: without a guard every cycle would write again."""
    w, link, server, state = writer
    server.rewrite = drop_ours
    res = server.store(CAL + "1.ics", event("1@x", location="jitsi"))
    for _cycle in range(6):
        w.judge(link, CAL, res, Tally())
        res = server.touch(CAL + "1.ics")
    assert len(server.puts) == 2
    assert "https://meet.jit.si/" in server.items[CAL + "1.ics"].text


def test_a_server_refusing_conference_gets_the_event_without_it_from_then_on(writer):
    w, link, server, _state = writer
    server.refuse = ("CONFERENCE",)
    w.judge(link, CAL, server.store(CAL + "1.ics", event("1@x", location="jitsi")), Tally())
    assert link.reduced and len(server.puts) == 2
    assert "LOCATION:https://meet.jit.si/" in server.items[CAL + "1.ics"].text
    w.judge(link, CAL, server.store(CAL + "2.ics", event("2@x", location="jitsi")), Tally())
    assert len(server.puts) == 3  # straight to the trimmed event


def test_endless_concurrent_edits_give_up_after_a_few_tries_and_come_back(writer):
    w, link, server, state = writer
    href = CAL + "1.ics"
    res = server.store(href, event("1@x", location="jitsi"))
    server.before_put = lambda h: server.touch(h)  # someone saves every time just before us
    tally = Tally()
    w.judge(link, CAL, res, tally)
    assert tally.conflicts == MAX_CONFLICTS + 1 and len(server.puts) == MAX_CONFLICTS + 1
    assert state.dirty("a") == [(CAL, href)]
    server.before_put = None
    w.judge(link, CAL, server.get(href), Tally())
    assert state.dirty("a") == [] and "meet.jit.si" in server.items[href].text


def test_a_task_or_unreadable_resource_is_only_remembered(writer):
    w, link, server, state = writer
    res = server.store(
        CAL + "t.ics", "BEGIN:VCALENDAR\nBEGIN:VTODO\nUID:t\nEND:VTODO\nEND:VCALENDAR\n"
    )
    w.judge(link, CAL, res, Tally())
    assert server.puts == [] and state.item("a", CAL + "t.ics").etag == res.etag
