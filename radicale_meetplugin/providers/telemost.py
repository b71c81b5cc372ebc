"""Yandex Telemost: `POST /conferences`, `DELETE /conferences/{id}`, `Authorization: OAuth`.

Rooms are timeless (no start, no title), so moving an event needs no call. A
webinar ("телемост:трансляция") is a room with a live stream: hosts join at
``join_url``, viewers watch at ``live_stream.watch_url``; the stream's title is
the event's, and a rename updates it (``PATCH``).
"""

from __future__ import annotations

import logging
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

from radicale_meetplugin.config import (
    ConfigError,
    Schema,
    Secret,
    csv,
    positive_int,
    read_secret,
)
from radicale_meetplugin.core.model import Conference, Meeting
from radicale_meetplugin.providers.base import (
    BuildContext,
    Capabilities,
    OptionWord,
    Provider,
    ProviderError,
    ProviderPlugin,
    UserCredentials,
)
from radicale_meetplugin.providers.http import ApiClient

logger = logging.getLogger("radicale.meetplugin")
WAITING_ROOM_LEVELS = ("PUBLIC", "ORGANIZATION", "ADMINS")
STREAM_ACCESS_LEVELS = ("PUBLIC", "ORGANIZATION")
_JOIN_URL = re.compile(r"https://[A-Za-z0-9.-]+(:[0-9]+)?/[A-Za-z0-9/_.?=&%-]*")
_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


def waiting_room_level(value: str) -> str:
    value = value.strip().upper()
    if value not in WAITING_ROOM_LEVELS:
        raise ValueError(f"one of {', '.join(WAITING_ROOM_LEVELS)}")
    return value


def stream_access_level(value: str) -> str:
    value = value.strip().upper()
    if value not in STREAM_ACCESS_LEVELS:
        raise ValueError(f"one of {', '.join(STREAM_ACCESS_LEVELS)}")
    return value


OPTIONS: Schema = {
    "api_url": (
        "https://cloud-api.yandex.net/v1/telemost-api",
        str,
        "Telemost API base URL (a proxy or a test emulator can stand here).",
    ),
    "token_file": ("", str, "File holding the OAuth token (chmod 600)."),
    "token_env": (
        "TELEMOST_TOKEN",
        str,
        "Environment variable holding the OAuth token, used when token_file is empty.",
    ),
    "cohost_domains": (
        "",
        csv,
        "Mail domains of the organisation: attendees there become co-hosts when an "
        'event asks for it ("телемост:соорганизаторы"). Empty: the organizer\'s '
        "domain.",
    ),
    "user_token_dir": (
        "",
        str,
        "Folder with one OAuth token per Radicale user (<user>.token, chmod 600; "
        "`meetplugin token telemost` writes them); a user's own token wins over the "
        "service account's (token_file/token_env).",
    ),
    "waiting_room_level": (
        "ORGANIZATION",
        waiting_room_level,
        "Waiting room: ORGANIZATION (for people outside the organisation), "
        "ADMINS (for everyone but organizers), PUBLIC (off).",
    ),
    "stream_access_level": (
        "PUBLIC",
        stream_access_level,
        'Who may watch a webinar\'s live stream ("телемост:трансляция"): PUBLIC '
        "(anyone with the link) or ORGANIZATION (the organisation's accounts; "
        "assumed from the API's other access levels, unconfirmed).",
    ),
    "stream_title_max": (
        "1024",
        positive_int,
        "Longest live stream title sent; a longer event title is cut (unconfirmed limit).",
    ),
    "stream_description": (
        "",
        str,
        "Description of every live stream (live_stream.description); empty: not sent.",
    ),
    "default_stream_title": ("Вебинар", str, "Live stream title when the event has none."),
}


CAPABILITIES = Capabilities(network=True, schedule=False, deterministic_ids=False, options=True)
SCOPES = (
    "telemost-api:conferences.create",
    "telemost-api:conferences.read",
    "telemost-api:conferences.update",
    "telemost-api:conferences.delete",
)
# The seeds' waiting-room choices, and co-hosts from the organisation's attendees.
OPTION_WORDS = (
    OptionWord(
        "waiting_room",
        "ORGANIZATION",
        ("external", "organization", "внешние"),
        {"ru": "зал ожидания для внешних участников", "en": "waiting room for outsiders"},
    ),
    OptionWord(
        "waiting_room",
        "ADMINS",
        ("all", "admins", "все"),
        {"ru": "зал ожидания для всех, кроме организаторов", "en": "waiting room for all"},
    ),
    OptionWord(
        "waiting_room",
        "PUBLIC",
        ("off", "public", "выкл", "выключено"),
        {"ru": "без зала ожидания", "en": "no waiting room"},
    ),
    OptionWord(
        "cohosts",
        "yes",
        ("cohosts", "соорганизаторы"),
        {"ru": "участники из организации — соорганизаторы", "en": "colleagues become co-hosts"},
    ),
    # Seed 003: the LMS's webinars, a meeting for the hosts and a live stream for viewers.
    OptionWord(
        "stream",
        "yes",
        ("stream", "webinar", "трансляция", "вебинар"),
        {"ru": "вебинар: трансляция для зрителей", "en": "webinar: a live stream for viewers"},
    ),
)


