"""Zoom: Server-to-Server OAuth, scheduled meetings created, moved, renamed and deleted.

- Token: ``POST https://zoom.us/oauth/token`` with ``grant_type=account_credentials``
  and ``account_id`` (form body), Basic auth of client id and secret -> a bearer
  ``access_token`` valid ``expires_in`` (3600) seconds, no refresh token. Cached
  until shortly before it expires; renewed then, or when the API answers 401
  (the call is repeated once with the new token).
- ``POST /v2/users/{userId}/meetings`` with the organizer's address as ``userId``;
  Zoom answers 404 code 1001 when the account has no such user, and the meeting
  is then made for ``default_user`` (``me``: the app's own user, or any user id
  or address). ``topic``, ``type`` 2 with ``start_time`` (UTC), ``duration``
  (minutes) and ``timezone``; a series gets ``type`` 3 (recurring, no fixed
  time: the one link works for every occurrence). ``agenda`` carries our mark,
  ``meetplugin:<digest of the event key>``, so `meetplugin reconcile` lists only
  meetings we made. ``settings.waiting_room`` and ``default_password`` (a
  passcode Zoom generates) come from the event's option words or the config.
- ``PATCH /v2/meetings/{id}`` (204) when the time, title or options change.
- ``DELETE /v2/meetings/{id}`` (204); 404 (code 3001) counts as deleted.
- Zoom picks the meeting id: a create whose answer was lost may have made a
  meeting, so it is recorded as a suspect (as for Telemost).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

from radicale_meetplugin.config import ConfigError, Schema, Secret, boolean, csv, read_secret
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

MARK = "meetplugin:"
MAX_PAGES = 1_000
_ID = re.compile(r"[0-9]{1,20}")
_JOIN_URL = re.compile(r"https://[A-Za-z0-9.-]+(:[0-9]+)?/[A-Za-z0-9/_.?=&%-]*")
_USER = re.compile(r"[A-Za-z0-9._%+@-]{1,128}")


def user_id(value: str) -> str:
    value = value.strip()
    if value and not _USER.fullmatch(value):
        raise ValueError("a Zoom user id, an e-mail address or `me`")
    return value


OPTIONS: Schema = {
    "account_id": ("", str, "Account ID of the Server-to-Server OAuth app (required)."),
    "client_id": ("", str, "Client ID of the Server-to-Server OAuth app (required)."),
    "client_secret_file": ("", str, "File holding the app's client secret (chmod 600)."),
    "client_secret_env": (
        "ZOOM_CLIENT_SECRET",
        str,
        "Environment variable holding the client secret, used when client_secret_file is empty.",
    ),
    "api_url": ("https://api.zoom.us/v2", str, "Zoom API base URL."),
    "token_url": ("https://zoom.us/oauth/token", str, "Zoom OAuth token endpoint."),
    "default_user": (
        "me",
        user_id,
        "Host of meetings whose organizer has no user in the Zoom account: `me` (the "
        "app's own user), a user id or an address. Empty: such events get an explanation.",
    ),
    "list_users": (
        "",
        csv,
        "Users whose meetings `meetplugin reconcile` reads, besides default_user and "
        "the hosts of recorded meetings.",
    ),
    "waiting_room": (
        "yes",
        boolean,
        "Waiting room by default (an event's `zoom:без-зала` / `zoom:no-waiting-room` "
        "turns it off, `zoom:зал-ожидания` on).",
    ),
    "passcode": (
        "yes",
        boolean,
        "A passcode Zoom generates, by default (in the join link); `zoom:без-пароля` / "
        "`zoom:no-passcode` asks for none. An account that requires passcodes wins.",
    ),
    "default_timezone": (
        "Europe/Moscow",
        schedule.timezone,
        "Zone for floating times and all-day events (IANA name).",
    ),
    "default_topic": ("Видеовстреча", str, "Meeting topic when the event has none."),
}

CAPABILITIES = Capabilities(network=True, schedule=True, deterministic_ids=False, options=True)
OPTION_WORDS = (
    OptionWord(
        "waiting_room",
        "yes",
        ("waiting-room", "зал-ожидания", "зал"),
        {"ru": "с залом ожидания", "en": "with a waiting room"},
    ),
    OptionWord(
        "waiting_room",
        "no",
        ("no-waiting-room", "без-зала", "без-зала-ожидания"),
        {"ru": "без зала ожидания", "en": "no waiting room"},
    ),
    OptionWord(
        "passcode",
        "yes",
        ("passcode", "пароль", "код"),
        {"ru": "с кодом доступа", "en": "with a passcode"},
    ),
    OptionWord(
        "passcode",
        "no",
        ("no-passcode", "без-пароля", "без-кода"),
        {"ru": "без кода доступа", "en": "no passcode"},
    ),
)


def _address(value: str) -> str:
    value = value.strip()
    if value.lower().startswith("mailto:"):
        value = value[7:]
    return value.strip().lower()


class Zoom(Provider):
    name = "zoom"
    capabilities = CAPABILITIES

    def __init__(
        self,
        api_url: str,
        token_url: str,
        account_id: str,
        client_id: str,
        secret: Secret,
        timeout: float,
        *,
        default_user: str = "me",
        list_users: tuple[str, ...] = (),
        waiting_room: bool = True,
        passcode: bool = True,
        zone: Any = None,
        default_topic: str = "Видеовстреча",
        clock: Callable[[], float] = time.monotonic,
        page_size: int = 300,
    ) -> None:
        self.api = ApiClient(api_url, {}, timeout, self.name)
        form = {"grant_type": "account_credentials", "account_id": account_id}

        def request(client: ApiClient) -> Answer:
            return client.call("POST", "", form=form, ok=(200,), auth=(client_id, secret.value))

        self.tokens = TokenCache(
            ApiClient(token_url, {}, timeout, self.name), request, clock, "zoom"
        )
        self.default_user = default_user
        self.list_users = list_users
        self.waiting_room = waiting_room
        self.passcode = passcode
        self.zone = zone or schedule.timezone("UTC")
        self.default_topic = default_topic
        self.page_size = page_size
        self._id_key = secret.value.encode()
        self._not_users: set[str] = set()  # addresses Zoom said it has no user for
        self._hosts: set[str] = set()  # users we made meetings for (for listing)

    def _call(self, method: str, path: str, body: Any = None, ok=(200, 201, 204), params=None):
        return bearer_call(self.api, self.tokens, method, path, body, ok, params)

    # --- what we send ------------------------------------------------------

    def mark(self, key: EventKey) -> str:
        return f"{MARK}{schedule.event_digest(self._id_key, key)}"

    def _fields(self, meeting: Meeting) -> dict:
        body: dict[str, Any] = {"topic": schedule.topic(meeting.summary, self.default_topic, 200)}
        slot = None if meeting.repeats else schedule.slot_of(meeting, self.zone)
        if slot is None:  # a series, or no start: a meeting with no fixed time
            body["type"] = 3
        else:
            start = dt.datetime.fromtimestamp(slot.start, dt.UTC)
            body.update(
                type=2,
                start_time=start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                duration=max(1, -(-slot.duration // 60)),
                timezone=self._zone_name(meeting),
            )
        waiting = meeting.option("waiting_room", "yes" if self.waiting_room else "no")
        body["settings"] = {"waiting_room": waiting == "yes"}
        return body

    def _zone_name(self, meeting: Meeting) -> str:
        if meeting.tzid:
            try:
                return schedule.timezone(meeting.tzid).key
            except ValueError:
                pass
        return str(getattr(self.zone, "key", "UTC"))

    def _hosts_for(self, meeting: Meeting) -> list[str]:
        organizer = _address(meeting.organizer)
        hosts = []
        if organizer and _USER.fullmatch(organizer) and organizer not in self._not_users:
            hosts.append(organizer)
        if self.default_user and self.default_user not in hosts:
            hosts.append(self.default_user)
        return hosts

    # --- calls -------------------------------------------------------------

    def create(self, meeting: Meeting) -> Conference:
        body = {
            **self._fields(meeting),
            "agenda": self.mark(meeting.key),
            "default_password": meeting.option("passcode", "yes" if self.passcode else "no")
            == "yes",
        }
        hosts = self._hosts_for(meeting)
        if not hosts:
            raise ProviderError("rejected", status=404, provider_code="1001")
        for host in hosts:
            try:
                response = self._call(
                    "POST", f"/users/{urllib.parse.quote(host)}/meetings", body, ok=(201, 200)
                )
            except ProviderError as e:
                if e.status == 404 and e.provider_code == "1001" and host != hosts[-1]:
                    # The organizer has no user in this account: the default user hosts it.
                    logger.info(
                        "meetplugin: zoom: the organizer has no Zoom user; using the default"
                    )
                    self._not_users.add(host)
                    continue
                raise
            return self._conference(response, host)
        raise AssertionError("unreachable")

    def _conference(self, response: Answer, host: str) -> Conference:
        answer = self.api.json_object(response)
        meeting_id, join_url = answer.get("id"), answer.get("join_url")
        meeting_id = str(meeting_id) if isinstance(meeting_id, int) else meeting_id
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
        self._hosts.add(host)
        return Conference(self.name, meeting_id, join_url, {"host": host})

    def update(self, conference: Conference, meeting: Meeting) -> Conference:
        self._call("PATCH", f"/meetings/{conference.conference_id}", self._fields(meeting))
        return conference

    def delete(self, conference: Conference) -> None:
        self._call("DELETE", f"/meetings/{conference.conference_id}", ok=(200, 204, 404))

    def check(self) -> str:
        """A token request (account id, client id and secret), then one read with it."""
        self.tokens.get()
        host = self.default_user or "me"
        self._call(
            "GET", f"/users/{urllib.parse.quote(host)}/meetings", ok=(200,), params={"page_size": 1}
        )
        return ""

    def list_conferences(self) -> list[str] | None:
        """Ids of the meetings with our mark, of every host we know of, every page."""
        hosts = dict.fromkeys(
            h for h in (self.default_user, *self.list_users, *sorted(self._hosts)) if h
        )
        ids: list[str] = []
        for host in hosts:
            token = ""
            for _ in range(MAX_PAGES):
                params: dict[str, Any] = {"type": "scheduled", "page_size": self.page_size}
                if token:
                    params["next_page_token"] = token
                response = self._call(
                    "GET", f"/users/{urllib.parse.quote(host)}/meetings", ok=(200,), params=params
                )
                body = self.api.json_object(response)
                items = body.get("meetings")
                for item in items if isinstance(items, list) else []:
                    if not isinstance(item, dict):
                        continue
                    agenda = item.get("agenda")
                    if isinstance(agenda, str) and agenda.startswith(MARK):
                        ids.append(str(item.get("id")))
                following = body.get("next_page_token")
                if not isinstance(following, str) or not following or following == token:
                    break
                token = following
        return ids


def build(options: Mapping[str, Any], ctx: BuildContext) -> Zoom:
    where = "[provider:zoom]"
    for name in ("account_id", "client_id"):
        if not options[name].strip():
            raise ConfigError(
                f"{where} has no {name}: make a Server-to-Server OAuth app in the Zoom "
                "App Marketplace and copy its account id and client id here"
            )
    secret = read_secret(
        options["client_secret_file"], options["client_secret_env"], "Zoom client secret"
    )
    if not secret:
        raise ConfigError(
            f"{where} has no client secret: set client_secret_file, or put it in the "
            f"environment variable {options['client_secret_env'] or 'ZOOM_CLIENT_SECRET'}"
        )
    return Zoom(
        options["api_url"],
        options["token_url"],
        options["account_id"].strip(),
        options["client_id"].strip(),
        secret,
        ctx.timeout,
        default_user=options["default_user"],
        list_users=options["list_users"],
        waiting_room=options["waiting_room"],
        passcode=options["passcode"],
        zone=options["default_timezone"],
        default_topic=options["default_topic"],
    )


PLUGIN = ProviderPlugin(
    name="zoom",
    labels={"ru": "Zoom", "en": "Zoom"},
    keywords=("zoom", "зум"),
    options=OPTIONS,
    build=build,
    capabilities=lambda options: CAPABILITIES,
    option_words=OPTION_WORDS,
)
