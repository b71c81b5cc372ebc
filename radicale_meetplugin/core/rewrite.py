"""Edit the event so it shows the conference (pure, idempotent).

Every function here is a fixed point: applying it to its own output changes
nothing, so a client sending back the server's version creates nothing.
"""

from __future__ import annotations

import re

import icalendar

from radicale_meetplugin.core import i18n, ical
from radicale_meetplugin.core.detect import TAG, Grammar, location_request
from radicale_meetplugin.core.model import Conference

BOOKKEEPING = (
    "X-MEETPLUGIN-PROVIDER",
    "X-MEETPLUGIN-CONFERENCE-ID",
    "X-MEETPLUGIN-STATUS",
    "X-MEETPLUGIN-ERROR",
    "X-MEETPLUGIN-OPTIONS",
)
_BLOCK_STARTS = frozenset(i18n.BLOCK_START.values())
_LOCATION_SPLIT_KEEP = re.compile(r"([;,\n])")


# --- DESCRIPTION block -------------------------------------------------------


def _our_line_prefixes() -> tuple[str, ...]:
    prefixes = []
    for lang in i18n.LANGUAGES:
        for name in ("join", "join_hosts", "watch", "failed", "pending", "update_failed"):
            template = i18n.TEXT[lang][name]
            prefixes.append(template[: template.index("{")])
    return tuple(prefixes)


_OUR_PREFIXES = _our_line_prefixes()
_SERVICE_PREFIXES = tuple(i18n.TEXT[lang]["service"].split("{")[0] for lang in i18n.LANGUAGES)


def _our_shape(bare: str) -> bool:
    return bare.startswith(_OUR_PREFIXES) or bare.startswith(_SERVICE_PREFIXES)


def split_description(text: str, known_urls: tuple[str, ...] = ()) -> tuple[str, list[str]]:
    """(the person's text, our block lines) — one linear pass over the lines.

    Our block is its start line, then lines of our shapes, then the end line;
    the first line of another shape ends it (and belongs to the person). Outside
    a block, a line is ours only if it carries one of `known_urls` (a block
    whose start line a person deleted), so a person's own "===" or "Join the
    meeting: <another link>" is never taken.
    """
    user: list[str] = []
    ours: list[str] = []
    inside = False
    for line in text.split("\n"):
        bare = line.strip()
        if inside:
            if bare == i18n.BLOCK_END:
                ours.append(line)
                inside = False
                continue
            if _our_shape(bare):
                ours.append(line)
                continue
            inside = False
        if bare in _BLOCK_STARTS or (
            bare.startswith(_OUR_PREFIXES) and any(u and u in bare for u in known_urls)
        ):
            ours.append(line)
            inside = True
            continue
        user.append(line)
    return "\n".join(user).rstrip(), ours


def compose_description(user_text: str, lang: str, lines: list[str]) -> str:
    block = "\n".join([i18n.BLOCK_START[i18n.language(lang)], *lines, i18n.BLOCK_END])
    user_text = user_text.rstrip()
    return f"{user_text}\n\n{block}" if user_text else block


def _set_block(
    comp: icalendar.cal.Component,
    lang: str,
    lines: list[str] | None,
    known_urls: tuple[str, ...] = (),
) -> None:
    user_text, ours = split_description(ical.text_of(comp, "DESCRIPTION"), known_urls)
    if lines is None:
        if ours:
            ical.set_text(comp, "DESCRIPTION", user_text)
        return
    ical.set_text(comp, "DESCRIPTION", compose_description(user_text, lang, lines))


# --- LOCATION ----------------------------------------------------------------