class Telemost(Provider):
    name = "telemost"
    capabilities = CAPABILITIES
    MAX_COHOSTS = 30

    def __init__(
        self,
        api_url: str,
        token: Secret,
        waiting_room_level: str,
        timeout: float,
        cohost_domains: tuple[str, ...] = (),
        *,
        stream_access_level: str = "PUBLIC",
        stream_title_max: int = 1024,
        stream_description: str = "",
        default_stream_title: str = "Вебинар",
    ) -> None:
        self.waiting_room_level = waiting_room_level
        self.stream_access_level = stream_access_level
        self.stream_title_max = stream_title_max
        self.stream_description = stream_description
        self.default_stream_title = default_stream_title
        self.cohost_domains = tuple(d.lower().lstrip("@") for d in cohost_domains)
        self.api = ApiClient(api_url, {"Authorization": f"OAuth {token.value}"}, timeout, self.name)

    def cohosts(self, meeting: Meeting) -> list[str]:
        """Attendees in the organisation's domains, when the event asks for co-hosts."""
        if meeting.option("cohosts") != "yes":
            return []
        organizer = meeting.organizer.lower().removeprefix("mailto:")
        domains = self.cohost_domains or (
            (organizer.rpartition("@")[2],) if "@" in organizer else ()
        )
        emails = []
        for attendee in meeting.attendees:
            email = attendee.lower().removeprefix("mailto:").strip()
            if email != organizer and email.rpartition("@")[2] in domains:
                emails.append(email)
        return sorted(set(emails))[: self.MAX_COHOSTS]

    def stream_title(self, meeting: Meeting) -> str:
        title = " ".join(meeting.summary.split()) or self.default_stream_title
        return title[: self.stream_title_max].rstrip()

    def live_stream(self, meeting: Meeting) -> dict[str, str]:
        """The `live_stream` object of a webinar's create (or of a stream added later)."""
        stream = {"access_level": self.stream_access_level, "title": self.stream_title(meeting)}
        if self.stream_description:
            stream["description"] = self.stream_description
        return stream

    @staticmethod
    def watch_url(body: dict) -> str:
        """The viewers' link of an answer, "" when it has none (or not a plain https one)."""
        stream = body.get("live_stream")
        url = stream.get("watch_url", "") if isinstance(stream, dict) else ""
        return url if isinstance(url, str) and _JOIN_URL.fullmatch(url) else ""

    def create(self, meeting: Meeting) -> Conference:
        level = meeting.option("waiting_room", self.waiting_room_level)
        body_out: dict[str, Any] = {"waiting_room_level": level}
        cohosts = self.cohosts(meeting)
        if cohosts:
            body_out["cohosts"] = [{"email": e} for e in cohosts]
        webinar = meeting.option("stream") == "yes"
        if webinar:
            body_out["live_stream"] = self.live_stream(meeting)
        response = self.api.call("POST", "/conferences", body_out, ok=(200, 201))
        body = self.api.json_object(response)
        conf_id, join_url = str(body.get("id", "")), str(body.get("join_url", ""))
        if not _ID.fullmatch(conf_id) or not _JOIN_URL.fullmatch(join_url):
            raise ProviderError(
                "rejected",
                status=response.status_code,
                provider_code="BadConference",
                temporary=True,
                maybe_done=True,
            )
        extra = {
            "waiting_room_level": str(body.get("waiting_room_level", level)),
            "cohosts": ",".join(cohosts),
        }
        if webinar:
            extra.update(self._stream_extra(body, body_out["live_stream"]["title"], conf_id))
        return Conference(self.name, conf_id, join_url, extra)

    def _stream_extra(self, body: dict, title: str, conf_id: str) -> dict[str, str]:
        watch = self.watch_url(body)
        if not watch:  # the room exists and works for the hosts; say what is missing
            logger.warning(
                "meetplugin: telemost: conference %s has no live_stream.watch_url; "
                "the event shows only the hosts' link",
                conf_id,
            )
            return {"stream_title": title}
        return {"watch_url": watch, "stream_title": title}

    def update(self, conference: Conference, meeting: Meeting) -> Conference:
        """Only what changed: the waiting room (PATCH), the co-hosts (PUT replaces them)."""
        extra = dict(conference.extra)
        level = meeting.option("waiting_room", self.waiting_room_level)
        if extra.get("waiting_room_level") != level:
            self.api.call(
                "PATCH",
                f"/conferences/{conference.conference_id}",
                {"waiting_room_level": level},
                ok=(200, 204),
            )
            extra["waiting_room_level"] = level
        cohosts = self.cohosts(meeting)
        if extra.get("cohosts", "") != ",".join(cohosts):
            self.api.call(
                "PUT",
                f"/conferences/{conference.conference_id}/cohosts",
                {"cohosts": [{"email": e} for e in cohosts]},
                ok=(200, 204),
            )
            extra["cohosts"] = ",".join(cohosts)
        if meeting.option("stream") == "yes":
            title = self.stream_title(meeting)
            if "stream_title" not in extra:  # asked for after the room was made
                stream: dict[str, str] = self.live_stream(meeting)
            elif extra["stream_title"] != title:  # the event was renamed
                stream = {"title": title}
            else:
                stream = {}
            if stream:
                response = self.api.call(
                    "PATCH",
                    f"/conferences/{conference.conference_id}",
                    {"live_stream": stream},
                    ok=(200, 204),
                )
                body = self.api.json_object(response) if response.content else {}
                if "stream_title" in extra:  # a rename: the viewers' link stays
                    extra["stream_title"] = title
                    extra["watch_url"] = self.watch_url(body) or extra.get("watch_url", "")
                    if not extra["watch_url"]:
                        del extra["watch_url"]
                else:
                    extra.update(self._stream_extra(body, title, conference.conference_id))
        return Conference(conference.provider, conference.conference_id, conference.join_url, extra)

    def delete(self, conference: Conference) -> None:
        self.api.call("DELETE", f"/conferences/{conference.conference_id}", ok=(200, 204, 404))

    def check(self) -> str:
        """Prove the token works without creating anything: a look-up of no conference."""
        self.api.call("GET", "/conferences/0", ok=(200, 404))
        return ""


