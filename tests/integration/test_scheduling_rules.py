"""The scheduling boxes and the default-calendar rule over Radicale's own storage (in tmp)."""

from __future__ import annotations

import pytest
from radicale import config as radicale_config
from radicale.storage import multifilesystem

from radicale_meetplugin.radicale import scheduling


@pytest.fixture
def store(tmp_path):
    (tmp_path / "radicale.conf").write_text(
        f"[storage]\ntype = multifilesystem\nfilesystem_folder = {tmp_path / 'collections'}\n"
    )
    configuration = radicale_config.load([(str(tmp_path / "radicale.conf"), False)])
    return multifilesystem.Storage(configuration)


def make(store, path: str, **props: str) -> None:
    with store.acquire_lock("w"):
        store.create_collection(f"/{path}/", props=props or None)


def test_paths():
    assert scheduling.inbox_path("alice") == "alice/inbox"
    assert scheduling.outbox_path("alice") == "alice/outbox"


def test_no_home_or_no_calendar_has_no_default(store):
    with store.acquire_lock("r"):
        assert scheduling.default_calendar(store, "alice") is None
    make(store, "alice")
    make(store, "alice/contacts", tag="VADDRESSBOOK")
    with store.acquire_lock("w"):
        scheduling.create_boxes(store, "alice")
    with store.acquire_lock("r"):
        assert scheduling.default_calendar(store, "alice") is None  # boxes are no calendars
    assert scheduling.default_calendar(store, "../alice") is None


def test_first_calendar_by_href_that_takes_events(store):
    make(store, "alice")
    with store.acquire_lock("w"):
        scheduling.create_boxes(store, "alice")
    make(store, "alice/zz-work", tag="VCALENDAR")
    make(store, "alice/b-tasks", tag="VCALENDAR", **{"C:supported-calendar-component-set": "VTODO"})
    make(store, "alice/c-home", tag="VCALENDAR", **{"C:supported-calendar-component-set": "VEVENT"})
    make(store, "alice/a-subscribed", tag="VSUBSCRIBED")
    with store.acquire_lock("r"):
        assert scheduling.default_calendar(store, "alice") == "alice/c-home"
        assert scheduling.default_calendar(store, "bob") is None


def test_boxes_are_made_once_and_marked(store):
    make(store, "alice")
    for _ in range(2):
        with store.acquire_lock("w"):
            scheduling.create_boxes(store, "alice")
    with store.acquire_lock("r"):
        cols = {c.path: c for c in store.discover("/alice/", depth="1") if hasattr(c, "tag")}
    assert scheduling.box_kind(cols["alice/inbox"]) == "inbox"
    assert scheduling.box_kind(cols["alice/outbox"]) == "outbox"
    assert cols["alice/inbox"].tag == "VCALENDAR"  # so Radicale lists, reports and deletes
    assert scheduling.box_kind(cols["alice"]) is None


def test_a_calendar_named_inbox_is_not_a_box(store, caplog):
    make(store, "alice")
    make(store, "alice/inbox", tag="VCALENDAR")
    with store.acquire_lock("w"):
        scheduling.create_boxes(store, "alice")
    with store.acquire_lock("r"):
        inbox = next(iter(store.discover("/alice/inbox/")))
        assert scheduling.box_kind(inbox) is None
        assert scheduling.default_calendar(store, "alice") == "alice/inbox"
    assert "is an ordinary collection" in caplog.text
