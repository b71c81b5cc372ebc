"""The bridge's own config file: schema as data, values checked at start-up.

One INI file: ``[bridge]`` (where the plugin config and the state live, how
often to poll) and one ``[account:NAME]`` per CalDAV login. Providers, owner
address templates and language come from the plugin's config file, named by
``[bridge] meetplugin_config`` — the same file a Radicale plugin would use.
Passwords come from a file or an environment variable, never from this file,
and are never logged. Relative paths are relative to this file's folder.
"""

from __future__ import annotations

import configparser
import logging
import os
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from radicale_meetplugin.config import (
    ConfigError,
    Schema,
    Secret,
    boolean,
    csv,
    positive_float,
    read_secret,
    read_section,
    state_url,
)

logger = logging.getLogger("meetplugin.bridge")


def sync_mode(value: str) -> str:
    value = value.strip().lower()
    if value not in ("auto", "etag"):
        raise ValueError("auto or etag")
    return value


def worker_mode(value: str) -> str:
    value = value.strip().lower()
    if value not in ("single", "shared"):
        raise ValueError("single or shared")
    return value


def auth_mode(value: str) -> str:
    value = value.strip().lower()
    if value not in ("auto", "basic", "digest"):
        raise ValueError("auto, basic or digest")
    return value


# option -> (default, type, help). docs/configuration.md is generated from these.
BRIDGE_SCHEMA: Schema = {
    "meetplugin_config": (
        "",
        str,
        "The plugin's config file: providers, tokens, owner_addresses, language. "
        "Empty: all defaults (Jitsi).",
    ),
    "state_dir": (
        "",
        str,
        "Folder for records.sqlite (conferences, outbox) and bridge.sqlite (sync "
        "tokens, ETags). Empty: $STATE_DIRECTORY (systemd), else "
        "~/.local/state/meetplugin-bridge. The plugin config's state_dir wins.",
    ),
    "state_url": (
        "",
        state_url,
        "Empty: the state lives in sqlite under state_dir. postgresql://USER@HOST:PORT/DB: "
        "in that PostgreSQL database (conferences, outbox and the bridge's own tables), "
        "which several bridge workers may share. The plugin config's state_url wins.",
    ),
    "interval": ("60", positive_float, "Seconds between two cycles when running as a daemon."),
    "http_timeout": ("30", positive_float, "Seconds one CalDAV request may take."),
    "workers": (
        "single",
        worker_mode,
        "single: one bridge process follows these accounts (a lock file in state_dir "
        "enforces it). shared: several bridge processes with this config and one state "
        "(on one host with the sqlite state, on several hosts with a PostgreSQL state_url) "
        "share the accounts, each account leased to one worker at a time.",
    ),
    "lease_timeout": (
        "60",
        positive_float,
        "workers = shared: seconds after which a worker that stopped renewing its leases "
        "(crashed, hung, cut off from the state) loses its accounts to the others. "
        "Renewed every third of it (at most every 5 s).",
    ),
}

ACCOUNT_SCHEMA: Schema = {
    "url": (
        "",
        str,
        "Server URL: the CalDAV root or the principal URL (Nextcloud: "
        "https://HOST/remote.php/dav/). Required.",
    ),
    "username": ("", str, "Login. Empty: no authentication."),
    "password_file": ("", str, "File holding the password or app password (chmod 600)."),
    "password_env": ("", str, "Environment variable holding the password (when no file)."),
    "owner": (
        "",
        str,
        "Owner name: the {user} of owner_addresses and the owner part of the conference "
        "key. Default: the username. Unique per account.",
    ),
    "addresses": (
        "",
        csv,
        "The owner's e-mail addresses, added to the plugin config's owner_addresses: "
        "an event whose ORGANIZER is another address is an attendee copy.",
    ),
    "calendars": (
        "all",
        csv,
        "all: every calendar in the principal's calendar home; or calendar URLs "
        "(absolute, or paths on the server), comma-separated.",
    ),
    "sync": (
        "auto",
        sync_mode,
        "auto: WebDAV sync (RFC 6578) where the server offers it, else ETag listings; "
        "etag: always ETag listings.",
    ),
    "auth": (
        "auto",
        auth_mode,
        "auto: log in as the server's first challenge asks and, once Basic was accepted, "
        "send it with the first request of later runs; basic: send Basic credentials "
        "with every request from the first one on; digest: Digest only (it needs the "
        "server's challenge: one more request per run).",
    ),
    "enabled": ("true", boolean, "false skips this account."),
}


@dataclass(frozen=True)
class Account:
    name: str
    url: str
    username: str = ""
    password: Secret = field(default_factory=lambda: Secret(""))
    owner: str = ""
    addresses: tuple[str, ...] = ()
    calendars: tuple[str, ...] = ()  # empty: all of the calendar home
    sync: str = "auto"
    auth: str = "auto"


