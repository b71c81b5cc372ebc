"""Provider emulators answer a kept-alive client at once (TCP_NODELAY set); real loopback HTTP.

An emulator writes the headers and the body of an answer in two writes. Without
TCP_NODELAY the body waits for the client's delayed ACK (~40 ms on Linux) on a
kept-alive connection, and every provider call the plugin makes looks 40 ms slower.
"""

from __future__ import annotations

import socket
import time

import pytest
import requests
from emulators.telemost import TelemostEmulator
from emulators.trueconf import TrueConfEmulator
from emulators.videomost import VideomostEmulator

CALLS = 50
BUDGET_S = 1.0  # 50 answers at the 40 ms delayed ACK take 2 s; at once, well under 0.2 s


CASES = {
    "telemost": (
        lambda: TelemostEmulator(token="t-123"),
        lambda emu: (emu.url + "/conferences", {"Authorization": "OAuth t-123"}, {}),
        201,
    ),
    "trueconf": (
        lambda: TrueConfEmulator("meetplugin", "tc-secret"),
        lambda emu: (
            emu.token_url,
            {},
            {
                "grant_type": "client_credentials",
                "client_id": "meetplugin",
                "client_secret": "tc-secret",
            },
        ),
        200,
    ),
    "videomost": (
        lambda: VideomostEmulator("vm-token"),
        lambda emu: (
            emu.api_url + "/conferences",
            {"Authorization": "Bearer vm-token"},
            {"name": "Планёрка", "start_time": None, "duration": None, "participants": []},
        ),
        201,
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_kept_alive_answers_come_at_once(name: str) -> None:
    make, request_of, status = CASES[name]
    emu = make()
    accepted: list[socket.socket] = []
    serve = emu.server.finish_request

    def finish_request(request, client_address) -> None:
        accepted.append(request)
        serve(request, client_address)

    emu.server.finish_request = finish_request  # type: ignore[method-assign]
    emu.start()
    try:
        url, headers, body = request_of(emu)
        with requests.Session() as session:
            started = time.perf_counter()
            for _ in range(CALLS):
                if name == "trueconf":
                    r = session.post(url, data=body, headers=headers, timeout=10)
                else:
                    r = session.post(url, json=body, headers=headers, timeout=10)
                assert r.status_code == status, r.text
                assert r.content  # a body: the second write that Nagle would hold back
            took = time.perf_counter() - started
            # One connection for all calls, still open: its server side has TCP_NODELAY.
            assert len(accepted) == 1
            assert accepted[0].getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        emu.stop()
    assert took < BUDGET_S, f"{CALLS} kept-alive calls took {took:.2f} s"
