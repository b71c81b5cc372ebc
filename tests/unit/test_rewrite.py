"""Rewriting the event: the person's text kept, our block and link added, all fixed points."""

from __future__ import annotations

import dataclasses

import icalendar
import pytest
from harness import event
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_detect import GRAMMAR

from radicale_meetplugin.core import i18n, ical, rewrite
from radicale_meetplugin.core.model import Conference

CONF = Conference("telemost", "42", "https://telemost.yandex.ru/j/42")
JITSI = Conference("jitsi", "MeetAbc", "https://meet.jit.si/MeetAbc")


def attached(
    text: str,
    conf: Conference = CONF,
    lang: str = "ru",
    force: bool = True,
    old_urls: tuple[str, ...] = (),
) -> str:
    cal = ical.parse(text)
    rewrite.attach(cal, conf, "Яндекс Телемост", lang, GRAMMAR, force, old_urls)
    return ical.to_text(cal)


def first(text: str) -> icalendar.Event:
    return ical.vevents(ical.parse(text))[0]


@pytest.mark.parametrize(
    "location,expected",
    [
        ("telemost", CONF.join_url),
        ("Телемост", CONF.join_url),
        ("онлайн", CONF.join_url),
        ("Переговорная 5; telemost", f"Переговорная 5; {CONF.join_url}"),
        ("telemost; Переговорная 5", f"{CONF.join_url}; Переговорная 5"),
        ("Москва, ул. Ленина 1, телемост", f"Москва, ул. Ленина 1, {CONF.join_url}"),
        ("Офис #telemost", f"Офис {CONF.join_url}"),
        ("Переговорная 5", f"Переговорная 5; {CONF.join_url}"),  # asked elsewhere (tag, category)
        ("", CONF.join_url),
        (CONF.join_url, CONF.join_url),
        ("telemost; telemost", CONF.join_url),
    ],
)
def test_location(location, expected):
    assert str(first(attached(event("u@t", location=location)))["LOCATION"]) == expected


def test_location_old_link_is_replaced():
    text = event("u@t", location=f"Офис; {JITSI.join_url}")
    out = attached(text, old_urls=(JITSI.join_url,))
    assert str(first(out)["LOCATION"]) == f"Офис; {CONF.join_url}"


def test_description_block_ru_and_en():
    ev = first(attached(event("u@t", location="telemost", description="Повестка:\\n1. Итоги")))
    assert str(ev["DESCRIPTION"]) == (
        "Повестка:\n1. Итоги\n\n=== Видеовстреча ===\n"
        f"Встреча пройдёт по ссылке: {CONF.join_url}\nСервис: Яндекс Телемост\n==="
    )
    ev = first(attached(event("u@t", location="telemost"), lang="en"))
    assert str(ev["DESCRIPTION"]) == (
        f"=== Video meeting ===\nJoin the meeting: {CONF.join_url}\nService: Яндекс Телемост\n==="
    )


def test_switching_language_replaces_the_block_not_doubles_it():
    ru = attached(event("u@t", location="telemost", description="Текст"))
    en = attached(ru, lang="en")
    description = str(first(en)["DESCRIPTION"])
    assert description.startswith("Текст\n\n=== Video meeting ===")
    assert "Видеовстреча" not in description


def test_conference_property_is_rfc7986_and_never_duplicated():
    out = attached(attached(event("u@t", location="telemost")))
    ev = first(out)
    assert str(ev["CONFERENCE"]) == CONF.join_url  # exactly one (a list if two)
    assert "CONFERENCE;FEATURE=AUDIO,VIDEO;LABEL=" in out.replace("\r\n ", "")
    assert ev["CONFERENCE"].params["VALUE"] == "URI"
    assert str(ev["X-TELEMOST-CONFERENCE"]) == CONF.join_url


