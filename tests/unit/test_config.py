"""The plugin config: defaults, clear errors, secrets kept out of sight."""

from __future__ import annotations

import logging
import os

import pytest

from radicale_meetplugin import config, providers
from radicale_meetplugin.bootstrap import build_mailer


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
        ("[provider:webex]\n", "unknown section [provider:webex]"),
        (
            "[meetplugin]\ndefault_provider = webex\n",
            "default_provider = 'webex' is not a provider",
        ),
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


# --- [mail] -------------------------------------------------------------------------

PASSWORD = "s3cr3t-smtp-password"


def test_mail_is_off_by_default(tmp_path):
    settings = load(tmp_path, "")
    assert settings.mail["enabled"] is False and build_mailer(settings) is None


@pytest.mark.parametrize(
    "text,words",
    [
        ("[mail]\nenabled = true\nsender = c@example.com\n", "[mail] is enabled but has no host"),
        ("[mail]\nenabled = true\nhost = smtp.example.com\n", "needs a sender address"),
        ("[mail]\nsender = Calendar <c@example.com>\n", "not a plain e-mail address"),
        ("[mail]\nsecurity = ssl\n", "one of starttls, tls, none"),
        ("[mail]\nport = 70000\n", "auto, or a port from 1 to 65535"),
        ("[mail]\nlanguage = de\n", "one of ru, en"),
        ("[mail]\nsmtp_host = x\n", "unknown option 'smtp_host' in [mail]"),
    ],
)
def test_mail_config_errors_say_what_is_wrong(tmp_path, text, words):
    with pytest.raises(config.ConfigError) as e:
        load(tmp_path, text)
    assert words in str(e.value)


def test_password_from_file_or_environment(tmp_path, monkeypatch, caplog):
    base = (
        "[mail]\nenabled = true\nhost = smtp.example.com\nsender = c@example.com\n"
        "username = calendar\n"
    )
    monkeypatch.delenv("MEETPLUGIN_SMTP_PASSWORD", raising=False)
    with pytest.raises(config.ConfigError) as e:
        build_mailer(load(tmp_path, base))
    assert "no password" in str(e.value) and "MEETPLUGIN_SMTP_PASSWORD" in str(e.value)
    monkeypatch.setenv("MEETPLUGIN_SMTP_PASSWORD", PASSWORD)
    mailer = build_mailer(load(tmp_path, base))
    assert mailer.password.value == PASSWORD and mailer.port == 587
    secret = tmp_path / "smtp.password"
    secret.write_text(PASSWORD + "-file\n")
    secret.chmod(0o600)
    mailer = build_mailer(load(tmp_path, base + f"password_file = {secret}\nsecurity = tls\n"))
    assert mailer.password.value == PASSWORD + "-file" and mailer.port == 465
    assert PASSWORD not in repr(mailer) and PASSWORD not in caplog.text
