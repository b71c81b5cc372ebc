"""Which failed provider calls may have made a room: the outbox's rule for suspects."""

from __future__ import annotations

import socket

import pytest
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ProtocolError

from radicale_meetplugin.protocol.outbox import may_have_reached
from radicale_meetplugin.providers import ProviderError


def failed(*chain: BaseException, **error) -> ProviderError:
    """A ProviderError raised while handling `chain` (outermost first), as http.py raises it."""
    result = ProviderError(error.pop("code", "unavailable"), temporary=True, **error)
    outer: BaseException = result
    for cause in chain:
        outer.__context__ = cause
        outer = cause
    return result


@pytest.mark.parametrize(
    "error",
    [
        failed(maybe_done=True),  # no answer in time, or an unreadable 2xx
        failed(ProtocolError("Connection aborted."), ConnectionResetError()),  # reset after sending
        failed(ProtocolError("Connection aborted."), ConnectionAbortedError()),
        failed(),  # a bug while reading the answer (the engine's catch-all)
    ],
)
def test_a_failure_after_the_request_may_have_left_a_room(error):
    assert may_have_reached(error)


@pytest.mark.parametrize(
    "error",
    [
        failed(status=502),  # the provider (or its proxy) answered: no room
        failed(status=429),
        failed(code="provider_disabled"),  # nothing was called
        failed(NewConnectionError(None, "refused"), ConnectionRefusedError()),
        failed(ConnectTimeoutError("connect timeout")),
        failed(socket.gaierror("no such name")),
    ],
)
def test_a_request_that_never_left_made_nothing(error):
    assert not may_have_reached(error)
