"""The plugin's own config file: schema as data, values checked at start-up.

Radicale's config names the file: ``[storage] meetplugin_config = /etc/radicale/meetplugin.conf``.
Sections: ``[meetplugin]``, ``[owner_addresses]`` (user = address, address), ``[mail]``
(invitation e-mails), ``[scheduling]`` (CalDAV scheduling, RFC 6638), ``[pasted_links]`` (label = regex) and one ``[provider:<name>]`` per
provider (options declared by the provider's plugin; ``module = <import path>`` names a
third-party provider).
"""

from __future__ import annotations

import configparser
import logging
import os
import re
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from radicale_meetplugin.core import address, i18n
from radicale_meetplugin.state.db import is_url, mask_url

logger = logging.getLogger("radicale.meetplugin")


def csv(value: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in value.replace(";", ",").split(",") if p.strip())


def boolean(value: str) -> bool:
    folded = value.strip().lower()
    if folded in ("1", "yes", "true", "on"):
        return True
    if folded in ("0", "no", "false", "off"):
        return False
    raise ValueError(f"not a boolean: {value!r}")


def state_url(value: str) -> str:
    value = value.strip()
    if value and not is_url(value):
        raise ValueError("empty (sqlite under state_dir) or postgresql://USER@HOST:PORT/DATABASE")
    return value


