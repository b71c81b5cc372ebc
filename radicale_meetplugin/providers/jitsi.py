"""Jitsi Meet: no account, no API call. The room name is an HMAC of the event key,
so it is stable (the same event always gets the same room) and cannot be guessed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from typing import Any

from radicale_meetplugin.config import ConfigError, Schema, read_secret
from radicale_meetplugin.core.model import Conference, Meeting
from radicale_meetplugin.providers.base import (
    BuildContext,
    Capabilities,
    Provider,
    ProviderPlugin,
)
from radicale_meetplugin.providers.users import CredentialError, write_private

OPTIONS: Schema = {
    "base_url": ("https://meet.jit.si", str, "Jitsi server; rooms are <base_url>/<room>."),
    "room_prefix": ("Meet", str, "Readable start of every room name."),
    "secret_file": (
        "",
        str,
        "File with the HMAC secret for room names. Empty: one is generated in state_dir.",
    ),
}


CAPABILITIES = Capabilities(network=False, schedule=False, deterministic_ids=True)


class Jitsi(Provider):
    name = "jitsi"
    capabilities = CAPABILITIES

    def __init__(
        self, base_url: str, secret: bytes, room_prefix: str = "Meet", note: str = ""
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.secret = secret
        self.room_prefix = "".join(ch for ch in room_prefix if ch.isalnum())
        self.note = note  # for `meetplugin check`: what it found instead of a secret

    def room(self, meeting: Meeting) -> str:
        digest = hmac.new(self.secret, meeting.key.as_text().encode(), hashlib.sha256).digest()
        return self.room_prefix + base64.b32encode(digest).decode().rstrip("=").lower()[:26]

    def create(self, meeting: Meeting) -> Conference:
        room = self.room(meeting)
        return Conference(self.name, room, f"{self.base_url}/{room}")

    def delete(self, conference: Conference) -> None:
        """A Jitsi room lives while people are in it: nothing to delete."""

    def check(self) -> str:
        """No account and no API: nothing to ask; say what `build` found."""
        return self.note


def _generated_secret(state_dir: str) -> bytes:
    """The secret kept in state_dir, made (owned like state_dir, mode 600) when missing."""
    path = os.path.join(state_dir, "jitsi.secret")
    try:
        with open(path, "rb") as f:
            return f.read().strip()
    except FileNotFoundError:
        pass
    value = secrets.token_hex(32).encode()
    try:
        write_private(path, value, exclusive=True)
    except CredentialError as e:
        raise ConfigError(f"[provider:jitsi] cannot keep a generated secret: {e}") from None
    return value


def build(options: Mapping[str, Any], ctx: BuildContext) -> Jitsi:
    if options["secret_file"]:
        secret = read_secret(options["secret_file"], "", "Jitsi secret").value.encode()
        if len(secret) < 16:
            raise ConfigError("[provider:jitsi] secret_file: use at least 16 characters")
        return Jitsi(options["base_url"], secret, options["room_prefix"])
    path = os.path.join(ctx.state_dir, "jitsi.secret")
    if ctx.read_only:  # `meetplugin check` makes nothing: a missing secret is only reported
        try:
            with open(path, "rb") as f:
                secret = f.read().strip()
        except FileNotFoundError:
            return Jitsi(
                options["base_url"],
                secrets.token_bytes(32),  # never stored, never used for an event
                options["room_prefix"],
                note=f"no secret yet: {path} is made at the first start",
            )
        except OSError as e:
            raise ConfigError(f"[provider:jitsi] cannot read {path}: {e.strerror}") from None
        return Jitsi(options["base_url"], secret, options["room_prefix"])
    try:
        secret = _generated_secret(ctx.state_dir)
    except FileExistsError:  # another process wrote it first
        secret = _generated_secret(ctx.state_dir)
    return Jitsi(options["base_url"], secret, options["room_prefix"])


PLUGIN = ProviderPlugin(
    name="jitsi",
    labels={"ru": "Jitsi Meet", "en": "Jitsi Meet"},
    keywords=("jitsi", "джитси", "jitsi meet"),
    options=OPTIONS,
    build=build,
    capabilities=lambda options: CAPABILITIES,
)
