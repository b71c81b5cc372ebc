"""Each provider adapter (production code) against its emulator's documented contract."""

from __future__ import annotations

import pytest
from harness import TOKEN

from radicale_meetplugin.config import Secret
from radicale_meetplugin.core.model import EventKey, Meeting
from radicale_meetplugin.providers import ProviderError
from radicale_meetplugin.providers.telemost import Telemost

MEETING = Meeting(EventKey("alice", "alice/calendar", "u@t"), summary="Планёрка")


@pytest.fixture
def adapter(telemost):
    return Telemost(telemost.url, Secret(TOKEN, "test"), "ORGANIZATION", timeout=2)


def test_create_and_delete(adapter, telemost):
    conf = adapter.create(MEETING)
    assert conf.join_url == f"https://telemost.yandex.ru/j/{conf.conference_id}"
    assert conf.conference_id in telemost.conferences
    (post,) = telemost.calls_of("POST")
    assert post.authorization == f"OAuth {TOKEN}"  # the word is OAuth, not Bearer
    assert post.body == {"waiting_room_level": "ORGANIZATION"}
    adapter.delete(conf)
    assert conf.conference_id not in telemost.conferences
    adapter.delete(conf)  # 404 ConferenceNotFound counts as deleted
    assert [c.status for c in telemost.calls_of("DELETE")] == [204, 404]


def test_the_360_domain_is_accepted(telemost, adapter):
    telemost.join_host = "telemost.360.yandex.ru"
    try:
        assert adapter.create(MEETING).join_url.startswith("https://telemost.360.yandex.ru/j/")
    finally:
        telemost.join_host = "telemost.yandex.ru"


def test_bad_token_is_auth_error(telemost):
    bad = Telemost(telemost.url, Secret("wrong", "test"), "ORGANIZATION", timeout=2)
    with pytest.raises(ProviderError) as e:
        bad.create(MEETING)
    assert (e.value.code, e.value.status, e.value.temporary) == ("auth", 401, False)
    assert "wrong" not in str(e.value)


def test_personal_account_is_org_required(adapter, telemost):
    telemost.personal_account = True
    before = dict(telemost.conferences)
    with pytest.raises(ProviderError) as e:
        adapter.create(MEETING)
    assert (e.value.code, e.value.provider_code) == ("org_required", "ApiRestrictedToOrganizations")
    assert telemost.conferences == before


@pytest.mark.parametrize(
    "status,kind,temporary",
    [
        (500, "unavailable", True),
        (502, "unavailable", True),
        (503, "unavailable", True),
        (429, "rate_limited", True),
        (402, "payment_required", False),
        (400, "rejected", False),
    ],
)
def test_error_statuses(adapter, telemost, status, kind, temporary):
    telemost.fail_next(
        "POST",
        status,
        {"error": "Some<Code>\r\nInjected", "description": "d", "message": "m"},
        headers={"Retry-After": "7"},
    )
    with pytest.raises(ProviderError) as e:
        adapter.create(MEETING)
    assert (e.value.code, e.value.temporary) == (kind, temporary)
    assert e.value.provider_code == "SomeCodeInjected"  # sanitised before it can reach an event
    if status == 429:
        assert e.value.retry_after == 7


def test_non_json_answer_is_not_trusted(adapter, telemost):
    telemost.fail_next("POST", 201, raw=b"<html>proxy page</html>")
    with pytest.raises(ProviderError) as e:
        adapter.create(MEETING)
    assert e.value.provider_code == "NotJson"


def test_a_forged_join_url_is_refused(adapter, telemost):
    telemost.fail_next("POST", 201, {"id": "1", "join_url": "javascript:alert(1)\r\nX: y"})
    with pytest.raises(ProviderError):
        adapter.create(MEETING)


def test_timeout_is_temporary(adapter, telemost):
    hold = telemost.hold_next("POST")
    try:
        slow = Telemost(telemost.url, Secret(TOKEN, "test"), "ORGANIZATION", timeout=0.5)
        with pytest.raises(ProviderError) as e:
            slow.create(MEETING)
        assert (e.value.code, e.value.temporary) == ("unavailable", True)
        assert hold.entered.is_set()
    finally:
        hold.release.set()


def test_connection_refused_is_temporary():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once we leave: nobody listens there
    dead = Telemost(f"http://127.0.0.1:{port}/v1/telemost-api", Secret(TOKEN), "PUBLIC", 2)
    with pytest.raises(ProviderError) as e:
        dead.create(MEETING)
    assert (e.value.code, e.value.temporary) == ("unavailable", True)


# --- webinars ----------------------------------------------------------------------


WEBINAR = Meeting(
    EventKey("alice", "alice/calendar", "w@t"),
    summary="  Вебинар  \t о  главном ",
    options=(("stream", "yes"),),
)


def test_a_webinar_is_a_room_with_a_live_stream(telemost):
    adapter = Telemost(
        telemost.url,
        Secret(TOKEN, "test"),
        "ADMINS",
        timeout=2,
        stream_access_level="ORGANIZATION",
        stream_title_max=10,
        stream_description="Для сотрудников",
    )
    conf = adapter.create(WEBINAR)
    (post,) = telemost.calls_of("POST")
    assert post.body["live_stream"] == {
        "access_level": "ORGANIZATION",
        "title": "Вебинар о",  # one line, cut at stream_title_max
        "description": "Для сотрудников",
    }
    watch = telemost.conferences[conf.conference_id]["live_stream"]["watch_url"]
    assert conf.extra["watch_url"] == watch and conf.extra["stream_title"] == "Вебинар о"


def test_a_stream_asked_for_later_is_added_to_the_room(adapter, telemost):
    conf = adapter.create(MEETING)
    assert "watch_url" not in conf.extra
    later = Meeting(MEETING.key, summary="Планёрка", options=(("stream", "yes"),))
    conf = adapter.update(conf, later)
    (patch,) = telemost.calls_of("PATCH")
    assert patch.body == {"live_stream": {"access_level": "PUBLIC", "title": "Планёрка"}}
    assert conf.extra["watch_url"].endswith(f"/live/{conf.conference_id}")
    assert adapter.update(conf, later) == conf and len(telemost.calls_of("PATCH")) == 1


def test_an_answer_without_a_watch_link_keeps_the_room_for_the_hosts(adapter, telemost, caplog):
    telemost.fail_next(
        "POST", 201, {"id": "77", "join_url": "https://telemost.yandex.ru/j/77", "live_stream": {}}
    )
    conf = adapter.create(WEBINAR)
    assert conf.join_url.endswith("/j/77") and "watch_url" not in conf.extra
    assert "has no live_stream.watch_url" in caplog.text


def test_no_streams_on_the_plan_is_payment_required(adapter, telemost):
    telemost.live_streams = False
    with pytest.raises(ProviderError) as e:
        adapter.create(WEBINAR)
    assert e.value.code == "payment_required" and not e.value.temporary
    assert e.value.provider_code == "PaymentRequiredToUseLiveStreams"
