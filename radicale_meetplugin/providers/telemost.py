"""Yandex Telemost: `POST /conferences`, `DELETE /conferences/{id}`, `Authorization: OAuth`.

Rooms are timeless (no start, no title), so moving an event needs no call.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

from radicale_meetplugin.config import ConfigError, Schema, Secret, csv, read_secret
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

WAITING_ROOM_LEVELS = ("PUBLIC", "ORGANIZATION", "ADMINS")
_JOIN_URL = re.compile(r"https://[A-Za-z0-9.-]+(:[0-9]+)?/[A-Za-z0-9/_.?=&%-]*")
_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


def waiting_room_level(value: str) -> str:
    value = value.strip().upper()
    if value not in WAITING_ROOM_LEVELS:
        raise ValueError(f"one of {', '.join(WAITING_ROOM_LEVELS)}")
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
    ) -> None:
        self.waiting_room_level = waiting_room_level
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

    def create(self, meeting: Meeting) -> Conference:
        level = meeting.option("waiting_room", self.waiting_room_level)
        body_out: dict[str, Any] = {"waiting_room_level": level}
        cohosts = self.cohosts(meeting)
        if cohosts:
            body_out["cohosts"] = [{"email": e} for e in cohosts]
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
        return Conference(
            self.name,
            conf_id,
            join_url,
            {
                "waiting_room_level": str(body.get("waiting_room_level", level)),
                "cohosts": ",".join(cohosts),
            },
        )

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
