"""Radicale's own item of an event's text, as its PUT prepares one (vobject; no storage)."""

from __future__ import annotations

import radicale.item as radicale_item


def prepared_item(
    path: str, text: str, max_occurrence: int, prepare: bool = True
) -> radicale_item.Item:
    """The item exactly as Radicale would store `text` from a client's PUT.

    Same parse, sanitising and serialisation (vobject), so a client that
    sends the stored version back changes no byte and keeps its ETag.
    `prepare` False: its time range is not worked out yet (the caller may have it).
    """
    components = radicale_item.read_components(text)
    radicale_item.check_and_sanitize_items(
        components,
        is_collection=False,
        tag="VCALENDAR",
        max_vevent_rrule_occurrence=max_occurrence,
    )
    item = radicale_item.Item(collection_path=path, vobject_item=components[0])
    if prepare:
        item.prepare()
    return item


__all__ = ["prepared_item"]
