"""503 with Retry-After when the plugin's state file is unavailable under Radicale's lock.

A PUT, DELETE or MOVE whose bookkeeping cannot be written (another program
holds the state file) is refused before Radicale stores anything: the client
sends it again later, and nothing is stored without its bookkeeping. Radicale
turns any other exception into a 500 without Retry-After, so its request
handlers are wrapped once, like `put_etag` does for PUT.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from http import client
from typing import Any

from radicale_meetplugin.protocol.session import StateUnavailable

logger = logging.getLogger("radicale.meetplugin")

RETRY_AFTER = 2  # seconds a client is asked to wait before sending the request again


def refused() -> tuple[int, dict[str, str], str, None]:
    """Radicale's answer tuple for a request refused while the state is unavailable."""
    return (
        client.SERVICE_UNAVAILABLE,
        {"Content-Type": "text/plain", "Retry-After": str(RETRY_AFTER)},
        "Service temporarily unavailable: try again in a moment",
        None,
    )


def _wrap(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def handler(self: Any, environ: Any, base_prefix: str, path: str, *args: Any, **kw: Any):  # type: ignore[no-untyped-def]
        try:
            return original(self, environ, base_prefix, path, *args, **kw)
        except StateUnavailable:
            logger.warning(
                "meetplugin: %s %s refused with 503: the state file is unavailable",
                environ.get("REQUEST_METHOD", ""),
                path,
            )
            return refused()

    handler._meetplugin_unavailable = True  # type: ignore[attr-defined]
    return handler


def install() -> None:
    from radicale.app import delete, move, put

    for part, name in (
        (put.ApplicationPartPut, "do_PUT"),
        (delete.ApplicationPartDelete, "do_DELETE"),
        (move.ApplicationPartMove, "do_MOVE"),
    ):
        original = getattr(part, name)
        if not getattr(original, "_meetplugin_unavailable", False):
            setattr(part, name, _wrap(original))