def test_link_properties_come_from_the_grammar():
    """Only a provider whose plugin declares a link property gets it; switching drops it."""
    grammar = dataclasses.replace(GRAMMAR, link_properties={"jitsi": ("X-ACME-LINK",)})
    cal = ical.parse(event("u@t", location="jitsi"))
    rewrite.attach(cal, JITSI, "Jitsi Meet", "ru", grammar)
    ev = ical.vevents(cal)[0]
    assert str(ev["X-ACME-LINK"]) == JITSI.join_url and "X-TELEMOST-CONFERENCE" not in ev
    assert JITSI.join_url in rewrite.shown_links(
        ical.parse(event("u@t", extra=f"X-ACME-LINK:{JITSI.join_url}")), grammar
    )
    ev = first(attached(ical.to_text(cal)))  # GRAMMAR: Telemost's property, not this one
    assert "X-ACME-LINK" in ev  # not ours under GRAMMAR: kept
    rewrite.attach(cal, CONF, "Яндекс Телемост", "ru", grammar, old_urls=(JITSI.join_url,))
    ev = ical.vevents(cal)[0]
    assert "X-ACME-LINK" not in ev and "X-TELEMOST-CONFERENCE" not in ev


def test_foreign_conference_property_is_kept():
    text = event(
        "u@t", location="telemost", extra="CONFERENCE;VALUE=URI;FEATURE=PHONE:tel:+74950000000"
    )
    values = [str(v) for v in ical.values_of(first(attached(text)), "CONFERENCE")]
    assert sorted(values) == sorted(["tel:+74950000000", CONF.join_url])


def test_tags_are_removed_from_summary_and_description():
    ev = first(
        attached(
            event("u@t", summary="Планёрка #telemost #важно", description="#telemost Повестка")
        )
    )
    assert str(ev["SUMMARY"]) == "Планёрка #важно"
    assert str(ev["DESCRIPTION"]).startswith("Повестка\n\n=== Видеовстреча")


def test_detach_removes_every_trace_and_lasting_markers():
    text = attached(
        event(
            "u@t",
            location="Офис; telemost",
            description="Повестка",
            extra="CATEGORIES:Работа,Telemost\nX-TELEMOST-REQUIRED:TRUE",
        )
    )
    cal = ical.parse(text)
    rewrite.detach(cal, CONF.join_url, GRAMMAR)
    ev = ical.vevents(cal)[0]
    assert str(ev["LOCATION"]) == "Офис"
    assert str(ev["DESCRIPTION"]) == "Повестка"
    assert ical.categories(ev) == ["Работа"]
    for name in (
        "CONFERENCE",
        "X-TELEMOST-CONFERENCE",
        "X-TELEMOST-REQUIRED",
        *rewrite.BOOKKEEPING,
    ):
        assert name not in ev
    again = ical.parse(ical.to_text(cal))
    rewrite.detach(again, CONF.join_url, GRAMMAR)
    assert ical.to_text(again) == ical.to_text(cal)


def test_explain_and_clear():
    cal = ical.parse(event("u@t", location="telemost", description="Повестка"))
    rewrite.explain(cal, "сервис недоступен.", "ru")
    once = ical.to_text(cal)
    rewrite.explain(cal, "сервис недоступен.", "ru")
    assert ical.to_text(cal) == once
    ev = ical.vevents(cal)[0]
    assert str(ev["DESCRIPTION"]) == (
        "Повестка\n\n=== Видеовстреча ===\nВидеовстреча не создана: сервис недоступен.\n==="
    )
    assert str(ev["LOCATION"]) == "telemost"
    rewrite.clear(cal)
    assert str(ev["DESCRIPTION"]) == "Повестка" and "X-MEETPLUGIN-STATUS" not in ev


def test_a_broken_block_is_recognised_by_its_link_not_doubled():
    broken = "Повестка\nВстреча пройдёт по ссылке: https://old\nСервис: Jitsi Meet\n==="
    assert rewrite.split_description(broken, ("https://old",)) == (
        "Повестка",
        ["Встреча пройдёт по ссылке: https://old", "Сервис: Jitsi Meet", "==="],
    )


@pytest.mark.parametrize(
    "text",
    [
        "Agenda\n===\n1. Budget",
        "Join the meeting: https://zoom.us/j/123 (backup)\nService: Zoom",
        "Встреча пройдёт по ссылке: https://example.org/room\nСервис: свой",
        "Итоги\n===\n",
    ],
)
def test_the_persons_look_alike_lines_are_kept(text):
    assert rewrite.split_description(text, ("https://telemost.yandex.ru/j/42",)) == (
        text.rstrip(),
        [],
    )


