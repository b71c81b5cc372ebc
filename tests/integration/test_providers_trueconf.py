"""The TrueConf adapter (production code) against the TrueConf emulator's contract."""

from __future__ import annotations

import dataclasses
import logging
import re
import socket

import pytest
from harness import TRUECONF_CLIENT, TRUECONF_SECRET, event, utc

from radicale_meetplugin import config, providers
from radicale_meetplugin.bootstrap import build_engine
from radicale_meetplugin.config import Secret
from radicale_meetplugin.core import ical
from radicale_meetplugin.core.model import Conference, EventKey
from radicale_meetplugin.providers import ProviderError
from radicale_meetplugin.providers.schedule import timezone
from radicale_meetplugin.providers.trueconf import TrueConf

CLIENT, SECRET = TRUECONF_CLIENT, TRUECONF_SECRET
KEY = EventKey("alice", "alice/calendar", "u1@test")
ORGANIZED = (
    "ORGANIZER;CN=Alice:mailto:alice@example.com\n"
    "ATTENDEE;PARTSTAT=ACCEPTED:mailto:alice@example.com\n"
    'ATTENDEE;CN="Иванов, Иван":mailto:ivan@example.com\n'
    "ATTENDEE:MAILTO:Petr@Example.COM\n"
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def meeting(key: EventKey = KEY, **kw):
    return ical.meeting_of(ical.parse(event(key.uid, **kw)), key)


@pytest.fixture(autouse=True)
def clean_trueconf(tc):
    """Beyond the shared reset of calls and faults: no conferences, no tokens, a fake clock."""
    tc.conferences.clear()
    tc.tokens.clear()
    tc.expires_in = 604800
    tc.delete_status = 204
    tc.clock = Clock()
    yield


def adapter(tc, timeout: float = 2, secret: str = SECRET, clock=None, **kw) -> TrueConf:
    kw.setdefault("zone", timezone("Europe/Moscow"))
    return TrueConf(
        tc.api_url,
        tc.token_url,
        "https://tc.example.ru/c/",
        CLIENT,
        Secret(secret, "test"),
        timeout,
        clock=clock or Clock(),
        **kw,
    )


# --- create ----------------------------------------------------------------------


def test_create_sends_our_id_topic_schedule_owner_and_invitations(tc):
    a = adapter(tc)
    conf = a.create(meeting(extra=ORGANIZED))
    conf_id = a.conference_id(KEY)
    assert conf == Conference(
        "trueconf", conf_id, f"https://tc.example.ru/c/{conf_id}", {"schedule": "once"}
    )
    (token,) = tc.calls_of("POST", target="token")
    assert token.body == {
        "grant_type": "client_credentials",
        "client_id": CLIENT,
        "client_secret": SECRET,
    }
    (post,) = tc.calls_of("POST")
    assert post.authorization == f"Bearer {tc.issued[0]}"
    assert post.body == {
        "id": conf_id,
        "topic": "Планёрка",
        "type": 0,
        "owner": "alice",
        "schedule": {
            "type": 1,
            "start_time": utc(2026, 11, 25, 7),
            "duration": 3600,
            "time_offset": 180,
        },
        "invitations": [{"id": "ivan"}, {"id": "petr"}],  # the organizer is the owner
    }
    assert tc.conferences[conf_id]["url"] == conf.join_url


def test_the_id_is_stable_per_event_and_unguessable(tc):
    a, b = adapter(tc), adapter(tc, secret="another-secret")
    conf_id = a.conference_id(KEY)
    assert conf_id == a.conference_id(EventKey("alice", "alice/calendar", "u1@test"))
    assert conf_id.startswith("meet_") and len(conf_id) == 37
    assert conf_id[5:].isalnum() and "u1" not in conf_id
    assert b.conference_id(KEY) != conf_id  # keyed by the client secret
    assert a.conference_id(EventKey("alice", "alice/calendar", "u2@test")) != conf_id
    assert a.conference_id(EventKey("bob", "bob/calendar", "u1@test")) != conf_id


def test_a_repeated_create_finds_the_first_conference(tc):
    a = adapter(tc)
    first = a.create(meeting())
    again = a.create(meeting())
    assert again == first and len(tc.conferences) == 1
    assert [c.status for c in tc.calls_of("POST")] == [200, 409]
    assert [c.status for c in tc.calls_of("GET")] == [200]


def test_a_create_whose_answer_was_lost_is_found_on_retry(tc):
    tc.lose_answer_next("POST")
    a = adapter(tc, timeout=0.5)
    with pytest.raises(ProviderError) as e:
        a.create(meeting())
    assert (e.value.code, e.value.temporary, e.value.maybe_done) == ("unavailable", True, True)
    assert len(tc.conferences) == 1  # done at the server, the answer lost
    conf = a.create(meeting())
    assert list(tc.conferences) == [conf.conference_id]
    assert [c.status for c in tc.calls_of("POST")] == [-1, 409]


def test_a_forged_id_in_the_answer_is_refused(tc):
    tc.fail_next("POST", 200, {"conference": {"id": "x\r\nLocation: evil"}})
    with pytest.raises(ProviderError) as e:
        adapter(tc).create(meeting())
    assert e.value.provider_code == "BadConference" and e.value.maybe_done


# --- update and delete -----------------------------------------------------------


def test_update_puts_the_new_topic_schedule_and_invitations(tc):
    a = adapter(tc)
    conf = a.create(meeting())
    moved = meeting(
        summary="Планёрка (перенесена)",
        start="20261126T150000",
        end="20261126T163000",
        extra=ORGANIZED,
    )
    assert a.update(conf, moved) == conf
    (put,) = tc.calls_of("PUT")
    assert put.path.endswith(f"/conferences/{conf.conference_id}")
    assert put.body == {
        "topic": "Планёрка (перенесена)",
        "schedule": {
            "type": 1,
            "start_time": utc(2026, 11, 26, 12),
            "duration": 5400,
            "time_offset": 180,
        },
        "invitations": [{"id": "ivan"}, {"id": "petr"}],
    }
    assert tc.conferences[conf.conference_id]["schedule"]["start_time"] == utc(2026, 11, 26, 12)


def test_update_of_a_conference_deleted_at_the_server_makes_it_again(tc):
    a = adapter(tc)
    conf = a.create(meeting())
    tc.conferences.clear()
    assert a.update(conf, meeting(summary="Другое")) == conf  # same id, same link
    assert tc.conferences[conf.conference_id]["topic"] == "Другое"
    assert [c.status for c in tc.calls_of("PUT")] == [404]


@pytest.mark.parametrize("status", [204, 200])
def test_delete_and_already_deleted(tc, status):
    tc.delete_status = status
    a = adapter(tc)
    conf = a.create(meeting())
    a.delete(conf)
    assert conf.conference_id not in tc.conferences
    a.delete(conf)  # 404 conferenceNotFound counts as deleted
    assert [c.status for c in tc.calls_of("DELETE")] == [status, 404]


# --- the token -----------------------------------------------------------------------


def test_the_token_is_fetched_once_and_reused(tc):
    a = adapter(tc)
    for uid in ("a@t", "b@t", "c@t"):
        a.create(meeting(EventKey("alice", "alice/calendar", uid)))
    assert len(tc.calls_of("POST", target="token")) == 1
    assert a.tokens.fetched == 1


def test_a_401_renews_the_token_and_the_call_succeeds(tc):
    a = adapter(tc)
    a.create(meeting(EventKey("alice", "alice/calendar", "first@t")))
    tc.revoke_tokens()  # e.g. the admin regenerated the OAuth application's tokens
    conf = a.create(meeting())
    assert conf.conference_id in tc.conferences
    assert [c.status for c in tc.calls_of("POST")] == [200, 401, 200]
    assert len(tc.calls_of("POST", target="token")) == 2


def test_a_token_about_to_expire_is_renewed_before_the_call(tc):
    tc.expires_in = 100
    clock = Clock()
    tc.clock = clock  # the same time at both ends
    a = adapter(tc, clock=clock)
    a.create(meeting(EventKey("alice", "alice/calendar", "first@t")))
    clock.now += 91  # within the last 10 %: renewed first, so the API never says 401
    a.create(meeting())
    assert [c.status for c in tc.calls_of("POST")] == [200, 200]
    assert len(tc.calls_of("POST", target="token")) == 2


def test_a_token_expired_early_at_the_server_is_renewed_on_401(tc):
    tc.expires_in = 100
    a = adapter(tc, clock=Clock())
    a.create(meeting(EventKey("alice", "alice/calendar", "first@t")))
    tc.clock.now += 500  # the server's clock runs ahead: it thinks the token expired
    conf = a.create(meeting())
    assert conf.conference_id in tc.conferences
    assert [c.status for c in tc.calls_of("POST")] == [200, 401, 200]


def test_a_second_401_is_an_auth_error(tc):
    tc.fail_next(
        "POST",
        401,
        {"error": {"code": 401, "message": "Unauthorized", "errors": [{"reason": "invalidToken"}]}},
        times=2,
    )
    with pytest.raises(ProviderError) as e:
        adapter(tc).create(meeting())
    assert (e.value.code, e.value.status, e.value.temporary) == ("auth", 401, False)
    assert e.value.provider_code == "invalidToken"
    assert len(tc.calls_of("POST")) == 2


def test_a_wrong_client_secret_is_an_auth_error_and_never_shown(tc, caplog):
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(ProviderError) as e:
            adapter(tc, secret="wrong-secret-0").create(meeting())
    assert (e.value.code, e.value.status, e.value.temporary) == ("auth", 401, False)
    assert e.value.provider_code == "invalid_client"
    assert "wrong-secret-0" not in str(e.value) and "wrong-secret-0" not in caplog.text
    assert tc.calls_of("POST") == []  # no API call without a token


@pytest.mark.parametrize(
    "status,kind", [(500, "unavailable"), (503, "unavailable"), (429, "rate_limited")]
)
def test_a_token_endpoint_fault_is_temporary(tc, status, kind):
    tc.fail_next("POST", status, {"error": "server_error"}, target="token")
    with pytest.raises(ProviderError) as e:
        adapter(tc).create(meeting())
    assert (e.value.code, e.value.temporary, e.value.maybe_done) == (kind, True, False)
    assert tc.conferences == {}


def test_a_token_answer_without_a_token_is_refused(tc):
    tc.fail_next(
        "POST", 200, {"access_token": "bad token\r\nX: y", "expires_in": 60}, target="token"
    )
    with pytest.raises(ProviderError) as e:
        adapter(tc).create(meeting())
    assert (e.value.code, e.value.provider_code) == ("auth", "BadToken")


# --- faults ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status,kind,temporary",
    [
        (500, "unavailable", True),
        (502, "unavailable", True),
        (503, "unavailable", True),
        (429, "rate_limited", True),
        (403, "forbidden", False),
        (400, "rejected", False),
    ],
)
def test_error_statuses(tc, status, kind, temporary):
    tc.fail_next(
        "POST",
        status,
        {
            "error": {
                "code": status,
                "message": "m",
                "errors": [{"reason": "some<Reason>\r\nInjected", "message": "d"}],
            }
        },
        headers={"Retry-After": "7"},
    )
    with pytest.raises(ProviderError) as e:
        adapter(tc).create(meeting())
    assert (e.value.code, e.value.temporary) == (kind, temporary)
    assert e.value.provider_code == "someReasonInjected"  # sanitised before it reaches an event
    if status == 429:
        assert e.value.retry_after == 7