def positive_float(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise ValueError("must be greater than 0")
    return number


def positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise ValueError("must be greater than 0")
    return number


def count(value: str) -> int:
    """A whole number, 0 included."""
    number = int(value)
    if number < 0:
        raise ValueError("must be 0 or greater")
    return number


def auto_or_count(value: str) -> int | None:
    """A count (0 included), or None for "auto" (decided from the server's own limits)."""
    if value.strip().lower() == "auto":
        return None
    number = int(value)
    if number < 0:
        raise ValueError("auto, or a number >= 0 (0: saves never wait)")
    return number


def language(value: str) -> str:
    value = value.strip().lower()
    if value not in i18n.LANGUAGES:
        raise ValueError(f"one of {', '.join(i18n.LANGUAGES)}")
    return value


def language_or_default(value: str) -> str:
    return language(value) if value.strip() else ""


def port(value: str) -> int:
    """A TCP port, or 0 for "auto" (chosen by the security setting)."""
    if value.strip().lower() in ("", "auto"):
        return 0
    number = int(value)
    if not 0 < number < 65536:
        raise ValueError("auto, or a port from 1 to 65535")
    return number


def one_of(*choices: str) -> Callable[[str], str]:
    def convert(value: str) -> str:
        value = value.strip().lower()
        if value not in choices:
            raise ValueError(f"one of {', '.join(choices)}")
        return value

    return convert


def mail_address(value: str) -> str:
    if not value.strip():
        return ""
    normalized = address.normalize(value)
    if normalized is None:
        raise ValueError("not a plain e-mail address (name@domain)")
    return normalized


# option -> (default, type, help). docs/configuration.md is generated from these.
Schema = Mapping[str, tuple[str, Callable[[str], Any], str]]

MAIN_SCHEMA: Schema = {
    "default_provider": (
        "jitsi",
        str,
        "Provider for the generic keywords (online, онлайн, видеовстреча).",
    ),
    "generic_keywords": (
        "online, онлайн, видеовстреча",
        csv,
        "Keywords that mean the default provider (comma-separated, any case).",
    ),
    "language": ("ru", language, "Language of what the event shows: ru or en."),
    "owner_addresses": (
        "",
        csv,
        "Address templates of calendar owners, e.g. {user}@example.com. An event "
        "whose ORGANIZER is none of the owner's addresses is an attendee copy.",
    ),
    "state_dir": (
        "",
        str,
        "Where the conference records (sqlite) and generated secrets live. "
        "Default: <Radicale filesystem_folder>/.meetplugin",
    ),
    "state_url": (
        "",
        state_url,
        "Empty: the records live in sqlite under state_dir. postgresql://USER@HOST:PORT/DB: "
        "in that PostgreSQL database, which several Radicale processes and bridge workers "
        "may share (needs the [postgresql] extra). Keep the password out of it: libpq's "
        "PGPASSWORD or PGPASSFILE (~/.pgpass) are read. Logs and output show it masked.",
    ),
    "provider_timeout": (
        "8",
        positive_float,
        "Seconds a save waits for the provider. A slower answer still lands: "
        'the event shows a "link pending" note until it arrives.',
    ),
    "call_timeout": (
        "30",
        positive_float,
        "Seconds one provider HTTP call may take (connect and each read) before it "
        "counts as failed and is retried.",
    ),
    "retry_initial": (
        "5",
        positive_float,
        "First retry delay in seconds; it doubles with each try (with jitter).",
    ),
    "retry_max_delay": ("3600", positive_float, "Longest delay between two tries, in seconds."),
    "retry_for": (
        "86400",
        positive_float,
        "Seconds to keep retrying a conference that could not be created; then the event "
        "gets an explanation. Deletes are retried until done.",
    ),
    "pasted_links": (
        "true",
        boolean,
        "Give events with a pasted meeting link (Zoom, Teams, Meet, …, and any mask in "
        "[pasted_links]) a matching CONFERENCE property; nothing else is done.",
    ),
    "groups_file": (
        "",
        str,
        "File of user groups for the providers' `users = @group` (htgroup format: "
        "`group: user1 user2`). Empty: Radicale's own [group] htgroup_filename when "
        "[group] type = htgroup (groups from LDAP or PAM are not visible to a storage "
        "plugin: list them in this file).",
    ),
    "max_concurrency": (
        "4",
        positive_int,
        "Provider calls at once, for the whole server (e.g. while a calendar is imported).",
    ),
    "max_waiting_saves": (
        "auto",
        auto_or_count,
        "Saves that may wait for a provider at once; more return at once with the "
        '"link pending" note. auto: half of Radicale\'s [server] max_connections, '
        "so a slow provider never takes every connection from other users.",
    ),
    "release_memory": (
        "true",
        boolean,
        "When the plugin's provider calls are done, give the memory they freed back to "
        "the system (glibc's malloc_trim, at most every 10 s; nothing where the C library "
        "has none). Off: the process keeps it for its next burst.",
    ),
    "malloc_arenas": (
        "2",
        count,
        "At most this many glibc malloc arenas for the whole server process, as "
        "MALLOC_ARENA_MAX does (set at start; a MALLOC_ARENA_MAX in the environment wins). "
        "glibc's default, 8 per core, lets every thread that saved or waited on a provider "
        "keep an arena of mostly free heap; Python runs one thread at a time, so 2 cost no "
        "speed. 0: glibc's default.",
    ),
}

MAIL_SCHEMA: Schema = {
    "enabled": (
        "false",
        boolean,
        "Send invitation e-mails (iMIP) with the join link to attendees. Off by default: "
        "many clients send their own invitations, without the join line and the service "
        "name, and with the keyword instead of the link when the link comes after the save.",
    ),
    "host": ("", str, "SMTP server (required when enabled)."),
    "port": ("auto", port, "SMTP port; auto: 587 for starttls, 465 for tls, 25 for none."),
    "security": (
        "starttls",
        one_of("starttls", "tls", "none"),
        "starttls (submission, port 587), tls (implicit TLS, port 465) or none "
        "(plain SMTP: only for a relay on the same host or network).",
    ),
    "ca_file": (
        "",
        str,
        "PEM file of CA certificates to check the SMTP server's certificate "
        "with; empty: the system's.",
    ),
    "username": ("", str, "SMTP login; empty: no authentication."),
    "password_file": ("", str, "File holding the SMTP password."),
    "password_env": (
        "MEETPLUGIN_SMTP_PASSWORD",
        str,
        "Environment variable holding the SMTP password; read when password_file is empty.",
    ),
    "timeout": ("30", positive_float, "Seconds one SMTP command may take."),
    "sender_policy": (
        "fixed",
        one_of("fixed", "organizer"),
        "fixed: From is `sender` with the organizer's name, Reply-To is the "
        "organizer. organizer: From is the organizer's own address (the SMTP "
        "server must let the login send as every owner).",
    ),
    "sender": (
        "",
        mail_address,
        "The From address for sender_policy = fixed, e.g. calendar@example.com.",
    ),
    "send_to_organizer": (
        "false",
        boolean,
        "Also send the organizer each letter (the seeds' systems do).",
    ),
    "language": (
        "",
        language_or_default,
        "Language of the letters: ru or en; empty: [meetplugin] language.",
    ),
}

COMMON_PROVIDER_SCHEMA: Schema = {
    "enabled": ("true", boolean, "Offer this provider."),
    "keywords": ("", csv, "Extra keywords for this provider (the built-in ones stay)."),
    "module": (
        "",
        str,
        "Import path of a third-party provider module (it exports PLUGIN); empty: built-in.",
    ),
    "users": (
        "",
        csv,
        "Who may create rooms with the server's account at this provider: Radicale user "
        "names and @groups, e.g. alice, bob, @managers (groups: Radicale's [group] htgroup "
        "file, else [meetplugin] groups_file). Anyone else gets an explanation in the "
        "event and no call; a user's own credentials need no place here. Empty: everyone.",
    ),
}
# The provider schemas, given as they are, or found from the config's own sections:
# resolve({section name: its `module` option}) -> {provider name: schema}.
ProviderSchemas = Mapping[str, Schema] | Callable[[Mapping[str, str]], Mapping[str, Schema]]


class ConfigError(RuntimeError):
    pass


@dataclass(frozen=True)
class Secret:
    """A credential; its text never shows in repr, logs or errors."""

    value: str = field(repr=False)
    source: str = ""  # where it came from, safe to print ("file /etc/...", "env TELEMOST_TOKEN")

    def __bool__(self) -> bool:
        return bool(self.value)

    def __repr__(self) -> str:
        return f"Secret(from {self.source or 'nowhere'})"

    __str__ = __repr__


def read_secret(file_path: str, env_name: str, what: str) -> Secret:
    """A secret from a file or an environment variable, never from an event."""
    if file_path:
        path = os.path.expanduser(file_path)
        try:
            mode = os.stat(path).st_mode
            with open(path, encoding="utf-8") as f:
                value = f.read().strip()
        except OSError as e:
            raise ConfigError(f"{what}: cannot read the file {path}: {e.strerror}") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            logger.warning(
                "meetplugin: %s file %s can be read by other users; run: chmod 600 %s",
                what,
                path,
                path,
            )
        return Secret(value, f"file {path}")
    if env_name:
        return Secret(os.environ.get(env_name, "").strip(), f"env {env_name}")
    return Secret("", "")


@dataclass(frozen=True)
class Section:
    name: str
    values: Mapping[str, Any]

    def __getitem__(self, option: str) -> Any:
        return self.values[option]


def read_section(
    parser: configparser.ConfigParser, name: str, schema: Schema, source: str
) -> dict[str, Any]:
    """One INI section checked against its schema: unknown options and bad values say where."""
    raw = dict(parser.items(name)) if parser.has_section(name) else {}
    unknown = sorted(set(raw) - set(schema))
    if unknown:
        raise ConfigError(
            f"{source}: unknown option {unknown[0]!r} in [{name}]; known: {', '.join(schema)}"
        )
    values: dict[str, Any] = {}
    for option, (default, convert, _help) in schema.items():
        text = raw.get(option, default)
        try:
            values[option] = convert(text)
        except (ValueError, TypeError) as e:
            shown = mask_url(text)  # a state URL may hold a password
            raise ConfigError(f"{source}: [{name}] {option} = {shown!r}: {e}") from None
    return values


def _section(parser: configparser.ConfigParser, name: str, schema: Schema, source: str) -> Section:
    return Section(name, read_section(parser, name, schema, source))


def _labels_as_written(
    parser: configparser.ConfigParser, source: str, section: str
) -> dict[str, str]:
    """A section whose option names are labels people see: their case is kept."""
    if not parser.has_section(section):
        return {}
    cased = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=("#",))
    cased.optionxform = str  # type: ignore[assignment,method-assign]
    if source != "defaults":
        with open(source, encoding="utf-8") as f:
            cased.read_file(f, source)
    return dict(cased.items(section)) if cased.has_section(section) else {}


