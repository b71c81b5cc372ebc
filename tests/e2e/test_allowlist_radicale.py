"""Who may create rooms (seed 000 §1.1) through a real Radicale with user groups."""

from __future__ import annotations

import uuid

import icalendar
import pytest
from harness import TOKEN, RadicaleServer, event, plugin_config


@pytest.fixture(scope="module")
def grouped(tmp_path_factory, telemost):
    """Radicale with its own groups (`[group] type = htgroup`): alice is a manager.

    Telemost is for `@managers`, Jitsi for bob by name.
    """
    folder = tmp_path_factory.mktemp("grouped")
    groups = folder / "groups"
    groups.write_text("managers: alice carol\nstaff: bob\n")
    conf = plugin_config(telemost.url)
    conf = conf.replace("[provider:telemost]\n", "[provider:telemost]\nusers = @managers\n")
    conf = conf.replace("[provider:jitsi]\n", "[provider:jitsi]\nusers = bob\n")
    server = RadicaleServer(
        folder,
        conf,
        env={"TELEMOST_TOKEN": TOKEN},
        extra_radicale=f"[group]\ntype = htgroup\nhtgroup_filename = {groups}\n",
    ).start()
    server.ensure_user("alice")
    server.ensure_user("bob")
    yield server
    server.stop()
    assert "Traceback" not in server.log, server.log[-3000:]


def put(server, user: str, location: str) -> icalendar.Event:
    uid = f"{uuid.uuid4()}@allow"
    path = f"{user}/calendar/{uid}.ics"
    organizer = f"ORGANIZER:mailto:{user}@example.com"
    assert server.put(user, path, event(uid, location=location, extra=organizer)).ok
    text = server.get(user, path).text
    return icalendar.Calendar.from_ical(text).walk("VEVENT")[0]


def test_a_group_member_creates_a_room(grouped, telemost):
    ev = put(grouped, "alice", "телемост")
    assert str(ev["LOCATION"]).startswith("https://telemost.yandex.ru/j/")
    assert len(telemost.calls_of("POST")) == 1


def test_someone_outside_the_list_gets_an_explanation_and_no_call(grouped, telemost):
    ev = put(grouped, "bob", "Переговорная; телемост")
    assert telemost.calls == []
    assert str(ev["LOCATION"]) == "Переговорная; телемост"  # as sent
    assert str(ev["X-MEETPLUGIN-STATUS"]) == "error"
    assert (
        "вы не можете создавать встречи в сервисе Яндекс Телемост: администратор не включил "
        "вас в число тех, кому это разрешено" in str(ev["DESCRIPTION"])
    )


def test_a_list_of_names_lets_the_named_user_only(grouped, telemost):
    assert str(put(grouped, "bob", "jitsi")["LOCATION"]).startswith("https://meet.jit.si/")
    ev = put(grouped, "alice", "jitsi")
    assert "вы не можете создавать встречи в сервисе Jitsi Meet" in str(ev["DESCRIPTION"])
    assert "meet.jit.si" not in str(ev["LOCATION"])
