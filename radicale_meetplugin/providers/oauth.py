"""OAuth access tokens for provider APIs: one cached token, renewed on expiry or a 401 (I/O)."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any

from radicale_meetplugin.providers.base import ProviderError
from radicale_meetplugin.providers.http import Answer, ApiClient

logger = logging.getLogger("radicale.meetplugin")
_TOKEN = re.compile(r"[\x21-\x7e]{1,8192}")  # printable, no spaces: safe in a header


class TokenCache:
    """One access token shared by all threads; fetched again shortly before it expires.

    `request(client)` asks the token endpoint and returns its response (the
    provider decides the grant, the form and the auth of that request).
    A subclass may read more of a good answer (`accepted`), read its lifetime
    its own way (`lifetime`) and start with a token got elsewhere (`seed`).
    """

    def __init__(
        self,
        client: ApiClient,
        request: Callable[[ApiClient], Answer],
        clock: Callable[[], float],
        provider: str,
    ) -> None:
        self.client = client
        self.request = request
        self.clock = clock
        self.provider = provider
        self._lock = threading.Lock()
        self._value = ""
        self._renew_at = 0.0
        self.fetched = 0  # tokens fetched so far (for tests and logs)

    def get(self) -> str:
        with self._lock:  # one fetch at a time: the others wait and reuse it
            if not self._value or self.clock() >= self._renew_at:
                self._value, lifetime = self._fetch()
                self._renew_at = self.clock() + lifetime - min(60.0, lifetime / 10)
            return self._value

    def invalidate(self, used: str) -> None:
        """The API refused `used`: the next get() fetches a new token (once for all threads)."""
        with self._lock:
            if self._value == used:
                self._value = ""

    def seed(self, token: str, lifetime: float) -> None:
        """Start with a token got elsewhere (a user's sign-in), valid for `lifetime` s."""
        with self._lock:
            self._value = token
            self._renew_at = self.clock() + lifetime - min(60.0, lifetime / 10)

    def accepted(self, body: dict) -> None:
        """A good token answer arrived (a subclass may keep more of it)."""

    def lifetime(self, body: dict) -> float:
        """Seconds the token in `body` is valid (3600 when it does not say)."""
        lifetime = body.get("expires_in", 3600)
        if isinstance(lifetime, str) and lifetime.isdigit():
            lifetime = int(lifetime)  # Microsoft's v1 endpoints send it as text
        if isinstance(lifetime, bool) or not isinstance(lifetime, (int, float)) or lifetime <= 0:
            lifetime = 3600
        return float(lifetime)

    def _fetch(self) -> tuple[str, float]:
        try:
            response = self.request(self.client)
            body = self.client.json_object(response)
        except ProviderError as e:
            if e.temporary:  # nothing was created: a retry is always safe
                raise ProviderError(
                    e.code,
                    status=e.status,
                    provider_code=e.provider_code,
                    temporary=True,
                    retry_after=e.retry_after,
                ) from None
            # 400/401 invalid_client and the like: the server's credentials are wrong.
            raise ProviderError("auth", status=e.status, provider_code=e.provider_code) from None
        token = body.get("access_token")
        if not isinstance(token, str) or not _TOKEN.fullmatch(token):
            raise ProviderError("auth", status=response.status_code, provider_code="BadToken")
        lifetime = self.lifetime(body)
        self.fetched += 1
        self.accepted(body)
        logger.info(
            "meetplugin: %s: access token obtained (valid %d s)", self.provider, int(lifetime)
        )
        return token, lifetime


def bearer_call(
    api: ApiClient,
    tokens: TokenCache,
    method: str,
    path: str,
    body: Any = None,
    ok: tuple[int, ...] = (200, 201, 204),
    params: Mapping[str, Any] | None = None,
) -> Answer:
    """An API call with the cached token; a 401 renews it and tries once more."""
    token = tokens.get()
    try:
        return api.call(
            method, path, body, ok, params=params, headers={"Authorization": f"Bearer {token}"}
        )
    except ProviderError as e:
        if e.status != 401:
            raise
    logger.info("meetplugin: %s: the API refused the access token; renewing it", tokens.provider)
    tokens.invalidate(token)
    token = tokens.get()
    return api.call(
        method, path, body, ok, params=params, headers={"Authorization": f"Bearer {token}"}
    )