def _location_with_link(
    location: str, url: str, grammar: Grammar, replace_urls: tuple[str, ...], force: bool
) -> str:
    pieces = _LOCATION_SPLIT_KEEP.split(location)
    placed = url in location
    seen = False
    for i in range(0, len(pieces), 2):
        part = pieces[i]
        bare = part.strip()
        if bare == url:  # two old links replaced by one new: keep it once
            pieces[i] = part if not seen else ""
            seen = True
        elif bare in replace_urls:
            lead = part[: len(part) - len(part.lstrip())]
            pieces[i] = "" if placed else lead + url
            placed = True
        elif (request := location_request(part, grammar)) is not None:
            # The keyword goes; the place typed with it stays: "Переговорная 5 телемост".
            lead = part[: len(part) - len(part.lstrip())]
            link = "" if placed else url
            if request.rest and link:
                both = (request.rest, link) if request.at == "end" else (link, request.rest)
                pieces[i] = lead + "; ".join(both)
            else:
                pieces[i] = lead + (request.rest or link)
            placed = True
    out = "".join(pieces)
    if not placed:

        def tag_to_link(match: re.Match[str]) -> str:
            nonlocal placed
            if not grammar.provider_for(match.group(1)):
                return match.group(0)
            if placed:
                return ""
            placed = True
            return url

        out = TAG.sub(tag_to_link, out)
    out = _tidy_location(out)
    if not placed and force:
        out = f"{out}; {url}" if out else url
    return out


def _tidy_location(location: str) -> str:
    """Drop the empty parts a removed keyword or link leaves behind."""
    # Split on the separator alone, then strip: "\s*[;,]\s*" backtracks
    # quadratically on a long run of spaces.
    pieces = [p.strip() for p in re.split(r"[;,\n]", location.strip())]
    if all(pieces):
        return location.strip()
    return "; ".join(p for p in pieces if p)


def _location_without(location: str, urls: tuple[str, ...]) -> str:
    if not any(u and u in location for u in urls):
        return location
    for url in urls:
        if url:
            location = location.replace(url, "")
    return _tidy_location(location)


# --- tags in SUMMARY and DESCRIPTION ------------------------------------------


def _drop_tags(text: str, grammar: Grammar) -> str:
    removed = False

    def drop(match: re.Match[str]) -> str:
        nonlocal removed
        if grammar.provider_for(match.group(1)):
            removed = True
            return ""
        return match.group(0)

    out = TAG.sub(drop, text)
    if not removed:
        return text
    return re.sub(r"[ \t]{2,}", " ", out).strip()


# --- properties --------------------------------------------------------------


def _drop_ours(comp: icalendar.cal.Component, urls: tuple[str, ...], grammar: Grammar) -> None:
    for name in (*BOOKKEEPING, *grammar.all_link_properties()):
        comp.pop(name, None)
    kept = [c for c in ical.values_of(comp, "CONFERENCE") if str(c) not in urls]
    comp.pop("CONFERENCE", None)
    for c in kept:
        comp.add("CONFERENCE", c, encode=False)


def _conference_property(
    url: str, label: str, features: tuple[str, ...] = ("AUDIO", "VIDEO")
) -> icalendar.vUri:
    prop = icalendar.vUri(url)
    prop.params["VALUE"] = "URI"
    prop.params["FEATURE"] = list(features)
    prop.params["LABEL"] = label
    return prop


def _block_links(text: str) -> tuple[str, ...]:
    """The links on our lines of the description block."""
    _, ours = split_description(text)
    links = []
    for line in ours:
        bare = line.strip()
        for prefix in _OUR_PREFIXES:
            if bare.startswith(prefix):
                links.append(bare[len(prefix) :].strip())
    return tuple(u for u in links if u.startswith(("https://", "http://")))


def options_text(options: tuple[tuple[str, str], ...]) -> str:
    # "&", not ";" or ",": those are escaped in TEXT values and come back as "\;".
    return "&".join(f"{k}={v}" for k, v in options)


def parse_options(text: str) -> tuple[tuple[str, str], ...]:
    pairs = (p.partition("=") for p in re.split(r"\\?[&;]", text) if "=" in p)
    return tuple(sorted((k.strip().lower(), v.strip()) for k, _, v in pairs if k.strip()))


