"""CalDAV scheduling's surface (RFC 6638) on Radicale: advertisement, principal properties, boxes.

Not pure: it wraps three of Radicale's request handlers, once per process,
and only when `[scheduling] enabled` (the storage's set-up calls `install`):

- OPTIONS: `calendar-auto-schedule` joins the `DAV:` header (Thunderbird then
  leaves invitations to the server);
- PROPFIND: a principal answers `calendar-user-address-set` (the owner's
  addresses as `mailto:`, then the principal), `schedule-inbox-URL`,
  `schedule-outbox-URL`, `schedule-default-calendar-URL` and
  `calendar-user-type`; the inbox and the outbox show their own resource
  types; calendars answer `schedule-calendar-transp`;
- PUT, MKCOL, MKCALENDAR or PROPPATCH in a box, MOVE from or into one, and
  DELETE of a box itself are refused (RFC 6638 §2.1, §2.2).
- POST of a busy-time request to one's own outbox (RFC 6638 §5) answers the
  free-busy of the attendees who are users of this Radicale, over their
  calendars, with Radicale's own free-busy code.

Each box is a collection of Radicale's own storage (`/<user>/inbox/`,
`/<user>/outbox/`), tagged as a calendar so Radicale lists, reads, reports
and deletes its items, and marked as a box in its properties. It is created
the first time its owner asks the server anything under their principal. A
request served by another storage, or with scheduling off, is answered by
Radicale untouched.
"""

from __future__ import annotations

import functools
import logging
import threading
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from radicale import httputils, pathutils, storage, xmlutils

logger = logging.getLogger("radicale.meetplugin")

INBOX = "inbox"
OUTBOX = "outbox"
AUTO_SCHEDULE = "calendar-auto-schedule"

# The collection property that marks a box (its value: "inbox" or "outbox"). Radicale keeps
# it with the collection's other properties; our PROPFIND answers never show it.
MARK = "{urn:x-radicale-meetplugin}schedule-box"

_PROPS: dict[str, dict[str, str]] = {
    INBOX: {
        "tag": "VCALENDAR",
        MARK: INBOX,
        "D:displayname": "Scheduling inbox",
        "C:supported-calendar-component-set": "VEVENT,VTODO",
    },
    OUTBOX: {
        "tag": "VCALENDAR",
        MARK: OUTBOX,
        "D:displayname": "Scheduling outbox",
        "C:supported-calendar-component-set": "VEVENT,VTODO",
    },
}

_ALL_COMPONENTS = ("VTODO", "VEVENT", "VJOURNAL")  # Radicale's default for a calendar


def _clark(tag: str) -> str:
    return xmlutils.make_clark(tag)


# --- paths and rules (shared with the scheduling behaviour) ----------------------------


def inbox_path(user: str) -> str:
    """The user's scheduling inbox, as a collection path (`alice/inbox`)."""
    return f"{user}/{INBOX}"


def outbox_path(user: str) -> str:
    """The user's scheduling outbox, as a collection path (`alice/outbox`)."""
    return f"{user}/{OUTBOX}"


def box_kind(collection: Any) -> str | None:
    """ "inbox" or "outbox" when `collection` is one of our boxes, else None."""
    path = getattr(collection, "path", "")
    owner, _, name = path.partition("/")
    if not owner or name not in (INBOX, OUTBOX):
        return None
    try:
        return name if collection.get_meta(MARK) == name else None
    except (AttributeError, RuntimeError):
        return None


def components(collection: Any) -> tuple[str, ...]:
    """The components a calendar collection takes (Radicale's default: all three)."""
    text = collection.get_meta("C:supported-calendar-component-set")
    return tuple(c.strip() for c in text.split(",") if c.strip()) if text else _ALL_COMPONENTS


def default_calendar(store: Any, user: str) -> str | None:
    """The user's default calendar as a collection path, None when they have none.

    The rule: the first calendar collection of the user's home, by href
    order, that takes VEVENT (the boxes are not calendars). Read with no
    lock of ours: the caller holds Radicale's when it needs one.
    """
    if not user or not pathutils.is_safe_path_component(user):
        return None
    found = [col.path for col in event_calendars(store, user)]
    return min(found) if found else None


