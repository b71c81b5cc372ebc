"""The bridge's pure parts, without a server: `follow` (which hrefs to read) by table and
by properties; the config file; `uid_of` and `without_extras`."""

from __future__ import annotations

import logging
import os

import pytest
from harness import event
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge import config, follow
from bridge.writeback import uid_of, without_extras
from radicale_meetplugin.config import ConfigError

K = follow.Known


# --- follow: table ---------------------------------------------------------------


@pytest.mark.parametrize(
    "known, changed, deleted, fetch, own, gone",
    [
        ({}, {"/c/a": "1"}, [], ["/c/a"], [], []),  # new
        ({"/c/a": K("a", "1")}, {"/c/a": "1"}, [], [], [], []),  # handled already
        ({"/c/a": K("a", "1")}, {"/c/a": "2"}, [], ["/c/a"], [], []),  # edited
        ({"/c/a": K("a", "2", "2")}, {"/c/a": "2"}, [], [], ["/c/a"], []),  # our own write-back
        ({"/c/a": K("a", "3", "2")}, {"/c/a": "2"}, [], [], ["/c/a"], []),  # ours, seen later
        ({"/c/a": K("a", "1")}, {"/c/a": None}, [], ["/c/a"], [], []),  # no ETag: read to know
        ({"/c/a": K("a", "1")}, {}, ["/c/a"], [], [], ["/c/a"]),  # deleted
        ({}, {}, ["/c/x"], [], [], []),  # never seen: nothing
        (
            {"/c/a": K("a", "1")},
            {"/c/a": "2"},
            ["/c/a"],
            ["/c/a"],
            [],
            [],
        ),  # re-created: changed wins
    ],
)
def test_delta(known, changed, deleted, fetch, own, gone):
    changes = follow.from_delta(known, changed, deleted)
    assert list(changes.fetch) == fetch
    assert list(changes.own) == own
    assert list(changes.deleted) == gone


def test_listing_deletes_what_is_absent():
    known = {"/c/a": K("a", "1"), "/c/b": K("b", "1"), "/c/c": K("c", "5", "5")}
    changes = follow.from_listing(known, {"/c/a": "1", "/c/c": "5", "/c/d": "1"})
    assert list(changes.fetch) == ["/c/d"]
    assert list(changes.deleted) == ["/c/b"]
    assert changes.seen == {}


# --- follow: properties --------------------------------------------------------------

hrefs = st.sampled_from([f"/cal/{i}.ics" for i in range(8)])
etags = st.sampled_from(["e1", "e2", "e3", "e4"])
servers = st.dictionaries(hrefs, etags, max_size=8)


@st.composite
def known_states(draw):
    server = draw(servers)
    known = {}
    for href in draw(st.lists(hrefs, unique=True, max_size=8)):
        etag = draw(etags)
        written = draw(st.sampled_from(["", etag, "e9"]))
        known[href] = K("uid", etag, written)
    return known, server


@settings(max_examples=300, deadline=None)
@given(known_states())
def test_listing_reads_exactly_the_versions_not_handled_and_converges(case):
    known, server = case
    changes = follow.from_listing(known, server)
    assert set(changes.fetch) == {
        h for h, e in server.items() if not follow.handled(known.get(h), e)
    }
    assert set(changes.deleted) == set(known) - set(server)
    assert not set(changes.fetch) & set(changes.deleted)
    # Once the reads are judged, a second look finds nothing to do.
    after = {h: k for h, k in known.items() if h in server}
    after.update({h: K("uid", server[h]) for h in changes.fetch})
    assert follow.from_listing(after, server).empty


@settings(max_examples=300, deadline=None)
@given(servers, servers)
def test_a_delta_finds_what_a_full_listing_finds(before, after):
    known = {h: K("uid", e) for h, e in before.items()}
    changed = {h: e for h, e in after.items() if before.get(h) != e}
    deleted = [h for h in before if h not in after]
    by_delta = follow.from_delta(known, changed, deleted)
    by_listing = follow.from_listing(known, after)
    assert set(by_delta.fetch) == set(by_listing.fetch)
    assert set(by_delta.deleted) == set(by_listing.deleted)


# --- reading UIDs and trimming -----------------------------------------------------------


