"""Retry-After is read both ways RFC 9110 allows: delay-seconds and an HTTP date."""

from __future__ import annotations

import email.utils
import time

import pytest
from urllib3 import HTTPHeaderDict

from radicale_meetplugin.providers.http import Answer, ApiClient, retry_after

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("7", 7.0),
        (" 2 ", 2.0),
        ("0", 0.0),
        (email.utils.formatdate(NOW + 30, usegmt=True), 30.0),  # IMF-fixdate
        (email.utils.formatdate(NOW - 30, usegmt=True), 0.0),  # already past: no pause
        ("Friday, 15-Jan-27 08:01:00 GMT", 60.0),  # RFC 850, obsolete but allowed
        ("", None),
        (None, None),
        ("soon", None),
    ],
)
def test_retry_after_seconds_and_http_dates(value, seconds):
    got = retry_after(value, now=NOW)
    if seconds is None:
        assert got is None
    else:
        assert got == pytest.approx(seconds, abs=1)


def answer(status: int, headers: dict[str, str]) -> Answer:
    return Answer(status, HTTPHeaderDict(headers), b"")


def test_a_429_with_an_http_date_is_honoured():
    when = email.utils.formatdate(time.time() + 120, usegmt=True)
    error = ApiClient.error(answer(429, {"retry-after": when}))  # names: any case
    assert error.temporary and error.retry_after == pytest.approx(120, abs=2)
    error = ApiClient.error(answer(503, {"Retry-After": when}))
    assert error.retry_after == pytest.approx(120, abs=2)