@dataclass(frozen=True)
class BridgeConfig:
    source: str
    meetplugin_config: str
    state_dir: str
    interval: float
    http_timeout: float
    accounts: tuple[Account, ...]
    workers: str = "single"  # "shared": several processes lease the accounts (bridge/leases.py)
    lease_timeout: float = 60.0
    state_url: str = ""  # PostgreSQL instead of sqlite under state_dir ("" = sqlite)


_section = read_section  # the plugin's schema reader: one place for both configs


def default_state_dir(env: Mapping[str, str] = os.environ) -> str:
    systemd = env.get("STATE_DIRECTORY", "").split(":")[0]
    return systemd or os.path.expanduser("~/.local/state/meetplugin-bridge")


def _account(
    name: str, values: dict[str, Any], source: str, resolve: Callable[[str], str]
) -> Account:
    where = f"{source}: [account:{name}]"
    url = values["url"].strip()
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{where} url = {url!r}: an http:// or https:// URL is required")
    if parts.username or parts.password:
        raise ConfigError(
            f"{where} url: put the login into username and password_file, not into the URL"
        )
    username = values["username"].strip()
    password = read_secret(
        resolve(values["password_file"]),
        values["password_env"].strip(),
        f"[account:{name}] password",
    )
    if (values["password_file"] or values["password_env"]) and not password:
        raise ConfigError(f"{where} has no password: {password.source} is empty")
    if username and not password:
        raise ConfigError(
            f"{where} has a username but no password: set password_file, or "
            "password_env naming an environment variable"
        )
    if password and not username:
        raise ConfigError(f"{where} has a password but no username")
    if (
        parts.scheme == "http"
        and password
        and parts.hostname not in ("127.0.0.1", "::1", "localhost")
    ):
        logger.warning("bridge: %s sends its password over plain http to %s", where, parts.hostname)
    owner = values["owner"].strip() or username
    if not owner:
        raise ConfigError(f"{where} needs an owner (there is no username to take it from)")
    addresses = tuple(a.lower() for a in values["addresses"])
    if "@" in owner and owner.lower() not in addresses:
        addresses = (*addresses, owner.lower())  # a login that is an address is one of theirs
    calendars = tuple(values["calendars"])
    if any(c.lower() == "all" for c in calendars):
        if len(calendars) > 1:
            raise ConfigError(f"{where} calendars: either all, or a list of calendar URLs")
        calendars = ()
    return Account(
        name,
        url if url.endswith("/") else url + "/",
        username,
        password,
        owner,
        addresses,
        calendars,
        values["sync"],
        values["auth"],
    )


def load(path: str, env: Mapping[str, str] | None = None) -> BridgeConfig:
    """Read and check the bridge config."""
    env = os.environ if env is None else env
    source = os.path.abspath(os.path.expanduser(path))
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=("#",))
    parser.optionxform = str.lower  # type: ignore[assignment]
    try:
        with open(source, encoding="utf-8") as f:
            parser.read_file(f, source)
    except OSError as e:
        raise ConfigError(f"cannot read the bridge config {source}: {e.strerror}") from None
    except configparser.Error as e:
        raise ConfigError(f"{source}: {e}") from None
    folder = os.path.dirname(source)

    def resolve(value: str) -> str:
        value = os.path.expanduser(value.strip())
        return os.path.join(folder, value) if value and not os.path.isabs(value) else value

    for name in parser.sections():
        if name != "bridge" and not (name.startswith("account:") and name[8:].strip()):
            raise ConfigError(
                f"{source}: unknown section [{name}]; known: [bridge], [account:NAME]"
            )
    main = _section(parser, "bridge", BRIDGE_SCHEMA, source)
    accounts = []
    for name in parser.sections():
        if not name.startswith("account:"):
            continue
        values = _section(parser, name, ACCOUNT_SCHEMA, source)
        if values["enabled"]:
            accounts.append(_account(name[8:].strip(), values, source, resolve))
    if not accounts:
        raise ConfigError(f"{source}: no [account:NAME] section (or all are disabled)")
    owners = [a.owner.lower() for a in accounts]
    double = sorted({o for o in owners if owners.count(o) > 1})
    if double:
        raise ConfigError(
            f"{source}: owner {double[0]!r} is named by more than one account; "
            "give each account its own owner"
        )
    return BridgeConfig(
        source,
        resolve(main["meetplugin_config"]),
        resolve(main["state_dir"]) or default_state_dir(env),
        main["interval"],
        main["http_timeout"],
        tuple(accounts),
        main["workers"],
        main["lease_timeout"],
        main["state_url"],
    )
