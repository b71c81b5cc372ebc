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

from radicale_meetplugin.radicale import put_etag, scheduling, unavailable


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
    unavailable.install()
    put_etag.install()
    unavailable.install()
    wrapped = ApplicationPartPut.do_PUT
    assert getattr(wrapped, "_meetplugin_wrapped", False)
    chain, f = [], wrapped  # the wrappers (put_etag's, unavailable's) and Radicale's own
    while f is not None:
        chain.append(f.__code__.co_filename)
        f = getattr(f, "__wrapped__", None)
    assert sum(name.endswith("put_etag.py") for name in chain) == 1  # not twice
    assert sum(name.endswith("unavailable.py") for name in chain) == 1
    assert chain[-1].endswith("put.py") and "radicale_meetplugin" not in chain[-1]
    assert Application.do_PUT is wrapped  # Radicale dispatches through the class


def test_scheduling_wraps_what_radicale_dispatches_through_once():
    from radicale import httputils
    from radicale.app import (
        delete,
        mkcalendar,
        mkcol,
        move,
        options,
        post,
        propfind,
        proppatch,
        report,
    )

    assert httputils.DAV_HEADERS.split(",")[0] == "1"
    params = list(inspect.signature(propfind.xml_propfind_response).parameters)
    assert params[:4] == ["self", "base_prefix", "path", "item"] and "propname" in params
    assert "xml_propfind_response" in propfind.xml_propfind.__code__.co_names  # a global lookup
    scheduling.install()
    scheduling.install()
    for handler in (
        propfind.xml_propfind_response,
        options.ApplicationPartOptions.do_OPTIONS,
        propfind.ApplicationPartPropfind.do_PROPFIND,
        report.ApplicationPartReport.do_REPORT,
        ApplicationPartPut.do_PUT,
        delete.ApplicationPartDelete.do_DELETE,
        post.ApplicationPartPost.do_POST,
        mkcol.ApplicationPartMkcol.do_MKCOL,
        mkcalendar.ApplicationPartMkcalendar.do_MKCALENDAR,
        proppatch.ApplicationPartProppatch.do_PROPPATCH,
        move.ApplicationPartMove.do_MOVE,
    ):
        chain, f = [], handler
        while f is not None:
            chain.append(f.__code__.co_filename)
            f = getattr(f, "__wrapped__", None)
        assert sum(name.endswith("scheduling.py") for name in chain) == 1, chain
        assert "radicale_meetplugin" not in chain[-1]
    assert Application.do_OPTIONS is options.ApplicationPartOptions.do_OPTIONS
    assert Application.do_PROPFIND is propfind.ApplicationPartPropfind.do_PROPFIND
    assert Application.do_POST is post.ApplicationPartPost.do_POST
    from radicale.app import report as radicale_report  # Radicale's free-busy, reused

    assert list(inspect.signature(radicale_report.freebusy_periods).parameters) == [
        "item",
        "range_start",
        "range_end",
        "max_occurrence",
    ]
    assert list(inspect.signature(radicale_report.render_freebusy).parameters) == [
        "periods",
        "range_start",
        "range_end",
    ]