SCHEDULING_SCHEMA: Schema = {
    "enabled": (
        "false",
        boolean,
        "Serve CalDAV scheduling (RFC 6638): Radicale advertises calendar-auto-schedule, "
        "clients leave invitations to the server, and the server sends them (by [mail]) "
        "with the join link, delivers them to local attendees and takes replies back. "
        "Off by default: clients then send their own invitations, as with plain Radicale.",
    ),
    "local_delivery": (
        "true",
        boolean,
        "Deliver invitations to attendees who are users of this Radicale (found by their "
        "addresses) into their calendars.",
    ),
    "email_local": (
        "false",
        boolean,
        "Also e-mail attendees who are users of this Radicale (they get the invitation "
        "in their calendar either way).",
    ),
}


@dataclass(frozen=True)
class Settings:
    main: Section
    providers: Mapping[str, Section]  # name -> options (common + the provider's own)
    owner_addresses: Mapping[str, tuple[str, ...]]
    configured: frozenset[str] = frozenset()  # providers that have a section in the file
    source: str = "defaults"
    pasted_link_masks: Mapping[str, str] = field(default_factory=dict)  # name -> regex
    mail: Section = field(
        default_factory=lambda: Section(
            "mail",
            {option: convert(default) for option, (default, convert, _help) in MAIL_SCHEMA.items()},
        )
    )
    scheduling: Section = field(
        default_factory=lambda: Section(
            "scheduling",
            {
                option: convert(default)
                for option, (default, convert, _help) in SCHEDULING_SCHEMA.items()
            },
        )
    )

    def address_list(self, user: str) -> tuple[str, ...]:
        """The user's addresses, in order: explicit ones, the login when it is an
        address itself, then the templates' (a template that does not give one
        plain address, as `{user}@example.com` for the login `carol@example.com`,
        gives none)."""
        explicit = self.owner_addresses.get(user.lower(), ())
        login = address.normalize(user) if "@" in user else None
        templated = (
            address.normalize(t.replace("{user}", user))
            for t in self.main["owner_addresses"]
            if t.strip()
        )
        found: list[str] = []
        for a in (*(e.strip().lower() for e in explicit), login, *templated):
            if a and a not in found:
                found.append(a)
        return tuple(found)

    def addresses_of(self, user: str) -> frozenset[str]:
        return frozenset(self.address_list(user))

    def logins_of(self, addr: str) -> tuple[str, ...]:
        """The logins whose addresses (`address_list`) hold `addr`: explicit ones first.

        Whether such a user exists in Radicale is for the caller to ask its storage.
        """
        wanted = address.normalize(addr)
        if wanted is None:
            return ()
        return tuple(
            login
            for login in address.login_candidates(
                wanted, self.owner_addresses, self.main["owner_addresses"]
            )
            if wanted in self.address_list(login)
        )


