"""A timed CalDAV client speaking like Thunderbird (real HTTP on loopback; not pure)."""

from __future__ import annotations

import time

import requests
from events import CONTENT_TYPE

PROPFIND = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<D:propfind xmlns:D="DAV:"><D:prop><D:getcontenttype/><D:resourcetype/>'
    "<D:getetag/></D:prop></D:propfind>"
)
SYNC = (
    '<?xml version="1.0" encoding="utf-8"?>\n'
    '<D:sync-collection xmlns:D="DAV:"><D:sync-token/><D:sync-level>1</D:sync-level>'
    "<D:prop><D:getetag/></D:prop></D:sync-collection>"
)


def query(day: str) -> str:
    """calendar-query for the events of one day (what a client asks for a view)."""
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        '<D:prop><D:getetag/></D:prop><C:filter><C:comp-filter name="VCALENDAR">'
        '<C:comp-filter name="VEVENT">'
        f'<C:time-range start="{day}T000000Z" end="{day}T235959Z"/>'
        "</C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"
    )


class BenchError(RuntimeError):
    """A request got an answer the benchmark did not expect: its numbers would lie."""


class Client:
    """One user's connection to one server; every call returns its latency in seconds."""

    timeout = 120

    def __init__(self, base_url: str, user: str, password: str | None = None) -> None:
        self.base = base_url.rstrip("/")
        self.session = requests.Session()
        self.session.auth = (user, password or user)
        self.etags: dict[str, str] = {}

    def _do(self, method: str, path: str, ok: tuple[int, ...], **kwargs) -> tuple[float, object]:
        started = time.perf_counter()
        r = self.session.request(method, f"{self.base}/{path}", timeout=self.timeout, **kwargs)
        took = time.perf_counter() - started
        if r.status_code not in ok:
            raise BenchError(f"{method} {path}: {r.status_code} {r.text[:300]}")
        return took, r

    def put(self, path: str, text: str, create: bool = False) -> float:
        """Thunderbird's PUT: If-None-Match: * for a new event, If-Match for an edit."""
        headers = {"Content-Type": CONTENT_TYPE}
        if create:
            headers["If-None-Match"] = "*"
        elif path in self.etags:
            headers["If-Match"] = self.etags[path]
        took, r = self._do("PUT", path, (201, 204), data=text.encode(), headers=headers)
        etag = r.headers.get("ETag")  # type: ignore[attr-defined]
        if etag:
            self.etags[path] = etag
        else:
            self.etags.pop(path, None)
        return took

    def delete(self, path: str) -> float:
        self.etags.pop(path, None)
        return self._do("DELETE", path, (200, 204))[0]

    def get(self, path: str) -> float:
        return self._do("GET", path, (200,))[0]

    def text(self, path: str) -> str:
        return self._do("GET", path, (200,))[1].text  # type: ignore[attr-defined]

    def propfind(self, path: str, depth: str = "1") -> float:
        return self._do(
            "PROPFIND",
            path,
            (207,),
            data=PROPFIND,
            headers={"Depth": depth, "Content-Type": "application/xml; charset=utf-8"},
        )[0]

    def report(self, path: str, body: str) -> float:
        return self._do(
            "REPORT",
            path,
            (207,),
            data=body.encode(),
            headers={"Depth": "1", "Content-Type": "application/xml; charset=utf-8"},
        )[0]

    def put_calendar(self, path: str, text: str) -> float:
        """A whole calendar in one PUT (an import)."""
        return self._do(
            "PUT", path, (201,), data=text.encode(), headers={"Content-Type": CONTENT_TYPE}
        )[0]