def test_a_non_json_answer_is_not_trusted(tc):
    tc.fail_next("POST", 200, raw=b"<html>proxy page</html>")
    with pytest.raises(ProviderError) as e:
        adapter(tc).create(meeting())
    assert (e.value.provider_code, e.value.temporary, e.value.maybe_done) == ("NotJson", True, True)


def test_a_timeout_is_temporary(tc):
    hold = tc.hold_next("PUT")
    try:
        a = adapter(tc, timeout=0.5)
        conf = a.create(meeting())
        with pytest.raises(ProviderError) as e:
            a.update(conf, meeting(summary="Новое"))
        assert (e.value.code, e.value.temporary) == ("unavailable", True)
        assert hold.entered.is_set()
    finally:
        hold.release.set()


def test_connection_refused_is_temporary():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once we leave: nobody listens there
    base = f"http://127.0.0.1:{port}"
    dead = TrueConf(
        f"{base}/api/v3.11",
        f"{base}/oauth2/v1/token",
        "https://tc.example.ru/c/",
        CLIENT,
        Secret(SECRET),
        2,
    )
    with pytest.raises(ProviderError) as e:
        dead.create(meeting())
    assert (e.value.code, e.value.temporary) == ("unavailable", True)


# --- time zones and series ---------------------------------------------------------------

