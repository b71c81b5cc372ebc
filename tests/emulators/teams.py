"""A Microsoft Graph emulator for Teams online meetings, a real HTTP server on loopback.

- ``POST /{tenant}/oauth2/v2.0/token`` (form: grant_type=client_credentials,
  client_id, client_secret, scope=https://graph.microsoft.com/.default) ->
  ``{token_type: "Bearer", expires_in: 3599, ext_expires_in, access_token}``; a
  wrong secret: 401 ``{"error": "invalid_client", "error_description":
  "AADSTS7000215: …", "error_codes": [7000215]}``. Tokens expire after
  ``expires_in`` seconds of ``clock``; ``revoke_tokens()`` refuses all at once.
- Graph under ``/v1.0``; errors ``{"error": {"code", "message", "innerError":
  {"date", "request-id", "client-request-id"}}}``: 401
  ``InvalidAuthenticationToken``, 403 ``Forbidden`` for a user without the
  application access policy (``policy_users``), 404 ``itemNotFound``.
- ``POST /users/{user}/onlineMeetings/createOrGet`` with ``externalId``
  (required): 201 and a new meeting, or 200 and the meeting that (user,
  externalId) already has. ``PATCH /users/{user}/onlineMeetings/{id}`` -> 200
  (a time change needs both ``startDateTime`` and ``endDateTime``: 400
  otherwise); ``GET``; ``DELETE`` -> 204.
"""

from __future__ import annotations

import datetime as dt
import secrets
import urllib.parse
import uuid
from typing import Any

from .base import Call, Emulator, Reply

PREFIX = "/v1.0"
SCOPES = ("organizer", "organization", "organizationAndFederated", "everyone", "invited")


def graph_error(status: int, code: str, message: str) -> Reply:
    inner = {
        "date": "2026-11-21T10:00:00",
        "request-id": str(uuid.uuid4()),
        "client-request-id": str(uuid.uuid4()),
    }
    return Reply(status, {"error": {"code": code, "message": message, "innerError": inner}})