def attach(
    cal: icalendar.Calendar,
    conf: Conference,
    provider_label: str,
    lang: str,
    grammar: Grammar,
    force_location: bool = True,
    old_urls: tuple[str, ...] = (),
    options: tuple[tuple[str, str], ...] = (),
) -> None:
    """Show `conf` in every VEVENT: LOCATION, DESCRIPTION block, CONFERENCE, bookkeeping.

    With `force_location=False` (an existing conference) a person's choice to
    keep the link out of LOCATION is respected; a keyword typed there is still
    turned into the link.
    """
    url = conf.join_url
    watch = conf.extra.get("watch_url", "")  # a webinar: the viewers' live stream
    service = i18n.text(lang, "service", provider=provider_label)
    if watch:
        lines = [
            i18n.text(lang, "join_hosts", url=url),
            i18n.text(lang, "watch", url=watch),
            service,
        ]
    else:
        lines = [i18n.text(lang, "join", url=url), service]
    replace = tuple(u for u in old_urls if u and u not in (url, watch))
    ours = (url, *((watch,) if watch else ()), *replace)
    for comp in ical.vevents(cal):
        location = ical.text_of(comp, "LOCATION")
        for old in replace:
            location = location.replace(old, url)
        ical.set_text(
            comp, "LOCATION", _location_with_link(location, url, grammar, replace, force_location)
        )
        for name in ("SUMMARY",):
            value = ical.text_of(comp, name)
            if value:
                ical.set_text(comp, name, _drop_tags(value, grammar) or value)
        user_text, _ = split_description(ical.text_of(comp, "DESCRIPTION"), ours)
        user_text = _drop_tags(user_text, grammar)
        ical.set_text(comp, "DESCRIPTION", compose_description(user_text, lang, lines))
        _drop_ours(comp, ours, grammar)
        if watch:  # RFC 7986: the hosts' room moderates, the viewers' link is video only
            comp.add(
                "CONFERENCE",
                _conference_property(
                    url,
                    i18n.text(lang, "hosts_label", provider=provider_label),
                    ("AUDIO", "VIDEO", "MODERATOR"),
                ),
                encode=False,
            )
            comp.add(
                "CONFERENCE",
                _conference_property(
                    watch, i18n.text(lang, "watch_label", provider=provider_label), ("VIDEO",)
                ),
                encode=False,
            )
        else:
            comp.add(
                "CONFERENCE",
                _conference_property(
                    url, i18n.text(lang, "conference_label", provider=provider_label)
                ),
                encode=False,
            )
        for name in grammar.link_properties.get(conf.provider, ()):
            comp.add(name, icalendar.vText(url), encode=False)
        comp.add("X-MEETPLUGIN-PROVIDER", icalendar.vText(conf.provider), encode=False)
        comp.add("X-MEETPLUGIN-CONFERENCE-ID", icalendar.vText(conf.conference_id), encode=False)
        comp.add("X-MEETPLUGIN-STATUS", icalendar.vText("active"), encode=False)
        if options:  # lasting: the typed "telemost:all" is gone once the link replaces it
            comp.add("X-MEETPLUGIN-OPTIONS", icalendar.vText(options_text(options)), encode=False)


def explain(cal: icalendar.Calendar, message: str, lang: str) -> None:
    """Store the event as sent plus a short explanation of why there is no conference."""
    line = i18n.text(lang, "failed", reason=message)
    for comp in ical.vevents(cal):
        _set_block(comp, lang, [line])
        for name in ("X-MEETPLUGIN-STATUS", "X-MEETPLUGIN-ERROR"):
            comp.pop(name, None)
        comp.add("X-MEETPLUGIN-STATUS", icalendar.vText("error"), encode=False)
        comp.add("X-MEETPLUGIN-ERROR", icalendar.vText(message[:300]), encode=False)


def _update_failed_prefixes() -> tuple[str, ...]:
    return tuple(i18n.TEXT[lang]["update_failed"].split("{")[0] for lang in i18n.LANGUAGES)


_UPDATE_FAILED = _update_failed_prefixes()


def note_update(cal: icalendar.Calendar, line: str | None, lang: str) -> None:
    """Say in our block that a change of the conference failed (None: drop such a line).

    The block's other lines (the link, the service) stay: the conference is still there.
    """
    for comp in ical.vevents(cal):
        user_text, ours = split_description(ical.text_of(comp, "DESCRIPTION"))
        lines = [x.strip() for x in ours]
        kept = [
            x
            for x in lines
            if x not in _BLOCK_STARTS and x != i18n.BLOCK_END and not x.startswith(_UPDATE_FAILED)
        ]
        if not kept:
            continue  # no block of ours (a person removed it): nothing to add to
        dropped = any(x.startswith(_UPDATE_FAILED) for x in lines)
        if line is None and not dropped:
            continue
        if line is not None:
            kept.append(line)
        ical.set_text(comp, "DESCRIPTION", compose_description(user_text, lang, kept))


