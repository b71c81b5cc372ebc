"""TrueConf Server: OAuth client credentials, conferences with a schedule.

- Token: ``POST <server>/oauth2/v1/token`` (form: grant_type=client_credentials,
  client_id, client_secret) -> ``access_token``, ``expires_in``. Cached until
  shortly before it expires; renewed then, or when the API answers 401 (the
  call is repeated once with the new token).
- ``POST /conferences`` with an id we choose: an HMAC of (owner, calendar, UID)
  keyed by the client secret. A retry of a create that got no answer therefore
  asks for the same id; "already exists" means our first try worked, and the
  conference is read with ``GET /conferences/{id}``. Never two conferences.
- ``PUT /conferences/{id}`` when the event's time, title or attendees change.
- ``DELETE /conferences/{id}``: 200/204, and 404 counts as deleted.
- Join link ``https://<server>/c/<id>``.
- A series (RRULE, RDATE, overrides) gets a conference without a schedule
  (``schedule.type = -1``, a permanent room): the same link works for every
  occurrence. Single events get a one-time schedule (``type = 1``).
- Users' own accounts (``user_token_dir``): a user signs in once (OAuth
  authorization code at ``<server>/oauth2/authorize``); the code is exchanged
  at ``<server>/api/v4/oauth2/token`` for a refresh token, which is stored and
  renews their access tokens (a rotated one replaces the stored one).
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

from radicale_meetplugin.config import ConfigError, Schema, Secret, csv, read_secret
from radicale_meetplugin.core.model import Conference, EventKey, Meeting
from radicale_meetplugin.providers import schedule
from radicale_meetplugin.providers.base import (
    BuildContext,
    Capabilities,
    OptionWord,
    Provider,
    ProviderError,
    ProviderPlugin,
    UserCredentials,
)
from radicale_meetplugin.providers.http import Answer, ApiClient
from radicale_meetplugin.providers.oauth import TokenCache
from radicale_meetplugin.providers.users import CredentialError, write_private

logger = logging.getLogger("radicale.meetplugin")

_ID = re.compile(r"[A-Za-z0-9_]{1,128}")
_PREFIX = re.compile(r"[A-Za-z0-9_]{0,64}")
_TOKEN = re.compile(r"[\x21-\x7e]{1,4096}")  # printable, no spaces: safe in a header
INVITE_MODES = ("local_part", "email", "none")
MAX_PAGES = 10_000


def invite_mode(value: str) -> str:
    value = value.strip().lower()
    if value not in INVITE_MODES:
        raise ValueError(f"one of {', '.join(INVITE_MODES)}")
    return value


def id_prefix(value: str) -> str:
    value = value.strip()
    if not _PREFIX.fullmatch(value):
        raise ValueError("at most 64 of A-Z, a-z, 0-9 and _")
    return value


# The seed's modes (004: "все на экране", "видеоселектор") and TrueConf's other two, by
# the value each API generation takes: v3 ``type`` (a number, from public client code),
# v4 ``mode`` (from TrueConf's own public API client: "All on screen" PxP, "Video
# lecture" OxP, "Moderated role-based" S|L, "Smart meeting" S|L Auto — the voice-
# activated video selector). v3 has no separate number for the selector known to us.
MODES: dict[str, dict[str, str]] = {
    "all_on_screen": {"type": "0", "mode": "PxP"},
    "selector": {"type": "3", "mode": "S|L Auto"},
    "moderated": {"type": "3", "mode": "S|L"},
    "lecture": {"type": "1", "mode": "OxP"},
}
_LEGACY_TYPES = {"0": "all_on_screen", "1": "lecture", "3": "moderated"}
MODE_FIELDS = ("type", "mode")


def conference_type(value: str) -> str:
    """The default mode: a mode name, or the v3 number it used to be (0, 1, 3)."""
    value = value.strip().lower().replace("-", "_")
    if value in MODES:
        return value
    if value in _LEGACY_TYPES:
        return _LEGACY_TYPES[value]
    raise ValueError(
        "0 (all on screen), 1 (video lecture) or 3 (role-based), or one of " + ", ".join(MODES)
    )


def mode_field(value: str) -> str:
    value = value.strip().lower()
    if value not in MODE_FIELDS:
        raise ValueError("type (API v3) or mode (API v4)")
    return value


def mode_values(value: str) -> dict[str, str]:
    """`selector=3, lecture=1`: the value sent for each mode, where the built-in one is wrong."""
    out: dict[str, str] = {}
    for part in csv(value):
        name, _, sent = part.partition("=")
        name = name.strip().lower().replace("-", "_")
        if name not in MODES or not sent.strip():
            raise ValueError(f"pairs mode=value, modes: {', '.join(MODES)}")
        out[name] = sent.strip()
    return out


OPTIONS: Schema = {
    "server_url": ("", str, "TrueConf Server, e.g. https://tc.example.ru (required)."),
    "api_url": ("", str, "API base URL. Empty: <server_url>/api/v3.11."),
    "token_url": ("", str, "OAuth token endpoint. Empty: <server_url>/oauth2/v1/token."),
    "join_url_base": (
        "",
        str,
        "Start of join links; the conference id follows. Empty: <server_url>/c/.",
    ),
    "client_id": ("", str, "OAuth application id (made in the server's control panel)."),
    "client_secret_file": ("", str, "File holding the OAuth client secret (chmod 600)."),
    "client_secret_env": (
        "TRUECONF_CLIENT_SECRET",
        str,
        "Environment variable holding the client secret, used when client_secret_file is empty.",
    ),
    "user_token_dir": (
        "",
        str,
        "Folder with one refresh token per Radicale user (<user>.token, chmod 600; "
        "`meetplugin token trueconf --user U` signs the user in and writes it): their "
        "conferences are made with their own TrueConf account; the service account "
        "(client credentials) stays the fallback.",
    ),
    "redirect_uri": (
        "",
        str,
        "Redirect URI registered with the OAuth application, for users' sign-in; the "
        "code is read from the address the browser lands on.",
    ),
    "authorize_url": (
        "",
        str,
        "Where a user signs in (authorization code). Empty: <server_url>/oauth2/authorize.",
    ),
    "user_token_url": (
        "",
        str,
        "Token endpoint of users' sign-in and refresh (JSON). Empty: "
        "<server_url>/api/v4/oauth2/token.",
    ),
    "owner": (
        "{user}",
        str,
        "Conference owner (a TrueConf user id): {user} is the Radicale user name, "
        "{organizer} the organizer's address, {organizer_local} its part before @. "
        "Empty: not sent (the server decides).",
    ),
    "invite": (
        "local_part",
        invite_mode,
        "How an attendee's address in org_domains becomes a TrueConf user id: local_part "
        "(ivan@example.ru -> ivan), email (the whole address) or none (no invitations).",
    ),
    "org_domains": (
        "",
        csv,
        "Mail domains whose people are TrueConf users of this server; only they are "
        "invited. Others (a partner's ivan.petrov@partner.ru) are not invited: they "
        "join by the link. Empty: the organizer's domain.",
    ),
    "conference_type": (
        "all_on_screen",
        conference_type,
        "Default mode: all_on_screen (все на экране, up to 36), selector (видеоселектор, "
        "up to 1600), moderated (role-based), lecture; 0, 1 and 3 are read as "
        "all_on_screen, lecture and moderated.",
    ),
    "mode_field": (
        "type",
        mode_field,
        "How the mode is sent: type (a number, API v3.x) or mode (PxP, OxP, S|L, "
        "S|L Auto: API v4, set api_url to <server_url>/api/v4).",
    ),
    "mode_values": (
        "",
        mode_values,
        "Values sent for the modes where the built-in ones do not fit the server, e.g. "
        "selector=3 (the v3 number of the video selector is unconfirmed).",
    ),
    "default_timezone": (
        "Europe/Moscow",
        schedule.timezone,
        "Zone for floating times and all-day events (IANA name).",
    ),
    "default_topic": ("Видеовстреча", str, "Conference title when the event has none."),
    "id_prefix": (
        "meet_",
        id_prefix,
        "Start of every conference id we make; `meetplugin reconcile` lists only "
        "conferences with it.",
    ),
}


class _TokenCache(TokenCache):
    """The server's access token (client credentials); users' caches change the grant."""

    def __init__(
        self, client: ApiClient, client_id: str, secret: Secret, clock: Callable[[], float]
    ) -> None:
        super().__init__(client, self._ask, clock, "trueconf")
        self.client_id = client_id
        self.secret = secret

    def grant(self) -> tuple[dict[str, str], bool]:
        """The token request's fields, and whether they go as JSON (else a form)."""
        fields = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self.secret.value,
        }
        return fields, False

    def _ask(self, client: ApiClient) -> Answer:
        fields, as_json = self.grant()
        return client.call(
            "POST", "", fields if as_json else None, form=None if as_json else fields, ok=(200,)
        )

    def lifetime(self, body: dict) -> float:
        return _lifetime(body)


