"""CalDAV access for the bridge, behind one small class (network, not pure).

The requests are plain HTTP over ``requests`` (already a dependency of the plugin's
providers): principal discovery (RFC 5397 current-user-principal, RFC 4791
calendar-home-set), one PROPFIND for every calendar's ctag and sync token, the RFC 6578
``sync-collection`` REPORT with ETags only, ``calendar-multiget`` in batches, ``GET``
and ``PUT`` with ``If-Match``. Bodies are built here and multistatus answers are read
here with defusedxml (no DTDs, no entities). Authentication is chosen from the
server's first 401 challenge: Digest when it offers only Digest, else Basic. Basic
credentials go with the first request when the caller says the server takes them
(`send_basic_first`: the account says so, or an earlier run learnt it), so an idle cron
run costs one request, not a challenge and a retry; if the server refuses them, the
client picks again from its challenge. Digest always needs the server's challenge.

Hrefs are returned as unquoted absolute paths (servers differ in quoting:
``%40`` or ``@``), and quoted again on the wire.
"""

from __future__ import annotations

import logging
import threading
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

import requests
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as parse_xml
from requests.auth import HTTPBasicAuth, HTTPDigestAuth

from radicale_meetplugin import __version__

logger = logging.getLogger("meetplugin.bridge")

DAV = "{DAV:}"
CALDAV = "{urn:ietf:params:xml:ns:caldav}"
CS = "{http://calendarserver.org/ns/}"
MULTIGET_BATCH = 100
_SAFE = "/@:+,;=!$&'()*~"


class CalDAVError(RuntimeError):
    """An answer the bridge cannot use (the status is in the message)."""

    def __init__(self, what: str, status: int) -> None:
        super().__init__(f"{what}: HTTP {status}")
        self.status = status


class SyncTokenInvalid(CalDAVError):
    """The server no longer knows the stored sync token: start over from none."""


class SyncUnsupported(CalDAVError):
    """The calendar does not answer sync-collection: follow it by ETag listings."""


@dataclass(frozen=True)
class CalendarInfo:
    href: str  # unquoted path, ends with "/"
    name: str = ""
    ctag: str = ""
    sync_token: str = ""
    events: bool = True  # may hold VEVENTs (no supported-calendar-component-set: yes)
    owner: str = ""  # DAV:owner href, "" if not given


@dataclass
class Delta:
    changed: dict[str, str | None] = field(default_factory=dict)  # href -> etag or None
    deleted: list[str] = field(default_factory=list)
    token: str = ""
    full: bool = False  # from no token: a listing of every member


@dataclass(frozen=True)
class Resource:
    href: str
    etag: str
    text: str


