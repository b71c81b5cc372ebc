"""A third-party provider loaded by import path gets conferences through the engine."""

from __future__ import annotations

import pytest
from harness import event

from radicale_meetplugin import config, providers
from radicale_meetplugin.bootstrap import build_engine
from radicale_meetplugin.core import ical
from radicale_meetplugin.core.model import EventKey

SECRET = "acme-secret-0123456789"


def engine_for(tmp_path, text: str):
    path = tmp_path / "meetplugin.conf"
    path.write_text(text)
    return build_engine(str(path), str(tmp_path / "state"))


@pytest.fixture
def engine(tmp_path, monkeypatch):
    monkeypatch.setenv("ACME_SECRET", SECRET)
    return engine_for(
        tmp_path,
        "[meetplugin]\ndefault_provider = acme\n[provider:acme]\nmodule = acme_provider\n",
    )


def key(uid: str) -> EventKey:
    return EventKey("alice", "alice/calendar", uid)


def test_a_provider_module_named_in_the_config_makes_conferences(engine):
    assert "acme" in engine.enabled and "acme" in engine.plugins
    assert "acme" in engine.scheduled  # it takes options: its instance says so
    decision = engine.on_put(key("a1@t"), event("a1@t", location="Переговорная 5; акме:лобби"))
    assert decision.jobs == []  # no API: the link is there at once
    ev = ical.vevents(ical.parse(decision.text))[0]
    location = str(ev["LOCATION"])
    assert location.startswith("Переговорная 5; https://meet.acme.test/")
    url = location.split("; ", 1)[1]
    assert url.endswith("?lobby=1")
    assert str(ev["X-ACME-CONFERENCE"]) == url  # its own link property
    assert str(ev["X-MEETPLUGIN-PROVIDER"]) == "acme"
    assert str(ev["X-MEETPLUGIN-OPTIONS"]) == "lobby=on"
    assert ev["CONFERENCE"].params["LABEL"] == "Видеовстреча (Акме Встречи)"
    assert "Сервис: Акме Встречи" in str(ev["DESCRIPTION"])
    assert "X-TELEMOST-CONFERENCE" not in ev
    # The same event again: the same room, nothing changes.
    again = engine.on_put(key("a1@t"), decision.text)
    assert again.text is None and again.jobs == []


def test_its_marker_property_and_generic_keywords_ask_for_it(engine):
    for uid, kw in (
        ("m1@t", dict(extra="X-ACME-REQUIRED:TRUE")),
        ("m2@t", dict(location="онлайн")),  # the default provider is acme
    ):
        decision = engine.on_put(key(uid), event(uid, **kw))
        ev = ical.vevents(ical.parse(decision.text))[0]
        assert str(ev["LOCATION"]).startswith("https://meet.acme.test/"), uid
    # Cancelling removes every trace, its own properties included.
    text = event("m3@t", extra="X-ACME-REQUIRED:TRUE")
    made = engine.on_put(key("m3@t"), text).text
    cancelled = made.replace("END:VEVENT", "STATUS:CANCELLED\r\nEND:VEVENT")
    ev = ical.vevents(ical.parse(engine.on_put(key("m3@t"), cancelled).text))[0]
    assert "X-ACME-CONFERENCE" not in ev and "X-ACME-REQUIRED" not in ev


def test_an_unknown_option_is_answered_with_its_own_words(engine):
    decision = engine.on_put(key("o1@t"), event("o1@t", location="acme:громко"))
    description = str(ical.vevents(ical.parse(decision.text))[0]["DESCRIPTION"])
    assert "параметр «громко» не подходит для сервиса Акме Встречи" in description
    assert "Подходят: лобби (с лобби)" in description
    assert "внешние" not in description


@pytest.mark.parametrize(
    "text,words",
    [
        ("[provider:acme]\n", "unknown section [provider:acme]"),
        ("[provider:acme]\nmodule = no_such_module_xyz\n", "cannot import it"),
        ("[provider:other]\nmodule = acme_provider\n", "its provider is named 'acme'"),
        ("[provider:other]\nmodule = harness\n", "it has no PLUGIN"),
    ],
)
def test_a_wrong_module_is_a_clear_config_error(tmp_path, text, words):
    path = tmp_path / "meetplugin.conf"
    path.write_text(text)
    with pytest.raises(config.ConfigError) as e:
        providers.load_settings(str(path))
    assert words in str(e.value) and str(path) in str(e.value)


def test_built_in_names_are_loaded_lazily():
    import subprocess
    import sys

    code = (
        "import sys, radicale_meetplugin.providers as p; "
        "assert not any(m.startswith('radicale_meetplugin.providers.') and "
        "m.rsplit('.', 1)[1] in p.BUILTIN for m in sys.modules), sorted(sys.modules); "
        "plugins = p.load_all(); print(sorted(plugins))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(sorted(providers.BUILTIN))
