"""A Zoom API emulator (Server-to-Server OAuth + meetings), a real HTTP server on loopback.

- ``POST /oauth/token?grant_type=account_credentials&account_id=…`` (the two
  parameters in the query or a form body), Basic auth of client id and secret
  -> ``{access_token, token_type: "bearer", expires_in: 3600, scope}``; a wrong
  client: 400 ``{"reason": "Invalid client_id or client_secret", "error":
  "invalid_client"}``; a wrong account id: 400 ``{"reason": "Invalid account_id",
  "error": "invalid_request"}``. Tokens expire after ``expires_in`` seconds of
  ``clock``; ``revoke_tokens()`` makes every issued token invalid at once.
- API under ``/v2``, ``Authorization: Bearer <token>``; 401 ``{"code": 124,
  "message": "Invalid access token."}`` otherwise.
- ``POST /users/{userId}/meetings`` (``me``, a user id or an address of the
  account's users; 404 code 1001 otherwise) -> 201 with ``id`` (a number),
  ``join_url`` ``https://zoom.us/j/<id>?pwd=…`` (a passcode unless
  ``default_password`` is false), ``start_url``, ``settings``. 400 code 300
  "Validation Failed." with ``errors[]`` for a bad field.
- ``GET /users/{userId}/meetings`` (``page_size``, ``next_page_token``);
  ``GET``/``PATCH``/``DELETE /meetings/{id}``: PATCH and DELETE answer 204, an
  unknown meeting 404 code 3001.
"""

from __future__ import annotations

import base64
import itertools
import re
import secrets
import urllib.parse
from typing import Any

from .base import Call, Emulator, Reply

PREFIX = "/v2"
TOKEN_PATH = "/oauth/token"
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ?")


def error(status: int, code: int, message: str, errors: list | None = None) -> Reply:
    body: dict = {"code": code, "message": message}
    if errors:
        body["errors"] = errors
    return Reply(status, body)


def invalid(field: str, message: str) -> Reply:
    return error(400, 300, "Validation Failed.", [{"field": field, "message": message}])