ALL_DAY = dict(tzid="", start="20261125", end="20261127")


@pytest.mark.parametrize(
    "kw,start,duration,offset",
    [
        (dict(), utc(2026, 11, 25, 7), 3600, 180),  # TZID
        (
            dict(tzid="", start="20261125T100000Z", end="20261125T110000Z"),
            utc(2026, 11, 25, 10),
            3600,
            0,
        ),  # UTC
        (
            dict(tzid="", start="20261125T100000", end="20261125T113000"),
            utc(2026, 11, 25, 5),
            5400,
            300,
        ),  # floating
        (ALL_DAY, utc(2026, 11, 24, 19), 2 * 86400, 300),  # all-day
        (
            dict(tzid="America/New_York", start="20260701T100000", end="20260701T110000"),
            utc(2026, 7, 1, 14),
            3600,
            -240,
        ),  # summer time
        (
            dict(tzid="America/New_York", start="20260115T100000", end="20260115T110000"),
            utc(2026, 1, 15, 15),
            3600,
            -300,
        ),  # winter time
        (
            dict(tzid="Asia/Kolkata", start="20261125T100000", end="20261125T100000"),
            utc(2026, 11, 25, 4, 30),
            60,
            330,
        ),  # zero length
    ],
)
def test_time_zones(tc, kw, start, duration, offset):
    a = adapter(tc, zone=timezone("Asia/Yekaterinburg"))  # the admin's default zone: UTC+5
    a.create(meeting(**kw))
    (post,) = tc.calls_of("POST")
    assert post.body["schedule"] == {
        "type": 1,
        "start_time": start,
        "duration": duration,
        "time_offset": offset,
    }


