"""`meetplugin reconcile` reads one calendar per lock, says how far it is, sorts, exits 0/1/2."""

from __future__ import annotations

import contextlib
import gc
import subprocess
import sys

import radicale.config
import radicale.item as radicale_item
from harness import event
from radicale.storage import multifilesystem

from radicale_meetplugin.core.model import EventKey, Record, RecordState
from radicale_meetplugin.radicale.reconcile import ToolStorage, reconcile


def tool_storage(folder) -> ToolStorage:
    conf = radicale.config.load()
    conf.update(
        {"storage": {"type": "radicale_meetplugin", "filesystem_folder": str(folder)}},
        "test",
        privileged=True,
    )
    return ToolStorage(conf)


def fill(storage: ToolStorage, calendars: int, events: int) -> None:
    with storage.acquire_lock("w"):
        for user in ("alice", "bob"):
            storage.create_collection(f"/{user}/")
            for c in range(calendars):
                col, *_ = storage.create_collection(
                    f"/{user}/c{c}/", items=[], props={"tag": "VCALENDAR"}
                )
                for e in range(events):
                    uid = f"{user}-{c}-{e}@test"
                    item = radicale_item.Item(
                        collection_path=col.path, text=event(uid, location="Room 5")
                    )
                    item.prepare()
                    col.upload(f"{uid}.ics", item)


def test_reconcile_reads_one_calendar_per_lock_and_says_how_far(tmp_path, monkeypatch):
    storage = tool_storage(tmp_path / "s")
    fill(storage, calendars=3, events=2)
    holds: list[set[str]] = []
    held: list[set[str]] = []
    take = storage.acquire_lock

    @contextlib.contextmanager
    def acquire_lock(mode, user="", *args, **kwargs):
        with take(mode, user, *args, **kwargs):
            held.append(set())
            try:
                yield
            finally:
                holds.append(held.pop())

    get_all = multifilesystem.Collection.get_all

    def recording_get_all(self, *args, **kwargs):
        assert held, "a calendar read without the lock"
        held[-1].add(self.path)
        return get_all(self, *args, **kwargs)

    monkeypatch.setattr(storage, "acquire_lock", acquire_lock)
    monkeypatch.setattr(multifilesystem.Collection, "get_all", recording_get_all)
    said: list[str] = []
    # Two records whose events are gone, stored out of order: the findings come sorted.
    for uid in ("zz@test", "aa@test"):
        storage.meet.engine.store.put(
            Record(EventKey("bob", "bob/c9", uid), "jitsi", RecordState.FAILED, error_code="x")
        )
    findings = reconcile(storage, progress=said.append)
    read = [h for h in holds if h]
    assert len(read) == 6 and all(len(h) == 1 for h in read)  # 6 calendars, one per hold
    assert said and said[-1] == "read 6/6 calendars, 12 events"
    assert [f.where for f in findings] == ["bob/c9/aa@test", "bob/c9/zz@test"]
    del storage
    gc.collect()


def test_reconcile_that_cannot_run_says_so_in_one_line(tmp_path):
    conf = tmp_path / "radicale.conf"
    conf.write_text("[storage]\ntype = radicale_meetplugin\nmeetplugin_config = /nonexistent\n")
    out = subprocess.run(
        [sys.executable, "-m", "radicale_meetplugin.cli", "reconcile", "-C", str(conf)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    [line] = lines
    assert line.startswith("meetplugin reconcile: could not run:") and "/nonexistent" in line