def _lifetime(body: dict) -> float:
    lifetime = body.get("expires_in", 3600)
    if isinstance(lifetime, bool) or not isinstance(lifetime, (int, float)) or lifetime <= 0:
        lifetime = 3600
    return float(lifetime)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class _UserTokens(_TokenCache):
    """One user's access tokens, from their refresh token (OAuth authorization code).

    A renewed refresh token (the server may rotate it) replaces the stored one in the
    user's file, so a restart goes on with it. The caches live in `_USER_TOKENS`,
    keyed by a digest of the refresh token: the account rebuilt when that file
    changes finds its cache, access token included, instead of renewing again.
    """

    def __init__(
        self,
        client: ApiClient,
        client_id: str,
        secret: Secret,
        refresh: str,
        clock: Callable[[], float],
        path: str = "",
    ) -> None:
        super().__init__(client, client_id, secret, clock)
        self.refresh = refresh
        self.path = path

    def grant(self) -> tuple[dict[str, str], bool]:
        fields = {
            "grant_type": "refresh_token",
            "refresh_token": self.refresh,
            "client_id": self.client_id,
            "client_secret": self.secret.value,
        }
        return fields, True  # JSON, as TrueConf's own client sends it

    def accepted(self, body: dict) -> None:
        new = body.get("refresh_token")
        if not isinstance(new, str) or not _TOKEN.fullmatch(new) or new == self.refresh:
            return
        self.refresh = new
        with _USER_LOCK:
            _USER_TOKENS[_digest(new)] = self
        if not self.path:
            return
        try:
            write_private(self.path, (new + "\n").encode())
        except (CredentialError, OSError) as e:
            logger.warning(
                "meetplugin: trueconf: the renewed refresh token could not be stored in %s "
                "(%s); after a restart the user must sign in again",
                self.path,
                e,
            )