def load(path: str | None, provider_schemas: ProviderSchemas) -> Settings:
    """Read and check the plugin config; a missing path means all defaults."""
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=("#",))
    parser.optionxform = str.lower  # type: ignore[assignment]
    source = "defaults"
    if path:
        source = os.path.expanduser(path)
        try:
            with open(source, encoding="utf-8") as f:
                parser.read_file(f, source)
        except OSError as e:
            raise ConfigError(f"cannot read the meetplugin config {source}: {e.strerror}") from None
        except configparser.Error as e:
            raise ConfigError(f"{source}: {e}") from None
    if callable(provider_schemas):
        modules = {
            name[9:]: parser.get(name, "module", fallback="")
            for name in parser.sections()
            if name.startswith("provider:")
        }
        try:
            provider_schemas = provider_schemas(modules)
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None
    for name in parser.sections():
        if name in ("meetplugin", "owner_addresses", "pasted_links", "mail", "scheduling"):
            continue
        if not name.startswith("provider:") or name[9:] not in provider_schemas:
            raise ConfigError(
                f"{source}: unknown section [{name}]; providers: "
                f"{', '.join(f'[provider:{n}]' for n in provider_schemas)}; a third-party "
                "provider's section names its module (module = mypackage.myprovider)"
            )
    main = _section(parser, "meetplugin", MAIN_SCHEMA, source)
    providers = {
        name: _section(parser, f"provider:{name}", {**COMMON_PROVIDER_SCHEMA, **schema}, source)
        for name, schema in provider_schemas.items()
    }
    if main["default_provider"] not in providers:
        raise ConfigError(
            f"{source}: [meetplugin] default_provider = "
            f"{main['default_provider']!r} is not a provider"
        )
    owners = {
        user.lower(): csv(value)
        for user, value in (
            parser.items("owner_addresses") if parser.has_section("owner_addresses") else []
        )
    }
    configured = frozenset(n[9:] for n in parser.sections() if n.startswith("provider:"))
    masks = _labels_as_written(parser, source, "pasted_links")
    for name, regex in masks.items():
        try:
            re.compile(regex)
        except re.error as e:
            raise ConfigError(
                f"{source}: [pasted_links] {name}: not a regular expression: {e}"
            ) from None
    mail = _section(parser, "mail", MAIL_SCHEMA, source)
    if mail["enabled"]:
        if not mail["host"].strip():
            raise ConfigError(f"{source}: [mail] is enabled but has no host")
        if mail["sender_policy"] == "fixed" and not mail["sender"]:
            raise ConfigError(
                f"{source}: [mail] sender_policy = fixed needs a sender "
                "address, e.g. sender = calendar@example.com"
            )
    scheduling = _section(parser, "scheduling", SCHEDULING_SCHEMA, source)
    return Settings(main, providers, owners, configured, source, masks, mail, scheduling)
