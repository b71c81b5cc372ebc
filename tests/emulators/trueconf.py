"""A TrueConf Server API emulator (v3.x), a real HTTP server following PROVIDERS.md.

- ``POST /oauth2/v1/token`` (form or JSON), ``grant_type=client_credentials``:
  ``{access_token, expires_in, token_type: "Bearer"}``; a wrong client gives
  401 ``{"error": "invalid_client", "error_description": ...}``. Tokens expire
  after ``expires_in`` seconds of ``clock`` (tests may put in a fake clock);
  ``revoke_tokens()`` makes every issued token invalid at once (forced 401).
- Users' own tokens (OAuth authorization code, as TrueConf's own client does it):
  ``POST /api/v4/oauth2/token`` (JSON) with ``grant_type=authorization_code``,
  ``auth_code`` (from ``sign_in(user)``, single use), ``client_id``,
  ``client_secret``, ``redirect_uri`` -> ``{access_token, refresh_token,
  expires_in, user_id}``; ``grant_type=refresh_token`` renews the access token
  and, with ``rotate_refresh``, the refresh token too (the old one stops working).
  ``token_users`` says whose an access token is.
- API under ``/api/v3.11``, ``Authorization: Bearer <token>`` checked (401
  otherwise). Errors use TrueConf's nested body:
  ``{"error": {"code": 404, "message": "Not Found", "errors": [{"reason":
  "conferenceNotFound", "message": ..., "locationType": "path", "location":
  "conference_id"}]}}``.
- ``POST /conferences``: a caller-chosen ``id`` (1-128 of [A-Za-z0-9_]) or a
  generated one; ``topic`` 1-240; ``schedule`` ``{type: -1}`` or ``{type: 1,
  start_time, duration, time_offset}``; ``invitations [{id}]``; ``type`` 0, 1
  or 3 (v3) or ``mode`` PxP, OxP, S|L, S|L Auto (v4), anything else 400. 409
  ``conferenceAlreadyExists`` when the id is taken. Answers wrap the object:
  ``{"conference": {...}}`` with ``url = https://<host>/c/<id>``.
- ``GET /conferences?page_id=&page_size=`` -> ``{conferences, cnt, next_page_id}``
  (-1 on the last page); ``GET``/``PUT``/``DELETE /conferences/{id}``
  (DELETE: 204 by default, ``delete_status = 200`` answers ``{"id": ...}``).
"""

from __future__ import annotations

import itertools
import re
import secrets
from typing import Any

from .base import Call, Emulator, Reply

# Conference modes: v3 `type` (0 symmetric, 1 asymmetric, 3 role-based) and v4 `mode`.
TYPES = (0, 1, 3)
MODES = ("PxP", "OxP", "S|L", "S|L Auto")

PREFIX = "/api/v3.11"
TOKEN_PATH = "/oauth2/v1/token"
USER_TOKEN_PATH = "/api/v4/oauth2/token"
_ID = re.compile(r"[A-Za-z0-9_]{1,128}")


def error_body(status: int, message: str, reason: str, detail: str, location: str = "") -> dict:
    error: dict = {"reason": reason, "message": detail}
    if location:
        error.update(
            locationType="path" if location == "conference_id" else "body", location=location
        )
    return {"error": {"code": status, "message": message, "errors": [error]}}


def not_found(conf_id: str) -> Reply:
    return Reply(
        404,
        error_body(
            404,
            "Not Found",
            "conferenceNotFound",
            f"Conference '{conf_id}' is not found.",
            "conference_id",
        ),
    )


def bad_request(reason: str, detail: str, location: str) -> Reply:
    return Reply(400, error_body(400, "Bad Request", reason, detail, location))


