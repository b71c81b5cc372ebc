"""The Zoom, Teams and Talk adapters (production code) against their emulators' contracts."""

from __future__ import annotations

import base64
import dataclasses

import pytest
from harness import event

from radicale_meetplugin.config import Secret
from radicale_meetplugin.core import ical
from radicale_meetplugin.core.model import EventKey
from radicale_meetplugin.providers import ProviderError, load
from radicale_meetplugin.providers.base import BuildContext
from radicale_meetplugin.providers.schedule import timezone
from radicale_meetplugin.providers.talk import Talk
from radicale_meetplugin.providers.teams import Teams
from radicale_meetplugin.providers.zoom import Zoom

KEY = EventKey("alice", "alice/calendar", "u1@test")
ORGANIZED = "ORGANIZER:mailto:Alice@Example.com\nATTENDEE:mailto:ivan@example.com\n"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def meeting(key: EventKey = KEY, options=(), **kw):
    made = ical.meeting_of(ical.parse(event(key.uid, **kw)), key)
    return dataclasses.replace(made, options=tuple(sorted(options)))


def zoom_adapter(zoom, clock, secret: str = "zoom-secret-321", **kw) -> Zoom:
    return Zoom(
        zoom.api_url,
        zoom.token_url,
        "acc-123",
        "zoom-client",
        Secret(secret, "test"),
        2,
        zone=timezone("Europe/Moscow"),
        clock=clock,
        **kw,
    )


def teams_adapter(teams, clock, **kw) -> Teams:
    return Teams(
        teams.api_url,
        teams.token_url,
        "teams-app",
        Secret("teams-secret-654", "test"),
        2,
        zone=timezone("Europe/Moscow"),
        clock=clock,
        **kw,
    )


# --- Zoom ----------------------------------------------------------------------------------


def test_zoom_token_is_cached_renewed_at_expiry_and_the_form_follows_the_docs(zoom):
    clock = Clock()
    zoom.clock = clock
    zoom.tokens.clear()
    try:
        adapter = zoom_adapter(zoom, clock)
        first = adapter.create(meeting(extra=ORGANIZED))
        adapter.delete(first)
        (token_call,) = zoom.calls_of("POST", target="token")
        assert (
            token_call.authorization
            == "Basic " + base64.b64encode(b"zoom-client:zoom-secret-321").decode()
        )
        assert token_call.body == {"grant_type": "account_credentials", "account_id": "acc-123"}
        clock.now += 3600  # the token expired: a new one before the next call, no 401 seen
        adapter.create(meeting(extra=ORGANIZED))
        assert len(zoom.calls_of("POST", target="token")) == 2
        assert [c.status for c in zoom.calls_of("POST")] == [201, 201]
    finally:
        del zoom.clock  # back to the class's monotonic clock
        zoom.tokens.clear()


def test_zoom_meeting_for_the_organizer_else_the_default_user(zoom):
    adapter = zoom_adapter(zoom, Clock())
    conf = adapter.create(meeting(extra=ORGANIZED, options=[("waiting_room", "no")]))
    made = zoom.meetings[conf.conference_id]
    assert made["host_id"] == "alice@example.com" and conf.extra["host"] == "alice@example.com"
    (post,) = zoom.calls_of("POST")
    assert post.body["start_time"] == "2026-11-25T07:00:00Z" and post.body["duration"] == 60
    assert post.body["timezone"] == "Europe/Moscow" and post.body["type"] == 2
    assert post.body["settings"] == {"waiting_room": False}
    assert post.body["agenda"].startswith("meetplugin:") and "?pwd=" in conf.join_url
    zoom.reset()
    outsider = "ORGANIZER:mailto:guest@partner.ru\n"
    conf = adapter.create(meeting(extra=outsider, options=[("passcode", "no")]))
    assert [c.status for c in zoom.calls_of("POST")] == [404, 201]
    assert zoom.meetings[conf.conference_id]["host_id"] == "appuser@example.com"
    assert "?pwd=" not in conf.join_url
    zoom.reset()
    adapter.create(meeting(extra=outsider))  # remembered: no second 404
    assert [c.status for c in zoom.calls_of("POST")] == [201]