@dataclass(frozen=True)
class PutResult:
    status: int
    etag: str = ""  # the ETag header of a 2xx answer, "" if none

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class Meter:
    """Counts HTTP requests and bytes (request line/headers/body both ways)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.sent = 0
        self.received = 0

    def hook(self, response, *args, **kwargs):
        request = response.request
        body = request.body or b""
        sent = (
            len(body if isinstance(body, bytes) else str(body).encode())
            + len(request.method or "")
            + len(request.url or "")
            + 12
            + sum(len(k) + len(v) + 4 for k, v in request.headers.items())
        )
        received = (
            len(response.content or b"")
            + 17
            + sum(len(k) + len(v) + 4 for k, v in response.headers.items())
        )
        with self._lock:
            self.requests += 1
            self.sent += sent
            self.received += received
        return response

    def snapshot(self) -> tuple[int, int]:
        with self._lock:
            return self.requests, self.sent + self.received


def path_of(href: str) -> str:
    """The unquoted absolute path of an href or URL."""
    return urllib.parse.unquote(urllib.parse.urlsplit(href).path) or "/"


def _text(elem) -> str:
    return (elem.text or "").strip() if elem is not None else ""


def _status(text: str) -> int:
    parts = text.split()
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def _xml(raw: bytes, headers) -> ET.Element | None:
    """The parsed body of an XML answer; None if it is not XML or does not parse."""
    kind = headers.get("Content-Type", "").lower()
    if not raw.strip() or ("xml" not in kind and not raw.lstrip().startswith(b"<")):
        return None
    try:
        return parse_xml(raw, forbid_dtd=True)
    except (ET.ParseError, DefusedXmlException):
        return None


def _responses(tree) -> Iterable[tuple[str, int, dict]]:
    """(href, response-level status or 0, {tag: element} of the 200 propstats)."""
    if tree is None:
        return
    for response in tree.iter(DAV + "response"):
        href = path_of(_text(response.find(DAV + "href")))
        status = _status(_text(response.find(DAV + "status")))
        props: dict = {}
        for propstat in response.findall(DAV + "propstat"):
            code = _status(_text(propstat.find(DAV + "status")))
            prop = propstat.find(DAV + "prop")
            if code == 200 and prop is not None:
                for child in prop:
                    props[child.tag] = child
        yield href, status, props


def _propfind(props: str) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<d:propfind xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav" '
        f'xmlns:cs="http://calendarserver.org/ns/"><d:prop>{props}</d:prop></d:propfind>'
    )


_CALENDAR_PROPS = _propfind(
    "<d:resourcetype/><d:displayname/><cs:getctag/><d:sync-token/>"
    "<c:supported-calendar-component-set/><d:owner/>"
)


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: dict
    tree: ET.Element | None  # the parsed XML body, None if not XML
    raw: bytes

    def header(self, name: str) -> str:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return ""

    @property
    def text(self) -> str:
        return self.raw.decode("utf-8", "replace")


class CalDAVClient:
    """One login on one CalDAV server."""

    def __init__(
        self,
        url: str,
        username: str = "",
        password: str = "",
        timeout: float = 30,
        meter: Meter | None = None,
    ) -> None:
        self.url = url
        self.meter = meter or Meter()
        self.timeout = timeout
        self.username = username
        self.password = password
        self.session = requests.Session()
        self.session.headers["User-Agent"] = f"radicale-meetplugin-bridge/{__version__}"
        self.session.hooks["response"].append(self.meter.hook)
        self.principal_href = ""
        self.scheme = ""  # "basic" or "digest" once a login was accepted
        self._first = False  # Basic sent before any challenge: may be picked again once
        self.digest_only = False  # the account allows Digest only

    def send_basic_first(self) -> None:
        """Send Basic credentials with every request from the first one on."""
        if self.username and self.session.auth is None:
            self.session.auth = self._basic()
            self._first = True

    def _basic(self) -> HTTPBasicAuth:
        # UTF-8, as RFC 7617 charset="UTF-8" (requests would send latin-1)
        return HTTPBasicAuth(self.username.encode(), self.password.encode())

    def close(self) -> None:
        self.session.close()

    def _url(self, href: str) -> str:
        return urllib.parse.urljoin(self.url, urllib.parse.quote(href, safe=_SAFE))

    def _login(self, challenge: str) -> bool:
        """Pick the scheme the server asks for; False if there is nothing to log in with."""
        if not self.username:
            return False
        schemes = challenge.lower()
        if self._first:  # Basic sent up front was refused: pick again, from the challenge
            self._first = False
            if "digest" not in schemes or "basic" in schemes:
                return False  # Basic it is, and it was refused: a wrong password
            self.session.auth = None
        if self.session.auth is not None:
            return False
        user, password = self.username, self.password
        if self.digest_only and "digest" not in schemes:
            raise CalDAVError(
                "the server offers no Digest login (the account says auth = digest)", 401
            )
        if "digest" in schemes and ("basic" not in schemes or self.digest_only):
            if not user.isascii():  # a Digest header carries the name as is (no username*)
                raise CalDAVError("the server asks for Digest login: use a Latin user name", 401)
            self.session.auth = HTTPDigestAuth(user, password)
        else:
            self.session.auth = self._basic()
        return True

    def _request(
        self, method: str, href: str, body: str = "", headers: dict | None = None
    ) -> _Answer:
        """One request; every status comes back as an answer, except a refused login."""
        url = self._url(href)
        for _attempt in range(2):
            r = self.session.request(
                method,
                url,
                data=body.encode() if body else None,
                headers=headers or {},
                timeout=self.timeout,
            )
            if r.status_code != 401 or not self._login(r.headers.get("WWW-Authenticate", "")):
                break
        if r.status_code == 401:
            raise CalDAVError(f"{method} {href}: the server refused the login", 401)
        if self.session.auth is not None and not self.scheme:
            self.scheme = "digest" if isinstance(self.session.auth, HTTPDigestAuth) else "basic"
        raw = r.content or b""
        return _Answer(r.status_code, dict(r.headers), _xml(raw, r.headers), raw)

    def _prop_href(self, href: str, prop: str) -> str:
        """The href inside one property of one resource (PROPFIND Depth 0), "" if none."""
        r = self._request(
            "PROPFIND",
            href,
            _propfind(prop),
            {"Depth": "0", "Content-Type": "application/xml; charset=utf-8"},
        )
        if r.status != 207:
            raise CalDAVError(f"PROPFIND {href}", r.status)
        for _member, _status_code, props in _responses(r.tree):
            for elem in props.values():
                found = elem.find(DAV + "href")
                if found is not None and _text(found):
                    return path_of(_text(found))
        return ""

    # --- calendars -----------------------------------------------------------

    def discover_home(self) -> str:
        """The principal's calendar home (RFC 4791 calendar-home-set), as a path."""
        start = path_of(self.url)
        self.principal_href = self._prop_href(start, "<d:current-user-principal/>") or start
        home = self._prop_href(self.principal_href, "<c:calendar-home-set/>")
        if not home:
            raise CalDAVError(f"PROPFIND {self.principal_href}: no calendar-home-set", 207)
        return home

    def _calendar(self, href: str, props: dict) -> CalendarInfo | None:
        kind = props.get(DAV + "resourcetype")
        if kind is None or kind.find(CALDAV + "calendar") is None:
            return None
        comps = props.get(CALDAV + "supported-calendar-component-set")
        names = {c.get("name", "").upper() for c in comps} if comps is not None else set()
        owner = props.get(DAV + "owner")
        return CalendarInfo(
            href if href.endswith("/") else href + "/",
            name=_text(props.get(DAV + "displayname")),
            ctag=_text(props.get(CS + "getctag")) or _text(props.get(DAV + "getctag")),
            sync_token=_text(props.get(DAV + "sync-token")),
            events=not names or "VEVENT" in names,
            owner=path_of(_text(owner.find(DAV + "href")))
            if owner is not None and owner.find(DAV + "href") is not None
            else "",
        )

    def calendars(self, home: str) -> list[CalendarInfo]:
        """Every calendar in the home with its ctag and sync token: one request."""
        r = self._request(
            "PROPFIND",
            home,
            _CALENDAR_PROPS,
            {"Depth": "1", "Content-Type": "application/xml; charset=utf-8"},
        )
        if r.status != 207:
            raise CalDAVError(f"PROPFIND {home}", r.status)
        found = []
        for href, _status_code, props in _responses(r.tree):
            info = self._calendar(href, props)
            if info is not None and info.href.rstrip("/") != home.rstrip("/"):
                found.append(info)
        return found

    def calendar(self, href: str) -> CalendarInfo | None:
        """One calendar's ctag and sync token; None if it is gone."""
        r = self._request(
            "PROPFIND",
            href,
            _CALENDAR_PROPS,
            {"Depth": "0", "Content-Type": "application/xml; charset=utf-8"},
        )
        if r.status == 404:
            return None
        if r.status != 207:
            raise CalDAVError(f"PROPFIND {href}", r.status)
        for found, _status_code, props in _responses(r.tree):
            info = self._calendar(found, props)
            if info is not None:
                return info
        return None

    # --- members -------------------------------------------------------------

    def sync(self, href: str, token: str) -> Delta:
        """RFC 6578 sync-collection from `token` ("" = every member), ETags only."""
        delta = Delta(full=not token)
        for _page in range(100):  # a truncated answer (507) continues from its token
            body = (
                '<?xml version="1.0" encoding="utf-8"?><d:sync-collection xmlns:d="DAV:">'
                f"<d:sync-token>{escape(token)}</d:sync-token><d:sync-level>1</d:sync-level>"
                "<d:prop><d:getetag/></d:prop></d:sync-collection>"
            )
            r = self._request(
                "REPORT",
                href,
                body,
                {"Depth": "0", "Content-Type": "application/xml; charset=utf-8"},
            )
            if r.status != 207:
                if r.status >= 500 and r.status != 501:  # the server is unwell: try again later
                    raise CalDAVError(f"sync-collection {href}", r.status)
                if token and ("valid-sync-token" in r.text or r.status in (403, 409, 410, 412)):
                    raise SyncTokenInvalid(f"sync-collection {href}", r.status)
                raise SyncUnsupported(f"sync-collection {href}", r.status)
            truncated = False
            for member, status, props in _responses(r.tree):
                if member.rstrip("/") == href.rstrip("/"):
                    truncated = truncated or status == 507
                    continue
                if status == 404:
                    delta.changed.pop(member, None)
                    delta.deleted.append(member)
                    continue
                etag = _text(props.get(DAV + "getetag")) or None
                delta.changed[member] = etag
                if member in delta.deleted:
                    delta.deleted.remove(member)
            new_token = _text(r.tree.find(DAV + "sync-token")) if r.tree is not None else ""
            if not new_token:
                raise SyncUnsupported(f"sync-collection {href} (no token)", r.status)
            again = truncated and new_token != token
            token = new_token
            if not again:
                break
        delta.token = token
        return delta

    def etags(self, href: str) -> dict[str, str]:
        """Every member and its ETag (PROPFIND Depth 1): the fallback listing."""
        r = self._request(
            "PROPFIND",
            href,
            _propfind("<d:getetag/><d:resourcetype/>"),
            {"Depth": "1", "Content-Type": "application/xml; charset=utf-8"},
        )
        if r.status != 207:
            raise CalDAVError(f"PROPFIND {href}", r.status)
        listing = {}
        for member, _status_code, props in _responses(r.tree):
            kind = props.get(DAV + "resourcetype")
            if member.rstrip("/") == href.rstrip("/") or (
                kind is not None and kind.find(DAV + "collection") is not None
            ):
                continue
            listing[member] = _text(props.get(DAV + "getetag"))
        return listing

    def fetch(self, calendar: str, hrefs: Iterable[str]) -> dict[str, Resource]:
        """Text and ETag of many events: calendar-multiget in batches (GET if refused)."""
        hrefs = list(hrefs)
        out: dict[str, Resource] = {}
        for i in range(0, len(hrefs), MULTIGET_BATCH):
            batch = hrefs[i : i + MULTIGET_BATCH]
            if len(batch) == 1:
                res = self.get(batch[0])
                if res is not None:
                    out[res.href] = res
                continue
            body = (
                '<?xml version="1.0" encoding="utf-8"?><c:calendar-multiget xmlns:d="DAV:" '
                'xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><d:getetag/>'
                "<c:calendar-data/></d:prop>"
                + "".join(
                    f"<d:href>{escape(urllib.parse.quote(h, safe=_SAFE))}</d:href>" for h in batch
                )
                + "</c:calendar-multiget>"
            )
            r = self._request(
                "REPORT",
                calendar,
                body,
                {"Depth": "1", "Content-Type": "application/xml; charset=utf-8"},
            )
            if r.status != 207:
                logger.info(
                    "bridge: %s: calendar-multiget answered %s, reading one by one",
                    calendar,
                    r.status,
                )
                for href in batch:
                    res = self.get(href)
                    if res is not None:
                        out[res.href] = res
                continue
            for member, status, props in _responses(r.tree):
                data = props.get(CALDAV + "calendar-data")
                if status in (0, 200) and data is not None and data.text:
                    out[member] = Resource(member, _text(props.get(DAV + "getetag")), data.text)
        return out

    def get(self, href: str) -> Resource | None:
        r = self._request("GET", href, headers={"Accept": "text/calendar"})
        if r.status == 404 or r.status == 410:
            return None
        if r.status != 200:
            raise CalDAVError(f"GET {href}", r.status)
        return Resource(path_of(href), r.header("ETag"), r.raw.decode("utf-8", "replace"))

    def etag(self, href: str) -> str:
        """The current ETag of one event (PROPFIND Depth 0), "" if gone."""
        r = self._request(
            "PROPFIND",
            href,
            _propfind("<d:getetag/>"),
            {"Depth": "0", "Content-Type": "application/xml; charset=utf-8"},
        )
        if r.status != 207:
            return ""
        for _member, _status_code, props in _responses(r.tree):
            return _text(props.get(DAV + "getetag"))
        return ""

    def put(self, href: str, text: str, etag: str) -> PutResult:
        """Write an event only if it is still the version `etag` (If-Match)."""
        r = self._request(
            "PUT", href, text, {"If-Match": etag, "Content-Type": "text/calendar; charset=utf-8"}
        )
        return PutResult(r.status, r.header("ETag") if 200 <= r.status < 300 else "")
