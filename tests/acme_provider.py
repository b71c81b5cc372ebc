"""A third-party provider, as an outside package would write one (docs/providers/writing-a-provider.md).

"Acme Meet" needs no API: a room is an HMAC of the event key under a secret,
so the same event always gets the same room. Loaded by import path from the
plugin config: ``[provider:acme] module = acme_provider``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from radicale_meetplugin.config import ConfigError, Schema, read_secret
from radicale_meetplugin.core.model import Conference, Meeting
from radicale_meetplugin.providers import (
    BuildContext,
    Capabilities,
    OptionWord,
    Provider,
    ProviderPlugin,
)

OPTIONS: Schema = {
    "base_url": ("https://meet.acme.test", str, "Acme Meet server; rooms are <base_url>/<room>."),
    "secret_env": ("ACME_SECRET", str, "Environment variable holding the room-name secret."),
}
CAPABILITIES = Capabilities(network=False, deterministic_ids=True, options=True)


class AcmeMeet(Provider):
    name = "acme"
    capabilities = CAPABILITIES

    def __init__(self, base_url: str, secret: bytes) -> None:
        self.base_url = base_url.rstrip("/")
        self.secret = secret

    def create(self, meeting: Meeting) -> Conference:
        digest = hmac.new(self.secret, meeting.key.as_text().encode(), hashlib.sha256)
        room = digest.hexdigest()[:20]
        lobby = "?lobby=1" if meeting.option("lobby") == "on" else ""
        return Conference(self.name, room, f"{self.base_url}/{room}{lobby}")

    def delete(self, conference: Conference) -> None:
        """Rooms live while people are in them: nothing to delete."""


def build(options: Mapping[str, Any], ctx: BuildContext) -> AcmeMeet:
    secret = read_secret("", options["secret_env"], "Acme secret")
    if not secret:
        raise ConfigError(f"[provider:acme] has no secret: set {options['secret_env']}")
    return AcmeMeet(options["base_url"], secret.value.encode())


PLUGIN = ProviderPlugin(
    name="acme",
    labels={"ru": "Акме Встречи", "en": "Acme Meet"},
    keywords=("acme", "акме"),
    options=OPTIONS,
    build=build,
    capabilities=lambda options: CAPABILITIES,
    option_words=(
        OptionWord("lobby", "on", ("lobby", "лобби"), {"ru": "с лобби", "en": "with a lobby"}),
    ),
    link_properties=("X-ACME-CONFERENCE",),
    marker_properties=("X-ACME-REQUIRED",),
)
