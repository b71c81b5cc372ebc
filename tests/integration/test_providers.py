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