def _instant(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


class TeamsEmulator(Emulator):
    def __init__(
        self,
        tenant: str = "contoso-tenant",
        client_id: str = "teams-app",
        client_secret: str = "teams-secret-654",
        policy_users: tuple[str, ...] = ("alice@example.com",),
    ) -> None:
        super().__init__()
        self.tenant = tenant
        self.clients = {client_id: client_secret}
        self.expires_in = 3599
        self.tokens: dict[str, float] = {}
        self.issued: list[str] = []
        self.policy_users = set(policy_users)
        self.meetings: dict[str, dict] = {}  # id -> meeting (with "_user", "_external")

    @property
    def api_url(self) -> str:
        return self.base + PREFIX

    @property
    def token_url(self) -> str:
        return f"{self.base}/{self.tenant}/oauth2/v2.0/token"

    def target_of(self, path: str) -> str:
        return "token" if path.endswith("/oauth2/v2.0/token") else "api"

    def revoke_tokens(self) -> None:
        with self._lock:
            self.tokens.clear()

    def public(self, meeting: dict) -> dict:
        return {k: v for k, v in meeting.items() if not k.startswith("_")}

    # --- the API -------------------------------------------------------------

    def route(self, method: str, path: str, call: Call, body: Any) -> tuple[int, object]:
        if call.target == "token":
            return self._token(method, path, body)
        self._check_token(call.authorization)
        parts = [urllib.parse.unquote(p) for p in path[len(PREFIX) + 1 :].split("/")]
        if len(parts) < 3 or parts[0] != "users" or parts[2] != "onlineMeetings":
            raise graph_error(400, "BadRequest", "Resource not found for the segment.")
        user = parts[1].lower()
        if user not in self.policy_users:
            raise graph_error(
                403,
                "Forbidden",
                "Application does not have permission to access online meetings "
                "on behalf of this user.",
            )
        body = body if isinstance(body, dict) else {}
        if len(parts) == 4 and parts[3] == "createOrGet" and method == "POST":
            return self._create_or_get(user, body)
        if len(parts) == 4:
            with self._lock:
                meeting = self.meetings.get(parts[3])
            if meeting is None or meeting["_user"] != user:
                raise graph_error(404, "itemNotFound", "The specified meeting was not found.")
            if method == "GET":
                return 200, self.public(meeting)
            if method == "PATCH":
                fields = self._validate(body, creating=False)
                with self._lock:
                    meeting.update(fields)
                return 200, self.public(meeting)
            if method == "DELETE":
                with self._lock:
                    self.meetings.pop(parts[3], None)
                return 204, None
        raise graph_error(405, "BadRequest", "Unsupported method.")

    def _token(self, method: str, path: str, body: Any) -> tuple[int, object]:
        body = body if isinstance(body, dict) else {}
        if path != f"/{self.tenant}/oauth2/v2.0/token":
            raise Reply(400, {"error": "invalid_tenant", "error_codes": [90002]})
        if body.get("grant_type") != "client_credentials":
            raise Reply(400, {"error": "unsupported_grant_type", "error_codes": [70003]})
        if self.clients.get(body.get("client_id", "")) != body.get("client_secret") or not body.get(
            "client_secret"
        ):
            raise Reply(
                401,
                {
                    "error": "invalid_client",
                    "error_description": "AADSTS7000215: Invalid client secret provided.",
                    "error_codes": [7000215],
                },
            )
        if body.get("scope") != "https://graph.microsoft.com/.default":
            raise Reply(400, {"error": "invalid_scope", "error_codes": [1002012]})
        token = "eyJ0eXAiOiJKV1QifQ." + secrets.token_urlsafe(32)
        with self._lock:
            self.tokens[token] = self.clock() + self.expires_in
            self.issued.append(token)
        return 200, {
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "ext_expires_in": self.expires_in,
            "access_token": token,
        }

    def _check_token(self, authorization: str) -> None:
        scheme, _, token = authorization.partition(" ")
        with self._lock:
            expires = self.tokens.get(token) if scheme == "Bearer" else None
        if expires is None or self.clock() >= expires:
            raise graph_error(
                401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid."
            )

    def _validate(self, body: dict, creating: bool) -> dict:
        out: dict = {}
        if ("startDateTime" in body) != ("endDateTime" in body) and not creating:
            raise graph_error(400, "BadRequest", "Both startDateTime and endDateTime are needed.")
        for name in ("startDateTime", "endDateTime"):
            if name in body:
                if _instant(body[name]) is None:
                    raise graph_error(400, "BadRequest", f"{name} is not a date and time.")
                out[name] = body[name]
        if "subject" in body:
            if not isinstance(body["subject"], str):
                raise graph_error(400, "BadRequest", "subject must be text.")
            out["subject"] = body["subject"]
        if "lobbyBypassSettings" in body:
            lobby = body["lobbyBypassSettings"]
            if not isinstance(lobby, dict) or lobby.get("scope") not in SCOPES:
                raise graph_error(400, "BadRequest", "lobbyBypassSettings.scope is not valid.")
            out["lobbyBypassSettings"] = {"scope": lobby["scope"], "isDialInBypassed": False}
        if creating and "lobbyBypassSettings" in body:
            raise graph_error(400, "BadRequest", "createOrGet takes no lobbyBypassSettings.")
        return out

    def _create_or_get(self, user: str, body: dict) -> tuple[int, object]:
        external = body.get("externalId")
        if not isinstance(external, str) or not external:
            raise graph_error(400, "BadRequest", "externalId is required.")
        with self._lock:
            for meeting in self.meetings.values():
                if meeting["_user"] == user and meeting["_external"] == external:
                    return 200, self.public(meeting)
        fields = self._validate(body, creating=True)
        now = dt.datetime(2026, 11, 21, 10, tzinfo=dt.UTC)
        fields.setdefault("startDateTime", now.isoformat().replace("+00:00", "Z"))
        fields.setdefault(
            "endDateTime", (now + dt.timedelta(hours=1)).isoformat().replace("+00:00", "Z")
        )
        thread = secrets.token_hex(16)
        meeting_id = "MSo" + secrets.token_urlsafe(40)
        join = (
            "https://teams.microsoft.com/l/meetup-join/19%3ameeting_"
            f"{thread}%40thread.v2/0?context=%7b%22Tid%22%3a%22{self.tenant}%22%7d"
        )
        meeting = {
            "id": meeting_id,
            "externalId": external,
            "subject": "",
            **fields,
            "joinWebUrl": join,
            "joinMeetingIdSettings": {
                "joinMeetingId": str(secrets.randbelow(10**12)),
                "passcode": secrets.token_hex(3),
                "isPasscodeRequired": True,
            },
            "lobbyBypassSettings": {"scope": "organization", "isDialInBypassed": False},
            "participants": {"organizer": {"upn": user, "role": "presenter"}, "attendees": []},
            "_user": user,
            "_external": external,
        }
        with self._lock:
            self.meetings[meeting_id] = meeting
        return 201, self.public(meeting)
