"""The plugin config as the engine is built from it: providers on or off, their secrets."""

from __future__ import annotations

import pytest

from radicale_meetplugin import config
from radicale_meetplugin.bootstrap import build_engine


def test_telemost_without_token_is_off_unless_asked_for(tmp_path, monkeypatch):
    monkeypatch.delenv("TELEMOST_TOKEN", raising=False)
    conf = tmp_path / "a.conf"
    conf.write_text("")
    engine = build_engine(str(conf), str(tmp_path / "state"))
    assert engine.enabled == {"jitsi"}
    conf.write_text("[provider:telemost]\n")
    with pytest.raises(config.ConfigError) as e:
        build_engine(str(conf), str(tmp_path / "state"))
    assert "no token" in str(e.value)


def test_missing_token_file_is_a_clear_error(tmp_path):
    conf = tmp_path / "a.conf"
    conf.write_text("[provider:telemost]\ntoken_file = /nonexistent/token\n")
    with pytest.raises(config.ConfigError) as e:
        build_engine(str(conf), str(tmp_path / "state"))
    assert "cannot read the file /nonexistent/token" in str(e.value)


def test_generated_jitsi_secret_is_private_and_kept(tmp_path):
    conf = tmp_path / "a.conf"
    conf.write_text("")
    first = build_engine(str(conf), str(tmp_path / "state"))
    secret_path = tmp_path / "state" / "jitsi.secret"
    assert oct(secret_path.stat().st_mode & 0o777) == "0o600"
    second = build_engine(str(conf), str(tmp_path / "state"))
    assert first.providers["jitsi"].secret == second.providers["jitsi"].secret