def test_zoom_series_has_no_fixed_time_and_a_missing_user_is_explained(zoom):
    adapter = zoom_adapter(zoom, Clock(), default_user="")
    conf = adapter.create(meeting(extra=ORGANIZED + "RRULE:FREQ=WEEKLY;COUNT=4"))
    assert zoom.meetings[conf.conference_id]["type"] == 3
    with pytest.raises(ProviderError) as e:
        adapter.create(meeting(extra="ORGANIZER:mailto:guest@partner.ru\n"))
    assert (e.value.status, e.value.provider_code, e.value.temporary) == (404, "1001", False)


def test_zoom_wrong_secret_is_an_auth_error_without_the_secret(zoom):
    adapter = zoom_adapter(zoom, Clock(), secret="wrong-secret-000")
    with pytest.raises(ProviderError) as e:
        adapter.check()
    assert e.value.code == "auth" and "wrong-secret-000" not in str(e.value)


# --- Teams ---------------------------------------------------------------------------------


def test_teams_create_or_get_is_idempotent_per_event(teams):
    adapter = teams_adapter(teams, Clock())
    first = adapter.create(meeting(extra=ORGANIZED))
    again = adapter.create(meeting(extra=ORGANIZED))
    assert (first.conference_id, first.join_url) == (again.conference_id, again.join_url)
    assert [c.status for c in teams.calls_of("POST")] == [201, 200]
    body = teams.calls_of("POST")[0].body
    assert body["externalId"] == adapter.external_id(KEY) and body["subject"] == "Планёрка"
    assert (body["startDateTime"], body["endDateTime"]) == (
        "2026-11-25T07:00:00Z",
        "2026-11-25T08:00:00Z",
    )
    assert teams.calls_of("POST")[0].path.endswith(
        "/users/alice%40example.com/onlineMeetings/createOrGet"
    )
    other = adapter.create(meeting(EventKey("alice", "alice/calendar", "u2@test"), extra=ORGANIZED))
    assert other.conference_id != first.conference_id


def test_teams_lobby_is_set_right_after_the_create_and_changed_by_update(teams):
    adapter = teams_adapter(teams, Clock(), lobby_bypass="organization")
    conf = adapter.create(meeting(extra=ORGANIZED))
    assert teams.meetings[conf.conference_id]["lobbyBypassSettings"]["scope"] == "organization"
    conf = adapter.update(conf, meeting(extra=ORGANIZED, options=[("lobby", "everyone")]))
    assert teams.meetings[conf.conference_id]["lobbyBypassSettings"]["scope"] == "everyone"
    assert conf.extra["lobby"] == "everyone"


def test_teams_user_without_the_access_policy_is_forbidden(teams):
    adapter = teams_adapter(teams, Clock())
    with pytest.raises(ProviderError) as e:
        adapter.create(meeting(extra="ORGANIZER:mailto:bob@example.com\n"))
    assert (e.value.code, e.value.provider_code) == ("forbidden", "Forbidden")


def test_teams_event_without_organizer_uses_the_fallback_or_is_refused(teams):
    with pytest.raises(ProviderError):
        teams_adapter(teams, Clock()).create(meeting())
    conf = teams_adapter(teams, Clock(), fallback_user="{user}@example.com").create(meeting())
    assert conf.extra["user"] == "alice@example.com"


# --- Talk ----------------------------------------------------------------------------------


