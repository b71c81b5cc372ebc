"""The PUT/ETag rule: no ETag in the PUT response when the plugin rewrote the event.

RFC 4791 §5.3.4 / RFC 9110 §9.3.4: a server that stores something other than
what the client sent must not return an ETag, so clients fetch the stored
version (with the link). Radicale has no hook for response headers, so we wrap
``ApplicationPartPut.do_PUT`` once: the wrapper asks a per-request flag that
only this plugin's storage sets. Every other response is untouched. The same
wrapper tells `early` which storage serves the request.
"""

from __future__ import annotations

import functools
import threading

from radicale_meetplugin.radicale import early

_request = threading.local()


def mark_rewritten() -> None:
    """Called by the storage while it handles the current request's PUT."""
    _request.rewritten = True


def install() -> None:
    from radicale.app import put

    early.install()

    original = put.ApplicationPartPut.do_PUT
    if getattr(original, "_meetplugin_wrapped", False):
        return

    @functools.wraps(original)
    def do_PUT(self, environ, base_prefix, path, user, *args, **kwargs):  # type: ignore[no-untyped-def]
        _request.rewritten = False
        early.begin(getattr(self._storage, "meet", None), path, user)  # decide before the lock
        try:
            status, headers, answer, xml_request = original(
                self, environ, base_prefix, path, user, *args, **kwargs
            )
            if _request.rewritten and 200 <= status < 300:
                headers = {k: v for k, v in dict(headers).items() if k.lower() != "etag"}
            return status, headers, answer, xml_request
        finally:
            _request.rewritten = False
            early.end()

    do_PUT._meetplugin_wrapped = True  # type: ignore[attr-defined]
    put.ApplicationPartPut.do_PUT = do_PUT  # type: ignore[method-assign]
