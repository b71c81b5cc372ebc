"""A user's stored token the server cannot read: an explanation in the event, no traceback."""

from __future__ import annotations

import logging

from harness import event

from radicale_meetplugin.bootstrap import build_engine
from radicale_meetplugin.core import ical
from radicale_meetplugin.core.model import EventKey

KEY = EventKey("alice", "alice/calendar", "unreadable@test")


def test_an_unreadable_token_is_explained_in_the_event(tmp_path, telemost, monkeypatch, caplog):
    monkeypatch.delenv("TELEMOST_TOKEN", raising=False)  # no service account: users' own only
    tokens = tmp_path / "tokens"
    tokens.mkdir(mode=0o700)
    (tokens / "alice.token").mkdir()  # stands for a file the server may not open (root-owned)
    conf = tmp_path / "meetplugin.conf"
    conf.write_text(
        f"[provider:telemost]\napi_url = {telemost.url}\nuser_token_dir = {tokens}\n"
        "token_env = NO_SUCH_VARIABLE\n"
    )
    engine = build_engine(str(conf), str(tmp_path / "state"))
    with caplog.at_level(logging.WARNING, logger="radicale.meetplugin"):
        decision = engine.on_put(KEY, event(KEY.uid, location="телемост"))
    assert decision.jobs == [] and telemost.calls_of("POST") == []
    [ev] = ical.vevents(ical.parse(decision.text or ""))
    described = str(ev["DESCRIPTION"])
    assert "ваш личный токен для сервиса Яндекс Телемост сохранён, но сервер не может" in described
    assert not [r for r in caplog.records if r.exc_info]  # a warning line, not a traceback
    assert any("alice" in r.getMessage() for r in caplog.records)
