"""Which events changed: previous state + what the server reports (pure, no I/O).

The server reports a calendar in one of two shapes:

- a *delta* (RFC 6578 ``sync-collection`` from a stored token): hrefs changed
  since the token, with their ETags when the server gives them, and hrefs
  removed;
- a *listing* (``sync-collection`` from no token, or a ``PROPFIND`` of ETags):
  every href that exists now; whatever we knew and is absent was deleted.

Against what we know per href — the last ETag we handled and the ETag our own
last write-back produced — `from_delta` and `from_listing` say what to read
(and run through the engine), what needs no work (unchanged, or our own
write-back coming back to us: that is what prevents loops), and what was
deleted. Hrefs are compared as given; callers normalise them first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Known:
    """What we know of one href."""

    uid: str
    etag: str  # the last version handled (judged by the engine, or written by us)
    written_etag: str = ""  # the version our last write-back produced


@dataclass(frozen=True)
class Changes:
    fetch: tuple[str, ...] = ()  # read these and run the engine
    seen: Mapping[str, str] = field(default_factory=dict)  # href -> etag: handled, new ETag
    deleted: tuple[str, ...] = ()  # gone: the engine's delete rule
    own: tuple[str, ...] = ()  # our own write-backs coming back

    @property
    def empty(self) -> bool:
        return not (self.fetch or self.deleted)


def handled(known: Known | None, etag: str | None) -> bool:
    """Is this version one we already handled (judged, or wrote ourselves)?"""
    if known is None or not etag:
        return False
    return etag in (known.etag, known.written_etag)


def from_delta(
    known: Mapping[str, Known], changed: Mapping[str, str | None], deleted: Iterable[str]
) -> Changes:
    """A sync delta: `changed` href -> ETag (None: the server gave none)."""
    gone = [h for h in dict.fromkeys(deleted) if h not in changed]
    fetch: list[str] = []
    seen: dict[str, str] = {}
    own: list[str] = []
    for href, etag in changed.items():
        item = known.get(href)
        if item is not None and etag and handled(item, etag):
            if etag != item.etag:
                seen[href] = etag
            if etag == item.written_etag:
                own.append(href)
        else:
            fetch.append(href)
    return Changes(tuple(fetch), seen, tuple(h for h in gone if h in known), tuple(own))


def from_listing(known: Mapping[str, Known], listing: Mapping[str, str | None]) -> Changes:
    """A full listing: every href there is now, with its ETag."""
    changes = from_delta(known, listing, ())
    gone = tuple(h for h in known if h not in listing)
    return Changes(changes.fetch, changes.seen, gone, changes.own)