def test_duration_instead_of_dtend(tc):
    text = event("d@t").replace("DTEND;TZID=Europe/Moscow:20261125T110000", "DURATION:PT45M")
    adapter(tc).create(ical.meeting_of(ical.parse(text), KEY))
    assert tc.calls_of("POST")[0].body["schedule"]["duration"] == 45 * 60


@pytest.mark.parametrize(
    "kw",
    [
        dict(extra="RRULE:FREQ=WEEKLY;COUNT=10"),
        dict(extra="RDATE;TZID=Europe/Moscow:20261202T100000,20261209T100000"),
        dict(extra="RRULE:FREQ=DAILY", **ALL_DAY),
    ],
)
def test_a_series_gets_a_permanent_room(tc, kw):
    conf = adapter(tc).create(meeting(**kw))
    assert tc.calls_of("POST")[0].body["schedule"] == {"type": -1}
    assert conf.extra == {"schedule": "none"}
    assert tc.joinable(conf.conference_id, utc(2030, 1, 1))


def test_an_invitation_for_one_occurrence_only_is_a_series_too(tc):
    text = event("o@t", extra="RECURRENCE-ID;TZID=Europe/Moscow:20261202T100000")
    adapter(tc).create(ical.meeting_of(ical.parse(text), KEY))
    assert tc.calls_of("POST")[0].body["schedule"] == {"type": -1}