class ZoomEmulator(Emulator):
    def __init__(
        self,
        account_id: str = "acc-123",
        client_id: str = "zoom-client",
        client_secret: str = "zoom-secret-321",
        users: tuple[str, ...] = ("alice@example.com",),
    ) -> None:
        super().__init__()
        self.account_id = account_id
        self.clients = {client_id: client_secret}
        self.expires_in = 3600
        self.tokens: dict[str, float] = {}
        self.issued: list[str] = []
        self.users = {"me": "appuser@example.com", **{u: u for u in users}}
        self.meetings: dict[str, dict] = {}
        self._ids = itertools.count(81_234_567_890)

    @property
    def api_url(self) -> str:
        return self.base + PREFIX

    @property
    def token_url(self) -> str:
        return self.base + TOKEN_PATH

    def target_of(self, path: str) -> str:
        return "token" if path == TOKEN_PATH else "api"

    def revoke_tokens(self) -> None:
        with self._lock:
            self.tokens.clear()

    # --- the API -------------------------------------------------------------

    def route(self, method: str, path: str, call: Call, body: Any) -> tuple[int, object]:
        if call.target == "token":
            return self._token(method, call, body)
        self._check_token(call.authorization)
        if not path.startswith(PREFIX + "/"):
            raise error(404, 404, "Not found")
        parts = [urllib.parse.unquote(x) for x in path[len(PREFIX) + 1 :].split("/")]
        if len(parts) == 3 and parts[0] == "users" and parts[2] == "meetings":
            host = self._host(parts[1])
            if method == "POST":
                return self._create(host, body if isinstance(body, dict) else {})
            if method == "GET":
                return self._list(host, call.query)
        if len(parts) == 2 and parts[0] == "meetings":
            with self._lock:
                meeting = self.meetings.get(parts[1])
            if meeting is None:
                raise error(404, 3001, f"Meeting does not exist: {parts[1]}.")
            if method == "GET":
                return 200, meeting
            if method == "PATCH":
                fields = self._validate(body if isinstance(body, dict) else {}, creating=False)
                with self._lock:
                    settings = {**meeting["settings"], **fields.pop("settings", {})}
                    meeting.update(fields, settings=settings)
                return 204, None
            if method == "DELETE":
                with self._lock:
                    self.meetings.pop(parts[1], None)
                return 204, None
        raise error(404, 404, "Not found")

    def _token(self, method: str, call: Call, body: Any) -> tuple[int, object]:
        params = {**call.query, **(body if isinstance(body, dict) else {})}
        if method != "POST":
            raise Reply(405, {"reason": "Method not allowed", "error": "invalid_request"})
        scheme, _, encoded = call.authorization.partition(" ")
        try:
            client, _, secret = base64.b64decode(encoded).decode().partition(":")
        except ValueError:
            client, secret = "", ""
        if scheme != "Basic" or not secret or self.clients.get(client) != secret:
            raise Reply(
                400, {"reason": "Invalid client_id or client_secret", "error": "invalid_client"}
            )
        if params.get("grant_type") != "account_credentials":
            raise Reply(
                400, {"reason": "Unsupported grant type", "error": "unsupported_grant_type"}
            )
        if params.get("account_id") != self.account_id:
            raise Reply(400, {"reason": "Invalid account_id", "error": "invalid_request"})
        token = secrets.token_hex(24)
        with self._lock:
            self.tokens[token] = self.clock() + self.expires_in
            self.issued.append(token)
        return 200, {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": self.expires_in,
            "scope": "meeting:write:meeting:admin meeting:read:list_meetings:admin",
            "api_url": "https://api.zoom.us",
        }

    def _check_token(self, authorization: str) -> None:
        scheme, _, token = authorization.partition(" ")
        with self._lock:
            expires = self.tokens.get(token) if scheme.lower() == "bearer" else None
        if expires is None or self.clock() >= expires:
            raise error(401, 124, "Invalid access token.")

    def _host(self, user: str) -> str:
        user = user.lower()
        if user not in self.users and user not in self.users.values():
            raise error(404, 1001, f"User does not exist: {user}.")
        return self.users.get(user, user)

    def _validate(self, body: dict, creating: bool) -> dict:
        out: dict = {}
        if "topic" in body:
            if not isinstance(body["topic"], str) or len(body["topic"]) > 200:
                raise invalid("topic", "at most 200 characters")
            out["topic"] = body["topic"]
        kind = body.get("type", 2 if creating else None)
        if kind is not None:
            if kind not in (1, 2, 3, 8):
                raise invalid("type", "1, 2, 3 or 8")
            out["type"] = kind
        if kind == 2 or "start_time" in body:
            start = body.get("start_time")
            if not isinstance(start, str) or not _TIME.fullmatch(start):
                raise invalid("start_time", "yyyy-MM-ddTHH:mm:ssZ")
            out["start_time"] = start
        if "duration" in body:
            if not isinstance(body["duration"], int) or body["duration"] <= 0:
                raise invalid("duration", "minutes, a positive number")
            out["duration"] = body["duration"]
        for name in ("timezone", "agenda"):
            if name in body:
                out[name] = body[name]
        settings = body.get("settings")
        if settings is not None:
            if not isinstance(settings, dict):
                raise invalid("settings", "an object")
            out["settings"] = dict(settings)
        return out

    def _create(self, host: str, body: dict) -> tuple[int, object]:
        fields = self._validate(body, creating=True)
        meeting_id = next(self._ids)
        password = secrets.token_hex(3) if body.get("default_password", True) else ""
        join_url = f"https://zoom.us/j/{meeting_id}" + (f"?pwd={password}x1" if password else "")
        meeting = {
            "uuid": base64.b64encode(secrets.token_bytes(12)).decode(),
            "id": meeting_id,
            "host_id": host,
            "host_email": host,
            "topic": "Zoom meeting",
            "agenda": "",
            "created_at": "2026-11-21T10:00:00Z",
            "timezone": "UTC",
            "duration": 60,
            **fields,
            "settings": {
                "waiting_room": False,
                "join_before_host": False,
                **fields.get("settings", {}),
            },
            "start_url": f"https://zoom.us/s/{meeting_id}?zak=secret",
            "join_url": join_url,
            "password": password,
        }
        with self._lock:
            self.meetings[str(meeting_id)] = meeting
        return 201, meeting

    def _list(self, host: str, query: dict) -> tuple[int, object]:
        try:
            size = min(300, int(query.get("page_size", 30)))
            start = int(query.get("next_page_token") or 0)
        except ValueError:
            raise invalid("page_size", "a number") from None
        with self._lock:
            mine = [m for m in self.meetings.values() if m["host_id"] == host]
        chunk = mine[start : start + size]
        following = str(start + size) if start + size < len(mine) else ""
        keys = (
            "uuid",
            "id",
            "host_id",
            "topic",
            "type",
            "start_time",
            "duration",
            "timezone",
            "agenda",
            "created_at",
            "join_url",
        )
        return 200, {
            "page_size": size,
            "total_records": len(mine),
            "next_page_token": following,
            "meetings": [{k: m.get(k) for k in keys} for m in chunk],
        }