def build(options: Mapping[str, Any], ctx: BuildContext) -> Telemost | None:
    """The service account; None when only users' own tokens are configured."""
    token = read_secret(options["token_file"], options["token_env"], "Telemost token")
    if not token:
        if options["user_token_dir"]:
            return None
        raise ConfigError(
            "[provider:telemost] has no token: set token_file, or put the token "
            f"in the environment variable {options['token_env'] or 'TELEMOST_TOKEN'}"
            ", or give users their own tokens with user_token_dir"
        )
    return _account(options, ctx, token)


def _account(options: Mapping[str, Any], ctx: BuildContext, token: Secret) -> Telemost:
    return Telemost(
        options["api_url"],
        token,
        options["waiting_room_level"],
        ctx.timeout,
        options["cohost_domains"],
        stream_access_level=options["stream_access_level"],
        stream_title_max=options["stream_title_max"],
        stream_description=options["stream_description"],
        default_stream_title=options["default_stream_title"],
    )


def token_steps(options: Mapping[str, Any], user: str, arguments: Mapping[str, str]) -> str:
    """How to get a user's OAuth token: the implicit flow of the organisation's Yandex app."""
    client_id = arguments.get("client_id", "")
    query = urllib.parse.urlencode(
        {"response_type": "token", "client_id": client_id, "scope": " ".join(SCOPES)}
    )
    return f"""Telemost token for Radicale user {user!r}:
1. In a browser signed in with the user's Yandex 360 for business account, open
   https://oauth.yandex.ru/authorize?{query}
   (the app {client_id} needs the four scopes {", ".join(SCOPES)}
   and the redirect URI https://oauth.yandex.ru/verification_code)
2. Allow access and copy the token shown on the page."""


USERS = UserCredentials(
    folder_option="user_token_dir",
    build=_account,
    steps=token_steps,
    arguments=("client_id",),
    what="Telemost token",
)

PLUGIN = ProviderPlugin(
    name="telemost",
    labels={"ru": "Яндекс Телемост", "en": "Yandex Telemost"},
    # The service's own names count as keywords: "Я.Телемост" is the seeds' button name.
    keywords=(
        "telemost",
        "телемост",
        "яндекс телемост",
        "яндекс.телемост",
        "я.телемост",
        "yandex telemost",
        "yandex.telemost",
    ),
    options=OPTIONS,
    build=build,
    capabilities=lambda options: CAPABILITIES,
    option_words=OPTION_WORDS,
    # Yandex Calendar's own CalDAV properties: the request and the link it stores.
    link_properties=("X-TELEMOST-CONFERENCE",),
    marker_properties=("X-TELEMOST-REQUIRED",),
    users=USERS,
)