def event_calendars(store: Any, user: str) -> Iterator[storage.BaseCollection]:
    """The calendar collections of the user's home that take VEVENT (not the boxes)."""
    for col in store.discover(pathutils.unstrip_path(user, True), depth="1"):
        if (
            isinstance(col, storage.BaseCollection)
            and col.path != user
            and col.tag == "VCALENDAR"
            and box_kind(col) is None
            and "VEVENT" in components(col)
        ):
            yield col


def create_boxes(store: Any, user: str) -> None:
    """Create the user's inbox and outbox where they are missing (Radicale's write lock held)."""
    for name in (INBOX, OUTBOX):
        path = f"{user}/{name}"
        col = next(iter(store.discover(pathutils.unstrip_path(path, True))), None)
        if col is None:
            store.create_collection(pathutils.unstrip_path(path, True), props=dict(_PROPS[name]))
            logger.info("meetplugin: scheduling %s of %s created: /%s/", name, user, path)
        elif box_kind(col) != name:
            _warn_taken(path)


_warned: set[str] = set()


def _warn_taken(path: str) -> None:
    if path not in _warned:
        _warned.add(path)
        logger.warning(
            "meetplugin: /%s/ is an ordinary collection, so the scheduling box cannot be "
            "there; rename that collection to give the user scheduling",
            path,
        )


# --- the request handlers ------------------------------------------------------------


def enabled(app: Any) -> bool:
    """The application's storage is ours, active, and has scheduling on."""
    meet = getattr(getattr(app, "_storage", None), "meet", None)
    if meet is None or getattr(app._storage, "passive", True):
        return False
    return bool(meet.engine.settings.scheduling["enabled"])


def _addresses(app: Any, user: str) -> tuple[str, ...]:
    return tuple(app._storage.meet.engine.settings.address_list(user))


_ensured: set[tuple[int, str]] = set()
_ensure_lock = threading.Lock()


def _ensure(app: Any, user: str) -> None:
    """Create `user`'s boxes once per storage and process (the first request under them)."""
    store = app._storage
    key = (id(store.meet), user)
    if key in _ensured:
        return
    with _ensure_lock:
        if key in _ensured:
            return
        with store.acquire_lock("r", user):
            missing = [
                name
                for name in (INBOX, OUTBOX)
                if box_kind(next(iter(store.discover(f"/{user}/{name}/")), None)) != name
            ]
        if missing:
            with store.acquire_lock("w", user):
                create_boxes(store, user)
        _ensured.add(key)


def _owner_request(path: str, user: str) -> bool:
    """The request is under `user`'s own principal (or at the root, where clients start)."""
    sane = pathutils.strip_path(path)
    return bool(user) and (sane == "" or sane.split("/", 1)[0] == user)


def _box_of(path: str) -> tuple[str, str] | None:
    """(owner, "inbox"/"outbox") when `path` names a box or something in it, by its name only."""
    parts = pathutils.strip_path(path).split("/")
    if len(parts) >= 2 and parts[1] in (INBOX, OUTBOX):
        return parts[0], parts[1]
    return None


def _is_box_path(app: Any, path: str) -> bool:
    """`path` is (in) one of our boxes: its collection carries the mark."""
    found = _box_of(path)
    if found is None:
        return False
    owner, name = found
    with app._storage.acquire_lock("r"):
        col = next(iter(app._storage.discover(f"/{owner}/{name}/")), None)
    return box_kind(col) == name


def _href(base_prefix: str, path: str) -> ET.Element:
    element = ET.Element(_clark("D:href"))
    element.text = xmlutils.make_href(base_prefix, pathutils.unstrip_path(path, True))
    return element


