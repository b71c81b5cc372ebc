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
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

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
from radicale_meetplugin.providers.http import ApiClient

if TYPE_CHECKING:
    import requests

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


def conference_type(value: str) -> int:
    number = int(value)
    if number not in (0, 1, 3):
        raise ValueError("0 (all on screen), 1 (video lecture) or 3 (role-based)")
    return number


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
        "How an attendee's address becomes a TrueConf user id: local_part "
        "(ivan@example.ru -> ivan), email (the whole address) or none (no invitations).",
    ),
    "conference_type": (
        "0",
        conference_type,
        "Conference mode: 0 all on screen, 1 video lecture, 3 role-based.",
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


class _TokenCache:
    """One access token shared by all threads; fetched again shortly before it expires."""

    def __init__(
        self, client: ApiClient, client_id: str, secret: Secret, clock: Callable[[], float]
    ) -> None:
        self.client = client
        self.client_id = client_id
        self.secret = secret
        self.clock = clock
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

    def _fetch(self) -> tuple[str, float]:
        form = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self.secret.value,
        }
        try:
            response = self.client.call("POST", "", form=form, ok=(200,))
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
        lifetime = body.get("expires_in", 3600)
        if isinstance(lifetime, bool) or not isinstance(lifetime, (int, float)) or lifetime <= 0:
            lifetime = 3600
        self.fetched += 1
        logger.info("meetplugin: trueconf: access token obtained (valid %d s)", int(lifetime))
        return token, float(lifetime)


CAPABILITIES = Capabilities(network=True, schedule=True, deterministic_ids=True, options=True)
# Per event, after the keyword ("trueconf:селектор+гости"): the seed's modes — all on
# screen (up to 36) and the video selector (up to 1600; TrueConf's role-based type 3,
# unconfirmed) — a lecture (asymmetric), and guest access.
OPTION_WORDS = (
    OptionWord(
        "mode",
        "0",
        ("all-on-screen", "все-на-экране", "symmetric"),
        {"ru": "все на экране, до 36 участников", "en": "everyone on screen, up to 36"},
    ),
    OptionWord(
        "mode",
        "1",
        ("lecture", "лекция", "asymmetric"),
        {"ru": "лектор и слушатели", "en": "a speaker and listeners"},
    ),
    OptionWord(
        "mode",
        "3",
        ("selector", "селектор", "role-based"),
        {"ru": "видеоселектор, до 1600 участников", "en": "video selector, up to 1600"},
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
        conference_type: int = 0,
        zone: Any = None,
        default_topic: str = "Видеовстреча",
        id_prefix: str = "meet_",
        clock: Callable[[], float] = time.monotonic,
        page_size: int = 100,
    ) -> None:
        self.api = ApiClient(api_url, {}, timeout, self.name)
        self.tokens = _TokenCache(
            ApiClient(token_url, {}, timeout, self.name), client_id, secret, clock
        )
        self.join_url_base = join_url_base
        self.owner = owner
        self.invite = invite
        self.conference_type = conference_type
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

    def invitations(self, meeting: Meeting) -> list[dict] | None:
        if self.invite == "none":
            return None
        ids = (
            a.split("@", 1)[0] if self.invite == "local_part" else a
            for a in schedule.addresses(meeting)
        )
        return [{"id": i} for i in dict.fromkeys(ids) if i]

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
    ) -> requests.Response:
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

    def _conference(self, response: requests.Response, expected: str) -> Conference:
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
            "type": int(meeting.option("mode", str(self.conference_type))),
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
    return TrueConf(
        _derived(options["api_url"], server, "/api/v3.11"),
        _derived(options["token_url"], server, "/oauth2/v1/token"),
        join,
        options["client_id"].strip(),
        secret,
        ctx.timeout,
        owner=options["owner"],
        invite=options["invite"],
        conference_type=options["conference_type"],
        zone=options["default_timezone"],
        default_topic=options["default_topic"],
        id_prefix=options["id_prefix"],
    )


PLUGIN = ProviderPlugin(
    name="trueconf",
    labels={"ru": "TrueConf", "en": "TrueConf"},
    keywords=("trueconf", "труконф"),
    options=OPTIONS,
    build=build,
    capabilities=lambda options: CAPABILITIES,
    option_words=OPTION_WORDS,
)