_USER_TOKENS: dict[str, _UserTokens] = {}  # digest of a refresh token -> its cache
_USER_LOCK = threading.Lock()


CAPABILITIES = Capabilities(network=True, schedule=True, deterministic_ids=True, options=True)
# Per event, after the keyword ("trueconf:видеоселектор+гости"): the modes as seed 004
# names them — all on screen (up to 36, 49 on request), the video selector (up to
# 1 600) —, TrueConf's moderated role-based mode and the lecture, and guest access.
OPTION_WORDS = (
    OptionWord(
        "mode",
        "all_on_screen",
        ("все-на-экране", "все на экране", "all-on-screen", "all on screen", "symmetric"),
        {
            "ru": "все на экране: до 36 участников (49 по запросу)",
            "en": "all on screen: up to 36 participants (49 on request)",
        },
    ),
    OptionWord(
        "mode",
        "selector",
        ("видеоселектор", "селектор", "video-selector", "selector", "video selector"),
        {
            "ru": "видеоселектор: до 1 600 участников, на экране говорящие",
            "en": "video selector: up to 1,600 participants, the speakers on screen",
        },
    ),
    OptionWord(
        "mode",
        "moderated",
        ("ролевая", "модерируемая", "role-based", "moderated"),
        {
            "ru": "ролевая: модератор решает, кто выступает",
            "en": "role-based: a moderator decides who speaks",
        },
    ),
    OptionWord(
        "mode",
        "lecture",
        ("лекция", "видеолекция", "lecture", "asymmetric"),
        {
            "ru": "лекция: лектор видит всех, слушатели — лектора",
            "en": "lecture: the speaker sees everyone, listeners see the speaker",
        },
    ),
    OptionWord(
        "guests",
        "yes",
        ("guests", "гости"),
        {"ru": "гостевой доступ", "en": "guest access"},
    ),
)