def _propstat(response: ET.Element, status: int) -> ET.Element:
    """The `prop` element of the response's propstat with `status`, made when missing."""
    text = xmlutils.make_response(status)
    for propstat in response.findall(_clark("D:propstat")):
        if propstat.findtext(_clark("D:status")) == text:
            prop = propstat.find(_clark("D:prop"))
            if prop is not None:
                return prop
    propstat = ET.SubElement(response, _clark("D:propstat"))
    prop = ET.SubElement(propstat, _clark("D:prop"))
    ET.SubElement(propstat, _clark("D:status")).text = text
    return prop


def _answer(response: ET.Element, tag: str, fill: Callable[[ET.Element], bool]) -> None:
    """Answer the asked property `tag` anew: `fill` gives its content (False: 404)."""
    for propstat in list(response.findall(_clark("D:propstat"))):
        prop = propstat.find(_clark("D:prop"))
        if prop is None:
            continue
        for element in list(prop):
            if element.tag != tag:
                continue
            prop.remove(element)
            if len(prop) == 0:
                response.remove(propstat)
            fresh = ET.Element(tag)
            _propstat(response, 200 if fill(fresh) else 404).append(fresh)
            return


def _drop(response: ET.Element, tag: str) -> None:
    for propstat in list(response.findall(_clark("D:propstat"))):
        prop = propstat.find(_clark("D:prop"))
        if prop is None:
            continue
        for element in list(prop):
            if element.tag == tag:
                prop.remove(element)
        if len(prop) == 0:
            response.remove(propstat)


def _asked(response: ET.Element) -> set[str]:
    return {
        element.tag
        for propstat in response.findall(_clark("D:propstat"))
        for prop in propstat.findall(_clark("D:prop"))
        for element in prop
    }


PRINCIPAL_PROPS = (
    "C:calendar-user-address-set",
    "C:schedule-inbox-URL",
    "C:schedule-outbox-URL",
    "C:schedule-default-calendar-URL",
    "C:calendar-user-type",
)


def _principal(app: Any, response: ET.Element, base_prefix: str, col: Any, names: bool) -> None:
    owner = col.path
    asked = _asked(response)
    if names:  # PROPFIND propname: the names we answer join Radicale's
        prop = _propstat(response, 200)
        for tag in PRINCIPAL_PROPS:
            if _clark(tag) not in asked:
                prop.append(ET.Element(_clark(tag)))
        return

    def addresses(element: ET.Element) -> bool:
        for address in _addresses(app, owner):
            ET.SubElement(element, _clark("D:href")).text = f"mailto:{address}"
        element.append(_href(base_prefix, owner))
        return True

    def box(name: str) -> Callable[[ET.Element], bool]:
        def fill(element: ET.Element) -> bool:
            element.append(_href(base_prefix, f"{owner}/{name}"))
            return True

        return fill

    def default(element: ET.Element) -> bool:
        path = default_calendar(app._storage, owner)
        if path is None:
            return False
        element.append(_href(base_prefix, path))
        return True

    def individual(element: ET.Element) -> bool:
        element.text = "INDIVIDUAL"
        return True

    for tag, fill in (
        ("C:calendar-user-address-set", addresses),
        ("C:schedule-inbox-URL", box(INBOX)),
        ("C:schedule-outbox-URL", box(OUTBOX)),
        ("C:schedule-default-calendar-URL", default),
        ("C:calendar-user-type", individual),
    ):
        if _clark(tag) in asked:
            _answer(response, _clark(tag), fill)


def _box(app: Any, response: ET.Element, base_prefix: str, col: Any, kind: str) -> None:
    asked = _asked(response)
    resourcetype = _clark("D:resourcetype")
    if resourcetype in asked:

        def fill(element: ET.Element) -> bool:
            ET.SubElement(element, _clark("D:collection"))
            ET.SubElement(element, _clark(f"C:schedule-{kind}"))
            return True

        _answer(response, resourcetype, fill)
    if kind == INBOX and _clark("C:schedule-default-calendar-URL") in asked:

        def default(element: ET.Element) -> bool:
            path = default_calendar(app._storage, col.owner)
            if path is None:
                return False
            element.append(_href(base_prefix, path))
            return True

        _answer(response, _clark("C:schedule-default-calendar-URL"), default)


