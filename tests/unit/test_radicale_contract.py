"""The Radicale internals the adapter relies on, checked against the installed Radicale.

If a Radicale release changes one of these, this file fails first and says which.
"""

from __future__ import annotations

import inspect

import radicale
from radicale.app import Application
from radicale.app.put import ApplicationPartPut
from radicale.storage import multifilesystem
from radicale.storage.multifilesystem.lock import StoragePartLock

from radicale_meetplugin.radicale import put_etag


def test_supported_radicale_version():
    major, minor = (int(x) for x in radicale.VERSION.split(".")[:2])
    assert (major, minor) == (3, 9), radicale.VERSION


def test_storage_methods_the_adapter_wraps():
    assert list(inspect.signature(multifilesystem.Collection.upload).parameters) == [
        "self",
        "href",
        "item",
    ]
    assert list(inspect.signature(multifilesystem.Collection.delete).parameters) == ["self", "href"]
    assert list(inspect.signature(multifilesystem.Storage.move).parameters) == [
        "self",
        "item",
        "to_collection",
        "to_href",
    ]
    assert list(inspect.signature(multifilesystem.Storage.create_collection).parameters) == [
        "self",
        "href",
        "items",
        "props",
    ]
    assert "acquire_lock" in vars(StoragePartLock)


def test_put_wrapper_is_installed_once_and_found_by_the_application():
    put_etag.install()
    put_etag.install()
    wrapped = ApplicationPartPut.do_PUT
    assert getattr(wrapped, "_meetplugin_wrapped", False)
    assert getattr(wrapped.__wrapped__, "_meetplugin_wrapped", False) is False  # not twice
    assert Application.do_PUT is wrapped  # Radicale dispatches through the class
