"""Which provider an event asks for: the marker grammar (pure).

Markers, strongest first: a keyword in LOCATION and a ``#tag`` in
SUMMARY/LOCATION/DESCRIPTION (typed by a person just now), then the lasting
properties ``X-MEETPLUGIN-PROVIDER``, CATEGORIES and a provider's own marker
property set to TRUE (e.g. Yandex Calendar's ``X-TELEMOST-REQUIRED:TRUE``). Every
keyword and property name comes from the `Grammar`, made from the providers'
plugins: nothing here names a provider.
Typed markers win so that a person can switch provider in one save even
though the event still carries our ``X-MEETPLUGIN-PROVIDER`` from before.

LOCATION is split into parts at ``;``, ``,`` and line breaks. A part asks for a
provider (`location_request`) when, quotes, brackets and closing punctuation
aside (``«телемост»``, ``телемост.``, ``телемост!``):

- it is a keyword or a provider's name (``телемост``, ``Яндекс Телемост``,
  ``Я.Телемост``), options after a colon included (``телемост:все``);
- it ends with a provider's keyword or name after other words: the place comes
  first, the service last (``Переговорная 5 телемост``); the other words stay;
- it starts with a provider's keyword joined by a hyphen (``Телемост-встреча``).

A generic keyword (``онлайн``) asks only as a whole part: "Zoom онлайн" names
another service. A keyword or name anywhere else in a part ("телемост room 5",
"Обсудим телемост с командой") is text; so is an inflected form ("в телемосте").
For those, `Detection.note` says why nothing was asked (the engine logs it).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
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

    def longest(self) -> int:
        """Words in the longest keyword ("яндекс телемост": 2)."""
        return max((len(k.split()) for k in self.keywords), default=1)


@dataclass(frozen=True)
class Detection:
    provider: str = ""  # the provider asked for; "" when none is
    unknown: str = ""  # a provider name asked for explicitly that we do not know
    via: str = ""  # which marker decided: x-provider, location, tag, categories, property
    fresh: bool = False  # typed by a person now (LOCATION keyword or tag), not a lasting property
    option_words: tuple[str, ...] = ()  # words typed after the keyword: "telemost:all,cohosts"
    # Why a LOCATION that names a provider asks for nothing ("" when it asks, or names none).
    note: str = ""

    @property
    def asked(self) -> bool:
        return bool(self.provider or self.unknown)


def option_words(word: str) -> tuple[str, ...]:
    """The words after the keyword's colon: "телемост:все, cohosts" -> ("все", "cohosts")."""
    _, _, rest = word.partition(":")
    return tuple(w.strip().casefold() for w in re.split(r"[,+/]", rest) if w.strip())


def location_parts(location: str) -> list[str]:
    return _LOCATION_SPLIT.split(location)


# Around a word: quotes and brackets; after it, closing punctuation ("телемост!").
_OPENERS = "«“„\"'‘‚([{<"
_CLOSERS = "»”“\"'’‘)]}>.!?…;:"
_SPACES = re.compile(r"\s+")
_DOT_SPACE = re.compile(r"\.\s+")  # "Я. Телемост" is written as "Я.Телемост"
_NOT_A_WORD = ("://", "@", "www.")  # a URL or an address is never a keyword


def _bare(word: str) -> str:
    """A word without the quotes, brackets and punctuation people put around it."""
    word = word.strip().lstrip(_OPENERS)
    if ":" in word:  # "телемост:все." keeps its colon and options
        head, _, tail = word.partition(":")
        return (
            f"{head.rstrip(_CLOSERS)}:{tail.rstrip(_CLOSERS)}"
            if tail.rstrip(_CLOSERS)
            else head.rstrip(_CLOSERS)
        )
    return word.rstrip(_CLOSERS)


@dataclass(frozen=True)
class LocationRequest:
    """One LOCATION part that asks for a provider."""

    provider: str
    word: str  # the keyword as typed, options included: "телемост:все"
    rest: str = ""  # the part's other words, as typed ("Переговорная 5")
    at: str = "whole"  # whole, end (after the place) or start (a hyphen compound)


def location_request(part: str, grammar: Grammar) -> LocationRequest | None:
    """The request a LOCATION part makes, None if it makes none (the grammar above)."""
    text = _DOT_SPACE.sub(".", _SPACES.sub(" ", part.strip()))
    if not text or any(mark in text.casefold() for mark in _NOT_A_WORD):
        return None
    whole = _bare(text)
    name = grammar.provider_for(whole)
    if name:
        return LocationRequest(name, whole)
    words = text.split(" ")
    for n in range(min(grammar.longest(), len(words) - 1), 0, -1):  # the name ends the part
        tail = _bare(" ".join(words[-n:]))
        if tail.casefold().split(":", 1)[0] in grammar.keywords:
            return LocationRequest(
                grammar.keywords[tail.casefold().split(":", 1)[0]],
                tail,
                " ".join(words[:-n]).strip(),
                "end",
            )
    head, dash, _compound = words[0].lstrip(_OPENERS).partition("-")
    if dash and head.casefold() in grammar.keywords:  # "Телемост-встреча"
        return LocationRequest(
            grammar.keywords[head.casefold()], head, " ".join(words[1:]).strip(), "start"
        )
    return None


def location_note(part: str, grammar: Grammar) -> str:
    """Why a LOCATION part that names a provider asks for nothing; "" if it names none."""
    text = _DOT_SPACE.sub(".", _SPACES.sub(" ", part.strip()))
    if not text or any(mark in text.casefold() for mark in _NOT_A_WORD):
        return ""
    folded = [_bare(w).casefold() for w in text.split(" ")]
    for word in folded:
        if word in grammar.generic:
            return (
                f"«{word}» in LOCATION «{text[:60]}» asks for a conference only as a part of "
                "its own (e.g. «Переговорная 5; онлайн»)"
            )
        if word in grammar.keywords:
            return (
                f"«{word}» stands inside the text of LOCATION «{text[:60]}»: a service is asked "
                "for when its name is a part of its own or ends a part (e.g. «Переговорная 5 "
                f"{word}» or «Переговорная 5; {word}»)"
            )
    for word in folded:
        for key in grammar.keywords:
            if (
                " " not in key
                and word != key
                and word.startswith(key)
                and len(word) - len(key) <= 3
            ):
                return (
                    f"«{word}» in LOCATION «{text[:60]}» is not the keyword «{key}» (write the "
                    "keyword as it is)"
                )
    return ""


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
    note = ""
    for comp in events:
        for part in location_parts(ical.text_of(comp, "LOCATION")):
            request = location_request(part, grammar)
            if request is not None:
                return Detection(
                    provider=request.provider,
                    via="location",
                    fresh=True,
                    option_words=option_words(request.word),
                )
            note = note or location_note(part, grammar)
    found = _lasting(events, grammar)
    return found if found.asked else Detection(note=note)


def _lasting(events: Sequence[icalendar.cal.Component], grammar: Grammar) -> Detection:
    """Tags (typed), then the properties that stay in the event."""
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