def test_talk_headers_auth_and_the_lobby_at_the_start(talk):
    adapter = Talk(
        "https://cloud.example.ru", talk.api_url, "meetbot", Secret("talk-app-pass-1"), 2,
        zone=timezone("Europe/Moscow"),
    )  # fmt: skip
    conf = adapter.create(meeting(extra=ORGANIZED, options=[("lobby", "yes")]))
    post, lobby = talk.calls
    assert post.headers["ocs-apirequest"] == "true" and "json" in post.headers["accept"]
    assert post.body["roomType"] == 3 and post.body["roomName"] == "Планёрка"
    assert lobby.path.endswith(f"/room/{conf.conference_id}/webinar/lobby")
    assert lobby.body == {"state": 1, "timer": 1795590000}  # 2026-11-25 10:00 Moscow
    assert conf.join_url == f"https://cloud.example.ru/call/{conf.conference_id}"
    assert adapter.update(conf, meeting(extra=ORGANIZED, options=[("lobby", "yes")])) == conf
    assert len(talk.calls) == 2  # nothing changed: no call


def test_talk_lobby_failure_leaves_no_room_behind(talk):
    adapter = Talk(
        "https://cloud.example.ru", talk.api_url, "meetbot", Secret("talk-app-pass-1"), 2
    )
    before = set(talk.rooms)
    talk.fail_next("PUT", 503, {"ocs": {"meta": {"statuscode": 503}, "data": []}})
    with pytest.raises(ProviderError) as e:
        adapter.create(meeting(options=[("lobby", "yes")]))
    assert e.value.temporary and set(talk.rooms) == before
    assert [c.method for c in talk.calls] == ["POST", "PUT", "DELETE"]


def test_talk_users_own_app_password(talk, tmp_path):
    talk.accounts["alice"] = "alice-app-pass"
    plugin = load("talk")
    assert plugin.users is not None
    options = {name: conv(default) for name, (default, conv, _h) in plugin.options.items()}
    options.update(server_url="https://cloud.example.ru", api_url=talk.api_url)
    ctx = BuildContext(timeout=2, state_dir=str(tmp_path))
    account = plugin.users.build(options, ctx, Secret("alice:alice-app-pass"))
    assert account.check() == ""
    conf = account.create(meeting())
    assert talk.moderators[conf.conference_id] == {"alice"}
    with pytest.raises(ProviderError) as e:
        plugin.users.build(options, ctx, Secret("alice:wrong")).check()
    assert e.value.code == "auth"
    options["user_token_dir"] = str(tmp_path)
    assert plugin.build(options, ctx) is None  # users' own passwords only: no service user


def test_the_example_config_builds_all_three(tmp_path, monkeypatch):
    from pathlib import Path

    from radicale_meetplugin import config, providers
    from radicale_meetplugin.bootstrap import build_providers

    example = Path(__file__).parents[2] / "config" / "meetplugin-cloud.example.conf"
    text = example.read_text()
    for name in ("zoom.secret", "teams.secret", "talk.password"):
        (tmp_path / name).write_text("s3cret\n")
        (tmp_path / name).chmod(0o600)
        text = text.replace(f"/etc/radicale/{name}", str(tmp_path / name))
    conf = tmp_path / "meetplugin.conf"
    conf.write_text(text)
    settings, plugins = providers.load_settings(str(conf))
    ctx = providers.BuildContext(timeout=2, state_dir=str(tmp_path), read_only=True)
    ready, _per_user = build_providers(settings, plugins, ctx)
    assert {"zoom", "teams", "talk", "jitsi"} <= set(ready)
    assert ready["teams"].capabilities.deterministic_ids
    assert not ready["zoom"].capabilities.deterministic_ids
    assert settings.providers["talk"]["server_url"] == "https://cloud.example.ru"
    with pytest.raises(config.ConfigError, match="has no client secret"):
        conf.write_text(text.replace(str(tmp_path / "zoom.secret"), ""))
        monkeypatch.delenv("ZOOM_CLIENT_SECRET", raising=False)
        settings, plugins = providers.load_settings(str(conf))
        build_providers(settings, plugins, ctx)