def test_a_persons_header_line_does_not_swallow_what_follows():
    text = "=== Видеовстреча ===\nМои заметки\nещё строка"
    assert rewrite.split_description(text) == ("Мои заметки\nещё строка", ["=== Видеовстреча ==="])


def test_text_after_the_block_is_kept():
    text = "До\n\n=== Video meeting ===\nJoin the meeting: u\nService: X\n===\nПосле"
    assert rewrite.split_description(text) == (
        "До\n\nПосле",
        ["=== Video meeting ===", "Join the meeting: u", "Service: X", "==="],
    )


def test_hostile_description_is_parsed_in_linear_time():
    # 200 000 lines of look-alikes: one pass, no backtracking (a quadratic parser would hang).
    hostile = (
        "=== Видеовстреча ===\n" + "Встреча пройдёт по ссылке: x\n" * 100_000 + "==\n" * 100_000
    )
    user, ours = rewrite.split_description(hostile)
    assert len(ours) == 1 + 100_000 and user.count("==") == 100_000


def test_long_cyrillic_text_is_folded_and_read_back():
    long_text = "Очень длинное описание встречи " * 40
    out = attached(event("u@t", location="telemost", description=long_text.strip()))
    assert all(len(line.encode()) <= 75 for line in out.split("\r\n"))
    assert str(first(out)["DESCRIPTION"]).startswith(long_text.strip())


def test_crlf_and_lf_input_give_the_same_result():
    crlf = event("u@t", location="telemost", description="Повестка")
    lf = crlf.replace("\r\n", "\n")
    assert attached(crlf) == attached(lf)


# --- properties (hypothesis) ---------------------------------------------------

# Text a person may type: any printable text, Cyrillic, newlines, separators.
person_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\\")
    | st.sampled_from(list("\n;,# абвгдАБВ=")),
    max_size=120,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    description=person_text,
    location=person_text,
    summary=person_text,
    keyword=st.sampled_from(["telemost", "Телемост", "онлайн", "#telemost"]),
    lang=st.sampled_from(i18n.LANGUAGES),
)
def test_attach_is_a_fixed_point(description, location, summary, keyword, lang):
    cal = icalendar.Calendar()
    cal.add("VERSION", "2.0")
    cal.add("PRODID", "-//t//EN")
    ev = icalendar.Event()
    ev.add("UID", "u@t")
    ev.add("SUMMARY", summary)
    ev.add("LOCATION", f"{location}; {keyword}")
    ev.add("DESCRIPTION", description)
    cal.add_component(ev)
    once = attached(ical.to_text(cal), lang=lang)
    assert attached(once, lang=lang) == once
    assert attached(once, lang=lang, force=False) == once  # what a re-upload does
    shown = first(once)
    assert CONF.join_url in str(shown["LOCATION"])
    user_part, ours = rewrite.split_description(str(shown["DESCRIPTION"]))
    assert ours[0] == i18n.BLOCK_START[lang] and CONF.join_url in ours[1]
    # The person's text is all still there (our tags aside).
    kept, _ = rewrite.split_description(description)
    for word in kept.replace("#telemost", " ").split():
        assert word in user_part or word.startswith("#")


@settings(max_examples=100, deadline=None)
@given(description=person_text, location=person_text)
def test_detach_after_attach_restores_the_persons_text(description, location):
    location = location.replace("#", "")
    if GRAMMAR.provider_for(location) or any(
        GRAMMAR.provider_for(p) for p in location.replace(",", ";").replace("\n", ";").split(";")
    ):
        return
    text = event(
        "u@t",
        location=f"{location}; telemost" if location.strip() else "telemost",
        description=description.replace("\\", "")
        .replace("\n", "\\n")
        .replace(";", "\\;")
        .replace(",", "\\,"),
    )
    cal = ical.parse(attached(text))
    rewrite.detach(cal, CONF.join_url, GRAMMAR)
    ev = ical.vevents(cal)[0]
    assert CONF.join_url not in ical.to_text(cal)
    assert "Видеовстреча" not in ical.text_of(ev, "DESCRIPTION")


