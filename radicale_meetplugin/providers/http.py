"""HTTP for provider adapters: one place that turns answers into ProviderError."""

from __future__ import annotations

import datetime
import email.utils
import json
import logging
import re
import threading
import time
import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    import requests

from radicale_meetplugin.providers.base import ProviderError

logger = logging.getLogger("radicale.meetplugin")
_SAFE_CODE = re.compile(r"[^A-Za-z0-9_.-]")


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delay-seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None  # unreadable: let the caller's backoff decide
    if when.tzinfo is None:  # "-0000" or no zone: HTTP dates are always GMT
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def error_code_of(response: requests.Response) -> str:
    """The provider's own error name from a JSON body, made safe to show.

    Flat bodies (``{"error": "<Code>"}``, Telemost, OAuth; ``{"code": 3001}``,
    Zoom) and nested ones (``{"error": {"errors": [{"reason": "<code>"}]}}``,
    TrueConf; ``{"error": {"code": "itemNotFound"}}``, Microsoft Graph) are read.
    """
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict):
        code = body.get("error") or body.get("code") or ""
        if isinstance(code, dict):
            errors = code.get("errors")
            first = errors[0] if isinstance(errors, list) and errors else {}
            code = (
                (first.get("reason") if isinstance(first, dict) else "")
                or code.get("reason")
                or (code.get("code") if isinstance(code.get("code"), str) else "")
                or code.get("message")
                or ""
            )
        if isinstance(code, int) and not isinstance(code, bool):
            return str(code)
        if isinstance(code, str):
            return _SAFE_CODE.sub("", code)[:64]
    return ""


class ApiClient:
    """requests.Session bound to a base URL, an auth header and a time budget."""

    def __init__(
        self, base_url: str, headers: Mapping[str, str], timeout: float, provider: str
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.provider = provider
        self._headers = {**headers, "User-Agent": "radicale-meetplugin"}
        self._local = threading.local()  # requests.Session is not guaranteed thread-safe
        if base_url.startswith("http://") and (
            urllib.parse.urlsplit(base_url).hostname or ""
        ) not in ("127.0.0.1", "localhost", "::1"):
            logger.warning(
                "meetplugin: %s api_url is plain http: credentials would travel "
                "unencrypted; use https",
                provider,
            )

    @property
    def session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            import requests  # on the first call: a server with no such provider never loads it

            session = self._local.session = requests.Session()
            session.headers.update(self._headers)
        return session

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        ok: tuple[int, ...] = (200, 201, 204),
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        form: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """One request; `form` sends an urlencoded body instead of JSON."""
        import requests

        url = f"{self.base_url}{path}"
        started = time.monotonic()
        try:
            response = self.session.request(
                method,
                url,
                json=body if form is None else None,
                data=form,
                params=params,
                headers=dict(headers) if headers else None,
                timeout=self.timeout,
            )
        except requests.RequestException as e:
            self._trace(method, path, type(e).__name__, started)
            self._raise(method, path, e)
        self._trace(method, path, str(response.status_code), started)
        if response.status_code in ok:
            return response
        raise self.error(response)

    def _trace(self, method: str, path: str, result: str, started: float) -> None:
        """One debug line per request: method, path without its query, result, duration.

        Never headers, bodies or query strings: they can carry tokens and secrets.
        """
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "meetplugin: %s %s %s -> %s in %d ms",
                self.provider,
                method,
                path.split("?", 1)[0],
                result,
                (time.monotonic() - started) * 1000,
            )

    def _raise(self, method: str, path: str, error: requests.RequestException) -> NoReturn:
        import requests  # loaded already: the call that failed used it

        if isinstance(error, requests.ConnectTimeout):
            raise ProviderError("unavailable", temporary=True) from None
        if isinstance(error, requests.Timeout):  # sent, but no answer in time: maybe done
            raise ProviderError("unavailable", temporary=True, maybe_done=True) from None
        # The message can hold the URL, never a header: still keep it out of events.
        logger.info(
            "meetplugin: %s %s %s failed: %s", self.provider, method, path, type(error).__name__
        )
        raise ProviderError("unavailable", temporary=True) from None

    @staticmethod
    def error(response: requests.Response) -> ProviderError:
        status, code = response.status_code, error_code_of(response)
        if status == 429:
            return ProviderError(
                "rate_limited",
                status=status,
                provider_code=code,
                temporary=True,
                retry_after=retry_after(response.headers.get("Retry-After")),
            )
        if status >= 500 or status == 408:
            return ProviderError(
                "unavailable",
                status=status,
                provider_code=code,
                temporary=True,
                retry_after=retry_after(response.headers.get("Retry-After")),
            )
        if status == 401:
            return ProviderError("auth", status=status, provider_code=code)
        if status == 402:
            return ProviderError("payment_required", status=status, provider_code=code)
        if status == 403:
            kind = "org_required" if code == "ApiRestrictedToOrganizations" else "forbidden"
            return ProviderError(kind, status=status, provider_code=code)
        return ProviderError("rejected", status=status, provider_code=code)

    @staticmethod
    def json_object(response: requests.Response) -> dict:
        # A 2xx we cannot read: the provider may have acted (maybe_done), so a retry
        # may make a second room; it is recorded as a suspect.
        try:
            body = response.json()
        except (ValueError, json.JSONDecodeError):
            raise ProviderError(
                "rejected",
                status=response.status_code,
                provider_code="NotJson",
                temporary=True,
                maybe_done=True,
            ) from None
        if not isinstance(body, dict):
            raise ProviderError(
                "rejected",
                status=response.status_code,
                provider_code="NotAnObject",
                temporary=True,
                maybe_done=True,
            )
        return body