class TrueConf(Provider):
    name = "trueconf"
    capabilities = CAPABILITIES

    def __init__(
        self,
        api_url: str,
        token_url: str,
        join_url_base: str,
        client_id: str,
        secret: Secret,
        timeout: float,
        *,
        owner: str = "{user}",
        invite: str = "local_part",
        org_domains: tuple[str, ...] = (),
        conference_type: str = "all_on_screen",
        mode_field: str = "type",
        mode_values: Mapping[str, str] | None = None,
        zone: Any = None,
        default_topic: str = "Видеовстреча",
        id_prefix: str = "meet_",
        clock: Callable[[], float] = time.monotonic,
        page_size: int = 100,
        tokens: _TokenCache | None = None,
    ) -> None:
        self.api = ApiClient(api_url, {}, timeout, self.name)
        self.tokens = tokens or _TokenCache(
            ApiClient(token_url, {}, timeout, self.name), client_id, secret, clock
        )
        self.join_url_base = join_url_base
        self.owner = owner
        self.invite = invite
        self.org_domains = tuple(d.strip().lower().lstrip("@") for d in org_domains if d.strip())
        self.conference_type = conference_type
        self.mode_field = mode_field
        self.mode_values = {n: v[mode_field] for n, v in MODES.items()}
        self.mode_values.update(mode_values or {})
        self.zone = zone or schedule.timezone("UTC")
        self.default_topic = default_topic
        self.id_prefix = id_prefix
        self.page_size = page_size
        self._id_key = secret.value.encode()

    # --- what we send ------------------------------------------------------

    def conference_id(self, key: EventKey) -> str:
        return f"{self.id_prefix}{schedule.event_digest(self._id_key, key)}"

    def join_url(self, conference_id: str) -> str:
        return f"{self.join_url_base}{conference_id}"

    def schedule(self, meeting: Meeting) -> dict:
        slot = None if meeting.repeats else schedule.slot_of(meeting, self.zone)
        if slot is None:  # a series, or no start: a permanent room
            return {"type": -1}
        return {
            "type": 1,
            "start_time": slot.start,
            "duration": slot.duration,
            "time_offset": slot.offset,
        }

    def domains(self, meeting: Meeting) -> tuple[str, ...]:
        """The organisation's mail domains: configured, else the organizer's."""
        if self.org_domains:
            return self.org_domains
        organizer = meeting.organizer.strip().lower().removeprefix("mailto:")
        return (organizer.rpartition("@")[2],) if "@" in organizer else ()

    def invitations(self, meeting: Meeting) -> list[dict] | None:
        """TrueConf ids of the attendees in the organisation's domains.

        Anyone else (ivan.petrov@partner.ru) is no user of this server: taking their
        local part would invite a stranger who happens to be called ivan.petrov here.
        They are not invited (the API takes user ids; e-mail invitations of outsiders
        are not in what we know of it) and join by the link.
        """
        if self.invite == "none":
            return None
        domains = self.domains(meeting)
        ids = (
            a.rpartition("@")[0] if self.invite == "local_part" else a
            for a in schedule.addresses(meeting)
            if a.rpartition("@")[2] in domains
        )
        return [{"id": i} for i in dict.fromkeys(ids) if i]

    def mode(self, meeting: Meeting) -> int | str:
        """The value of `type` (a number) or `mode` (a name) for the event's mode."""
        name = meeting.option("mode", self.conference_type)
        value = self.mode_values.get(name) or self.mode_values[self.conference_type]
        if self.mode_field == "type":
            try:
                return int(value)
            except ValueError:
                return value
        return value

    def owner_of(self, meeting: Meeting) -> str:
        organizer = meeting.organizer.strip()
        if organizer.lower().startswith("mailto:"):
            organizer = organizer[7:]
        return (
            self.owner.replace("{user}", meeting.key.owner)
            .replace("{organizer_local}", organizer.split("@", 1)[0])
            .replace("{organizer}", organizer)
        ).strip()

    def _fields(self, meeting: Meeting) -> dict:
        body: dict = {
            "topic": schedule.topic(meeting.summary, self.default_topic),
            "schedule": self.schedule(meeting),
        }
        invitations = self.invitations(meeting)
        if invitations is not None:
            body["invitations"] = invitations
        if meeting.option("guests"):
            body["allow_guests"] = meeting.option("guests") == "yes"
        return body

    # --- calls -------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        ok=(200, 201, 204),
        params: Mapping[str, Any] | None = None,
    ) -> Answer:
        """An API call with the cached token; a 401 renews it and tries once more."""
        token = self.tokens.get()
        try:
            return self.api.call(
                method, path, body, ok, params=params, headers={"Authorization": f"Bearer {token}"}
            )
        except ProviderError as e:
            if e.status != 401:
                raise
        logger.info("meetplugin: trueconf: the API refused the access token; renewing it")
        self.tokens.invalidate(token)
        token = self.tokens.get()
        return self.api.call(
            method, path, body, ok, params=params, headers={"Authorization": f"Bearer {token}"}
        )

    def _conference(self, response: Answer, expected: str) -> Conference:
        body = self.api.json_object(response)
        inner = body.get("conference", body)
        if not isinstance(inner, dict):
            raise ProviderError(
                "rejected",
                status=response.status_code,
                provider_code="BadConference",
                temporary=True,
                maybe_done=True,
            )
        conf_id = inner.get("id", expected)
        if not isinstance(conf_id, str) or not _ID.fullmatch(conf_id):
            raise ProviderError(
                "rejected",
                status=response.status_code,
                provider_code="BadConference",
                temporary=True,
                maybe_done=True,
            )
        if conf_id != expected:
            logger.warning(
                "meetplugin: trueconf: the server chose the id %s instead of %s; "
                "a retry could not be recognised",
                conf_id,
                expected,
            )
        schedule_type = (
            inner.get("schedule", {}).get("type")
            if isinstance(inner.get("schedule"), dict)
            else None
        )
        extra = (
            {"schedule": "none" if schedule_type == -1 else "once"}
            if schedule_type in (-1, 1)
            else {}
        )
        return Conference(self.name, conf_id, self.join_url(conf_id), extra)

    def _post(self, meeting: Meeting, conf_id: str) -> Conference:
        body = {
            "id": conf_id,
            **self._fields(meeting),
            self.mode_field: self.mode(meeting),
        }
        owner = self.owner_of(meeting)
        if owner:
            body["owner"] = owner
        try:
            response = self._call("POST", "/conferences", body, ok=(200, 201))
        except ProviderError as e:
            if not self._exists(e):
                raise
            # Our earlier try (its answer lost) made it: read it, don't make another.
            logger.info(
                "meetplugin: trueconf: conference %s exists already (an earlier try "
                "made it); using it",
                conf_id,
            )
            response = self._call("GET", f"/conferences/{conf_id}", ok=(200,))
        return self._conference(response, conf_id)

    @staticmethod
    def _exists(error: ProviderError) -> bool:
        code = error.provider_code.lower()
        return error.status == 409 or (error.status == 400 and "exist" in code)

    def create(self, meeting: Meeting) -> Conference:
        return self._post(meeting, self.conference_id(meeting.key))

    def update(self, conference: Conference, meeting: Meeting) -> Conference:
        conf_id = conference.conference_id
        try:
            response = self._call(
                "PUT", f"/conferences/{conf_id}", self._fields(meeting), ok=(200, 201, 204)
            )
        except ProviderError as e:
            if e.status != 404:
                raise
            # Deleted at the server while the event still shows its link: the same id
            # makes the same link work again.
            logger.warning("meetplugin: trueconf: conference %s was gone; made again", conf_id)
            return self._post(meeting, conf_id)
        if response.status_code == 204 or not response.content:
            return conference
        updated = self._conference(response, conf_id)
        return Conference(
            self.name, conf_id, conference.join_url, {**conference.extra, **updated.extra}
        )

    def delete(self, conference: Conference) -> None:
        self._call("DELETE", f"/conferences/{conference.conference_id}", ok=(200, 204, 404))

    def check(self) -> str:
        """A token request (the client id and secret), then one read with that token."""
        self.tokens.get()
        self._call("GET", "/conferences", ok=(200,), params={"page_id": 1, "page_size": 1})
        return ""

    def list_conferences(self) -> list[str] | None:
        """Ids of the conferences we made (those with our id prefix), every page."""
        ids: list[str] = []
        page: Any = 1
        seen: set = set()
        for _ in range(MAX_PAGES):
            seen.add(page)
            response = self._call(
                "GET",
                "/conferences",
                ok=(200,),
                params={"page_id": page, "page_size": self.page_size},
            )
            body = self.api.json_object(response)
            items = body.get("conferences") or body.get("list") or []
            if not isinstance(items, list):
                items = []
            for item in items:
                conf_id = item.get("id") if isinstance(item, dict) else None
                if isinstance(conf_id, str) and conf_id.startswith(self.id_prefix):
                    ids.append(conf_id)
            following = body.get("next_page_id")
            if (
                not items
                or isinstance(following, bool)
                or not isinstance(following, (int, str))
                or following in (-1, "-1", "", 0)
                or following in seen
            ):
                break
            page = following
        return ids


