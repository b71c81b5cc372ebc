"""HTTP for provider adapters: one place that turns answers into ProviderError."""

from __future__ import annotations

import datetime
import email.utils
import json
import logging
import os
import re
import threading
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    import ssl

    import urllib3

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


@dataclass(frozen=True, slots=True)
class Answer:
    """A provider's answer, read in full: status, headers (case-insensitive), body."""

    status_code: int
    headers: Mapping[str, str]  # urllib3's HTTPHeaderDict from a call
    content: bytes = b""

    def json(self) -> Any:
        """The body as JSON; ValueError when it is none."""
        return json.loads(self.content)


def error_code_of(response: Answer) -> str:
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


def _tls() -> ssl.SSLContext:
    """One TLS context for a client's connections, trusting what the admin trusts.

    The CA file (or folder) named by REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE, as
    with requests; else the system's trust store (Python's default verify
    paths, SSL_CERT_FILE / SSL_CERT_DIR when set). Made once: urllib3 would
    load the store again for every new connection.
    """
    from urllib3.util import create_urllib3_context

    context = create_urllib3_context()  # urllib3's defaults: certificate and name checked
    path = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if not path:
        context.load_default_certs()
    elif os.path.isdir(path):
        context.load_verify_locations(capath=path)
    else:
        context.load_verify_locations(cafile=path)
    return context


def _proxy_for(base_url: str) -> str | None:
    """The proxy the environment names for this URL (*_PROXY, NO_PROXY), if any."""
    import urllib.request  # with the first call, like urllib3

    split = urllib.parse.urlsplit(base_url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(split.scheme) or proxies.get("all")
    host = split.hostname or ""
    if not proxy or not host:
        return None
    if urllib.request.proxy_bypass(f"{host}:{split.port}" if split.port else host):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


class ApiClient:
    """One urllib3 pool (thread-safe) bound to a base URL, an auth header and a time budget."""

    def __init__(
        self, base_url: str, headers: Mapping[str, str], timeout: float, provider: str
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.provider = provider
        self._headers = {**headers, "User-Agent": "radicale-meetplugin"}
        self._pool: urllib3.PoolManager | None = None
        self._lock = threading.Lock()
        if base_url.startswith("http://") and (
            urllib.parse.urlsplit(base_url).hostname or ""
        ) not in ("127.0.0.1", "localhost", "::1"):
            logger.warning(
                "meetplugin: %s api_url is plain http: credentials would travel "
                "unencrypted; use https",
                provider,
            )

    def _connections(self) -> urllib3.PoolManager:
        """The pool, made on the first call: a server with no such provider never loads urllib3."""
        with self._lock:
            if self._pool is None:
                import urllib3

                options: dict[str, Any] = {
                    "retries": False,  # errors come as they are; a 3xx is returned, not followed
                    "timeout": urllib3.Timeout(connect=self.timeout, read=self.timeout),
                    "maxsize": 10,  # connections kept per host, as requests did
                }
                if self.base_url.startswith("https:"):
                    options["ssl_context"] = _tls()
                proxy = _proxy_for(self.base_url)
                if proxy is None:
                    self._pool = urllib3.PoolManager(**options)
                elif proxy.startswith("socks"):
                    try:
                        from urllib3.contrib.socks import SOCKSProxyManager
                    except ImportError:  # no PySocks: no SOCKS, as with requests; logged
                        scheme = urllib3.util.parse_url(proxy).scheme
                        raise urllib3.exceptions.ProxySchemeUnknown(scheme) from None
                    self._pool = SOCKSProxyManager(proxy, **options)
                else:
                    auth = urllib3.util.parse_url(proxy).auth
                    if auth:
                        basic = urllib.parse.unquote(auth)
                        options["proxy_headers"] = urllib3.util.make_headers(proxy_basic_auth=basic)
                    self._pool = urllib3.ProxyManager(proxy, **options)
            return self._pool

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
        auth: tuple[str, str] | None = None,
    ) -> Answer:
        """One request; `form` sends an urlencoded body instead of JSON; `auth` is Basic."""
        import urllib3

        url = f"{self.base_url}{path}"
        if params:
            query = {k: v for k, v in params.items() if v is not None}
            url += ("&" if "?" in url else "?") + urllib.parse.urlencode(query, doseq=True)
        sent = urllib3.HTTPHeaderDict({"Accept": "*/*"})  # names are case-insensitive
        sent.update(self._headers)
        data: bytes | None = None
        if form is not None:
            data = urllib.parse.urlencode(form, doseq=True).encode()
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data = json.dumps(body, allow_nan=False).encode()
            sent["Content-Type"] = "application/json"
        for name, value in (headers or {}).items():
            sent[name] = value
        if auth is not None:
            sent.update(urllib3.util.make_headers(basic_auth=f"{auth[0]}:{auth[1]}"))
        started = time.monotonic()
        try:
            # The body is read here too: a reset while reading it is caught the same way.
            raw = self._connections().request(
                method, url, body=data, headers=sent, redirect=False, preload_content=True
            )
        except urllib3.exceptions.HTTPError as e:
            self._trace(method, path, type(e).__name__, started)
            self._raise(method, path, e)
        response = Answer(raw.status, raw.headers, raw.data)
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

    def _raise(self, method: str, path: str, error: Exception) -> NoReturn:
        """ProviderError for a call without an HTTP answer; `error` stays its __context__.

        protocol/outbox.py reads that chain to tell "never connected" from "maybe done".
        """
        from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ReadTimeoutError

        if isinstance(error, ConnectTimeoutError) and not isinstance(error, NewConnectionError):
            raise ProviderError("unavailable", temporary=True) from None
        if isinstance(error, ReadTimeoutError):  # sent, but no answer in time: maybe done
            raise ProviderError("unavailable", temporary=True, maybe_done=True) from None
        # Only the type: the message can hold the URL and its query, never a header.
        logger.info(
            "meetplugin: %s %s %s failed: %s",
            self.provider,
            method,
            path.split("?", 1)[0],
            type(error).__name__,
        )
        raise ProviderError("unavailable", temporary=True) from None

    @staticmethod
    def error(response: Answer) -> ProviderError:
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
    def json_object(response: Answer) -> dict:
        # A 2xx we cannot read: the provider may have acted (maybe_done), so a retry
        # may make a second room; it is recorded as a suspect.
        try:
            body = response.json()
        except ValueError:
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