def test_uid_of():
    assert uid_of(event("abc@x")) == "abc@x"
    folded = (
        "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:long-\r\n uid\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    assert uid_of(folded) == "long-uid"
    assert uid_of('BEGIN:VEVENT\nUID;X-A="a:b":u1\nEND:VEVENT\n') == "u1"
    todo = "BEGIN:VCALENDAR\nBEGIN:VTODO\nUID:t1\nEND:VTODO\nEND:VCALENDAR\n"
    assert uid_of(todo) == ""
    tz_first = (
        "BEGIN:VCALENDAR\nBEGIN:VTIMEZONE\nTZID:X\nEND:VTIMEZONE\nBEGIN:VEVENT\n"
        "DTSTART:20260101T000000Z\nuid:lower\nEND:VEVENT\nEND:VCALENDAR\n"
    )
    assert uid_of(tz_first) == "lower"


def test_without_extras_keeps_the_link_in_location_and_description():
    text = event(
        "u@x",
        location="https://meet.jit.si/MeetA",
        description="Повестка",
        extra="CONFERENCE;VALUE=URI:https://meet.jit.si/MeetA\n"
        "X-MEETPLUGIN-PROVIDER:jitsi\nX-MEETPLUGIN-CONFERENCE-ID:MeetA\n"
        "X-OTHER:kept",
    )
    trimmed = without_extras(text)
    assert "CONFERENCE" not in trimmed and "X-MEETPLUGIN" not in trimmed
    assert "LOCATION:https://meet.jit.si/MeetA" in trimmed and "X-OTHER:kept" in trimmed


# --- config -------------------------------------------------------------------------


def write(tmp_path, text: str):
    path = tmp_path / "bridge.conf"
    path.write_text(text)
    return str(path)


def test_config_minimal_and_relative_paths(tmp_path):
    (tmp_path / "pw").write_text("s3cret-app-password\n")
    (tmp_path / "pw").chmod(0o600)
    cfg = config.load(
        write(
            tmp_path,
            """
[bridge]
meetplugin_config = meetplugin.conf
[account:work]
url = https://cloud.example.com/remote.php/dav
username = alice
password_file = pw
""",
        ),
        env={},
    )
    (account,) = cfg.accounts
    assert account.url == "https://cloud.example.com/remote.php/dav/"
    assert account.owner == "alice" and account.calendars == () and account.sync == "auto"
    assert account.password.value == "s3cret-app-password"
    assert "s3cret" not in repr(cfg)
    assert cfg.meetplugin_config == str(tmp_path / "meetplugin.conf")
    assert cfg.state_dir == os.path.expanduser("~/.local/state/meetplugin-bridge")
    assert (
        config.load(
            write(tmp_path, "[account:x]\nurl = http://127.0.0.1/\nowner = x\n"),
            env={"STATE_DIRECTORY": "/var/lib/mb"},
        ).state_dir
        == "/var/lib/mb"
    )


def test_config_password_from_env_and_readable_file_warning(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("NC_PASSWORD", "from-env")
    cfg = config.load(
        write(
            tmp_path,
            "[account:a]\nurl = https://h/\nusername = a@corp.example\n"
            "password_env = NC_PASSWORD\n"
            "calendars = /dav/cal/, https://h/dav/two/\n",
        )
    )
    account = cfg.accounts[0]
    assert account.password.value == "from-env"
    assert account.addresses == ("a@corp.example",)  # a login that is an address is theirs
    assert account.calendars == ("/dav/cal/", "https://h/dav/two/")
    (tmp_path / "pw").write_text("open")
    (tmp_path / "pw").chmod(0o644)
    with caplog.at_level(logging.WARNING):
        config.load(
            write(tmp_path, "[account:a]\nurl = https://h/\nusername = a\npassword_file = pw\n")
        )
    assert "chmod 600" in caplog.text and "open" not in caplog.text.replace("opened", "")


@pytest.mark.parametrize(
    "text, message",
    [
        ("[account:a]\nurl = https://h/\nusername = a\n", "no password"),
        ("[account:a]\nurl = https://h/\nusername = a\npassword_env = NOPE_UNSET_1\n", "is empty"),
        ("[account:a]\nurl = ftp://h/\nowner = a\n", "http:// or https://"),
        ("[account:a]\nurl = https://a:b@h/\nowner = a\n", "not into the URL"),
        ("[account:a]\nurl = https://h/\n", "needs an owner"),
        (
            "[account:a]\nurl = https://h/\nowner = a\ncolour = red\n",
            "unknown option 'colour' in [account:a]",
        ),
        ("[account:a]\nurl = https://h/\nowner = a\nsync = magic\n", "[account:a] sync"),
        ("[account:a]\nurl = https://h/\nowner = a\ncalendars = all, /x/\n", "either all"),
        ("[bridge]\ninterval = 0\n[account:a]\nurl = https://h/\nowner = a\n", "[bridge] interval"),
        ("[accounts]\n", "unknown section [accounts]"),
        ("[bridge]\n", "no [account:NAME]"),
        (
            "[account:a]\nurl = https://h/\nowner = a\n[account:b]\nurl = https://g/\nowner = A\n",
            "more than one account",
        ),
    ],
)
def test_config_errors_name_the_file_section_and_option(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        config.load(path, env={})
    assert message in str(e.value)
    assert path in str(e.value) or "no password" in message or "is empty" in message


def test_the_example_config_is_valid(tmp_path):
    example = os.path.join(os.path.dirname(__file__), "..", "..", "config", "bridge.example.conf")
    (tmp_path / "pw").write_text("app-password")
    (tmp_path / "pw").chmod(0o600)
    text = (
        open(example, encoding="utf-8")
        .read()
        .replace("/etc/meetplugin/alice.password", str(tmp_path / "pw"))
    )
    cfg = config.load(write(tmp_path, text), env={"STATE_DIRECTORY": str(tmp_path / "state")})
    assert [a.name for a in cfg.accounts] == ["alice"]
    assert cfg.accounts[0].addresses == ("alice@example.com", "a.ivanova@example.com")
    assert cfg.state_dir == str(tmp_path / "state") and cfg.interval == 60
