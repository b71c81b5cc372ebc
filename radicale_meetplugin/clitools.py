"""The conventions every admin command follows: config path, exit codes, one-line errors."""

from __future__ import annotations

import argparse
import logging
import os
import sqlite3
import sys
from collections.abc import Callable, Mapping

from radicale_meetplugin.config import ConfigError

# Exit codes of every command: all is well / something to look at / the command could not run.
OK, FINDINGS, FAILED = 0, 1, 2

# Radicale's own default, and the variable that overrides it (radicale/__main__.py).
RADICALE_CONFIG = "/etc/radicale/config"
RADICALE_CONFIG_ENV = "RADICALE_CONFIG"
# The bridge's: the path the systemd unit names.
BRIDGE_CONFIG = "/etc/meetplugin/bridge.conf"
BRIDGE_CONFIG_ENV = "MEETPLUGIN_BRIDGE_CONFIG"


class CommandError(Exception):
    """The command cannot run: its message is one line for the admin, and exit status 2."""


def default_config(env_name: str, fallback: str, env: Mapping[str, str] = os.environ) -> str:
    """The config file when -C is not given: `$env_name` if set, else `fallback`."""
    return env.get(env_name) or fallback


def add_config(
    parser: argparse.ArgumentParser,
    what: str = "Radicale's config file",
    *,
    env_name: str = RADICALE_CONFIG_ENV,
    fallback: str = RADICALE_CONFIG,
    hidden_aliases: tuple[str, ...] = (),
) -> None:
    """`-C/--config FILE`, with the default from the environment, on every command."""
    default = default_config(env_name, fallback)
    parser.add_argument(
        "-C",
        "--config",
        default=default,
        metavar="FILE",
        help=f"{what} (default: ${env_name} or {fallback}; now {default})",
    )
    for alias in hidden_aliases:  # older spellings keep working, unlisted
        parser.add_argument(alias, dest="config", help=argparse.SUPPRESS)


def config_file(path: str) -> str:
    """`path` if it is a readable file; else a CommandError that says what is wrong."""
    if not os.path.exists(path):
        raise CommandError(f"config file not found: {path} (give one with -C FILE)")
    if not os.path.isfile(path):
        raise CommandError(f"config file is not a file: {path}")
    if not os.access(path, os.R_OK):
        raise CommandError(f"config file not readable: {path} (run as the service's user)")
    return path


def progress(message: str) -> None:
    """A note on long work, on stderr (stdout stays the command's result)."""
    print(message, file=sys.stderr, flush=True)


def one_line(error: BaseException) -> str:
    """The error as one line without a traceback (the first line of its message)."""
    text = str(error).strip().splitlines()
    first = text[0] if text else ""
    if isinstance(error, CommandError | ConfigError) and first:
        return first
    name = type(error).__name__
    return f"{name}: {first}" if first else name


def run(prog: str, command: Callable[[], int], log: logging.Logger | None = None) -> int:
    """Run `command`; an error becomes one line on stderr and exit status 2.

    The traceback goes to the debug log only (commands with -v show it).
    """
    try:
        return command()
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return FAILED
    except (CommandError, ConfigError, OSError, sqlite3.Error, RuntimeError, ValueError) as e:
        (log or logging.getLogger("meetplugin")).debug("%s failed", prog, exc_info=True)
        print(f"{prog}: {one_line(e)}", file=sys.stderr)
        return FAILED
