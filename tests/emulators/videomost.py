"""A Videomost emulator speaking the adapter's *default* contract (docs/providers/videomost.md).

No public Videomost API manual exists; this server follows the assumptions the
adapter's defaults encode, and the one fact the seeds give (the join link):

- ``Authorization: Bearer <token>`` (401 ``{"error": "Unauthorized"}`` otherwise);
- ``POST /service/api/v1/conferences`` ``{name, start_time, duration,
  time_offset, participants[, confid]}`` -> 201 ``{confid (32 hex), confpass
  (digits), join_url, ...}``; a taken ``confid`` -> 409 ``ConferenceExists``;
  ``start_time``/``duration`` null: a conference without a schedule;
- ``GET``/``PUT``/``DELETE /service/api/v1/conferences/{confid}``; 404
  ``ConferenceNotFound``; DELETE -> 204;
- error bodies ``{"error": "<Code>", "message": "<text>"}``.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from .base import Call, Emulator, Reply

PREFIX = "/service/api/v1"
_CONFID = re.compile(r"[0-9a-f]{32}")


def error_body(code: str, message: str) -> dict:
    return {"error": code, "message": message}


class VideomostEmulator(Emulator):
    def __init__(self, token: str = "vm-token-789", host: str = "vm.example.ru") -> None:
        super().__init__()
        self.token = token
        self.user_tokens: set[str] = set()  # users' own tokens it also accepts
        self.join_host = host
        self.accept_client_ids = True
        self.conferences: dict[str, dict] = {}

    @property
    def api_url(self) -> str:
        return self.base + PREFIX

    def joinable(self, confid: str, at: float) -> bool:
        conf = self.conferences.get(confid)
        if conf is None:
            return False
        if conf["start_time"] is None:
            return True
        return conf["start_time"] <= at < conf["start_time"] + conf["duration"]

    def route(self, method: str, path: str, call: Call, body: Any) -> tuple[int, object]:
        if call.authorization not in {f"Bearer {t}" for t in (self.token, *self.user_tokens)}:
            raise Reply(401, error_body("Unauthorized", "Invalid or missing token"))
        if not path.startswith(PREFIX + "/conferences"):
            raise Reply(404, error_body("NotFound", "No such method"))
        rest = path[len(PREFIX + "/conferences") :].strip("/")
        if not rest:
            if method == "POST":
                return self._create(body if isinstance(body, dict) else {})
            raise Reply(405, error_body("MethodNotAllowed", method))
        with self._lock:
            conf = self.conferences.get(rest)
        if conf is None:
            raise Reply(404, error_body("ConferenceNotFound", f"Conference {rest} not found"))
        if method == "GET":
            return 200, conf
        if method in ("PUT", "PATCH"):
            fields = self._validate(body if isinstance(body, dict) else {})
            with self._lock:
                conf.update(fields)
            return 200, conf
        if method == "DELETE":
            with self._lock:
                self.conferences.pop(rest, None)
            return 204, None
        raise Reply(405, error_body("MethodNotAllowed", method))

    def _validate(self, body: dict) -> dict:
        name = body.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= 255:
            raise Reply(400, error_body("ValidationError", "name: 1..255 characters"))
        start, duration = body.get("start_time"), body.get("duration")
        if (start is None) != (duration is None) or (
            start is not None
            and not (isinstance(start, int) and isinstance(duration, int) and duration > 0)
        ):
            raise Reply(400, error_body("ValidationError", "start_time and duration"))
        participants = body.get("participants", [])
        if not isinstance(participants, list) or not all(
            isinstance(p, str) and "@" in p for p in participants
        ):
            raise Reply(400, error_body("ValidationError", "participants: e-mail addresses"))
        return {
            "name": name,
            "start_time": start,
            "duration": duration,
            "time_offset": body.get("time_offset"),
            "participants": participants,
        }

    def _create(self, body: dict) -> tuple[int, object]:
        fields = self._validate(body)
        confid = body.get("confid")
        if confid is not None:
            if (
                not self.accept_client_ids
                or not isinstance(confid, str)
                or not _CONFID.fullmatch(confid)
            ):
                raise Reply(400, error_body("ValidationError", "confid: 32 hex digits"))
        else:
            confid = secrets.token_hex(16)
        with self._lock:
            if confid in self.conferences:
                raise Reply(409, error_body("ConferenceExists", f"Conference {confid} exists"))
            password = str(1000 + secrets.randbelow(9000))
            conf = {
                "confid": confid,
                "confpass": password,
                **fields,
                "join_url": f"https://{self.join_host}/service/join/?confid={confid}"
                f"&confpass={password}",
            }
            self.conferences[confid] = conf
        return 201, conf
