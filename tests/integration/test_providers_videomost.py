"""The Videomost adapter (production code) against an emulator of its default contract."""

from __future__ import annotations

import re
import socket

import pytest
from harness import VIDEOMOST_TOKEN, event, utc

from radicale_meetplugin import config, providers
from radicale_meetplugin.bootstrap import build_engine
from radicale_meetplugin.config import Secret
from radicale_meetplugin.core import ical
from radicale_meetplugin.core.model import EventKey
from radicale_meetplugin.providers import ProviderError
from radicale_meetplugin.providers.schedule import timezone
from radicale_meetplugin.providers.videomost import OPTIONS, Videomost

TOKEN = VIDEOMOST_TOKEN
SERVER = "https://vm.example.ru"
KEY = EventKey("alice", "alice/calendar", "v1@test")
JOIN = re.compile(r"https://vm\.example\.ru/service/join/\?confid=([0-9a-f]{32})&confpass=(\d+)")
ORGANIZED = (
    "ORGANIZER:mailto:alice@example.com\nATTENDEE:mailto:alice@example.com\n"
    "ATTENDEE:mailto:Ivan@Example.com\nATTENDEE:urn:uuid:room-5\n"
)


def meeting(key: EventKey = KEY, **kw):
    return ical.meeting_of(ical.parse(event(key.uid, **kw)), key)


def options(**kw):
    return {**{n: spec[1](spec[0]) for n, spec in OPTIONS.items()}, **kw}


@pytest.fixture(autouse=True)
def clean_videomost(vm):
    """Beyond the shared reset of calls and faults: no conferences, client ids accepted."""
    vm.conferences.clear()
    vm.accept_client_ids = True
    yield


def adapter(vm, timeout: float = 2, token: str = TOKEN, **kw) -> Videomost:
    kw.setdefault("default_timezone", timezone("Europe/Moscow"))
    return Videomost(SERVER, vm.api_url, Secret(token, "test"), timeout, options=options(**kw))


def test_create_speaks_the_default_contract(vm):
    conf = adapter(vm).create(meeting(extra=ORGANIZED))
    match = JOIN.fullmatch(conf.join_url)
    assert match and match.group(1) == conf.conference_id
    assert conf.extra == {"password": match.group(2)}
    (post,) = vm.calls_of("POST")
    assert post.path == "/service/api/v1/conferences"
    assert post.authorization == f"Bearer {TOKEN}"
    assert post.body == {
        "name": "Планёрка",
        "start_time": utc(2026, 11, 25, 7),
        "duration": 3600,
        "time_offset": 180,
        "participants": ["ivan@example.com"],
    }  # no organizer, no urn:
    assert not adapter(vm).capabilities.deterministic_ids  # the server picks the id


def test_a_link_on_another_host_is_not_taken_the_template_is_used(vm):
    vm.fail_next(
        "POST",
        201,
        {
            "confid": "bc7a050ce0f25db26dad32c1afff5c74",
            "confpass": 1240,
            "join_url": "https://evil.example.org/service/join/?confid=1",
        },
    )
    conf = adapter(vm).create(meeting())
    assert conf.join_url == (
        "https://vm.example.ru/service/join/?confid=bc7a050ce0f25db26dad32c1afff5c74&confpass=1240"
    )


@pytest.mark.parametrize(
    "answer",
    [
        {"confid": "x\r\nLocation: evil", "confpass": "1"},
        {"confid": "bc7a050ce0f25db26dad32c1afff5c74", "confpass": "12 34&x=1"},
        {"confpass": "1240"},
        ["not", "an", "object"],
    ],
)
def test_a_forged_answer_is_refused(vm, answer):
    vm.fail_next("POST", 201, answer)
    with pytest.raises(ProviderError) as e:
        adapter(vm).create(meeting())
    assert e.value.maybe_done  # the server may have made one: recorded as a suspect


def test_client_ids_make_a_retry_find_the_first_conference(vm):
    a = adapter(vm, client_ids=True, timeout=0.5)
    assert a.capabilities.deterministic_ids
    vm.lose_answer_next("POST")
    with pytest.raises(ProviderError) as e:
        a.create(meeting())
    assert e.value.maybe_done and len(vm.conferences) == 1
    conf = a.create(meeting())
    assert list(vm.conferences) == [conf.conference_id]
    assert re.fullmatch(r"[0-9a-f]{32}", conf.conference_id)
    assert [c.status for c in vm.calls_of("POST")] == [-1, 409]
    assert conf.join_url == vm.conferences[conf.conference_id]["join_url"]