# --- options ------------------------------------------------------------------------------


def test_topic_falls_back_and_is_cut_to_240(tc):
    a = adapter(tc)
    a.create(meeting(EventKey("a", "a/c", "1"), summary=""))
    a.create(meeting(EventKey("a", "a/c", "2"), summary="Я" * 300))
    first, second = tc.calls_of("POST")
    assert first.body["topic"] == "Видеовстреча"
    assert second.body["topic"] == "Я" * 240


@pytest.mark.parametrize(
    "mode,expected",
    [
        ("email", [{"id": "ivan@example.com"}, {"id": "petr@example.com"}]),
        ("none", None),
    ],
)
def test_invite_modes(tc, mode, expected):
    adapter(tc, invite=mode).create(meeting(extra=ORGANIZED))
    assert tc.calls_of("POST")[0].body.get("invitations") == expected


@pytest.mark.parametrize(
    "template,expected",
    [
        ("{organizer_local}", "alice"),
        ("{organizer}", "alice@example.com"),
        ("tc_{user}", "tc_alice"),
        ("", None),
    ],
)
def test_owner_template(tc, template, expected):
    adapter(tc, owner=template).create(meeting(extra=ORGANIZED))
    assert tc.calls_of("POST")[0].body.get("owner") == expected


def test_list_conferences_reads_every_page_and_only_ours(tc):
    a = adapter(tc, page_size=2)
    made = {
        a.create(meeting(EventKey("alice", "alice/calendar", f"{i}@t"))).conference_id
        for i in range(5)
    }
    tc.conferences["5576502892"] = {
        "id": "5576502892",
        "topic": "made by hand",
        "schedule": {"type": -1},
    }
    assert set(a.list_conferences()) == made
    assert [c.query["page_id"] for c in tc.calls_of("GET")] == ["1", "2", "3"]


# --- configuration ----------------------------------------------------------------------------


def _conf(tmp_path, text: str) -> str:
    path = tmp_path / "meetplugin.conf"
    path.write_text(text)
    return str(path)


def test_off_without_a_section_and_a_clear_error_with_one(tmp_path, monkeypatch):
    monkeypatch.setenv("TRUECONF_CLIENT_SECRET", SECRET)
    engine = build_engine(_conf(tmp_path, ""), str(tmp_path / "state"))
    assert "trueconf" not in engine.enabled
    monkeypatch.delenv("TRUECONF_CLIENT_SECRET")
    with pytest.raises(config.ConfigError) as e:
        build_engine(
            _conf(
                tmp_path,
                "[provider:trueconf]\nserver_url = https://tc.example.ru\nclient_id = meetplugin\n",
            ),
            str(tmp_path / "state"),
        )
    assert "no client secret" in str(e.value) and "TRUECONF_CLIENT_SECRET" in str(e.value)
    with pytest.raises(config.ConfigError) as e:
        build_engine(_conf(tmp_path, "[provider:trueconf]\n"), str(tmp_path / "state"))
    assert "no server_url" in str(e.value)


def test_built_from_config_with_derived_urls(tmp_path, monkeypatch):
    secret = tmp_path / "secret"
    secret.write_text(SECRET + "\n")
    secret.chmod(0o600)
    engine = build_engine(
        _conf(
            tmp_path,
            f"""[provider:trueconf]
server_url = https://tc.example.ru/
client_id = meetplugin
client_secret_file = {secret}
default_timezone = Asia/Yekaterinburg
""",
        ),
        str(tmp_path / "state"),
    )
    tc = engine.providers["trueconf"]
    assert tc.api.base_url == "https://tc.example.ru/api/v3.11"
    assert tc.tokens.client.base_url == "https://tc.example.ru/oauth2/v1/token"
    assert tc.join_url("meet_x") == "https://tc.example.ru/c/meet_x"
    assert tc.capabilities.schedule and tc.capabilities.deterministic_ids
    assert "trueconf" in engine.scheduled
    assert str(tc.zone) == "Asia/Yekaterinburg"


