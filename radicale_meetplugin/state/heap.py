"""Gives the process's free heap back to the system after a burst of work (I/O: glibc)."""

from __future__ import annotations

import ctypes
import logging
import os
import time
from collections.abc import Callable

logger = logging.getLogger("radicale.meetplugin")

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _glibc(name: str, argtypes: list, restype: type) -> Callable[..., int] | None:
    """A function of the C library this process runs on, or None where that library has
    none (musl, macOS) or ctypes cannot open the process itself (Windows)."""
    try:
        function = getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError, TypeError):  # TypeError: Windows has no CDLL(None)
        return None
    function.argtypes = argtypes
    function.restype = restype
    return function  # type: ignore[no-any-return]


_TRIM = _glibc("malloc_trim", [ctypes.c_size_t], ctypes.c_int)
_MALLOPT = _glibc("mallopt", [ctypes.c_int, ctypes.c_int], ctypes.c_int)
_M_ARENA_MAX = -8  # mallopt's parameter number for MALLOC_ARENA_MAX (glibc's malloc.h)
_limited: int | None = None  # the limit this process set, once


def available() -> bool:
    return _TRIM is not None


def limit_arenas(arenas: int) -> bool:
    """Let at most `arenas` malloc arenas serve this process's threads (glibc's M_ARENA_MAX).

    glibc gives each thread that allocates while the others hold theirs an
    arena of its own, up to 8 per core, and an arena keeps what it once held:
    after 16 saves waited for a provider, Radicale carries a dozen arenas of
    mostly free, fragmented heap that `malloc_trim` cannot give back. Python
    runs one thread at a time, so a few arenas cost no speed. It must be set
    before the threads start; the environment's MALLOC_ARENA_MAX, if set,
    wins. True when the limit is in place.
    """
    global _limited
    if _limited is not None:
        return _limited == arenas
    if "MALLOC_ARENA_MAX" in os.environ:
        logger.info("meetplugin: malloc arenas left as MALLOC_ARENA_MAX sets them")
        _limited = 0
        return False
    if _MALLOPT is None or _MALLOPT(_M_ARENA_MAX, arenas) != 1:
        return False
    _limited = arenas
    logger.info("meetplugin: at most %d malloc arenas for the process's threads", arenas)
    return True


def arena_limit() -> int | None:
    """The limit `limit_arenas` set in this process (None: glibc's own)."""
    return _limited or None


def resident() -> int | None:
    """This process's resident memory in bytes (None where /proc is not there)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


def release() -> int | None:
    """Return the free pages of every malloc arena to the system (`malloc_trim(0)`).

    glibc keeps what each thread's arena once held: after many saves waited
    for a provider at once, a dozen arenas hold megabytes nobody uses. The
    call changes no setting and frees nothing in use. Returns the bytes the
    resident size shrank by (None: no glibc, nothing done).
    """
    if _TRIM is None:
        return None
    before, started = resident(), time.perf_counter()
    _TRIM(0)
    after, took = resident(), time.perf_counter() - started
    shrank = before - after if before is not None and after is not None else 0
    logger.debug(
        "meetplugin: gave %.1f MiB of free heap back to the system (%.1f ms)",
        shrank / 2**20,
        took * 1000,
    )
    return shrank