class TrueConfEmulator(Emulator):
    def __init__(
        self,
        client_id: str = "meetplugin",
        client_secret: str = "tc-secret-456",
        host: str = "tc.example.ru",
    ) -> None:
        super().__init__()
        self.clients = {client_id: client_secret}
        self.join_host = host
        self.expires_in = 604800
        self.tokens: dict[str, float] = {}  # token -> when it expires (self.clock)
        self.issued: list[str] = []
        self.delete_status = 204
        self.conferences: dict[str, dict] = {}
        self._ids = itertools.count(5_576_502_892)
        self.redirect_uri = "https://calendar.example.ru/trueconf-signed-in"
        self.codes: dict[str, str] = {}  # sign-in code -> user
        self.refresh_tokens: dict[str, str] = {}  # refresh token -> user
        self.token_users: dict[str, str] = {}  # access token -> user (not the service's)
        self.rotate_refresh = True

    @property
    def api_url(self) -> str:
        return self.base + PREFIX

    @property
    def token_url(self) -> str:
        return self.base + TOKEN_PATH

    @property
    def user_token_url(self) -> str:
        return self.base + USER_TOKEN_PATH

    def target_of(self, path: str) -> str:
        return {TOKEN_PATH: "token", USER_TOKEN_PATH: "user-token"}.get(path, "api")

    def sign_in(self, user: str) -> str:
        """The code the browser would land with after `user` signed in and allowed access."""
        code = secrets.token_hex(8)
        with self._lock:
            self.codes[code] = user
        return code

    # --- test controls -----------------------------------------------------

    def revoke_tokens(self) -> None:
        """Every token issued so far is refused from now on (the next call gets 401)."""
        with self._lock:
            self.tokens.clear()

    def joinable(self, conf_id: str, at: float) -> bool:
        """Can one join the conference at unix time `at`? (a permanent room: always)"""
        conf = self.conferences.get(conf_id)
        if conf is None:
            return False
        sched = conf["schedule"]
        if sched["type"] == -1:
            return True
        return sched["start_time"] <= at < sched["start_time"] + sched["duration"]

    # --- the API -------------------------------------------------------------

    def route(self, method: str, path: str, call: Call, body: Any) -> tuple[int, object]:
        if call.target == "token":
            return self._token(method, body)
        if call.target == "user-token":
            return self._user_token(method, body)
        self._check_token(call.authorization)
        if not path.startswith(PREFIX + "/conferences"):
            raise Reply(404, error_body(404, "Not Found", "notFound", "No such method"))
        rest = path[len(PREFIX + "/conferences") :].strip("/")
        if not rest:
            if method == "POST":
                return self._create(body)
            if method == "GET":
                return self._list(call.query)
            raise Reply(405, error_body(405, "Method Not Allowed", "methodNotAllowed", ""))
        with self._lock:
            conf = self.conferences.get(rest)
        if conf is None:
            raise not_found(rest)
        if method == "GET":
            return 200, {"conference": conf}
        if method == "PUT":
            fields = self._validate(body or {}, creating=False)
            with self._lock:
                conf.update(fields)
            return 200, {"conference": conf}
        if method == "DELETE":
            with self._lock:
                self.conferences.pop(rest, None)
            return (204, None) if self.delete_status == 204 else (200, {"id": rest})
        raise Reply(405, error_body(405, "Method Not Allowed", "methodNotAllowed", ""))

    def _user_token(self, method: str, body: Any) -> tuple[int, object]:
        body = body if isinstance(body, dict) else {}
        grant = body.get("grant_type")
        if method != "POST" or grant not in ("authorization_code", "refresh_token"):
            raise Reply(400, {"error": "unsupported_grant_type", "error_description": "No"})
        if self.clients.get(body.get("client_id", "")) != body.get("client_secret") or not body.get(
            "client_secret"
        ):
            raise Reply(401, {"error": "invalid_client", "error_description": "Bad client"})
        with self._lock:
            if grant == "authorization_code":
                user = self.codes.pop(str(body.get("auth_code", "")), None)
                if body.get("redirect_uri") != self.redirect_uri:
                    user = None
                refresh = None
            else:
                refresh = str(body.get("refresh_token", ""))
                user = self.refresh_tokens.get(refresh)
            if user is None:
                raise Reply(400, {"error": "invalid_grant", "error_description": "Bad grant"})
            token = secrets.token_hex(20)
            self.tokens[token] = self.clock() + self.expires_in
            self.issued.append(token)
            self.token_users[token] = user
            if refresh is None or self.rotate_refresh:
                if refresh is not None:
                    del self.refresh_tokens[refresh]
                refresh = secrets.token_hex(24)
                self.refresh_tokens[refresh] = user
                self.issued.append(refresh)
        return 200, {
            "access_token": token,
            "refresh_token": refresh,
            "expires_in": self.expires_in,
            "token_type": "Bearer",
            "user_id": user,
        }

    def _token(self, method: str, body: Any) -> tuple[int, object]:
        body = body if isinstance(body, dict) else {}
        if method != "POST":
            raise Reply(405, {"error": "invalid_request", "error_description": "POST only"})
        if body.get("grant_type") != "client_credentials":
            raise Reply(
                400,
                {
                    "error": "unsupported_grant_type",
                    "error_description": "Grant type not supported",
                },
            )
        if self.clients.get(body.get("client_id", "")) != body.get("client_secret") or not body.get(
            "client_secret"
        ):
            raise Reply(
                401,
                {
                    "error": "invalid_client",
                    "error_description": "The client credentials are invalid",
                },
            )
        token = secrets.token_hex(20)
        with self._lock:
            self.tokens[token] = self.clock() + self.expires_in
            self.issued.append(token)
        return 200, {
            "access_token": token,
            "expires_in": self.expires_in,
            "token_type": "Bearer",
            "scope": "conferences",
        }

    def _check_token(self, authorization: str) -> None:
        scheme, _, token = authorization.partition(" ")
        with self._lock:
            expires = self.tokens.get(token) if scheme == "Bearer" else None
        if expires is None or self.clock() >= expires:
            raise Reply(
                401,
                error_body(
                    401, "Unauthorized", "invalidToken", "The access token provided is invalid"
                ),
            )

    def _validate(self, body: dict, creating: bool) -> dict:
        out: dict = {}
        if "topic" in body or creating:
            topic = body.get("topic")
            if not isinstance(topic, str) or not 1 <= len(topic) <= 240:
                raise bad_request("invalidParameter", "topic: 1..240 characters", "topic")
            out["topic"] = topic
        if "schedule" in body or creating:
            sched = body.get("schedule", {"type": -1})
            kind = sched.get("type") if isinstance(sched, dict) else None
            if kind == -1:
                out["schedule"] = {"type": -1}
            elif kind == 1:
                fields = {k: sched.get(k) for k in ("start_time", "duration", "time_offset")}
                if (
                    not all(isinstance(v, int) and not isinstance(v, bool) for v in fields.values())
                    or fields["duration"] <= 0
                ):
                    raise bad_request(
                        "invalidParameter",
                        "schedule: start_time, duration, time_offset",
                        "schedule",
                    )
                out["schedule"] = {"type": 1, **fields}
            else:
                raise bad_request("invalidParameter", "schedule.type: -1 or 1", "schedule")
        if "invitations" in body:
            invitations = body["invitations"]
            if not isinstance(invitations, list) or not all(
                isinstance(i, dict) and isinstance(i.get("id"), str) and i["id"]
                for i in invitations
            ):
                raise bad_request("invalidParameter", "invitations: [{id}]", "invitations")
            out["invitations"] = [
                {"id": i["id"], "display_name": i.get("display_name", i["id"])} for i in invitations
            ]
        if "type" in body and (isinstance(body["type"], bool) or body["type"] not in TYPES):
            raise bad_request("invalidParameter", "type: 0, 1 or 3", "type")
        if "mode" in body and body["mode"] not in MODES:
            raise bad_request("invalidParameter", "mode: PxP, OxP, S|L or S|L Auto", "mode")
        for name in ("owner", "type", "mode"):
            if name in body:
                out[name] = body[name]
        return out

    def _create(self, body: Any) -> tuple[int, object]:
        body = body if isinstance(body, dict) else {}
        conf_id = body.get("id")
        if conf_id is None:
            conf_id = str(next(self._ids))
        elif not isinstance(conf_id, str) or not _ID.fullmatch(conf_id):
            raise bad_request("invalidParameter", "id: 1..128 of [A-Za-z0-9_]", "id")
        fields = self._validate(body, creating=True)
        with self._lock:
            if conf_id in self.conferences:
                raise Reply(
                    409,
                    error_body(
                        409,
                        "Conflict",
                        "conferenceAlreadyExists",
                        f"Conference '{conf_id}' already exists.",
                        "id",
                    ),
                )
            conf = {
                "id": conf_id,
                "type": 0,
                "owner": "",
                "description": "",
                "invitations": [],
                "max_participants": 36,
                "allow_guests": False,
                **fields,
                "url": f"https://{self.join_host}/c/{conf_id}",
                "webclient_url": f"https://{self.join_host}/webrtc/{conf_id}",
                "state": "stopped",
            }
            self.conferences[conf_id] = conf
        return 200, {"conference": conf}

    def _list(self, query: dict) -> tuple[int, object]:
        try:
            page, size = int(query.get("page_id", 1)), int(query.get("page_size", 10))
        except ValueError:
            raise bad_request("invalidParameter", "page_id, page_size", "page_id") from None
        with self._lock:
            ids = sorted(self.conferences)
            chunk = [self.conferences[i] for i in ids[(page - 1) * size : page * size]]
        following = page + 1 if page * size < len(ids) else -1
        return 200, {"conferences": chunk, "cnt": len(ids), "next_page_id": following}