@pytest.mark.parametrize(
    "option,words",
    [
        ("invite = everyone", "one of local_part, email, none"),
        ("default_timezone = Mars/Olympus", "not a time zone name"),
        ("id_prefix = a-b", "at most 64"),
        ("conference_type = 2", "0 (all on screen)"),
        ("mode_field = kind", "type (API v3) or mode (API v4)"),
        ("mode_values = gallery=0", "pairs mode=value"),
    ],
)
def test_bad_options_say_what_is_wrong(tmp_path, option, words):
    with pytest.raises(config.ConfigError) as e:
        config.load(_conf(tmp_path, f"[provider:trueconf]\n{option}\n"), providers.schemas())
    assert words in str(e.value)


def test_the_example_config_loads_and_its_videomost_block_too(tmp_path):
    from pathlib import Path

    example = Path(__file__).parents[2] / "config" / "meetplugin-trueconf.example.conf"
    text = example.read_text()
    settings = config.load(_conf(tmp_path, text), providers.schemas())
    assert settings.main["default_provider"] == "trueconf"
    assert settings.providers["trueconf"]["server_url"] == "https://tc.example.ru"
    live = re.sub(r"(?m)^# (\[provider:videomost\]|[a-z_]+ =)", r"\1", text)
    settings = config.load(_conf(tmp_path, live), providers.schemas())
    assert settings.providers["videomost"]["id_field"] == "confid"
    assert "videomost" in settings.configured


def test_api_v4_takes_the_mode_by_name(tc):
    a = adapter(tc, mode_field="mode", conference_type="selector")
    a.create(meeting(KEY))
    a.create(
        dataclasses.replace(meeting(EventKey("a", "a/c", "2")), options=(("mode", "lecture"),))
    )
    first, second = tc.calls_of("POST")
    assert first.body["mode"] == "S|L Auto" and "type" not in first.body
    assert second.body["mode"] == "OxP"


def test_mode_values_correct_a_number_the_server_does_not_take(tc):
    a = adapter(tc, mode_values={"selector": "1"})
    a.create(dataclasses.replace(meeting(KEY), options=(("mode", "selector"),)))
    a.create(dataclasses.replace(meeting(EventKey("a", "a/c", "2")), options=(("mode", "nope"),)))
    first, second = tc.calls_of("POST")
    assert first.body["type"] == 1
    assert second.body["type"] == 0  # an unknown value (an old event's): the default


def test_org_domains_decide_who_is_a_trueconf_user(tc):
    people = (
        ORGANIZED
        + "ATTENDEE:mailto:Ivan.Petrov@partner.ru\nATTENDEE:mailto:olga@branch.example.ru\n"
    )
    adapter(tc).create(meeting(extra=people))
    adapter(tc, org_domains=("branch.example.ru", "example.com"), invite="email").create(
        meeting(EventKey("a", "a/c", "2"), extra=people)
    )
    adapter(tc, org_domains=()).create(
        meeting(EventKey("a", "a/c", "3"), extra="ATTENDEE:mailto:ivan@example.com\n")
    )
    first, second, third = tc.calls_of("POST")
    assert first.body["invitations"] == [{"id": "ivan"}, {"id": "petr"}]
    assert second.body["invitations"] == [
        {"id": "ivan@example.com"},
        {"id": "olga@branch.example.ru"},
        {"id": "petr@example.com"},
    ]
    assert third.body["invitations"] == []  # no organizer, no domains: nobody is known


# --- users' own accounts (OAuth authorization code) ---------------------------------------


