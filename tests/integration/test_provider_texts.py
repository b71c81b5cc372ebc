"""What events say about providers: their own option words, display names, whose token failed."""

from __future__ import annotations

import os

from harness import TOKEN, event

from radicale_meetplugin.bootstrap import build_engine
from radicale_meetplugin.core import ical
from radicale_meetplugin.core.model import EventKey

KEY = EventKey("alice", "alice/calendar", "t1@test")


def engine_for(tmp_path, text: str):
    path = tmp_path / "meetplugin.conf"
    path.write_text(text)
    return build_engine(str(path), str(tmp_path / "state"))


def shown(text: str | None) -> str:
    assert text is not None
    ev = ical.vevents(ical.parse(text))[0]
    return str(ev.get("DESCRIPTION", ""))


def test_trueconf_options_are_answered_with_trueconfs_words(tmp_path, monkeypatch):
    monkeypatch.setenv("TRUECONF_CLIENT_SECRET", "tc-secret")
    engine = engine_for(
        tmp_path,
        "[provider:trueconf]\nserver_url = https://tc.example.ru\nclient_id = meetplugin\n",
    )
    decision = engine.on_put(KEY, event(KEY.uid, location="trueconf:громко"))
    assert decision.jobs == []  # nothing is asked of TrueConf
    text = shown(decision.text)
    assert "параметр «громко» не подходит для сервиса TrueConf" in text
    assert "все-на-экране" in text and "видеоселектор" in text and "ролевая" in text
    assert "лекция" in text and "гости" in text and "до 1 600 участников" in text
    assert "внешние" not in text and "Телемост" not in text
    engine.lang = "en"
    key = EventKey("alice", "alice/calendar", "t2@test")
    text = shown(engine.on_put(key, event(key.uid, location="trueconf:loud")).text)
    assert 'the option "loud" does not fit TrueConf. It takes: all-on-screen' in text
    assert "external" not in text


def test_a_provider_without_options_says_so(tmp_path):
    engine = engine_for(tmp_path, "")
    text = shown(engine.on_put(KEY, event(KEY.uid, location="jitsi:громко")).text)
    assert "сервис Jitsi Meet не принимает параметров после двоеточия («громко»)" in text


def test_admin_mask_labels_keep_their_case(tmp_path):
    engine = engine_for(
        tmp_path, "[pasted_links]\nZoom Our Company = https://ourcompany\\.zoom\\.us/j/\\S+\n"
    )
    assert list(engine.settings.pasted_link_masks) == ["Zoom Our Company"]
    link = "https://ourcompany.zoom.us/j/85012345678"
    decision = engine.on_put(KEY, event(KEY.uid, description=f"Созвон: {link}"))
    ev = ical.vevents(ical.parse(decision.text))[0]
    assert str(ev["CONFERENCE"]) == link
    assert ev["CONFERENCE"].params["LABEL"] == "Zoom Our Company"


def test_a_provider_not_set_up_is_named_as_people_know_it(tmp_path, monkeypatch):
    monkeypatch.delenv("TELEMOST_TOKEN", raising=False)
    engine = engine_for(tmp_path, "")
    text = shown(engine.on_put(KEY, event(KEY.uid, location="телемост")).text)
    assert "сервис «Яндекс Телемост» не настроен на сервере" in text
    assert "«telemost»" not in text
    key = EventKey("alice", "alice/calendar", "t3@test")
    text = shown(engine.on_put(key, event(key.uid, extra="X-MEETPLUGIN-PROVIDER:webex")).text)
    assert "сервис «webex» неизвестен. Доступны: Jitsi Meet (jitsi)." in text


def test_a_users_own_refused_token_is_named_as_theirs(tmp_path, telemost, monkeypatch):
    monkeypatch.setenv("TELEMOST_TOKEN", TOKEN)
    tokens = tmp_path / "tokens"
    tokens.mkdir(mode=0o700)
    (tokens / "alice.token").write_text("alice-revoked-token\n")
    os.chmod(tokens / "alice.token", 0o600)
    engine = engine_for(
        tmp_path,
        f"[provider:telemost]\napi_url = {telemost.url}\nuser_token_dir = {tokens}\n",
    )
    text = event(KEY.uid, location="телемост")
    (job,) = engine.on_put(KEY, text).jobs
    outcome = engine.call(job)
    assert outcome.error is not None and outcome.error.status == 401
    assert telemost.calls_of("POST")[-1].authorization == "OAuth alice-revoked-token"
    stored, _ = engine.settle(job, outcome, text)
    described = shown(stored)
    assert "Яндекс Телемост не принял ваш личный токен (код 401)" in described
    assert "meetplugin token telemost" in described
    assert "учётные данные сервера" not in described
    assert "alice-revoked-token" not in stored
    # The service account's own refusal still says it is the server's credentials.
    bob = EventKey("bob", "bob/calendar", "t4@test")
    telemost.fail_next("POST", 401, {"error": "UnauthorizedError"})
    text = event(bob.uid, location="телемост", extra="ORGANIZER:mailto:bob@example.com")
    (job,) = engine.on_put(bob, text).jobs
    stored, _ = engine.settle(job, engine.call(job), text)
    assert "не принял учётные данные сервера (код 401)" in shown(stored)