def _derived(value: str, server: str, tail: str) -> str:
    return value.strip() or f"{server}{tail}"


def build(options: Mapping[str, Any], ctx: BuildContext) -> TrueConf:
    """The service account (client credentials): the fallback of users' own accounts."""
    server, secret, join = _checked(options)
    return _account(options, ctx, server, secret, join)


def _checked(options: Mapping[str, Any]) -> tuple[str, Secret, str]:
    """(server, client secret, join link base) of a complete section; ConfigError if not."""
    server = options["server_url"].strip().rstrip("/")
    if not server:
        raise ConfigError(
            "[provider:trueconf] has no server_url: set it to the TrueConf "
            "Server address, e.g. https://tc.example.ru"
        )
    if not server.startswith(("https://", "http://")):
        raise ConfigError("[provider:trueconf] server_url must start with https://")
    if not options["client_id"].strip():
        raise ConfigError(
            "[provider:trueconf] has no client_id: make an OAuth application in "
            "the TrueConf Server control panel and put its id here"
        )
    secret = read_secret(
        options["client_secret_file"], options["client_secret_env"], "TrueConf client secret"
    )
    if not secret:
        raise ConfigError(
            "[provider:trueconf] has no client secret: set client_secret_file, or "
            "put it in the environment variable "
            f"{options['client_secret_env'] or 'TRUECONF_CLIENT_SECRET'}"
        )
    join = _derived(options["join_url_base"], server, "/c/")
    if not join.startswith(("https://", "http://")):
        raise ConfigError("[provider:trueconf] join_url_base must start with https://")
    if not join.endswith(("/", "=")):
        join += "/"
    return server, secret, join