def test_update_sends_the_same_fields_and_keeps_the_link(vm):
    a = adapter(vm)
    conf = a.create(meeting())
    moved = meeting(
        summary="Ретро", start="20261127T090000", end="20261127T100000", extra=ORGANIZED
    )
    assert a.update(conf, moved) == conf
    (put,) = vm.calls_of("PUT")
    assert put.path == f"/service/api/v1/conferences/{conf.conference_id}"
    assert put.body == {
        "name": "Ретро",
        "start_time": utc(2026, 11, 27, 6),
        "duration": 3600,
        "time_offset": 180,
        "participants": ["ivan@example.com"],
    }
    assert vm.conferences[conf.conference_id]["name"] == "Ретро"


def test_update_method_none_makes_no_call(vm):
    a = adapter(vm, update_method="NONE")
    assert not a.capabilities.schedule
    conf = a.create(meeting())
    assert a.update(conf, meeting(summary="x")) == conf
    assert vm.calls_of("PUT") == []


def test_update_of_a_conference_gone_is_refused_not_remade(vm):
    a = adapter(vm)
    conf = a.create(meeting())
    vm.conferences.clear()
    with pytest.raises(ProviderError) as e:
        a.update(conf, meeting(summary="x"))
    assert (e.value.status, e.value.provider_code) == (404, "ConferenceNotFound")
    assert vm.conferences == {}  # a new one would have a new password, so a new link


def test_delete_and_already_deleted(vm):
    a = adapter(vm)
    conf = a.create(meeting())
    a.delete(conf)
    a.delete(conf)
    assert [c.status for c in vm.calls_of("DELETE")] == [204, 404]
    assert vm.conferences == {}


def test_a_series_sends_no_schedule(vm):
    conf = adapter(vm).create(meeting(extra="RRULE:FREQ=WEEKLY;BYDAY=MO"))
    body = vm.calls_of("POST")[0].body
    assert (body["start_time"], body["duration"], body["time_offset"]) == (None, None, None)
    assert vm.joinable(conf.conference_id, utc(2031, 3, 3, 7))


@pytest.mark.parametrize(
    "kw,start,duration,offset",
    [
        (
            dict(tzid="", start="20261125T100000Z", end="20261125T110000Z"),
            utc(2026, 11, 25, 10),
            3600,
            0,
        ),
        (
            dict(tzid="", start="20261125T100000", end="20261125T110000"),
            utc(2026, 11, 25, 7),
            3600,
            180,
        ),
        (dict(tzid="", start="20261125", end="20261126"), utc(2026, 11, 24, 21), 86400, 180),
    ],
)
def test_time_zones(vm, kw, start, duration, offset):
    adapter(vm).create(meeting(**kw))
    body = vm.calls_of("POST")[0].body
    assert (body["start_time"], body["duration"], body["time_offset"]) == (start, duration, offset)


def test_a_configured_contract_is_followed(vm):
    """Other field names, a wrapped answer, another header: all from config."""
    vm.fail_next("POST", 200, {"data": {"id": "abc123", "password": "42"}})
    a = adapter(
        vm,
        auth_header="X-Api-Key",
        auth_scheme="",
        topic_field="title",
        start_field="begin",
        duration_field="",
        time_offset_field="",
        attendees_field="",
        response_key="data",
        id_field="id",
        password_field="password",
        create_path="/meetings",
        join_url_template="https://vm.example.ru/j/{confid}?p={confpass}",
    )
    conf = a.create(meeting())
    (post,) = vm.calls_of("POST")
    assert post.path == "/service/api/v1/meetings"
    assert post.body == {"title": "Планёрка", "begin": utc(2026, 11, 25, 7)}
    assert post.authorization == ""  # it went in X-Api-Key instead
    assert conf.join_url == "https://vm.example.ru/j/abc123?p=42"


def test_a_bad_token_is_an_auth_error(vm):
    with pytest.raises(ProviderError) as e:
        adapter(vm, token="wrong").create(meeting())
    assert (e.value.code, e.value.status, e.value.temporary) == ("auth", 401, False)
    assert e.value.provider_code == "Unauthorized" and "wrong" not in str(e.value)


@pytest.mark.parametrize(
    "status,kind,temporary",
    [
        (500, "unavailable", True),
        (503, "unavailable", True),
        (429, "rate_limited", True),
        (400, "rejected", False),
        (403, "forbidden", False),
    ],
)
def test_error_statuses(vm, status, kind, temporary):
    vm.fail_next(
        "POST", status, {"error": "Some<Code>", "message": "m"}, headers={"Retry-After": "3"}
    )
    with pytest.raises(ProviderError) as e:
        adapter(vm).create(meeting())
    assert (e.value.code, e.value.temporary, e.value.provider_code) == (kind, temporary, "SomeCode")
    if status == 429:
        assert e.value.retry_after == 3