def _user_options(tc, tmp_path, monkeypatch):
    from radicale_meetplugin.providers import BuildContext

    monkeypatch.setenv("TRUECONF_CLIENT_SECRET", SECRET)
    tokens = tmp_path / "tc-tokens"
    tokens.mkdir(mode=0o700)
    text = "\n".join(
        [
            "[provider:trueconf]",
            "server_url = https://tc.example.ru",
            f"api_url = {tc.api_url}",
            f"token_url = {tc.token_url}",
            f"user_token_url = {tc.user_token_url}",
            f"redirect_uri = {tc.redirect_uri}",
            f"client_id = {CLIENT}",
            f"user_token_dir = {tokens}",
            "",
        ]
    )
    settings, plugins = providers.load_settings(_conf(tmp_path, text))
    options = settings.providers["trueconf"].values
    ctx = BuildContext(timeout=2, state_dir=str(tmp_path / "state"))
    return plugins["trueconf"], options, ctx, tokens


def test_a_user_signs_in_and_their_conferences_are_theirs(tc, tmp_path, monkeypatch):
    import os
    import stat

    from radicale_meetplugin.providers.users import UserProviders

    plugin, options, ctx, tokens = _user_options(tc, tmp_path, monkeypatch)
    users = plugin.users
    assert users is not None and users.exchange is not None
    steps = users.steps(options, "alice", {})
    assert "https://tc.example.ru/oauth2/authorize?client_id=meetplugin&response_type=code" in steps
    landed = f"{tc.redirect_uri}?code={tc.sign_in('alice')}&state=x"
    refresh = users.exchange(options, ctx, Secret(landed, "input"))
    (exchange,) = tc.calls_of("POST", target="user-token")
    assert exchange.body["grant_type"] == "authorization_code"
    assert exchange.body["redirect_uri"] == tc.redirect_uri
    assert tc.refresh_tokens[refresh.value] == "alice"
    # The check right after needs no renewal: the sign-in's access token is used.
    users.build(options, ctx, refresh).check()
    assert len(tc.calls_of("POST", target="user-token")) == 1
    (tokens / "alice.token").write_text(refresh.value + "\n")
    os.chmod(tokens / "alice.token", 0o600)

    source = UserProviders(plugin, options, ctx)
    source.get("alice").create(meeting(extra=ORGANIZED))
    (post,) = tc.calls_of("POST")
    assert tc.token_users[post.authorization.split()[1]] == "alice"
    assert source.get("bob") is None  # no file: the service account serves bob

    # The server refuses the access token: it is renewed with the refresh token, which
    # the server rotates; the new one replaces the stored one at once.
    tc.revoke_tokens()
    source.get("alice").create(meeting(EventKey("alice", "alice/calendar", "u2@test")))
    renewals = tc.calls_of("POST", target="user-token")
    assert [c.body["grant_type"] for c in renewals] == ["authorization_code", "refresh_token"]
    stored = (tokens / "alice.token").read_text().strip()
    assert stored != refresh.value and tc.refresh_tokens[stored] == "alice"
    assert stat.S_IMODE((tokens / "alice.token").stat().st_mode) == 0o600
    # The account rebuilt from the changed file goes on with the same access token.
    source.get("alice").create(meeting(EventKey("alice", "alice/calendar", "u3@test")))
    assert len(tc.calls_of("POST", target="user-token")) == 2
    assert len({c.authorization for c in tc.calls_of("POST")[-2:]}) == 1  # the retry, the next


def test_a_wrong_or_reused_code_is_refused(tc, tmp_path, monkeypatch):
    plugin, options, ctx, _tokens = _user_options(tc, tmp_path, monkeypatch)
    code = tc.sign_in("alice")
    plugin.users.exchange(options, ctx, Secret(code, "input"))
    with pytest.raises(ProviderError) as e:
        plugin.users.exchange(options, ctx, Secret(code, "input"))  # single use
    assert e.value.status == 400 and "invalid_grant" in e.value.provider_code
    with pytest.raises(config.ConfigError):
        plugin.users.exchange(options, ctx, Secret(f"{tc.redirect_uri}?state=x", "input"))