def _account(
    options: Mapping[str, Any],
    ctx: BuildContext,
    server: str,
    secret: Secret,
    join: str,
    tokens: _TokenCache | None = None,
) -> TrueConf:
    return TrueConf(
        _derived(options["api_url"], server, "/api/v3.11"),
        _derived(options["token_url"], server, "/oauth2/v1/token"),
        join,
        options["client_id"].strip(),
        secret,
        ctx.timeout,
        tokens=tokens,
        owner=options["owner"],
        invite=options["invite"],
        org_domains=options["org_domains"],
        conference_type=options["conference_type"],
        mode_field=options["mode_field"],
        mode_values=options["mode_values"],
        zone=options["default_timezone"],
        default_topic=options["default_topic"],
        id_prefix=options["id_prefix"],
    )


def _user_tokens(
    options: Mapping[str, Any], ctx: BuildContext, server: str, secret: Secret, refresh: str
) -> _UserTokens:
    url = _derived(options["user_token_url"], server, "/api/v4/oauth2/token")
    client_id = options["client_id"].strip()
    with _USER_LOCK:
        cache = _USER_TOKENS.get(_digest(refresh))
        if cache is None or cache.client.base_url != url.rstrip("/"):
            client = ApiClient(url, {}, ctx.timeout, "trueconf")
            cache = _USER_TOKENS[_digest(refresh)] = _UserTokens(
                client, client_id, secret, refresh, time.monotonic
            )
        return cache


