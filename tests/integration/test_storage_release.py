"""A dropped Storage releases what the plugin opened for it: sqlite files and the outbox thread."""

from __future__ import annotations

import gc
import os
import threading

import radicale.config
from radicale import storage as radicale_storage

from radicale_meetplugin.radicale import storage as plugin_storage


def configuration(folder) -> radicale.config.Configuration:
    conf = radicale.config.load()
    conf.update(
        {
            "storage": {
                "type": "radicale_meetplugin",
                "filesystem_folder": str(folder),
                "_filesystem_fsync": "False",
            }
        },
        "test",
        privileged=True,
    )
    return conf


def open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


def outbox_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith("meetplugin"))


def test_fifty_storages_on_fresh_folders_leave_nothing_open(tmp_path):
    gc.collect()
    files, threads = open_files(), outbox_threads()
    for n in range(50):
        store = radicale_storage.load(configuration(tmp_path / f"s{n}"))
        assert isinstance(store, plugin_storage.Storage) and store.meet.outbox is not None
        with store.acquire_lock("r"):
            assert list(store.discover("/", depth="1"))
        del store
    gc.collect()
    assert outbox_threads() <= threads
    assert open_files() <= files + 2  # (logging may keep a handle or two)
    assert not [k for k in plugin_storage._shared if str(tmp_path) in k[1]]


def test_storages_sharing_an_adapter_keep_it_until_the_last_goes(tmp_path):
    conf = configuration(tmp_path / "shared")
    first = radicale_storage.load(conf)
    second = radicale_storage.load(conf)
    adapter = first.meet
    assert second.meet is adapter and adapter.users == 2
    del first
    gc.collect()
    assert not adapter.closed and adapter.storage is second  # still at work, for the other
    with second.acquire_lock("w"):
        pass
    del second
    gc.collect()
    assert adapter.closed


def test_verify_mode_is_radicales_command_line_only():
    assert plugin_storage.verify_mode(["--config", "x", "--verify-storage"])
    assert plugin_storage.verify_mode(["--verify-st"])  # argparse takes a unique prefix
    assert not plugin_storage.verify_mode(["--config", "x"])
    assert not plugin_storage.verify_mode(["--", "--verify-storage"])
