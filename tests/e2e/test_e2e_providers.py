"""Zoom, Microsoft Teams and Nextcloud Talk end to end: one lifecycle suite, three providers.

A real Radicale with the plugin, each provider's emulator behind it. What a
person sees is the same for all three: a keyword becomes a link; moving,
renaming or changing attendees is one call where the provider keeps times and
titles; re-uploading changes nothing; cancelling, deleting or removing the link
deletes the meeting; an attendee's copy never touches it; every temporary fault
(timeout, refused, 5xx, 429 with Retry-After, a body that is not JSON, an
expired token) ends with the work done once, and a refusal (403) is explained.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import icalendar
import pytest
from harness import TOKEN, edit, event, plugin_config, read, settled, vevent

CAL = "alice/calendar"
ORGANIZED = "ORGANIZER:mailto:alice@example.com\nATTENDEE:mailto:ivan@example.com\n"
ZOOM_SECRET, TEAMS_SECRET, TALK_PASSWORD = "zoom-secret-321", "teams-secret-654", "talk-app-pass-1"
SECRETS_ENV = {
    "TELEMOST_TOKEN": TOKEN,
    "ZOOM_CLIENT_SECRET": ZOOM_SECRET,
    "TEAMS_CLIENT_SECRET": TEAMS_SECRET,
    "TALK_APP_PASSWORD": TALK_PASSWORD,
}


def provider_sections(zoom, teams, talk) -> str:
    return (
        "\n".join(
            [
                "[provider:zoom]",
                "account_id = acc-123",
                "client_id = zoom-client",
                f"api_url = {zoom.api_url}",
                f"token_url = {zoom.token_url}",
                "[provider:teams]",
                "tenant_id = contoso-tenant",
                "client_id = teams-app",
                f"graph_url = {teams.api_url}",
                f"token_url = {teams.token_url}",
                "fallback_user = {user}@example.com",
                "[provider:talk]",
                "server_url = https://cloud.example.ru",
                f"api_url = {talk.api_url}",
                "user = meetbot",
            ]
        )
        + "\n"
    )


@pytest.fixture(scope="module")
def radicale_config(zoom, teams, talk) -> str:
    conf = plugin_config(
        "http://127.0.0.1:9/v1/telemost-api",
        provider_timeout="5",
        call_timeout="1",
        retry_initial="0.1",
        retry_max_delay="0.5",
    )
    return conf + provider_sections(zoom, teams, talk)


@pytest.fixture(scope="module")
def radicale_env() -> dict[str, str]:
    return dict(SECRETS_ENV)


@pytest.fixture(scope="module")
def radicale_secrets(zoom, teams):
    return lambda: [TOKEN, ZOOM_SECRET, TEAMS_SECRET, TALK_PASSWORD, *zoom.issued, *teams.issued]


# --- one provider as the suite sees it -------------------------------------------------------


@dataclass
class Kit:
    name: str
    emu: object
    keyword: str
    store: Callable[[], dict]  # id -> the emulator's object
    topic: Callable[[dict], str]
    start: Callable[[dict], object]  # what the provider keeps of the start
    link: Callable[[dict], str]
    update: str  # the method a change of title or time uses
    moves: str  # the keyword whose meeting has a time at the provider
    attendees_call: bool  # an attendee change is a call
    deterministic: bool
    tokens: bool  # OAuth tokens that expire (401 renews them)
    error: Callable[[int], dict]  # the provider's error body for a status

    @property
    def items(self) -> dict:
        return self.store()

    def arm(self, method: str, fault: str) -> None:
        emu = self.emu
        if fault == "timeout":
            emu.hang_next(method)
        elif fault == "refused":
            emu.down()
        elif fault == "non-json":
            status = 201 if method == "POST" else 502
            emu.fail_next(method, status, raw=b"<html>proxy</html>")
        elif fault == "429":
            emu.fail_next(method, 429, self.error(429), headers={"Retry-After": "1"})
        elif fault == "token-401":
            emu.revoke_tokens()
        elif fault == "token-503":  # the API says 401, then the token endpoint is down once
            emu.revoke_tokens()
            emu.fail_next("POST", 503, {"error": "temporarily_unavailable"}, target="token")
        else:
            emu.fail_next(method, int(fault), self.error(int(fault)))


def zoom_error(status: int) -> dict:
    codes = {403: (200, "No permission."), 429: (429, "You have reached the rate limit.")}
    code, message = codes.get(status, (status, "Internal error."))
    return {"code": code, "message": message}


def graph_error(status: int) -> dict:
    code = {403: "Forbidden", 429: "TooManyRequests", 503: "serviceNotAvailable"}.get(
        status, "generalException"
    )
    return {"error": {"code": code, "message": "m", "innerError": {"request-id": "r"}}}


def ocs_error(status: int) -> dict:
    meta = {"status": "failure", "statuscode": status, "message": ""}
    return {"ocs": {"meta": meta, "data": []}}


@pytest.fixture(params=["zoom", "teams", "talk"])
def p(request) -> Kit:
    name = request.param
    emu = request.getfixturevalue(name)
    if name == "zoom":
        return Kit(
            name, emu, "zoom", lambda: emu.meetings, lambda m: m["topic"],
            lambda m: m.get("start_time"), lambda m: m["join_url"], "PATCH", "zoom",
            True, False, True, zoom_error,
        )  # fmt: skip
    if name == "teams":
        return Kit(
            name, emu, "teams", lambda: emu.meetings, lambda m: m["subject"],
            lambda m: m["startDateTime"], lambda m: m["joinWebUrl"], "PATCH", "teams",
            True, True, True, graph_error,
        )  # fmt: skip
    return Kit(
        name, emu, "nextcloud", lambda: emu.rooms, lambda m: m["name"],
        lambda m: m["lobbyTimer"], lambda m: f"https://cloud.example.ru/call/{m['token']}",
        "PUT", "nextcloud:лобби", False, False, False, ocs_error,
    )  # fmt: skip


def new_path() -> tuple[str, str]:
    uid = f"{uuid.uuid4()}@p"
    return uid, f"{CAL}/{uid}.ics"


def created(radicale, p: Kit, location: str = "", **kw) -> tuple[str, str, str]:
    uid, path = new_path()
    radicale.put("alice", path, event(uid, location=location or p.keyword, **kw))
    conf_id = str(settled(radicale, path)["X-MEETPLUGIN-CONFERENCE-ID"])
    assert conf_id in p.items
    p.emu.reset()
    return uid, path, conf_id


def api_calls(p: Kit) -> list:
    return [c for c in p.emu.calls if c.target == "api"]


def suspects_of(radicale, uid: str) -> int:
    db = sqlite3.connect(radicale.folder / "collections" / ".meetplugin" / "records.sqlite")
    try:
        return db.execute("SELECT COUNT(*) FROM suspects WHERE uid=?", (uid,)).fetchone()[0]
    finally:
        db.close()


# --- the lifecycle ---------------------------------------------------------------------------


def test_keyword_becomes_a_link_with_one_call(radicale, p):
    uid, path = new_path()
    r = radicale.put(
        "alice",
        path,
        event(
            uid, location=f"Переговорная 5; {p.keyword}", description="Повестка", extra=ORGANIZED
        ),
    )
    assert r.status_code == 201
    ev = vevent(read(radicale, path)[0])
    conf_id = str(ev["X-MEETPLUGIN-CONFERENCE-ID"])
    url = p.link(p.items[conf_id])
    assert str(ev["LOCATION"]) == f"Переговорная 5; {url}"
    assert str(ev["CONFERENCE"]) == url and str(ev["X-MEETPLUGIN-PROVIDER"]) == p.name
    assert f"Встреча пройдёт по ссылке: {url}" in str(ev["DESCRIPTION"])
    assert "X-MEETPLUGIN-PASTED" not in radicale.get("alice", path).text  # ours, not pasted
    assert [(c.method, c.status) for c in api_calls(p)] == [("POST", 201)]
    assert p.topic(p.items[conf_id]) == "Планёрка"


def test_moving_the_event_is_one_call_with_the_new_time(radicale, p):
    uid, path, conf_id = created(radicale, p, location=p.moves)
    before = p.start(p.items[conf_id])
    mark = radicale.mark()

    def move(ev):
        ev["DTSTART"].dt = ev["DTSTART"].dt.replace(day=26, hour=15)
        ev["DTEND"].dt = ev["DTEND"].dt.replace(day=26, hour=17)

    edit(radicale, path, move)
    radicale.wait_for_log(f"{uid}: {p.name} update done", start=mark)
    assert [c.method for c in api_calls(p)] == [p.update]
    after = p.start(p.items[conf_id])
    assert after != before
    expected = {
        "zoom": "2026-11-26T12:00:00Z",
        "teams": "2026-11-26T12:00:00Z",
        "talk": 1795694400,  # 15:00 Moscow: the lobby opens at the start
    }[p.name]
    assert after == expected
    if p.name == "teams":  # both ends, always
        (patch,) = api_calls(p)
        assert patch.body["endDateTime"] == "2026-11-26T14:00:00Z"
    if p.name == "zoom":
        (patch,) = api_calls(p)
        assert patch.body["duration"] == 120
    stored = radicale.get("alice", path)
    radicale.put("alice", path, stored.text, **{"If-Match": stored.headers["ETag"]})
    assert len(api_calls(p)) == 1  # the client's next save of that version is no call


def test_renaming_is_one_call(radicale, p):
    uid, path, conf_id = created(radicale, p)
    mark = radicale.mark()
    edit(radicale, path, lambda ev: ev.__setitem__("SUMMARY", icalendar.vText("Ретро")))
    radicale.wait_for_log(f"{uid}: {p.name} update done", start=mark)
    assert [c.method for c in api_calls(p)] == [p.update]
    assert p.topic(p.items[conf_id]) == "Ретро"


def test_an_attendee_change(radicale, p):
    uid, path, conf_id = created(radicale, p, extra=ORGANIZED)
    mark = radicale.mark()
    edit(radicale, path, lambda ev: ev.add("ATTENDEE", "mailto:petr@example.com"))
    radicale.wait_for_log(f"{uid}: {p.name} update done", start=mark)
    assert len(api_calls(p)) == (1 if p.attendees_call else 0)
    assert conf_id in p.items


def test_reuploading_the_server_version_makes_no_call(radicale, p):
    uid, path, conf_id = created(radicale, p, extra=ORGANIZED)
    stored = radicale.get("alice", path)
    for _ in range(3):
        r = radicale.put("alice", path, stored.text, **{"If-Match": stored.headers["ETag"]})
        assert r.status_code == 204
    assert p.emu.calls == []


def _cancel(radicale, path):
    edit(radicale, path, lambda ev: ev.__setitem__("STATUS", icalendar.vText("CANCELLED")))


def _delete(radicale, path):
    assert radicale.delete("alice", path).status_code == 200


def _remove_link(radicale, path):
    def drop(ev):
        ev["LOCATION"] = icalendar.vText("Переговорная 5")
        ev["DESCRIPTION"] = icalendar.vText("")

    edit(radicale, path, drop)


@pytest.mark.parametrize("how", [_cancel, _delete, _remove_link])
def test_cancel_delete_or_removing_the_link_deletes_the_meeting(radicale, p, how):
    uid, path, conf_id = created(radicale, p)
    mark = radicale.mark()
    how(radicale, path)
    radicale.wait_for_log(f"{uid}: {p.name} delete done", start=mark)
    assert [c.method for c in api_calls(p)] == ["DELETE"]
    assert conf_id not in p.items


def test_a_meeting_already_gone_counts_as_deleted(radicale, p):
    uid, path, conf_id = created(radicale, p)
    p.items.pop(conf_id)
    mark = radicale.mark()
    assert radicale.delete("alice", path).status_code == 200
    radicale.wait_for_log(f"{uid}: {p.name} delete done", start=mark)
    assert [c.status for c in api_calls(p)] == [404]
    assert f"{uid}: {p.name} conference not deleted" not in radicale.log


def test_an_attendee_copy_makes_and_deletes_nothing(radicale, p):
    uid = f"{uuid.uuid4()}@p"
    text = event(
        uid,
        location=p.keyword,
        extra="ORGANIZER:mailto:bob@example.com\nATTENDEE:mailto:alice@example.com",
    )
    assert radicale.put("alice", f"{CAL}/{uid}.ics", text).status_code == 201
    assert radicale.delete("alice", f"{CAL}/{uid}.ics").status_code == 200
    assert p.emu.calls == []


def test_a_pasted_link_of_the_provider_is_marked_as_pasted_and_never_called(radicale, p):
    urls = {
        "zoom": "https://us02web.zoom.us/j/85012345678?pwd=abc",
        "teams": "https://teams.microsoft.com/l/meetup-join/19%3ameeting_x%40thread.v2/0",
        "talk": "https://cloud.partner.ru/call/ab12cd34",
    }
    uid, path = new_path()
    radicale.put("alice", path, event(uid, location="Офис", description=f"Ссылка: {urls[p.name]}"))
    ev = vevent(read(radicale, path)[0])
    assert str(ev["CONFERENCE"]) == urls[p.name]
    assert ev["CONFERENCE"].params["X-MEETPLUGIN-PASTED"] == "TRUE"
    assert "X-MEETPLUGIN-PROVIDER" not in ev
    assert radicale.delete("alice", path).status_code == 200
    assert p.emu.calls == []


# --- faults ----------------------------------------------------------------------------------

TEMPORARY = ["timeout", "refused", "500", "503", "429", "non-json"]


@pytest.mark.parametrize("fault", TEMPORARY)
def test_a_create_survives_a_temporary_fault(radicale, p, fault):
    before = set(p.items)
    uid, path = new_path()
    mark = radicale.mark()
    p.arm("POST", fault)
    try:
        r = radicale.put("alice", path, event(uid, location=p.keyword, description="Повестка"))
        assert r.status_code == 201
        assert str(vevent(read(radicale, path)[0])["DESCRIPTION"]).startswith("Повестка")
    finally:
        if fault == "refused":
            p.emu.up()
    radicale.wait_for_log(f"{uid}: {p.name} create done", start=mark)
    made = set(p.items) - before
    assert len(made) == 1, "exactly one meeting for the event"
    ev = vevent(read(radicale, path)[0])
    assert str(ev["LOCATION"]) == p.link(p.items[made.pop()])
    if fault == "429":
        first, second = p.emu.calls_of("POST")[:2]
        assert second.at - first.at >= 1.0  # Retry-After honoured
    # An unanswered create may have made a meeting; with our own ids it cannot have.
    may_be_done = fault in ("timeout", "non-json") and not p.deterministic
    assert suspects_of(radicale, uid) == (1 if may_be_done else 0)


def test_a_create_whose_answer_was_lost(radicale, p):
    before = set(p.items)
    p.emu.lose_answer_next("POST")  # made at the provider, but the answer never comes
    uid, path = new_path()
    mark = radicale.mark()
    radicale.put("alice", path, event(uid, location=p.keyword))
    radicale.wait_for_log(f"{uid}: {p.name} create done", start=mark)
    made = set(p.items) - before
    if p.deterministic:  # createOrGet: the retry gets the same meeting back
        assert len(made) == 1
        assert [c.status for c in p.emu.calls_of("POST")] == [-1, 200]
        assert suspects_of(radicale, uid) == 0
    else:  # the provider chose the id: the first one is left, and recorded as a suspect
        assert len(made) == 2
        assert suspects_of(radicale, uid) == 1
    shown = str(vevent(read(radicale, path)[0])["X-MEETPLUGIN-CONFERENCE-ID"])
    assert shown in made


@pytest.mark.parametrize("fault", ["timeout", "500", "429", "token-401", "token-503"])
def test_an_update_survives_a_temporary_fault(radicale, p, fault):
    if fault.startswith("token") and not p.tokens:
        pytest.skip("app passwords do not expire: a 401 is a refusal (below)")
    uid, path, conf_id = created(radicale, p)
    p.arm(p.update, fault)
    mark = radicale.mark()
    edit(radicale, path, lambda ev: ev.__setitem__("SUMMARY", icalendar.vText("После сбоя")))
    radicale.wait_for_log(f"{uid}: {p.name} update done", start=mark)
    assert p.topic(p.items[conf_id]) == "После сбоя"
    assert p.emu.calls_of("POST") == []
    if fault == "token-401":
        assert [c.status for c in p.emu.calls_of(p.update)] == [
            401,
            200 if p.name == "teams" else 204,
        ]
        assert len(p.emu.calls_of("POST", target="token")) == 1
    if fault == "429":  # Retry-After honoured: the refused call is tried again a second later
        calls = p.emu.calls_of(p.update)
        refused = next(c for c in calls if c.status == 429)
        assert any(c.at - refused.at >= 1.0 and 200 <= c.status < 300 for c in calls)


@pytest.mark.parametrize("fault", TEMPORARY)
def test_a_delete_is_retried_until_done(radicale, p, fault):
    uid, path, conf_id = created(radicale, p)
    mark = radicale.mark()
    p.arm("DELETE", fault)
    try:
        assert radicale.delete("alice", path).status_code == 200
    finally:
        if fault == "refused":
            recovered = time.monotonic()
            p.emu.up()
    radicale.wait_for_log(f"{uid}: {p.name} delete done", start=mark)
    assert conf_id not in p.items
    if fault == "refused":
        assert time.monotonic() - recovered < 10


def test_a_create_refused_for_good_is_explained(radicale, p):
    before = set(p.items)
    uid, path = new_path()
    mark = radicale.mark()
    p.arm("POST", "403")
    radicale.put("alice", path, event(uid, location=p.keyword, description="Повестка"))
    radicale.wait_for_log(f"{uid}: {p.name} create done", start=mark)
    ev = vevent(read(radicale, path)[0])
    assert "Видеовстреча не создана" in str(ev["DESCRIPTION"])
    assert str(ev["X-MEETPLUGIN-STATUS"]) == "error"
    assert set(p.items) == before
    assert len(p.emu.calls_of("POST")) == 1  # no retry of a refusal


def test_a_refused_app_password_is_explained_not_retried(radicale, talk):
    uid, path = new_path()
    mark = radicale.mark()
    talk.fail_next("POST", 401, ocs_error(401))
    radicale.put("alice", path, event(uid, location="nextcloud"))
    radicale.wait_for_log(f"{uid}: talk create done", start=mark)
    ev = vevent(read(radicale, path)[0])
    assert "не принял учётные данные сервера (код 401)" in str(ev["DESCRIPTION"])
    assert [c.status for c in talk.calls_of("POST")] == [401]


def test_an_update_refused_for_good_is_logged_and_the_event_kept(radicale, p):
    uid, path, conf_id = created(radicale, p)
    p.arm(p.update, "403")
    mark = radicale.mark()
    edit(radicale, path, lambda ev: ev.__setitem__("SUMMARY", icalendar.vText("Запрещено")))
    radicale.wait_for_log(f"{uid}: {p.name} update: forbidden", start=mark)
    ev = vevent(read(radicale, path)[0])
    assert str(ev["SUMMARY"]) == "Запрещено"
    assert str(ev["X-MEETPLUGIN-CONFERENCE-ID"]) == conf_id
    assert [c.status for c in p.emu.calls_of(p.update)] == [403]


def test_reconcile_lists_our_orphans_and_no_one_elses(radicale, p):
    uid, path, conf_id = created(radicale, p)
    env = {**os.environ, **SECRETS_ENV}
    if p.name == "zoom":
        stranger = {"id": 5550099, "host_id": "appuser@example.com", "agenda": "q", "topic": "x"}
        orphan = {**stranger, "id": 5550098, "agenda": "meetplugin:" + "0" * 32}
        p.items.update({"5550099": stranger, "5550098": orphan})
        extra_ids = ("5550099", "5550098")
    elif p.name == "talk":
        base = {"type": 3, "name": "x", "displayName": "x"}
        p.items.update(
            {
                "stranger1": {**base, "token": "stranger1", "description": ""},
                "orphan001": {
                    **base,
                    "token": "orphan001",
                    "description": "meetplugin:" + "0" * 32,
                },
            }
        )
        p.emu.moderators.update({"stranger1": {"meetbot"}, "orphan001": {"meetbot"}})
        extra_ids = ("stranger1", "orphan001")
    else:
        extra_ids = ()
    try:
        dry = subprocess.run(
            [
                sys.executable,
                "-m",
                "radicale_meetplugin.cli",
                "reconcile",
                "-C",
                str(radicale.folder / "radicale.conf"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
    finally:
        for i in extra_ids:
            p.items.pop(i, None)
    out = dry.stdout
    assert not [s for s in (ZOOM_SECRET, TEAMS_SECRET, TALK_PASSWORD) if s in out + dry.stderr]
    if p.name == "teams":
        assert "teams: its API cannot list" in out, dry.stderr
        return
    orphan, stranger = ("5550098", "5550099") if p.name == "zoom" else ("orphan001", "stranger1")
    assert f"{p.name} conference {orphan} belongs to no event" in out, out + dry.stderr
    assert f"conference {stranger} " not in out and f"conference {conf_id} belongs" not in out


def test_check_proves_each_account_and_creates_nothing(radicale, zoom, teams, talk):
    before = (len(zoom.meetings), len(teams.meetings), len(talk.rooms))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "radicale_meetplugin.cli",
            "check",
            "-C",
            str(radicale.folder / "radicale.conf"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **SECRETS_ENV},
    )
    out = done.stdout
    assert "zoom (service account): OK" in out, out + done.stderr
    assert "teams (service account): OK (the application access policy" in out
    assert "talk (service account): OK" in out
    assert (len(zoom.meetings), len(teams.meetings), len(talk.rooms)) == before
    assert not [s for s in (ZOOM_SECRET, TEAMS_SECRET, TALK_PASSWORD) if s in out + done.stderr]