def _calendar(response: ET.Element) -> None:
    tag = _clark("C:schedule-calendar-transp")
    if tag in _asked(response):

        def fill(element: ET.Element) -> bool:
            ET.SubElement(element, _clark("C:opaque"))
            return True

        _answer(response, tag, fill)


def _wrap_response(original: Callable[..., ET.Element]) -> Callable[..., ET.Element]:
    @functools.wraps(original)
    def xml_propfind_response(
        app: Any, base_prefix: str, path: str, item: Any, *args: Any, **kwargs: Any
    ) -> ET.Element:
        response = original(app, base_prefix, path, item, *args, **kwargs)
        if not isinstance(item, storage.BaseCollection) or not enabled(app):
            return response
        try:
            _drop(response, MARK)  # our mark, listed by allprop and propname, stays ours
            kind = box_kind(item)
            if item.is_principal:
                _principal(app, response, base_prefix, item, bool(kwargs.get("propname")))
            elif kind is not None:
                _box(app, response, base_prefix, item, kind)
            elif item.tag == "VCALENDAR":
                _calendar(response)
        except Exception:  # Radicale's own answer stands
            logger.exception("meetplugin: scheduling properties of /%s/ failed", item.path)
        return response

    xml_propfind_response._meetplugin_scheduling = True  # type: ignore[attr-defined]
    return xml_propfind_response


def _wrap_handler(original: Callable[..., Any], before: Callable[..., Any]) -> Callable[..., Any]:
    """A Radicale `do_*` handler that asks `before` first (it may answer instead)."""

    @functools.wraps(original)
    def handler(
        self: Any, environ: Any, base_prefix: str, path: str, user: str, *args: Any, **kw: Any
    ) -> Any:
        if enabled(self):
            answer = before(self, environ, base_prefix, path, user)
            if answer is not None:
                return answer
        return original(self, environ, base_prefix, path, user, *args, **kw)

    handler._meetplugin_scheduling = True  # type: ignore[attr-defined]
    return handler