def _user_account(options: Mapping[str, Any], ctx: BuildContext, refresh: Secret) -> TrueConf:
    """A user's own account: their refresh token, the OAuth application's id and secret."""
    if not _TOKEN.fullmatch(refresh.value):
        raise ConfigError("a TrueConf refresh token is one word of printable characters")
    server, secret, join = _checked(options)
    tokens = _user_tokens(options, ctx, server, secret, refresh.value)
    if refresh.source.startswith("file ") and not ctx.read_only:
        tokens.path = refresh.source[len("file ") :]  # where a renewed one is kept
    return _account(options, ctx, server, secret, join, tokens)


def _code_of(pasted: str) -> str:
    """The OAuth code: pasted alone, or in the address the browser landed on."""
    text = pasted.strip()
    if "code=" in text:
        parts = urllib.parse.urlsplit(text)
        query = urllib.parse.parse_qs(parts.query or parts.fragment or text.split("?", 1)[-1])
        text = (query.get("code") or query.get("auth_code") or [""])[0]
    elif "://" in text or "?" in text:  # an address without a code: signing in failed
        return ""
    return text


def exchange_code(options: Mapping[str, Any], ctx: BuildContext, pasted: Secret) -> Secret:
    """The user's sign-in code for their refresh token (kept) and access token (cached)."""
    server, secret, _join = _checked(options)
    redirect = options["redirect_uri"].strip()
    if not redirect:
        raise ConfigError(
            "[provider:trueconf] has no redirect_uri: register one with the OAuth application "
            "and put it here"
        )
    code = _code_of(pasted.value)
    if not _TOKEN.fullmatch(code):
        raise ConfigError("no code found in what was pasted")
    url = _derived(options["user_token_url"], server, "/api/v4/oauth2/token")
    client = ApiClient(url, {}, ctx.timeout, "trueconf")
    fields = {
        "grant_type": "authorization_code",
        "auth_code": code,  # TrueConf's name (RFC 6749 says `code`)
        "client_id": options["client_id"].strip(),
        "client_secret": secret.value,
        "redirect_uri": redirect,
    }
    body = client.json_object(client.call("POST", "", fields, ok=(200,)))
    refresh, access = body.get("refresh_token"), body.get("access_token")
    if not isinstance(refresh, str) or not _TOKEN.fullmatch(refresh):
        raise ProviderError("rejected", status=200, provider_code="NoRefreshToken")
    tokens = _user_tokens(options, ctx, server, secret, refresh)
    if isinstance(access, str) and _TOKEN.fullmatch(access):
        tokens.seed(access, _lifetime(body))  # the check that follows needs no renewal
    return Secret(refresh, "sign-in")


def token_steps(options: Mapping[str, Any], user: str, arguments: Mapping[str, str]) -> str:
    """How a user signs in: the authorization-code flow of the server's OAuth application."""
    server = options["server_url"].strip().rstrip("/")
    authorize = _derived(options["authorize_url"], server, "/oauth2/authorize")
    redirect = options["redirect_uri"].strip() or "<redirect_uri: set it in the config first>"
    query = urllib.parse.urlencode(
        {
            "client_id": options["client_id"].strip(),
            "response_type": "code",
            "redirect_uri": redirect,
        }
    )
    return f"""TrueConf sign-in for Radicale user {user!r}:
1. In a browser, open {authorize}?{query}
   and sign in as the user's TrueConf account (the OAuth application
   {options["client_id"].strip()} must allow the redirect URI {redirect}).
2. Allow access. The browser lands on {redirect}?code=...: copy the code,
   or the whole address. It is exchanged for a refresh token at once (it
   expires quickly); that token is what is stored."""


USERS = UserCredentials(
    folder_option="user_token_dir",
    build=_user_account,
    steps=token_steps,
    what="TrueConf refresh token",
    exchange=exchange_code,
    pasted="code (or the whole address)",
)

PLUGIN = ProviderPlugin(
    name="trueconf",
    labels={"ru": "TrueConf", "en": "TrueConf"},
    keywords=("trueconf", "труконф"),
    options=OPTIONS,
    build=build,
    capabilities=lambda options: CAPABILITIES,
    option_words=OPTION_WORDS,
    users=USERS,
)
