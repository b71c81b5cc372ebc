"""The plugin config: defaults, clear errors, secrets kept out of sight."""

from __future__ import annotations

import logging
import os

import pytest

from radicale_meetplugin import config, providers
from radicale_meetplugin.bootstrap import build_engine


def load(tmp_path, text: str) -> config.Settings:
    path = tmp_path / "meetplugin.conf"
    path.write_text(text)
    return config.load(str(path), providers.schemas())


def test_defaults(tmp_path):
    settings = load(tmp_path, "")
    assert settings.main["default_provider"] == "jitsi"
    assert settings.main["language"] == "ru"
    assert settings.main["generic_keywords"] == ("online", "онлайн", "видеовстреча")
    assert settings.providers["telemost"]["waiting_room_level"] == "ORGANIZATION"
    assert (
        settings.providers["telemost"]["api_url"] == "https://cloud-api.yandex.net/v1/telemost-api"
    )


@pytest.mark.parametrize(
    "text,words",
    [
        ("[meetplugin]\nlanguage = de\n", "language = 'de'"),
        ("[meetplugin]\ncolour = red\n", "unknown option 'colour' in [meetplugin]"),
        ("[provider:zoom]\n", "unknown section [provider:zoom]"),
        ("[meetplugin]\ndefault_provider = zoom\n", "default_provider = 'zoom' is not a provider"),
        (
            "[provider:telemost]\nwaiting_room_level = SOMETIMES\n",
            "one of PUBLIC, ORGANIZATION, ADMINS",
        ),
        ("[meetplugin]\nprovider_timeout = -1\n", "must be greater than 0"),
    ],
)
def test_errors_say_what_is_wrong(tmp_path, text, words):
    with pytest.raises(config.ConfigError) as e:
        load(tmp_path, text)
    assert words in str(e.value)


def test_owner_addresses(tmp_path):
    settings = load(
        tmp_path,
        "[meetplugin]\nowner_addresses = {user}@example.com, {user}@corp.ru\n"
        "[owner_addresses]\nAlice = a.liddell@example.org\n",
    )
    assert settings.addresses_of("alice") == {
        "alice@example.com",
        "alice@corp.ru",
        "a.liddell@example.org",
    }
    assert settings.addresses_of("bob") == {"bob@example.com", "bob@corp.ru"}


def test_secret_never_shows(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_TOKEN", "s3cr3t-value")
    secret = config.read_secret("", "MY_TOKEN", "token")
    assert secret.value == "s3cr3t-value"
    for shown in (repr(secret), str(secret), f"{secret}", repr([secret])):
        assert "s3cr3t" not in shown


def test_token_file_readable_by_others_is_warned_about(tmp_path, caplog):
    path = tmp_path / "token"
    path.write_text("s3cr3t-value\n")
    os.chmod(path, 0o644)
    with caplog.at_level(logging.WARNING, logger="radicale.meetplugin"):
        secret = config.read_secret(str(path), "", "Telemost token")
    assert secret.value == "s3cr3t-value"
    assert "chmod 600" in caplog.text and "s3cr3t" not in caplog.text


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
