"""HTTP for provider adapters: one place that turns answers into ProviderError."""

from __future__ import annotations

import json
import logging
import re
import threading
import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import requests

from radicale_meetplugin.providers.base import ProviderError

logger = logging.getLogger("radicale.meetplugin")
_SAFE_CODE = re.compile(r"[^A-Za-z0-9_.-]")


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: let the caller's backoff decide


def error_code_of(response: requests.Response) -> str:
    """The provider's own error name from a JSON body, made safe to show.

    Flat bodies (``{"error": "<Code>"}``, Telemost, OAuth) and nested ones
    (``{"error": {"errors": [{"reason": "<code>"}]}}``, TrueConf) are read.
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
                or code.get("message")
                or ""
            )
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
        except requests.ConnectTimeout:
            raise ProviderError("unavailable", temporary=True) from None
        except requests.Timeout:  # sent, but no answer in time: it may have been done
            raise ProviderError("unavailable", temporary=True, maybe_done=True) from None
        except requests.RequestException as e:
            # The message can hold the URL, never a header: still keep it out of events.
            logger.info(
                "meetplugin: %s %s %s failed: %s", self.provider, method, path, type(e).__name__
            )
            raise ProviderError("unavailable", temporary=True) from None
        if response.status_code in ok:
            return response
        raise self.error(response)

    @staticmethod
    def error(response: requests.Response) -> ProviderError:
        status, code = response.status_code, error_code_of(response)
        if status == 429:
            return ProviderError(
                "rate_limited",
                status=status,
                provider_code=code,
                temporary=True,
                retry_after=_retry_after(response.headers.get("Retry-After")),
            )
        if status >= 500 or status == 408:
            return ProviderError(
                "unavailable",
                status=status,
                provider_code=code,
                temporary=True,
                retry_after=_retry_after(response.headers.get("Retry-After")),
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
