"""Nextcloud Talk: a public conversation per event through the OCS API, Basic auth.

- Every request: ``OCS-APIRequest: true``, ``Accept: application/json``, Basic
  auth of a Nextcloud login and an app password (a service user's, or the
  event owner's own, stored with `meetplugin token talk`). Answers are wrapped:
  ``{"ocs": {"meta": {...}, "data": ...}}``.
- ``POST <server>/ocs/v2.php/apps/spreed/api/v4/room`` ``{roomType: 3, roomName,
  description}`` (3: public, joinable by link) -> 201 with ``data.token``; the
  link is ``<server>/call/<token>``. ``description`` carries our mark,
  ``meetplugin:<digest of the event key>``, so `meetplugin reconcile` lists only
  conversations we made (servers that ignore it simply list none).
- A lobby when the event asks for it (``talk:лобби`` / ``talk:lobby``) or the
  config does: ``PUT /room/{token}/webinar/lobby`` ``{state: 1, timer: <event
  start, unix>}`` (it opens by itself at the start); a move of the event moves
  the timer.
- ``PUT /room/{token}`` ``{roomName}`` when the title changes.
- ``DELETE /room/{token}``; 404 counts as deleted.
- Talk picks the token: a create whose answer was lost may have made a room,
  so it is recorded as a suspect (as for Telemost).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from radicale_meetplugin.config import ConfigError, Schema, Secret, boolean, read_secret
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

logger = logging.getLogger("radicale.meetplugin")

API_PATH = "/ocs/v2.php/apps/spreed/api/v4"
MARK = "meetplugin:"
PUBLIC = 3
_TOKEN = re.compile(r"[A-Za-z0-9]{4,64}")
_LOGIN = re.compile(r"[^\s:]{1,128}")
_PASSWORD = re.compile(r"[\x21-\x7e]{1,512}")

OPTIONS: Schema = {
    "server_url": ("", str, "Nextcloud server, e.g. https://cloud.example.ru (required)."),
    "api_url": ("", str, f"Talk API base URL. Empty: <server_url>{API_PATH}."),
    "user": ("", str, "Login of the service user whose conversations these are."),
    "app_password_file": ("", str, "File holding the service user's app password (chmod 600)."),
    "app_password_env": (
        "TALK_APP_PASSWORD",
        str,
        "Environment variable holding the app password, used when app_password_file is empty.",
    ),
    "user_token_dir": (
        "",
        str,
        "Folder with one `<login>:<app password>` per Radicale user (<user>.token, chmod "
        "600; `meetplugin token talk` writes them); a user's own account wins over the "
        "service user.",
    ),
    "lobby": (
        "no",
        boolean,
        "A lobby until the event starts, by default (`talk:без-лобби` / `talk:no-lobby` "
        "turns it off for one event, `talk:лобби` / `talk:lobby` on).",
    ),
    "default_topic": ("Видеовстреча", str, "Conversation name when the event has none."),
}

CAPABILITIES = Capabilities(network=True, schedule=True, deterministic_ids=False, options=True)
OPTION_WORDS = (
    OptionWord(
        "lobby",
        "yes",
        ("lobby", "лобби"),
        {"ru": "лобби до начала встречи", "en": "a lobby until the start"},
    ),
    OptionWord(
        "lobby",
        "no",
        ("no-lobby", "без-лобби"),
        {"ru": "без лобби", "en": "no lobby"},
    ),
)


class Talk(Provider):
    name = "talk"
    capabilities = CAPABILITIES

    def __init__(
        self,
        server_url: str,
        api_url: str,
        login: str,
        password: Secret,
        timeout: float,
        *,
        lobby: bool = False,
        default_topic: str = "Видеовстреча",
        zone: Any = None,
    ) -> None:
        self.server_url = server_url.rstrip("/")
        self.login = login
        self.api = ApiClient(
            api_url, {"OCS-APIRequest": "true", "Accept": "application/json"}, timeout, self.name
        )
        self._auth = (login, password.value)
        self.lobby = lobby
        self.default_topic = default_topic
        self.zone = zone or schedule.timezone("UTC")
        self._id_key = f"{login}:{password.value}".encode()

    def _call(self, method: str, path: str, body: Any = None, ok=(200, 201)) -> Answer:
        return self.api.call(method, path, body, ok, auth=self._auth)

    def _data(self, response: Answer) -> Any:
        body = self.api.json_object(response)
        ocs = body.get("ocs")
        if not isinstance(ocs, dict):
            raise ProviderError(
                "rejected",
                status=response.status_code,
                provider_code="NotOcs",
                temporary=True,
                maybe_done=True,
            )
        return ocs.get("data")

    # --- what we send ------------------------------------------------------

    def mark(self, key: EventKey) -> str:
        return f"{MARK}{schedule.event_digest(self._id_key, key)}"

    def join_url(self, token: str) -> str:
        return f"{self.server_url}/call/{token}"

    def _name(self, meeting: Meeting) -> str:
        return schedule.topic(meeting.summary, self.default_topic, 255)

    def _lobby_timer(self, meeting: Meeting) -> int | None:
        """When the lobby opens: the event's start; None for no lobby."""
        if meeting.option("lobby", "yes" if self.lobby else "no") != "yes":
            return None
        slot = None if meeting.repeats else schedule.slot_of(meeting, self.zone)
        return slot.start if slot else 0  # a series: a lobby the moderator opens

    def _set_lobby(self, token: str, timer: int | None) -> None:
        body: dict[str, Any] = {"state": 0 if timer is None else 1}
        if timer:
            body["timer"] = timer
        self._call("PUT", f"/room/{token}/webinar/lobby", body, ok=(200,))

    # --- calls -------------------------------------------------------------

    def create(self, meeting: Meeting) -> Conference:
        name = self._name(meeting)
        response = self._call(
            "POST",
            "/room",
            {"roomType": PUBLIC, "roomName": name, "description": self.mark(meeting.key)},
            ok=(200, 201),
        )
        data = self._data(response)
        token = data.get("token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not _TOKEN.fullmatch(token):
            raise ProviderError(
                "rejected",
                status=response.status_code,
                provider_code="BadRoom",
                temporary=True,
                maybe_done=True,
            )
        extra = {"name": name}
        timer = self._lobby_timer(meeting)
        if timer is not None:
            try:
                self._set_lobby(token, timer)
            except ProviderError:
                # Leave no room behind that no event shows: the retry makes a new one.
                try:
                    self._call("DELETE", f"/room/{token}", ok=(200, 404))
                except ProviderError:
                    logger.warning("meetplugin: talk: a room without its lobby was left behind")
                raise
            extra["lobby"] = str(timer)
        return Conference(self.name, token, self.join_url(token), extra)

    def update(self, conference: Conference, meeting: Meeting) -> Conference:
        """Only what changed: the name (PUT /room), the lobby or its timer."""
        token = conference.conference_id
        extra = dict(conference.extra)
        name = self._name(meeting)
        if extra.get("name") != name:
            self._call("PUT", f"/room/{token}", {"roomName": name}, ok=(200,))
            extra["name"] = name
        timer = self._lobby_timer(meeting)
        shown = "" if timer is None else str(timer)
        if extra.get("lobby", "") != shown:
            self._set_lobby(token, timer)
            extra["lobby"] = shown
        return Conference(conference.provider, token, conference.join_url, extra)

    def delete(self, conference: Conference) -> None:
        self._call("DELETE", f"/room/{conference.conference_id}", ok=(200, 204, 404))

    def check(self) -> str:
        """One read of the user's conversations proves the login and the app password."""
        self._call("GET", "/room", ok=(200,))
        return ""

    def list_conferences(self) -> list[str] | None:
        """Tokens of the public conversations that carry our mark."""
        data = self._data(self._call("GET", "/room", ok=(200,)))
        tokens = []
        for room in data if isinstance(data, list) else []:
            if not isinstance(room, dict) or room.get("type") != PUBLIC:
                continue
            description, token = room.get("description"), room.get("token")
            if isinstance(description, str) and description.startswith(MARK):
                if isinstance(token, str) and _TOKEN.fullmatch(token):
                    tokens.append(token)
        return tokens


def _server(options: Mapping[str, Any]) -> str:
    server = options["server_url"].strip().rstrip("/")
    if not server:
        raise ConfigError(
            "[provider:talk] has no server_url: set it to the Nextcloud address, "
            "e.g. https://cloud.example.ru"
        )
    if not server.startswith(("https://", "http://")):
        raise ConfigError("[provider:talk] server_url must start with https://")
    return server


def _make(options: Mapping[str, Any], ctx: BuildContext, login: str, password: Secret) -> Talk:
    server = _server(options)
    return Talk(
        server,
        options["api_url"].strip() or f"{server}{API_PATH}",
        login,
        password,
        ctx.timeout,
        lobby=options["lobby"],
        default_topic=options["default_topic"],
    )


def build(options: Mapping[str, Any], ctx: BuildContext) -> Talk | None:
    """The service user; None when only users' own app passwords are configured."""
    _server(options)
    login = options["user"].strip()
    password = read_secret(
        options["app_password_file"], options["app_password_env"], "Talk app password"
    )
    if not login or not password:
        if options["user_token_dir"] and not login:
            return None
        raise ConfigError(
            "[provider:talk] needs a service user: set user and app_password_file (or the "
            f"environment variable {options['app_password_env'] or 'TALK_APP_PASSWORD'}), "
            "or give users their own app passwords with user_token_dir"
        )
    if not _LOGIN.fullmatch(login):
        raise ConfigError("[provider:talk] user: a Nextcloud login, without spaces or ':'")
    return _make(options, ctx, login, password)


def _user_account(options: Mapping[str, Any], ctx: BuildContext, secret: Secret) -> Talk:
    """A user's own account from their file: `<login>:<app password>`."""
    login, _, password = secret.value.strip().partition(":")
    if not _LOGIN.fullmatch(login) or not _PASSWORD.fullmatch(password):
        raise ConfigError("a Talk credential is `<login>:<app password>`")
    return _make(options, ctx, login, Secret(password, secret.source))


def password_steps(options: Mapping[str, Any], user: str, arguments: Mapping[str, str]) -> str:
    server = options["server_url"].strip().rstrip("/") or "<server_url>"
    return f"""Nextcloud Talk app password for Radicale user {user!r}:
1. Signed in to {server} as that user, open Personal settings -> Security
   ({server}/settings/user/security), and under "Devices & sessions" create an
   app password named "calendar meetings".
2. Enter it below as <login>:<app password> (the login shown on that page)."""


USERS = UserCredentials(
    folder_option="user_token_dir",
    build=_user_account,
    steps=password_steps,
    what="Talk app password",
)

PLUGIN = ProviderPlugin(
    name="talk",
    labels={"ru": "Nextcloud Talk", "en": "Nextcloud Talk"},
    keywords=("nextcloud", "nctalk", "talk", "некстклауд"),
    options=OPTIONS,
    build=build,
    capabilities=lambda options: CAPABILITIES,
    option_words=OPTION_WORDS,
    users=USERS,
)
