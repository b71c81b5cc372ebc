"""The marker grammar: every form that asks for a conference, and look-alikes that don't."""

from __future__ import annotations

import pytest
from harness import event

from radicale_meetplugin.core import ical, rewrite
from radicale_meetplugin.core.detect import Grammar, detect, location_request, might_ask
from radicale_meetplugin.core.model import Conference
from radicale_meetplugin.providers import jitsi, telemost

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


# --- keywords as people write them (issue 12, item 5) ----------------------------------

# The words come from the plugins, as the engine's grammar takes them.
PLUGIN_GRAMMAR = Grammar(
    keywords={
        **{w.casefold(): "telemost" for w in ("telemost", *telemost.PLUGIN.keywords)},
        **{w.casefold(): "jitsi" for w in ("jitsi", *jitsi.PLUGIN.keywords)},
    },
    generic=frozenset({"online", "онлайн", "видеовстреча"}),
    default_provider="jitsi",
    known=frozenset({"telemost", "jitsi"}),
)

# LOCATION as typed -> (provider asked for, "" if none; the LOCATION once the link is in)
URL = "https://telemost.yandex.ru/j/123"
WRITTEN = [
    ("телемост", "telemost", URL),
    ("телемост.", "telemost", URL),
    ("телемост!", "telemost", URL),
    ("«телемост»", "telemost", URL),
    ('"Телемост"', "telemost", URL),
    ("(телемост)", "telemost", URL),
    ("Яндекс Телемост", "telemost", URL),
    ("Яндекс  телемост!", "telemost", URL),
    ("Я.Телемост", "telemost", URL),
    ("«Я.Телемост»", "telemost", URL),
    ("Я. Телемост", "telemost", URL),
    ("Яндекс.Телемост", "telemost", URL),
    ("Yandex Telemost", "telemost", URL),
    ("Телемост-встреча", "telemost", URL),
    ("Переговорная 5 телемост", "telemost", f"Переговорная 5; {URL}"),
    ("Переговорная 5 «телемост»", "telemost", f"Переговорная 5; {URL}"),
    ("Переговорная 5 Яндекс Телемост", "telemost", f"Переговорная 5; {URL}"),
    ("Переговорная 5; телемост.", "telemost", f"Переговорная 5; {URL}"),
    ("Переговорная 5 телемост:все", "telemost", f"Переговорная 5; {URL}"),
    ("Телемост-встреча с клиентом", "telemost", f"{URL}; с клиентом"),
    ("Обсудим телемост", "telemost", f"Обсудим; {URL}"),  # LOCATION ends with the service
    ("Jitsi Meet", "jitsi", URL),
    ("онлайн.", "jitsi", URL),
    ("«Онлайн»", "jitsi", URL),
    # Text, not a request:
    ("Обсудим телемост с командой", "", None),
    ("telemost room 5", "", None),
    ("Телемост для Пети", "", None),
    ("Встреча в телемосте", "", None),
    ("Zoom онлайн", "", None),  # a generic word asks only on its own
    ("Онлайн-встреча", "", None),
    ("https://telemost.yandex.ru/j/123", "", None),
    ("https://meet.example.org/room-telemost", "", None),
    ("telemost@example.org", "", None),
    ("Переговорная 5", "", None),
]


@pytest.mark.parametrize("location,provider,shown", WRITTEN, ids=[w[0] for w in WRITTEN])
def test_keywords_as_people_write_them(location, provider, shown):
    cal = ical.parse(event("u@t", location=location))
    found = detect(cal, PLUGIN_GRAMMAR)
    assert found.provider == provider
    if not provider:
        return
    assert (found.via, found.fresh) == ("location", True)
    rewrite.attach(cal, Conference(provider, "c1", URL), "Яндекс Телемост", "ru", PLUGIN_GRAMMAR)
    assert ical.text_of(ical.master(cal), "LOCATION") == shown
    again = ical.to_text(cal)  # a fixed point: the rewritten event asks for nothing new
    rewrite.attach(cal, Conference(provider, "c1", URL), "Яндекс Телемост", "ru", PLUGIN_GRAMMAR)
    assert ical.to_text(cal) == again
    assert location_request(shown.split("; ")[0], PLUGIN_GRAMMAR) is None or shown == URL


def test_options_after_a_keyword_that_ends_the_part():
    found = detect(ical.parse(event("u@t", location="Переговорная 5 телемост:все")), PLUGIN_GRAMMAR)
    assert found.option_words == ("все",)


NAMED = [
    ("Обсудим телемост с командой", "«телемост» stands inside the text"),
    ("telemost room 5", "«telemost» stands inside the text"),
    ("Встреча в телемосте", "«телемосте» in LOCATION «Встреча в телемосте» is not the keyword"),
    ("Zoom онлайн", "asks for a conference only as a part of its own"),
    ("Переговорная 5", ""),
    ("https://meet.example.org/room-telemost", ""),
]


@pytest.mark.parametrize("location,note", NAMED, ids=[n[0] for n in NAMED])
def test_why_a_named_service_is_not_asked_for(location, note):
    found = detect(ical.parse(event("u@t", location=location)), PLUGIN_GRAMMAR)
    assert not found.asked
    assert (note in found.note) if note else found.note == ""


def test_a_request_elsewhere_leaves_no_note():
    found = detect(
        ical.parse(event("u@t", location="Обсудим телемост с командой", summary="x #jitsi")),
        PLUGIN_GRAMMAR,
    )
    assert (found.provider, found.note) == ("jitsi", "")
