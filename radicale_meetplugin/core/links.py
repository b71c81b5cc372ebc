"""Meeting links a person pasted: recognised by URL masks (pure).

The built-in masks follow the seed's list (Creatio's "links to online meeting
services") plus the providers of this plugin; admins add their own in
``[pasted_links]`` (name = regular expression). A mask is matched against one
whitespace-separated word at a time, so no regex ever runs over a whole text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import icalendar

from radicale_meetplugin.core import ical

_MAX_WORD = 2048


@dataclass(frozen=True)
class Mask:
    name: str  # the service as people know it, used as the CONFERENCE label
    pattern: re.Pattern[str]


def _mask(name: str, regex: str) -> Mask:
    return Mask(name, re.compile(regex, re.IGNORECASE))


_HOST = r"https?://(?:www\.)?"
DEFAULT_MASKS: tuple[Mask, ...] = (
    _mask("Microsoft Teams", _HOST + r"teams\.(?:microsoft|live)\.com/(?:l/meetup-join|meet)/\S+"),
    _mask("Zoom", _HOST + r"(?:[a-z0-9-]+\.)?zoom\.us/(?:j|my|w)/\S+"),
    _mask("Cisco Webex", _HOST + r"(?:[a-z0-9-]+\.)?webex\.com/\S+"),
    _mask("Join.Me", _HOST + r"join\.me/\S+"),
    _mask("AnyMeeting", _HOST + r"(?:[a-z0-9-]+\.)?anymeeting\.com/\S+"),
    _mask("GoToMeeting", _HOST + r"(?:(?:global\.)?gotomeeting\.com/join|meet\.goto\.com)/\S+"),
    _mask("Google Meet", _HOST + r"meet\.google\.com/[a-z]{3}-[a-z]{4}-[a-z]{3}\b\S*"),
    _mask("Яндекс Телемост", _HOST + r"telemost\.(?:360\.)?yandex\.ru/j/\S+"),
    _mask("TrueConf", _HOST + r"[a-z0-9.-]+(?::\d+)?/c/[A-Za-z0-9_]+\S*"),
    _mask("Videomost", _HOST + r"[a-z0-9.-]+(?::\d+)?/service/join/\?confid=[0-9a-f]+\S*"),
    _mask("Jitsi Meet", _HOST + r"(?:meet\.jit\.si|8x8\.vc)/\S+"),
    # A conversation of any Nextcloud: <server>/call/<token> (or /index.php/call/<token>).
    _mask(
        "Nextcloud Talk",
        _HOST
        + r"[a-z0-9.-]+(?::\d+)?(?:/[A-Za-z0-9._~-]+)*?(?:/index\.php)?/call/[a-z0-9]{4,32}\b/?",
    ),
)


def masks_from_config(extra: Mapping[str, str]) -> tuple[Mask, ...]:
    """Admin masks first (a company Zoom domain wins over the generic one)."""
    masks = []
    for name, regex in extra.items():
        try:
            masks.append(_mask(name, regex))
        except re.error as e:
            raise ValueError(f"[pasted_links] {name}: not a regular expression: {e}") from None
    return (*masks, *DEFAULT_MASKS)


_URL_CHARS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")  # RFC 3986


def _words(text: str) -> Iterator[str]:
    for word in text.split():
        if "://" in word and len(word) <= _MAX_WORD:
            word = word.strip("<>()[]\"'.,;")
            url = _URL_CHARS.match(word)  # a link ends where URL characters end
            if url:
                yield url.group(0).rstrip(".,;)")


def find(text: str, masks: Iterable[Mask]) -> Iterator[tuple[str, str]]:
    """(service, url) for every meeting link in the text, in order."""
    masks = tuple(masks)
    for word in _words(text):
        for mask in masks:
            match = mask.pattern.match(word)
            if match:
                yield mask.name, match.group(0)
                break


def pasted(cal: icalendar.Calendar, masks: Iterable[Mask]) -> dict[str, str]:
    """url -> service for links found in LOCATION or DESCRIPTION of any VEVENT."""
    found: dict[str, str] = {}
    masks = tuple(masks)
    for comp in ical.vevents(cal):
        for prop in ("LOCATION", "DESCRIPTION"):
            for name, url in find(ical.text_of(comp, prop), masks):
                found.setdefault(url, name)
    return found


def mark_conferences(
    cal: icalendar.Calendar, found: Mapping[str, str], exclude: str | None = None
) -> None:
    """CONFERENCE properties for pasted links (marked as ours), none for links gone.

    A CONFERENCE the person or another program set is never touched.
    """
    for comp in ical.vevents(cal):
        existing = ical.values_of(comp, "CONFERENCE")
        kept = [
            c
            for c in existing
            if str(getattr(c, "params", {}).get("X-MEETPLUGIN-PASTED", "")).upper() != "TRUE"
            or (str(c) in found and str(c) != exclude)
        ]
        have = {str(c) for c in kept}
        for url, name in found.items():
            if url in have or url == exclude:
                continue
            prop = icalendar.vUri(url)
            prop.params["VALUE"] = "URI"
            prop.params["FEATURE"] = ["AUDIO", "VIDEO"]
            prop.params["LABEL"] = name
            prop.params["X-MEETPLUGIN-PASTED"] = "TRUE"
            kept.append(prop)
            have.add(url)
        if [str(c) for c in kept] != [str(c) for c in existing] or len(kept) != len(existing):
            comp.pop("CONFERENCE", None)
            for c in kept:
                comp.add("CONFERENCE", c, encode=False)