def test_hostile_location_is_handled_in_linear_time():
    # A long run of spaces made the old separator regex backtrack quadratically (4 s at 20 000).
    location = " " * 200_000 + "telemost" + " " * 200_000 + ";" + " " * 200_000
    out = attached(event("u@t", location=location))
    assert str(first(out)["LOCATION"]) == CONF.join_url


@pytest.mark.parametrize("text", ["#JITSI#JITSI", "#telemost#telemost x", "a #telemost#jitsi"])
def test_glued_tags_are_not_tags(text):
    out = attached(event("u@t", location="telemost", description=text))
    assert rewrite.split_description(str(first(out)["DESCRIPTION"]))[0] == text
    assert attached(out) == out


WEBINAR = Conference(
    "telemost",
    "43",
    "https://telemost.yandex.ru/j/43",
    {"watch_url": "https://telemost.yandex.ru/live/43", "stream_title": "Вебинар"},
)


def test_a_webinar_shows_both_links_labelled_and_is_a_fixed_point():
    text = attached(event("w@t", location="телемост:трансляция", description="Программа"), WEBINAR)
    ev = first(text)
    assert str(ev["LOCATION"]) == WEBINAR.join_url
    _, block = rewrite.split_description(str(ev["DESCRIPTION"]))
    assert [line for line in block if "https://" in line] == [
        f"Ведущие подключаются по ссылке: {WEBINAR.join_url}",
        "Трансляция для зрителей: https://telemost.yandex.ru/live/43",
    ]
    features = {
        str(c): (
            ",".join(c.params["FEATURE"])
            if isinstance(c.params["FEATURE"], list)
            else c.params["FEATURE"],
            c.params["LABEL"],
        )
        for c in ev["CONFERENCE"]
    }
    assert features == {
        WEBINAR.join_url: ("AUDIO,VIDEO,MODERATOR", "Вебинар, вход для ведущих (Яндекс Телемост)"),
        "https://telemost.yandex.ru/live/43": (
            "VIDEO",
            "Трансляция для зрителей (Яндекс Телемост)",
        ),
    }
    assert attached(text, WEBINAR) == text
    english = attached(text, WEBINAR, lang="en")
    assert "Watch the live stream: https://telemost.yandex.ru/live/43" in str(
        first(english)["DESCRIPTION"]
    )
    assert "Трансляция" not in str(first(english)["DESCRIPTION"])
    assert set(rewrite.shown_links(ical.parse(text), GRAMMAR)) == {
        WEBINAR.join_url,
        "https://telemost.yandex.ru/live/43",
    }


def test_detaching_a_webinar_removes_the_viewers_link_too():
    cal = ical.parse(attached(event("w@t", location="telemost", description="Программа"), WEBINAR))
    rewrite.detach(cal, WEBINAR.join_url, GRAMMAR)
    text = ical.to_text(cal)
    assert "/live/43" not in text and "/j/43" not in text and "CONFERENCE" not in text
    assert str(first(text)["DESCRIPTION"]) == "Программа"


# --- a failed change of the conference (issue 12, item 11) -----------------------------


def test_a_failed_change_is_noted_in_the_block_and_the_link_stays():
    url = "https://telemost.yandex.ru/j/1"
    cal = ical.parse(event("u@t", location="telemost", description="Повестка"))
    grammar = GRAMMAR
    rewrite.attach(cal, Conference("telemost", "1", url), "Яндекс Телемост", "ru", grammar)
    attached = ical.to_text(cal)
    line = i18n.text("ru", "update_failed", reason="Яндекс Телемост отклонил запрос (код 403).")
    rewrite.note_update(cal, line, "ru")
    rewrite.note_update(cal, line, "ru")  # once, however often it fails
    description = ical.text_of(ical.master(cal), "DESCRIPTION")
    assert description == (
        "Повестка\n\n=== Видеовстреча ===\n"
        f"Встреча пройдёт по ссылке: {url}\nСервис: Яндекс Телемост\n{line}\n==="
    )
    assert rewrite.split_description(description)[0] == "Повестка"
    assert rewrite.shown_links(cal, grammar) == (url,)
    rewrite.note_update(cal, None, "ru")  # a later change went through
    assert ical.to_text(cal) == attached
    rewrite.note_update(cal, None, "ru")
    assert ical.to_text(cal) == attached