def pending(
    cal: icalendar.Calendar,
    provider: str,
    line: str,
    lang: str,
    grammar: Grammar,
    drop_urls: tuple[str, ...] = (),
) -> None:
    """A conference is being made: say so, keep what asked for it, drop an old link."""
    for comp in ical.vevents(cal):
        _set_block(comp, lang, [line], drop_urls)
        location = ical.text_of(comp, "LOCATION")
        ical.set_text(comp, "LOCATION", _location_without(location, drop_urls))
        _drop_ours(comp, drop_urls, grammar)
        comp.add("X-MEETPLUGIN-PROVIDER", icalendar.vText(provider), encode=False)
        comp.add("X-MEETPLUGIN-STATUS", icalendar.vText("pending"), encode=False)


def clear(cal: icalendar.Calendar) -> None:
    """Drop an earlier explanation (the person no longer asks for a conference)."""
    for comp in ical.vevents(cal):
        _set_block(comp, "ru", None)
        for name in ("X-MEETPLUGIN-STATUS", "X-MEETPLUGIN-ERROR"):
            comp.pop(name, None)


def detach(cal: icalendar.Calendar, join_url: str, grammar: Grammar) -> None:
    """Remove every trace of the conference and the markers that would ask for it again."""
    for comp in ical.vevents(cal):
        # Our block's other links (a webinar's live stream) go with the room.
        urls = ((join_url,) if join_url else ()) + tuple(
            u for u in _block_links(ical.text_of(comp, "DESCRIPTION")) if u != join_url
        )
        _set_block(comp, "ru", None, urls)
        location = ical.text_of(comp, "LOCATION")
        ical.set_text(comp, "LOCATION", _location_without(location, urls))
        _drop_ours(comp, urls, grammar)
        for name in grammar.markers:
            comp.pop(name, None)
        cats = ical.categories(comp)
        kept = [c for c in cats if not grammar.provider_for(c)]
        if kept != cats:
            ical.set_categories(comp, kept)


def shown_links(cal: icalendar.Calendar, grammar: Grammar) -> tuple[str, ...]:
    """Links an earlier conference of ours left in the event (copied or imported)."""
    links: list[str] = []
    for comp in ical.vevents(cal):
        ours = bool(ical.text_of(comp, "X-MEETPLUGIN-CONFERENCE-ID"))
        for name in grammar.all_link_properties():
            links.extend(str(value) for value in ical.values_of(comp, name))
        if ours:
            links.extend(str(v) for v in ical.values_of(comp, "CONFERENCE"))
        _, block = split_description(ical.text_of(comp, "DESCRIPTION"))
        for line in block:
            for prefix in _OUR_PREFIXES:
                if line.strip().startswith(prefix):
                    links.append(line.strip()[len(prefix) :].strip())
    return tuple(dict.fromkeys(u for u in links if u.startswith(("https://", "http://"))))


def service_label(cal: icalendar.Calendar, url: str = "") -> str:
    """The service our block (or our CONFERENCE label) names: "Яндекс Телемост"; "" if none."""
    for comp in ical.vevents(cal):
        _, block = split_description(ical.text_of(comp, "DESCRIPTION"), (url,) if url else ())
        for line in block:
            bare = line.strip()
            for prefix in _SERVICE_PREFIXES:
                if bare.startswith(prefix) and bare[len(prefix) :].strip():
                    return bare[len(prefix) :].strip()
    for comp in ical.vevents(cal):
        for conf in ical.values_of(comp, "CONFERENCE"):
            if url and str(conf) != url:
                continue
            label = str(getattr(conf, "params", {}).get("LABEL", ""))
            for lang in i18n.LANGUAGES:
                head, _, tail = i18n.TEXT[lang]["conference_label"].partition("{provider}")
                if (
                    label.startswith(head)
                    and label.endswith(tail)
                    and len(label) > len(head + tail)
                ):
                    return label[len(head) : len(label) - len(tail)].strip()
    return ""


def link_present(cal: icalendar.Calendar, url: str) -> bool:
    if not url:
        return False
    for comp in ical.vevents(cal):
        if url in ical.text_of(comp, "LOCATION") or url in ical.text_of(comp, "DESCRIPTION"):
            return True
    return False
