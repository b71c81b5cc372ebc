"""Videomost: a REST contract whose URLs, auth header and JSON fields come from config.

No public API manual for Videomost was found, so every name below is an
assumption with a default (docs/providers/videomost.md), to be checked against the
server's own API manual. What the seeds do fix is the join link:
``https://<host>/service/join/?confid=<32 hex>&confpass=<digits>``.

Default contract:

- ``Authorization: Bearer <token>`` (a static token from a file or the environment);
- ``POST <api_url>/conferences`` ``{name, start_time, duration, time_offset,
  participants}`` -> ``{confid, confpass, join_url?}`` (optionally under a key);
- ``PUT <api_url>/conferences/{confid}`` with the same fields when the event moves,
  is renamed or its attendees change; ``GET`` reads one;
- ``DELETE <api_url>/conferences/{confid}``: 200/204, 404 counts as deleted;
- with ``client_ids = true`` the create sends our own ``confid`` (32 hex: an HMAC
  of the event key), so a retry cannot make a second conference ("already
  exists" -> GET it); otherwise the server picks the id and an unanswered create
  is recorded as a suspect, as for Telemost;
- a series (RRULE, RDATE, overrides) sends the time fields as null: a conference
  without a schedule, so the one link works for every occurrence;
- ``meetplugin check`` reads one conference that does not exist (``GET`` on
  ``item_path`` with the id ``00…0``): the assumption is that the server checks
  the token before it looks the conference up, so 200 or 404 means the token
  works and 401/403 that it does not. Nothing is created;
- with ``user_token_dir``, a user's own API token (``<user>.token``) is used for
  their events, in the same header as the service account's.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

from radicale_meetplugin.config import ConfigError, Schema, Secret, boolean, read_secret
from radicale_meetplugin.core.model import Conference, Meeting
from radicale_meetplugin.providers import schedule
from radicale_meetplugin.providers.base import (
    BuildContext,
    Capabilities,
    Provider,
    ProviderError,
    ProviderPlugin,
    UserCredentials,
)
from radicale_meetplugin.providers.http import Answer, ApiClient

_CONFID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_CONFPASS = re.compile(r"[A-Za-z0-9]{0,64}")
_JOIN_URL = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]+)?/[A-Za-z0-9/_.?=&%-]*")
_FIELD = re.compile(r"[A-Za-z0-9_.-]{0,64}")
_HEADER = re.compile(r"[A-Za-z0-9-]{1,64}")
_TOKEN = re.compile(r"[\x21-\x7e]{1,4096}")
UPDATE_METHODS = ("PUT", "PATCH", "POST", "NONE")


def field_name(value: str) -> str:
    value = value.strip()
    if not _FIELD.fullmatch(value):
        raise ValueError("a JSON field name (letters, digits, _ . -), or empty for none")
    return value


def header_name(value: str) -> str:
    value = value.strip()
    if not _HEADER.fullmatch(value):
        raise ValueError("an HTTP header name")
    return value


def path(value: str) -> str:
    value = value.strip()
    if value and not value.startswith("/"):
        raise ValueError("a path starting with /")
    return value


def update_method(value: str) -> str:
    value = value.strip().upper()
    if value not in UPDATE_METHODS:
        raise ValueError(f"one of {', '.join(UPDATE_METHODS)}")
    return value


OPTIONS: Schema = {
    "server_url": (
        "",
        str,
        "Videomost server, e.g. https://vm.example.ru (required); join links point there.",
    ),
    "api_url": ("", str, "API base URL. Empty: <server_url>/service/api/v1 (assumption)."),
    "token_file": ("", str, "File holding the API token (chmod 600)."),
    "token_env": (
        "VIDEOMOST_TOKEN",
        str,
        "Environment variable holding the token, used when token_file is empty.",
    ),
    "auth_header": ("Authorization", header_name, "Header that carries the token (assumption)."),
    "auth_scheme": (
        "Bearer",
        str,
        "Word before the token in that header; empty: the token alone (assumption).",
    ),
    "create_path": ("/conferences", path, "POST here creates a conference (assumption)."),
    "item_path": (
        "/conferences/{id}",
        path,
        "One conference, for GET, update and DELETE; {id} is the conference id (assumption).",
    ),
    "update_method": (
        "PUT",
        update_method,
        "Method that changes a conference: PUT, PATCH, POST, or NONE (the server "
        "cannot: moves and renames make no call).",
    ),
    "response_key": (
        "",
        field_name,
        "Key whose object holds the conference in answers; empty: the answer itself (assumption).",
    ),
    "id_field": ("confid", field_name, "Conference id field (seed: 32 hex)."),
    "password_field": ("confpass", field_name, "Conference password field (seed: digits)."),
    "join_url_field": (
        "join_url",
        field_name,
        "Join link field in answers, used when present and on server_url's "
        "host; empty: always built from join_url_template.",
    ),
    "join_url_template": (
        "",
        str,
        "Join link from {confid} and {confpass}. Empty: "
        "<server_url>/service/join/?confid={confid}&confpass={confpass}.",
    ),
    "topic_field": ("name", field_name, "Title field (assumption); empty: not sent."),
    "start_field": (
        "start_time",
        field_name,
        "Start field, unix seconds (assumption); empty: not sent.",
    ),
    "duration_field": ("duration", field_name, "Duration field, seconds (assumption)."),
    "time_offset_field": (
        "time_offset",
        field_name,
        "Field for the event's UTC offset in minutes, east positive (assumption); empty: not sent.",
    ),
    "attendees_field": (
        "participants",
        field_name,
        "Field for the attendees' e-mail addresses (assumption); empty: not sent.",
    ),
    "client_ids": (
        "false",
        boolean,
        "true: the create sends our own id (32 hex, from the event) so a retry can "
        "never make a second conference. Only if the server accepts it.",
    ),
    "default_timezone": (
        "Europe/Moscow",
        schedule.timezone,
        "Zone for floating times and all-day events (IANA name).",
    ),
    "default_topic": ("Видеовстреча", str, "Title when the event has none."),
    "user_token_dir": (
        "",
        str,
        "Folder with one API token per Radicale user (<user>.token, chmod 600; "
        "`meetplugin token videomost` writes them); a user's own token wins over the "
        "service account's (token_file/token_env).",
    ),
}
CHECK_ID = "0" * 32  # `meetplugin check` reads this conference, which nobody has


def capabilities(options: Mapping[str, Any]) -> Capabilities:
    """What the configured contract allows: updates unless NONE, retries safe with client ids."""
    return Capabilities(
        network=True,
        schedule=options["update_method"] != "NONE",
        deterministic_ids=bool(options["client_ids"]),
    )


class Videomost(Provider):
    name = "videomost"

    def __init__(
        self,
        server_url: str,
        api_url: str,
        token: Secret,
        timeout: float,
        *,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        o = {name: spec[1](spec[0]) for name, spec in OPTIONS.items()}
        o.update(options or {})
        self.o = o
        self.server_url = server_url.rstrip("/")
        scheme = o["auth_scheme"].strip()
        value = f"{scheme} {token.value}" if scheme else token.value
        self.api = ApiClient(api_url, {o["auth_header"]: value}, timeout, self.name)
        self.template = (
            o["join_url_template"].strip()
            or f"{self.server_url}/service/join/?confid={{confid}}&confpass={{confpass}}"
        )
        self.zone = o["default_timezone"]
        self._id_key = token.value.encode()
        # Instance capabilities: they follow the contract the admin configured.
        self.capabilities = capabilities(o)

    # --- what we send ------------------------------------------------------

    def fields(self, meeting: Meeting) -> dict:
        o = self.o
        body: dict = {}
        if o["topic_field"]:
            body[o["topic_field"]] = schedule.topic(meeting.summary, o["default_topic"])
        slot = None if meeting.repeats else schedule.slot_of(meeting, self.zone)
        for name, value in (
            (o["start_field"], slot.start if slot else None),
            (o["duration_field"], slot.duration if slot else None),
            (o["time_offset_field"], slot.offset if slot else None),
        ):
            if name:
                body[name] = value
        if o["attendees_field"]:
            body[o["attendees_field"]] = schedule.addresses(meeting)
        return body

    def item(self, conf_id: str) -> str:
        return self.o["item_path"].replace("{id}", urllib.parse.quote(conf_id, safe=""))

    # --- answers -------------------------------------------------------------

    def _conference(self, response: Answer, expected: str = "") -> Conference:
        body = self.api.json_object(response)
        key = self.o["response_key"]
        inner = body.get(key) if key else body
        bad = ProviderError(
            "rejected",
            status=response.status_code,
            provider_code="BadConference",
            temporary=True,
            maybe_done=True,
        )
        if not isinstance(inner, dict):
            raise bad
        conf_id = inner.get(self.o["id_field"], expected)
        password = inner.get(self.o["password_field"], "")
        if isinstance(password, int) and not isinstance(password, bool):
            password = str(password)
        if (
            not isinstance(conf_id, str)
            or not _CONFID.fullmatch(conf_id)
            or not isinstance(password, str)
            or not _CONFPASS.fullmatch(password)
        ):
            raise bad
        join_url = self._join_url(inner, conf_id, password)
        return Conference(self.name, conf_id, join_url, {"password": password} if password else {})

    def _join_url(self, inner: dict, conf_id: str, password: str) -> str:
        field = self.o["join_url_field"]
        given = inner.get(field) if field else None
        if (
            isinstance(given, str)
            and _JOIN_URL.fullmatch(given)
            and given.lower().startswith(f"{self.server_url.lower()}/")
        ):
            return given
        quote = lambda v: urllib.parse.quote(v, safe="")  # noqa: E731
        return self.template.replace("{confid}", quote(conf_id)).replace(
            "{confpass}", quote(password)
        )

    # --- calls -------------------------------------------------------------

    def create(self, meeting: Meeting) -> Conference:
        body = self.fields(meeting)
        conf_id = ""
        if self.o["client_ids"]:
            conf_id = schedule.event_digest(self._id_key, meeting.key)
            body[self.o["id_field"]] = conf_id
        try:
            response = self.api.call("POST", self.o["create_path"], body, ok=(200, 201))
        except ProviderError as e:
            if not conf_id or not (
                e.status == 409 or (e.status == 400 and "exist" in e.provider_code.lower())
            ):
                raise
            response = self.api.call("GET", self.item(conf_id), ok=(200,))
        return self._conference(response, conf_id)

    def update(self, conference: Conference, meeting: Meeting) -> Conference:
        method = self.o["update_method"]
        if method == "NONE":
            return conference
        self.api.call(
            method, self.item(conference.conference_id), self.fields(meeting), ok=(200, 201, 204)
        )
        return conference  # the id and the link never change

    def delete(self, conference: Conference) -> None:
        self.api.call("DELETE", self.item(conference.conference_id), ok=(200, 202, 204, 404))

    def check(self) -> str:
        """An authenticated read of a conference nobody has: 200/404 mean the token works."""
        self.api.call("GET", self.item(CHECK_ID), ok=(200, 404))
        return ""


def _server(options: Mapping[str, Any]) -> str:
    server = options["server_url"].strip().rstrip("/")
    if not server:
        raise ConfigError(
            "[provider:videomost] has no server_url: set it to the Videomost "
            "server address, e.g. https://vm.example.ru"
        )
    if not server.startswith(("https://", "http://")):
        raise ConfigError("[provider:videomost] server_url must start with https://")
    return server


def _account(options: Mapping[str, Any], ctx: BuildContext, token: Secret) -> Videomost:
    server = _server(options)
    if not _TOKEN.fullmatch(token.value):
        raise ConfigError(
            f"[provider:videomost] the token ({token.source}) has spaces or control characters"
        )
    api_url = options["api_url"].strip() or f"{server}/service/api/v1"
    return Videomost(server, api_url, token, ctx.timeout, options=options)


def build(options: Mapping[str, Any], ctx: BuildContext) -> Videomost | None:
    """The service account; None when only users' own tokens are configured."""
    _server(options)
    token = read_secret(options["token_file"], options["token_env"], "Videomost token")
    if not token:
        if options["user_token_dir"]:
            return None
        env = options["token_env"] or "VIDEOMOST_TOKEN"
        raise ConfigError(
            "[provider:videomost] has no token: set token_file, or put the token "
            f"in the environment variable {env}, or give users their own tokens "
            "with user_token_dir"
        )
    return _account(options, ctx, token)


def token_steps(options: Mapping[str, Any], user: str, arguments: Mapping[str, str]) -> str:
    return f"""Videomost API token for Radicale user {user!r}:
1. Get the user's API token from the Videomost server {options["server_url"] or ""}
   (where your server's API manual says: the user's profile or the admin panel).
2. It is sent as "{options["auth_header"]}: {options["auth_scheme"]} <token>"."""


PLUGIN = ProviderPlugin(
    name="videomost",
    labels={"ru": "Videomost", "en": "Videomost"},
    keywords=("videomost", "видеомост"),
    options=OPTIONS,
    build=build,
    capabilities=capabilities,
    users=UserCredentials(
        folder_option="user_token_dir",
        build=_account,
        steps=token_steps,
        what="Videomost token",
    ),
)