def test_a_non_json_answer_is_not_trusted(vm):
    vm.fail_next("POST", 201, raw=b"<html>login page</html>")
    with pytest.raises(ProviderError) as e:
        adapter(vm).create(meeting())
    assert (e.value.provider_code, e.value.maybe_done) == ("NotJson", True)


def test_a_timeout_is_temporary(vm):
    hold = vm.hold_next("DELETE")
    try:
        a = adapter(vm, timeout=0.5)
        conf = a.create(meeting())
        with pytest.raises(ProviderError) as e:
            a.delete(conf)
        assert (e.value.code, e.value.temporary) == ("unavailable", True)
    finally:
        hold.release.set()


def test_connection_refused_is_temporary():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = Videomost(SERVER, f"http://127.0.0.1:{port}/service/api/v1", Secret(TOKEN), 2)
    with pytest.raises(ProviderError) as e:
        dead.create(meeting())
    assert (e.value.code, e.value.temporary) == ("unavailable", True)


def test_list_is_not_offered():
    assert Videomost(SERVER, "http://127.0.0.1:9/x", Secret(TOKEN), 2).list_conferences() is None


def _conf(tmp_path, text: str) -> str:
    path = tmp_path / "meetplugin.conf"
    path.write_text(text)
    return str(path)


def test_off_without_a_section_and_a_clear_error_with_one(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDEOMOST_TOKEN", TOKEN)
    assert "videomost" not in build_engine(_conf(tmp_path, ""), str(tmp_path / "s")).enabled
    monkeypatch.delenv("VIDEOMOST_TOKEN")
    with pytest.raises(config.ConfigError) as e:
        build_engine(
            _conf(tmp_path, f"[provider:videomost]\nserver_url = {SERVER}\n"), str(tmp_path / "s")
        )
    assert "no token" in str(e.value) and "VIDEOMOST_TOKEN" in str(e.value)
    monkeypatch.setenv("VIDEOMOST_TOKEN", "two words")
    with pytest.raises(config.ConfigError) as e:
        build_engine(
            _conf(tmp_path, f"[provider:videomost]\nserver_url = {SERVER}\n"), str(tmp_path / "s")
        )
    assert "two words" not in str(e.value)


def test_built_from_config(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDEOMOST_TOKEN", TOKEN)
    engine = build_engine(
        _conf(tmp_path, f"[provider:videomost]\nserver_url = {SERVER}/\nclient_ids = true\n"),
        str(tmp_path / "s"),
    )
    vm = engine.providers["videomost"]
    assert vm.api.base_url == f"{SERVER}/service/api/v1"
    assert "videomost" in engine.scheduled and vm.capabilities.deterministic_ids


@pytest.mark.parametrize(
    "option,words",
    [
        ("update_method = MAYBE", "one of PUT, PATCH, POST, NONE"),
        ("create_path = conferences", "a path starting with /"),
        ("id_field = a b", "a JSON field name"),
        ("auth_header = X Key", "an HTTP header name"),
    ],
)
def test_bad_options_say_what_is_wrong(tmp_path, option, words):
    with pytest.raises(config.ConfigError) as e:
        config.load(_conf(tmp_path, f"[provider:videomost]\n{option}\n"), providers.schemas())
    assert words in str(e.value)


def test_update_method_none_makes_no_update_jobs(tmp_path, monkeypatch, vm):
    """Capabilities come from the configured instance: a server that cannot update gets no job."""
    monkeypatch.setenv("VIDEOMOST_TOKEN", TOKEN)
    engine = build_engine(
        _conf(
            tmp_path,
            f"[provider:videomost]\nserver_url = {SERVER}\napi_url = {vm.api_url}\n"
            "update_method = NONE\n",
        ),
        str(tmp_path / "s"),
    )
    assert not engine.providers["videomost"].capabilities.schedule
    assert "videomost" not in engine.scheduled
    text = event(KEY.uid, location="videomost")
    (job,) = engine.on_put(KEY, text).jobs
    stored, _ = engine.settle(job, engine.call(job), text)
    assert stored and "X-MEETPLUGIN-STATUS:active" in stored
    moved = stored.replace("T100000", "T150000").replace("T110000", "T160000")
    decision = engine.on_put(KEY, moved)
    assert decision.jobs == [] and decision.action.kind.value == "keep"
    assert [c.method for c in vm.calls] == ["POST"]