def _options(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def do_OPTIONS(self: Any, *args: Any, **kwargs: Any) -> Any:
        status, headers, answer, xml_request = original(self, *args, **kwargs)
        if enabled(self):
            headers = dict(headers)
            dav = headers.get("DAV", httputils.DAV_HEADERS)
            if AUTO_SCHEDULE not in (f.strip() for f in dav.split(",")):
                headers["DAV"] = f"{dav}, {AUTO_SCHEDULE}"
        return status, headers, answer, xml_request

    do_OPTIONS._meetplugin_scheduling = True  # type: ignore[attr-defined]
    return do_OPTIONS


def _before_read(app: Any, environ: Any, base_prefix: str, path: str, user: str) -> None:
    if _owner_request(path, user):
        try:
            _ensure(app, user)
        except Exception:  # the request is answered anyway, without boxes
            logger.exception("meetplugin: scheduling boxes of %s could not be made", user)
    return None


def _before_put(app: Any, environ: Any, base_prefix: str, path: str, user: str) -> Any:
    found = _box_of(path)
    if found is not None and _is_box_path(app, path):
        logger.info("meetplugin: PUT into the scheduling %s refused: %s", found[1], path)
        return httputils.NOT_ALLOWED
    return None


def _before_change(app: Any, environ: Any, base_prefix: str, path: str, user: str) -> Any:
    """MKCOL, MKCALENDAR, PROPPATCH in or on a box, or MOVE from or into one: refused."""
    paths = [path]
    if environ.get("REQUEST_METHOD", "").upper() == "MOVE":
        target = urllib.parse.unquote(
            urllib.parse.urlsplit(environ.get("HTTP_DESTINATION", "")).path
        )
        if base_prefix and target.startswith(base_prefix + "/"):
            target = target[len(base_prefix) :]
        paths.append(pathutils.sanitize_path(target))
    for candidate in paths:
        found = _box_of(candidate)
        if found is not None and _is_box_path(app, candidate):
            logger.info(
                "meetplugin: %s in the scheduling %s refused: %s",
                environ.get("REQUEST_METHOD", ""),
                found[1],
                candidate,
            )
            return httputils.NOT_ALLOWED
    return None


def _before_delete(app: Any, environ: Any, base_prefix: str, path: str, user: str) -> Any:
    found = _box_of(path)
    if found is not None and pathutils.strip_path(path).count("/") == 1 and _is_box_path(app, path):
        logger.info("meetplugin: DELETE of the scheduling %s refused: %s", found[1], path)
        return httputils.NOT_ALLOWED
    return None


# --- busy time through the outbox (RFC 6638 §5) ------------------------------------------


# People one busy-time request may ask about: each is looked up under Radicale's (global)
# lock, so one request must not hold writers back for long. Thunderbird asks for a few.
MAX_BUSY_RECIPIENTS = 100


class _Refused(Exception):
    """A busy-time request that is not answered: (HTTP status, precondition)."""

    def __init__(self, status: int, precondition: str, why: str) -> None:
        super().__init__(why)
        self.status = status
        self.precondition = precondition


def _address(value: Any) -> str:
    text = str(value).strip()
    return text[7:].strip().lower() if text.lower().startswith("mailto:") else ""


def _local_user(app: Any, address: str) -> str | None:
    """The user of this Radicale whose addresses include `address` (principals on disk)."""
    settings = app._storage.meet.engine.settings
    for col in app._storage.discover("/", depth="1"):
        if isinstance(col, storage.BaseCollection) and col.is_principal:
            if address in settings.addresses_of(col.path):
                return str(col.path)
    return None


def _busy(app: Any, user: str, start: Any, end: Any) -> str:
    """The user's busy time between `start` and `end`, as Radicale renders a VFREEBUSY."""
    from radicale.app import report

    limit = app.configuration.get("reporting", "max_freebusy_occurrence")
    periods: list[Any] = []
    for col in event_calendars(app._storage, user):
        for item in col.get_all():
            periods.extend(report.freebusy_periods(item, start, end, limit))
    return str(report.render_freebusy(periods, start, end))


def _reply(request: Any, attendee: Any, busy: str) -> str:
    """The iTIP REPLY for one attendee: Radicale's VFREEBUSY with the request's identity."""
    import icalendar

    rendered = icalendar.Calendar.from_ical(busy)
    answer = icalendar.Calendar()
    answer.add("prodid", "-//radicale-meetplugin//scheduling//EN")
    answer.add("version", "2.0")
    answer.add("method", "REPLY")
    for fb in rendered.walk("VFREEBUSY"):
        for name in ("UID", "ORGANIZER"):
            if request.get(name) is not None:
                fb.add(name, request.get(name))
        fb.add("attendee", attendee)
        answer.add_component(fb)
    return answer.to_ical().decode()


def _freebusy(app: Any, user: str, body: str) -> ET.Element:
    import icalendar

    try:
        calendar = icalendar.Calendar.from_ical(body)
    except ValueError as e:
        raise _Refused(400, "C:valid-calendar-data", f"not iCalendar: {e}") from None
    requests = list(calendar.walk("VFREEBUSY"))
    if str(calendar.get("METHOD", "")).upper() != "REQUEST" or len(requests) != 1:
        raise _Refused(
            403, "C:valid-scheduling-message", "only a busy-time request (one VFREEBUSY)"
        )
    request = requests[0]
    organizer = _address(request.get("ORGANIZER", ""))
    if not organizer or organizer not in app._storage.meet.engine.settings.addresses_of(user):
        raise _Refused(403, "C:organizer-allowed", f"ORGANIZER is not one of {user}'s addresses")
    try:
        start, end = request.decoded("DTSTART"), request.decoded("DTEND")
    except KeyError:
        raise _Refused(403, "C:valid-scheduling-message", "DTSTART and DTEND needed") from None
    attendees = request.get("ATTENDEE", [])
    attendees = attendees if isinstance(attendees, list) else [attendees]
    unique: dict[str, Any] = {}
    for attendee in attendees:  # each person answered once
        unique.setdefault(str(attendee).strip().lower(), attendee)
    attendees = list(unique.values())
    if len(attendees) > MAX_BUSY_RECIPIENTS:
        raise _Refused(
            403,
            "C:valid-scheduling-message",
            f"{len(attendees)} recipients, more than {MAX_BUSY_RECIPIENTS}",
        )
    answer = ET.Element(_clark("C:schedule-response"))
    for attendee in attendees:
        response = ET.SubElement(answer, _clark("C:response"))
        recipient = ET.SubElement(response, _clark("C:recipient"))
        ET.SubElement(recipient, _clark("D:href")).text = str(attendee)
        with app._storage.acquire_lock("r", user):  # one person at a time: writers get in between
            local = _local_user(app, _address(attendee))
            busy = _busy(app, local, start, end) if local is not None else ""
        status = ET.SubElement(response, _clark("C:request-status"))
        if local is None:
            status.text = "3.7;Invalid calendar user"
            continue
        status.text = "2.0;Success"
        ET.SubElement(response, _clark("C:calendar-data")).text = _reply(request, attendee, busy)
    return answer


def _before_post(app: Any, environ: Any, base_prefix: str, path: str, user: str) -> Any:
    found = _box_of(path)
    if found is None or found[1] != OUTBOX or pathutils.strip_path(path).count("/") != 1:
        return None
    if not _is_box_path(app, path):
        return None
    if found[0] != user:
        return httputils.NOT_ALLOWED
    body = httputils.decode_request(
        app.configuration, environ, httputils.read_raw_request_body(app.configuration, environ)
    )
    try:
        answer = _freebusy(app, user, body)
    except _Refused as e:
        logger.info("meetplugin: busy-time request of %s refused: %s", user, e)
        error = xmlutils.webdav_error(e.precondition)
        return (
            e.status,
            {"Content-Type": "text/xml; charset=utf-8"},
            ET.tostring(error, "utf-8"),
            None,
        )
    return (
        200,
        {"Content-Type": "text/xml; charset=utf-8"},
        ET.tostring(answer, "utf-8"),
        None,
    )


def install() -> None:
    """Wrap Radicale's handlers once per process (the storage's set-up, scheduling on)."""
    from radicale.app import (
        delete,
        mkcalendar,
        mkcol,
        move,
        options,
        post,
        propfind,
        proppatch,
        put,
        report,
    )

    if not getattr(propfind.xml_propfind_response, "_meetplugin_scheduling", False):
        propfind.xml_propfind_response = _wrap_response(propfind.xml_propfind_response)
    if not getattr(options.ApplicationPartOptions.do_OPTIONS, "_meetplugin_scheduling", False):
        options.ApplicationPartOptions.do_OPTIONS = _options(  # type: ignore[method-assign]
            options.ApplicationPartOptions.do_OPTIONS
        )
    wrapped: Iterable[tuple[Any, str, Callable[..., Any]]] = (
        (propfind.ApplicationPartPropfind, "do_PROPFIND", _before_read),
        (report.ApplicationPartReport, "do_REPORT", _before_read),
        (put.ApplicationPartPut, "do_PUT", _before_put),
        (delete.ApplicationPartDelete, "do_DELETE", _before_delete),
        (post.ApplicationPartPost, "do_POST", _before_post),
        (mkcol.ApplicationPartMkcol, "do_MKCOL", _before_change),
        (mkcalendar.ApplicationPartMkcalendar, "do_MKCALENDAR", _before_change),
        (proppatch.ApplicationPartProppatch, "do_PROPPATCH", _before_change),
        (move.ApplicationPartMove, "do_MOVE", _before_change),
    )
    for part, name, before in wrapped:
        original = getattr(part, name)
        if not getattr(original, "_meetplugin_scheduling", False):
            setattr(part, name, _wrap_handler(original, before))
