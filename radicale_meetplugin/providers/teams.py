"""Microsoft Teams through Graph: online meetings made idempotently with createOrGet.

- Token: ``POST https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token``,
  form ``grant_type=client_credentials``, ``client_id``, ``client_secret``,
  ``scope=https://graph.microsoft.com/.default``. Cached until shortly before it
  expires; renewed then, or when Graph answers 401 (the call is repeated once).
- ``POST /users/{user}/onlineMeetings/createOrGet`` with ``externalId`` = an id
  derived from the event key (``meetplugin-<digest>``): 201 when made, 200 with
  the same meeting when that externalId exists. A retried create can therefore
  never make a second meeting. ``{user}`` is the organizer's address (or the
  configured user); the application permission ``OnlineMeetings.ReadWrite.All``
  works only for users an admin granted an application access policy.
- ``PATCH /users/{user}/onlineMeetings/{id}`` with ``subject`` and both
  ``startDateTime`` and ``endDateTime`` when the event changes; the lobby
  (``lobbyBypassSettings.scope``) is set by the same PATCH, and right after the
  create when an option or the config asks for one.
- ``DELETE /users/{user}/onlineMeetings/{id}`` (204); 404 counts as deleted.
- Graph cannot list a user's online meetings, so `meetplugin reconcile` cannot
  look for orphans (and deterministic ids leave none from retries).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

from radicale_meetplugin.config import ConfigError, Schema, Secret, read_secret
from radicale_meetplugin.core.model import Conference, EventKey, Meeting
from radicale_meetplugin.providers import schedule
from radicale_meetplugin.providers.base import (
    BuildContext,
    Capabilities,
    OptionWord,
    Provider,
    ProviderError,
    ProviderPlugin,
)
from radicale_meetplugin.providers.http import Answer, ApiClient
from radicale_meetplugin.providers.oauth import TokenCache, bearer_call

logger = logging.getLogger("radicale.meetplugin")

LOBBY_SCOPES = ("organizer", "organization", "organizationAndFederated", "everyone", "invited")
_ID = re.compile(r"[A-Za-z0-9_=+/:.@-]{1,512}")
_JOIN_URL = re.compile(r"https://[A-Za-z0-9.-]+(:[0-9]+)?/[A-Za-z0-9/_.?=&%:@~-]*")
_USER = re.compile(r"[A-Za-z0-9._%+@{}-]{1,128}")
_TENANT = re.compile(r"[A-Za-z0-9.-]{1,128}")


def user_template(value: str) -> str:
    value = value.strip()
    if value and not _USER.fullmatch(value):
        raise ValueError("{organizer}, or a user's id or principal name")
    return value


def lobby_scope(value: str) -> str:
    value = value.strip()
    if value and value not in LOBBY_SCOPES:
        raise ValueError(f"empty (the tenant's policy) or one of {', '.join(LOBBY_SCOPES)}")
    return value


OPTIONS: Schema = {
    "tenant_id": ("", str, "Directory (tenant) id or domain of the Entra ID tenant (required)."),
    "client_id": ("", str, "Application (client) id of the app registration (required)."),
    "client_secret_file": ("", str, "File holding the app's client secret (chmod 600)."),
    "client_secret_env": (
        "TEAMS_CLIENT_SECRET",
        str,
        "Environment variable holding the client secret, used when client_secret_file is empty.",
    ),
    "graph_url": ("https://graph.microsoft.com/v1.0", str, "Microsoft Graph base URL."),
    "token_url": (
        "",
        str,
        "OAuth token endpoint. Empty: "
        "https://login.microsoftonline.com/<tenant_id>/oauth2/v2.0/token.",
    ),
    "user": (
        "{organizer}",
        user_template,
        "Organizer of the meeting in Graph (/users/<user>): {organizer} is the event "
        "organizer's address (their user principal name), or one fixed user id or name.",
    ),
    "fallback_user": (
        "",
        user_template,
        "Organizer in Graph for events without an ORGANIZER (made by their owner): "
        "{user} is the Radicale user name, e.g. {user}@example.ru. Empty: such events "
        "get an explanation.",
    ),
    "lobby_bypass": (
        "",
        lobby_scope,
        "Who skips the lobby unless the event says otherwise: organizer, organization, "
        "organizationAndFederated, everyone, invited. Empty: the tenant's meeting policy.",
    ),
    "default_timezone": (
        "Europe/Moscow",
        schedule.timezone,
        "Zone for floating times and all-day events (IANA name).",
    ),
    "default_topic": ("Видеовстреча", str, "Meeting subject when the event has none."),
    "scope": (
        "https://graph.microsoft.com/.default",
        str,
        "OAuth scope asked for with the client credentials.",
    ),
}

CAPABILITIES = Capabilities(network=True, schedule=True, deterministic_ids=True, options=True)
OPTION_WORDS = (
    OptionWord(
        "lobby",
        "everyone",
        ("no-lobby", "без-лобби", "everyone", "все"),
        {"ru": "все входят сразу", "en": "everyone joins directly"},
    ),
    OptionWord(
        "lobby",
        "organization",
        ("organization", "организация", "external-lobby", "внешние"),
        {"ru": "лобби для внешних участников", "en": "lobby for people outside"},
    ),
    OptionWord(
        "lobby",
        "invited",
        ("invited", "приглашённые", "приглашенные"),
        {"ru": "лобби для неприглашённых", "en": "lobby for the uninvited"},
    ),
    OptionWord(
        "lobby",
        "organizer",
        ("lobby", "лобби", "organizer", "организатор"),
        {"ru": "лобби для всех, кроме организатора", "en": "lobby for all but the organizer"},
    ),
)


def _iso(timestamp: int) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Teams(Provider):
    name = "teams"
    capabilities = CAPABILITIES

    def __init__(
        self,
        graph_url: str,
        token_url: str,
        client_id: str,
        secret: Secret,
        timeout: float,
        *,
        user: str = "{organizer}",
        fallback_user: str = "",
        lobby_bypass: str = "",
        zone: Any = None,
        default_topic: str = "Видеовстреча",
        scope: str = "https://graph.microsoft.com/.default",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = ApiClient(graph_url, {}, timeout, self.name)
        form = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": secret.value,
            "scope": scope,
        }

        def request(client: ApiClient) -> Answer:
            return client.call("POST", "", form=form, ok=(200,))

        self.tokens = TokenCache(
            ApiClient(token_url, {}, timeout, self.name), request, clock, "teams"
        )
        self.user = user or "{organizer}"
        self.fallback_user = fallback_user
        self.lobby_bypass = lobby_bypass
        self.zone = zone or schedule.timezone("UTC")
        self.default_topic = default_topic
        self._id_key = client_id.encode()  # stable across secret rotations

    def _call(self, method: str, path: str, body: Any = None, ok=(200, 201, 204)):
        return bearer_call(self.api, self.tokens, method, path, body, ok)

    # --- what we send ------------------------------------------------------

    def external_id(self, key: EventKey) -> str:
        return f"meetplugin-{schedule.event_digest(self._id_key, key)}"

    def user_of(self, meeting: Meeting) -> str:
        organizer = meeting.organizer.strip()
        if organizer.lower().startswith("mailto:"):
            organizer = organizer[7:]
        organizer = organizer.strip().lower()
        if organizer or "{organizer}" not in self.user:
            user = self.user.replace("{organizer}", organizer)
        else:
            user = self.fallback_user.replace("{user}", meeting.key.owner)
        if not user or not _USER.fullmatch(user) or "{" in user:
            raise ProviderError("rejected", provider_code="NoOrganizer")
        return user

    def _fields(self, meeting: Meeting) -> dict:
        body: dict[str, Any] = {"subject": schedule.topic(meeting.summary, self.default_topic, 255)}
        slot = schedule.slot_of(meeting, self.zone)
        if slot is not None:  # both, always: Graph needs the pair for a time change
            body["startDateTime"] = _iso(slot.start)
            body["endDateTime"] = _iso(slot.start + slot.duration)
        return body

    def _lobby(self, meeting: Meeting) -> str:
        return meeting.option("lobby", self.lobby_bypass)

    def _path(self, user: str, meeting_id: str = "") -> str:
        base = f"/users/{urllib.parse.quote(user)}/onlineMeetings"
        return f"{base}/{urllib.parse.quote(meeting_id, safe='')}" if meeting_id else base

    # --- calls -------------------------------------------------------------

    def create(self, meeting: Meeting) -> Conference:
        user = self.user_of(meeting)
        body = {"externalId": self.external_id(meeting.key), **self._fields(meeting)}
        response = self._call("POST", f"{self._path(user)}/createOrGet", body, ok=(200, 201))
        answer = self.api.json_object(response)
        meeting_id, join_url = answer.get("id"), answer.get("joinWebUrl")
        if (
            not isinstance(meeting_id, str)
            or not _ID.fullmatch(meeting_id)
            or not isinstance(join_url, str)
            or not _JOIN_URL.fullmatch(join_url)
        ):
            raise ProviderError(
                "rejected",
                status=response.status_code,
                provider_code="BadMeeting",
                temporary=True,
                maybe_done=True,
            )
        if response.status_code == 200:
            logger.info("meetplugin: teams: the meeting existed already (an earlier try made it)")
        extra = {"user": user}
        lobby = self._lobby(meeting)
        if lobby:  # createOrGet takes no lobby: set it at once (a retry repeats both, safely)
            self._call(
                "PATCH", self._path(user, meeting_id), {"lobbyBypassSettings": {"scope": lobby}}
            )
            extra["lobby"] = lobby
        return Conference(self.name, meeting_id, join_url, extra)

    def update(self, conference: Conference, meeting: Meeting) -> Conference:
        user = conference.extra.get("user") or self.user_of(meeting)
        body = self._fields(meeting)
        lobby = self._lobby(meeting)
        extra = dict(conference.extra)
        if lobby and lobby != extra.get("lobby", ""):
            body["lobbyBypassSettings"] = {"scope": lobby}
            extra["lobby"] = lobby
        self._call("PATCH", self._path(user, conference.conference_id), body, ok=(200, 204))
        return Conference(conference.provider, conference.conference_id, conference.join_url, extra)

    def delete(self, conference: Conference) -> None:
        user = conference.extra.get("user", "")
        if not user:
            raise ProviderError("rejected", provider_code="NoOrganizer")
        self._call("DELETE", self._path(user, conference.conference_id), ok=(200, 204, 404))

    def check(self) -> str:
        """A token request proves the tenant, client id and secret; nothing is created."""
        self.tokens.get()
        return "the application access policy is checked with the first meeting of each user"


def build(options: Mapping[str, Any], ctx: BuildContext) -> Teams:
    where = "[provider:teams]"
    tenant = options["tenant_id"].strip()
    if not tenant or not _TENANT.fullmatch(tenant):
        raise ConfigError(
            f"{where} has no tenant_id: copy the Directory (tenant) id of your "
            "Microsoft Entra ID tenant here"
        )
    if not options["client_id"].strip():
        raise ConfigError(
            f"{where} has no client_id: register an application in Microsoft Entra ID "
            "and copy its Application (client) id here"
        )
    secret = read_secret(
        options["client_secret_file"], options["client_secret_env"], "Teams client secret"
    )
    if not secret:
        raise ConfigError(
            f"{where} has no client secret: set client_secret_file, or put it in the "
            f"environment variable {options['client_secret_env'] or 'TEAMS_CLIENT_SECRET'}"
        )
    token_url = (
        options["token_url"].strip()
        or f"https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"
    )
    return Teams(
        options["graph_url"],
        token_url,
        options["client_id"].strip(),
        secret,
        ctx.timeout,
        user=options["user"],
        fallback_user=options["fallback_user"],
        lobby_bypass=options["lobby_bypass"],
        zone=options["default_timezone"],
        default_topic=options["default_topic"],
        scope=options["scope"],
    )


PLUGIN = ProviderPlugin(
    name="teams",
    labels={"ru": "Microsoft Teams", "en": "Microsoft Teams"},
    keywords=("teams", "тимс", "msteams"),
    options=OPTIONS,
    build=build,
    capabilities=lambda options: CAPABILITIES,
    option_words=OPTION_WORDS,
)
