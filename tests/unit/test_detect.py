"""The marker grammar: every form that asks for a conference, and look-alikes that don't."""

from __future__ import annotations

import pytest
from harness import event

from radicale_meetplugin.core import ical
from radicale_meetplugin.core.detect import Grammar, detect, might_ask

GRAMMAR = Grammar(
    keywords={
        "telemost": "telemost",
        "телемост": "telemost",
        "jitsi": "jitsi",
        "джитси": "jitsi",
        "trueconf": "trueconf",
    },
    generic=frozenset({"online", "онлайн", "видеовстреча"}),
    default_provider="jitsi",
    known=frozenset({"telemost", "jitsi", "trueconf"}),
    # Telemost's own properties, as its plugin declares them: the core knows none by name.
    markers={"X-TELEMOST-REQUIRED": "telemost"},
    link_properties={"telemost": ("X-TELEMOST-CONFERENCE",)},
)


def detected(**kw):
    return detect(ical.parse(event("u@t", **kw)), GRAMMAR)


@pytest.mark.parametrize(
    "kw,provider,via",
    [
        (dict(location="telemost"), "telemost", "location"),
        (dict(location="  TeleMost "), "telemost", "location"),
        (dict(location="Телемост"), "telemost", "location"),
        (dict(location="jitsi"), "jitsi", "location"),
        (dict(location="онлайн"), "jitsi", "location"),
        (dict(location="Видеовстреча"), "jitsi", "location"),
        (dict(location="online"), "jitsi", "location"),
        (dict(location="Переговорная 5; telemost"), "telemost", "location"),
        (dict(location="Москва, ул. Ленина 1, телемост"), "telemost", "location"),
        (dict(summary="Планёрка #telemost"), "telemost", "tag"),
        (dict(summary="Планёрка #Телемост"), "telemost", "tag"),
        (dict(description="Повестка\\n#jitsi"), "jitsi", "tag"),
        (dict(location="Офис #онлайн"), "jitsi", "tag"),
        (dict(extra="CATEGORIES:Работа,Telemost"), "telemost", "categories"),
        (dict(extra="X-MEETPLUGIN-PROVIDER:telemost"), "telemost", "x-provider"),
        (dict(extra="X-MEETPLUGIN-PROVIDER:Телемост"), "telemost", "x-provider"),
        (dict(extra="X-TELEMOST-REQUIRED:TRUE"), "telemost", "property"),
        (dict(extra="X-TELEMOST-REQUIRED:true"), "telemost", "property"),
    ],
)
def test_markers(kw, provider, via):
    found = detected(**kw)
    assert (found.provider, found.via) == (provider, via)
    assert found.fresh == (via in ("location", "tag"))


@pytest.mark.parametrize(
    "kw",
    [
        dict(location="Переговорная 5"),
        dict(location="telemost room 5"),  # a keyword inside other words is not a marker
        dict(location="https://telemost.yandex.ru/j/123"),
        dict(summary="Обсуждение онлайн-продаж"),
        dict(summary="Итоги #важно"),
        dict(description="см. https://example.org/#telemost"),  # a URL fragment is not a tag
        dict(extra="CATEGORIES:Работа"),
        dict(extra="X-TELEMOST-REQUIRED:FALSE"),
        dict(),
    ],
)
def test_not_markers(kw):
    assert not detected(**kw).asked


def test_explicit_unknown_provider_is_reported():
    found = detected(extra="X-MEETPLUGIN-PROVIDER:zoom")
    assert (found.provider, found.unknown) == ("", "zoom")


def test_a_typed_keyword_outranks_lasting_properties():
    # The event still carries our X-MEETPLUGIN-PROVIDER; the person typed another provider.
    found = detected(location="jitsi", extra="X-MEETPLUGIN-PROVIDER:telemost\nCATEGORIES:Telemost")
    assert (found.provider, found.fresh) == ("jitsi", True)
    found = detected(extra="X-MEETPLUGIN-PROVIDER:jitsi\nCATEGORIES:Telemost")
    assert (found.provider, found.via) == ("jitsi", "x-provider")


def test_marker_in_an_override_only():
    override = (
        "BEGIN:VEVENT\nUID:u@t\nRECURRENCE-ID:20261202T100000Z\nDTSTART:20261202T100000Z\n"
        "LOCATION:telemost\nEND:VEVENT"
    )
    cal = ical.parse(event("u@t", extra="RRULE:FREQ=WEEKLY", components=override))
    assert detect(cal, GRAMMAR).provider == "telemost"


def test_might_ask_is_a_superset_of_detect():
    for kw in (
        dict(location="Телемост"),
        dict(extra="X-TELEMOST-REQUIRED:TRUE"),
        dict(extra="X-MEETPLUGIN-PROVIDER:zoom"),
        dict(summary="x #ОНЛАЙН"),
    ):
        assert might_ask(event("u@t", **kw), GRAMMAR)
    assert not might_ask(event("u@t", location="Офис", summary="Планёрка"), GRAMMAR)


def test_might_ask_sees_keywords_split_by_line_folding():
    for n in range(40, 90):
        summary = "x" * n + " #telemost"
        text = ical.to_text(ical.parse(event("u@t", summary=summary)))  # folded at 75 octets
        assert might_ask(text, GRAMMAR), n
        assert detect(ical.parse(text), GRAMMAR).provider == "telemost"


def test_marker_properties_come_from_the_grammar_not_the_core():
    """A provider's own marker property asks for it; without its plugin it is plain text."""
    acme = Grammar(
        keywords={"acme": "acme"},
        generic=frozenset(),
        default_provider="acme",
        known=frozenset({"acme"}),
        markers={"X-ACME-REQUIRED": "acme"},
    )
    text = event("u@t", extra="X-ACME-REQUIRED:TRUE")
    assert might_ask(text, acme)
    assert (detect(ical.parse(text), acme).provider, detect(ical.parse(text), acme).via) == (
        "acme",
        "property",
    )
    telemost_marked = event("u@t", extra="X-TELEMOST-REQUIRED:TRUE")
    assert not might_ask(telemost_marked, acme)
    assert not detect(ical.parse(telemost_marked), acme).asked
