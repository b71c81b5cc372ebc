"""A Nextcloud Talk (spreed) OCS API emulator, a real HTTP server on loopback.

- Every request needs ``OCS-APIRequest: true`` (412 ``{"message": "CSRF check
  failed"}`` otherwise) and Basic auth of a login and its app password (401
  with an OCS body, statuscode 997, otherwise). Answers are JSON only with
  ``Accept: application/json`` (XML otherwise), wrapped as ``{"ocs": {"meta":
  {status, statuscode, message}, "data": …}}``.
- Under ``/ocs/v2.php/apps/spreed/api/v4``: ``POST /room`` ``{roomType,
  roomName}`` -> 201 with the room (``token``: 8 of a-z0-9); roomType 3 is a
  public conversation; 400 ``{"error": "type"}`` for another type here.
  ``GET /room`` lists the caller's conversations; ``PUT /room/{token}``
  ``{roomName}`` renames (200); ``PUT /room/{token}/webinar/lobby`` ``{state,
  timer}`` (200 with the room; 400 for a bad state); ``DELETE /room/{token}``
  (200). A room the caller is not in: 404; not a moderator: 403.
"""

from __future__ import annotations

import base64
import secrets
import string
from typing import Any

from .base import Call, Emulator, Reply

PREFIX = "/ocs/v2.php/apps/spreed/api/v4"
_ALPHABET = string.ascii_lowercase + string.digits


def ocs(status: int, data: object = None, message: str = "") -> dict:
    ok = status < 300
    return {
        "ocs": {
            "meta": {
                "status": "ok" if ok else "failure",
                "statuscode": status if status != 401 else 997,
                "message": message or ("OK" if ok else ""),
            },
            "data": [] if data is None else data,
        }
    }


def failure(status: int, data: object = None, message: str = "") -> Reply:
    return Reply(status, ocs(status, data, message))


class TalkEmulator(Emulator):
    def __init__(self, accounts: dict[str, str] | None = None, host: str = "cloud.example.ru"):
        super().__init__()
        self.accounts = dict(accounts or {"meetbot": "talk-app-pass-1"})
        self.host = host
        self.rooms: dict[str, dict] = {}
        self.moderators: dict[str, set[str]] = {}  # token -> logins that may change the room

    @property
    def api_url(self) -> str:
        return self.base + PREFIX

    def route(self, method: str, path: str, call: Call, body: Any) -> tuple[int, object]:
        if call.headers.get("ocs-apirequest", "").lower() != "true":
            raise Reply(412, {"message": "CSRF check failed"})
        login = self._login(call.authorization)
        if "application/json" not in call.headers.get("accept", ""):
            raise Reply(200, None, {"Content-Type": "application/xml"})
        if not path.startswith(PREFIX + "/room"):
            raise failure(404, message="Not found")
        rest = (
            path[len(PREFIX + "/room") :].strip("/").split("/") if path != PREFIX + "/room" else []
        )
        body = body if isinstance(body, dict) else {}
        if not rest:
            if method == "POST":
                return self._create(login, body)
            if method == "GET":
                with self._lock:
                    mine = [r for t, r in self.rooms.items() if login in self.moderators.get(t, ())]
                return 200, ocs(200, mine)
            raise failure(405)
        token = rest[0]
        with self._lock:
            room = self.rooms.get(token)
            allowed = login in self.moderators.get(token, set())
        if room is None:
            raise failure(404)
        if not allowed:
            raise failure(403)
        if rest[1:] == ["webinar", "lobby"] and method == "PUT":
            state, timer = body.get("state"), body.get("timer", 0)
            if state not in (0, 1) or not isinstance(timer, int):
                raise failure(400)
            with self._lock:
                room.update(lobbyState=state, lobbyTimer=timer if state == 1 else 0)
            return 200, ocs(200, room)
        if rest[1:]:
            raise failure(404)
        if method == "GET":
            return 200, ocs(200, room)
        if method == "PUT":
            name = body.get("roomName")
            if not isinstance(name, str) or not name.strip() or len(name) > 255:
                raise failure(400, {"error": "name"})
            with self._lock:
                room.update(name=name, displayName=name)
            return 200, ocs(200)
        if method == "DELETE":
            with self._lock:
                self.rooms.pop(token, None)
                self.moderators.pop(token, None)
            return 200, ocs(200)
        raise failure(405)

    def _login(self, authorization: str) -> str:
        scheme, _, encoded = authorization.partition(" ")
        try:
            login, _, password = base64.b64decode(encoded).decode().partition(":")
        except ValueError:
            login, password = "", ""
        if scheme != "Basic" or not password or self.accounts.get(login) != password:
            raise failure(401, message="Current user is not logged in")
        return login

    def _create(self, login: str, body: dict) -> tuple[int, object]:
        if body.get("roomType") not in (2, 3):
            raise failure(400, {"error": "type"})
        name = body.get("roomName")
        if not isinstance(name, str) or not name.strip() or len(name) > 255:
            raise failure(400, {"error": "name"})
        token = "".join(secrets.choice(_ALPHABET) for _ in range(8))
        room = {
            "id": len(self.rooms) + 1,
            "token": token,
            "type": body["roomType"],
            "name": name,
            "displayName": name,
            "description": str(body.get("description", "")),
            "participantType": 1,
            "lobbyState": 0,
            "lobbyTimer": 0,
            "hasPassword": False,
        }
        with self._lock:
            self.rooms[token] = room
            self.moderators[token] = {login}
        return 201, ocs(201, room)
