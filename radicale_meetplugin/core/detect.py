"""Which provider an event asks for: the marker grammar (pure).

Markers, strongest first: a keyword in LOCATION and a ``#tag`` in
SUMMARY/LOCATION/DESCRIPTION (typed by a person just now), then the lasting
properties ``X-MEETPLUGIN-PROVIDER``, CATEGORIES and a provider's own marker
property set to TRUE (e.g. Yandex Calendar's ``X-TELEMOST-REQUIRED:TRUE``). Every
keyword and property name comes from the `Grammar`, made from the providers'
plugins: nothing here names a provider.
Typed markers win so that a person can switch provider in one save even
though the event still carries our ``X-MEETPLUGIN-PROVIDER`` from before.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import icalendar

from radicale_meetplugin.core import ical

# Separators between parts of a LOCATION ("Room 5; telemost").
_LOCATION_SPLIT = re.compile(r"[;,\n]")
# A tag is a whole word: "#telemost" or "#telemost," — not "https://host/#room" nor
# "#a#b". Being a whole word, removing one can never make another. Linear-time.
TAG = re.compile(r"(?<!\S)#(\w[\w-]*(?::[\w-]+(?:[+/][\w-]+)*)?)(?=$|[\s.,;:!?)])")


@dataclass(frozen=True)
class Grammar:
    """Keywords the admin configured, already case-folded, and the providers' properties."""

    keywords: Mapping[str, str]  # keyword -> provider name
    generic: frozenset[str]  # keywords meaning the default provider
    default_provider: str
    known: frozenset[str] = field(default_factory=frozenset)  # every provider name we know
    # Property (upper case) whose value TRUE asks for a provider: "X-TELEMOST-REQUIRED" -> "telemost".
    markers: Mapping[str, str] = field(default_factory=dict)
    # Provider -> extra properties that get its join link: "telemost" -> ("X-TELEMOST-CONFERENCE",).
    link_properties: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def all_link_properties(self) -> tuple[str, ...]:
        """Every provider's link properties: ours to drop when the link goes."""
        return tuple(dict.fromkeys(p for props in self.link_properties.values() for p in props))

    def provider_for(self, word: str) -> str:
        """Provider named by one word ("telemost" or "telemost:options"), "" if none."""
        word = word.strip().casefold().split(":", 1)[0].strip()
        if not word:
            return ""
        if word in self.keywords:
            return self.keywords[word]
        if word in self.generic:
            return self.default_provider
        return ""

    def all_words(self) -> Iterator[str]:
        yield from self.keywords
        yield from self.generic


@dataclass(frozen=True)
class Detection:
    provider: str = ""  # the provider asked for; "" when none is
    unknown: str = ""  # a provider name asked for explicitly that we do not know
    via: str = ""  # which marker decided: x-provider, location, tag, categories, property
    fresh: bool = False  # typed by a person now (LOCATION keyword or tag), not a lasting property
    option_words: tuple[str, ...] = ()  # words typed after the keyword: "telemost:all,cohosts"

    @property
    def asked(self) -> bool:
        return bool(self.provider or self.unknown)


def option_words(word: str) -> tuple[str, ...]:
    """The words after the keyword's colon: "телемост:все, cohosts" -> ("все", "cohosts")."""
    _, _, rest = word.partition(":")
    return tuple(w.strip().casefold() for w in re.split(r"[,+/]", rest) if w.strip())


def location_parts(location: str) -> list[str]:
    return _LOCATION_SPLIT.split(location)


def tags(text: str) -> Iterator[str]:
    for match in TAG.finditer(text):
        yield match.group(1)


def might_ask(text: str, grammar: Grammar) -> bool:
    """Cheap test on the raw event text: can it hold a marker at all?

    Lines are unfolded first: a fold may split a keyword ("#telemo" / " st").
    """
    folded = ical.unfolded(text).casefold()
    if "x-meetplugin-" in folded or any(p.casefold() in folded for p in grammar.markers):
        return True
    return any(word in folded for word in grammar.all_words())


def detect(cal: icalendar.Calendar, grammar: Grammar) -> Detection:
    events = ical.vevents(cal)
    for comp in events:
        for part in location_parts(ical.text_of(comp, "LOCATION")):
            name = grammar.provider_for(part)
            if name:
                return Detection(
                    provider=name, via="location", fresh=True, option_words=option_words(part)
                )
    for comp in events:
        for prop in ("SUMMARY", "LOCATION", "DESCRIPTION"):
            for tag in tags(ical.text_of(comp, prop)):
                name = grammar.provider_for(tag)
                if name:
                    return Detection(
                        provider=name, via="tag", fresh=True, option_words=option_words(tag)
                    )
    for comp in events:
        explicit = ical.text_of(comp, "X-MEETPLUGIN-PROVIDER").strip()
        if explicit:
            name = grammar.provider_for(explicit) or (
                explicit.casefold() if explicit.casefold() in grammar.known else ""
            )
            if name:
                return Detection(provider=name, via="x-provider")
            return Detection(unknown=explicit[:40], via="x-provider")
    for comp in events:
        for cat in ical.categories(comp):
            name = grammar.provider_for(cat)
            if name:
                return Detection(provider=name, via="categories")
    for comp in events:
        for prop, name in grammar.markers.items():
            if ical.text_of(comp, prop).strip().upper() == "TRUE":
                return Detection(provider=name, via="property")
    return Detection()
