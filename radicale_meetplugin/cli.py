"""The admin command line: ``meetplugin <command>``."""

from __future__ import annotations

import argparse
import logging
import sqlite3
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from radicale_meetplugin import __version__, clitools
from radicale_meetplugin.clitools import CommandError

if TYPE_CHECKING:
    from radicale_meetplugin.config import Settings


def _radicale_configuration(config_path: str):
    import radicale.config

    clitools.config_file(config_path)
    try:
        configuration = radicale.config.load([(config_path, False)])
    except Exception as e:  # Radicale says "Failed to load config file 'x': <parser's words>"
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CommandError(f"not a valid Radicale config: {reason}") from None
    if configuration.get("storage", "type") != "radicale_meetplugin":
        raise CommandError(f"{config_path}: [storage] type is not radicale_meetplugin")
    return configuration


def _plugin_config(config_path: str) -> tuple[str, str]:
    """(plugin config path, state folder default) from Radicale's config file."""
    import os

    configuration = _radicale_configuration(config_path)
    try:
        plugin = configuration.get("storage", "meetplugin_config")
    except KeyError:
        plugin = ""
    folder = configuration.get("storage", "filesystem_folder")
    return plugin, os.path.join(folder, ".meetplugin")


def check_command(args: argparse.Namespace) -> int:
    """Validate the config and ask every provider whether its credentials work.

    Writes nothing: no state folder, no records, no generated secret (a missing
    one is reported); providers are built read-only. A bridge config (it has a
    [bridge] section) is checked by the bridge's own command, which also logs
    in to each account's CalDAV server.
    """
    import configparser
    import subprocess

    path = clitools.config_file(args.config)
    sections = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        sections.read(path, encoding="utf-8")
    except configparser.Error:
        pass  # not ours to judge here: Radicale's reader says what is wrong below
    if sections.has_section("bridge"):
        bridge = [sys.executable, "-m", "bridge", "--check", "--config", path]
        return subprocess.run(bridge, check=False).returncode
    plugin, state = _plugin_config(args.config)  # unreadable: exit 2
    return check_plugin(plugin, state)


def check_plugin(plugin: str, state: str, state_url: str = "") -> int:
    """The plugin config at `plugin` and its providers' credentials; 0 OK, 1 findings.

    `state_url`: the state database when the plugin config names none (the bridge's).
    """
    import os

    from radicale_meetplugin import config, providers
    from radicale_meetplugin.bootstrap import build_providers

    try:
        settings, plugins = providers.load_settings(plugin)
        ctx = providers.BuildContext(
            timeout=settings.main["call_timeout"],
            state_dir=os.path.expanduser(settings.main["state_dir"] or state),
            read_only=True,
        )
        ready, per_user = build_providers(settings, plugins, ctx)
    except (config.ConfigError, RuntimeError, ValueError) as e:
        print(f"config: NOT OK: {e}")
        return 1
    print(f"config: OK ({settings.source})")
    enabled = {*ready, *per_user}
    if not enabled:
        print("providers: none enabled")
    lang = settings.main["language"]
    failures = 0
    accounts: list[tuple[str, str, providers.Provider | None]] = [
        (name, "service account", p) for name, p in sorted(ready.items())
    ]
    for name, source in sorted(per_user.items()):
        for user in source.known_users():
            accounts.append((name, f"user {user}", source.get(user)))
    for name, who, provider in accounts:
        if provider is None:
            failures += 1
            print(f"{name} ({who}): NOT OK: the stored token cannot be read")
            continue
        try:
            note = provider.check()
        except providers.ProviderError as e:
            failures += 1
            reason = providers.reason_text(lang, e.code, plugins, name, error=e)
            print(f"{name} ({who}): NOT OK: {reason}")
        else:
            print(f"{name} ({who}): OK" + (f" ({note})" if note else ""))
    default = settings.main["default_provider"]
    if default not in enabled:
        failures += 1
        print(f"default_provider {default}: NOT OK: it is not enabled")
    if settings.main["state_url"] or state_url:
        failures += not _check_state_url(settings.main["state_url"] or state_url)
    return 1 if failures else 0


def _check_state_url(url: str) -> bool:
    """Can the state database be reached, and is its schema current? (Reads only.)"""
    import sqlite3

    from radicale_meetplugin.state.db import mask_url
    from radicale_meetplugin.state.records import SCHEMA, RecordStore

    try:
        store = RecordStore(url, pool=1, read_only=True, migrate=False)
    except ImportError:
        print(f"state {mask_url(url)}: NOT OK: install the [postgresql] extra (psycopg)")
        return False
    except sqlite3.Error as e:  # db.Unavailable: the password is masked in it
        print(f"state: NOT OK: {clitools.one_line(e)}")
        return False
    try:
        version = store.db.version
    finally:
        store.close()
    if version > SCHEMA.version:
        print(f"state {store.path}: OK (schema version {version}, newer than this program's)")
    elif version < SCHEMA.version:
        print(
            f"state {store.path}: OK (schema version {version} of {SCHEMA.version}: "
            "`meetplugin migrate` or the next start brings it up to date)"
        )
    else:
        print(f"state {store.path}: OK (schema version {version})")
    return True


def token_command(args: argparse.Namespace) -> int:
    """Get, check and store one user's own credential for a provider."""
    import getpass
    import os

    from radicale_meetplugin import config, providers
    from radicale_meetplugin.providers.users import CredentialError, write_private

    plugin_path, state = _plugin_config(args.config)
    settings, plugins = providers.load_settings(plugin_path)  # ConfigError: exit 2
    plugin = plugins.get(args.provider)
    if plugin is None or plugin.users is None:
        takes = sorted(n for n, p in plugins.items() if p.users is not None)
        print(
            f"{args.provider}: no per-user credentials for this provider; "
            f"providers that take them: {', '.join(takes) or 'none'}"
        )
        return 2
    users = plugin.users
    options = settings.providers[plugin.name].values
    path = users.path(options, args.user)
    if path is None:
        print(
            f"Set [provider:{plugin.name}] {users.folder_option} in the plugin config first "
            "(a folder readable only by Radicale), and give a valid user name."
        )
        return 2
    arguments = {"client_id": args.client_id or ""}
    missing = [a for a in users.arguments if not arguments.get(a)]
    if missing:
        print(f"{plugin.name} needs --{missing[0].replace('_', '-')}")
        return 2
    print(users.steps(options, args.user, arguments))
    token = (
        sys.stdin.readline()
        if args.token_stdin
        else getpass.getpass(f"3. Paste the {users.pasted} (not shown): ")
    ).strip()
    if not token:
        print(f"No {users.pasted} given; nothing stored.")
        return 2
    ctx = providers.BuildContext(
        timeout=settings.main["call_timeout"],
        state_dir=os.path.expanduser(settings.main["state_dir"] or state),
        read_only=True,
    )
    if users.exchange is not None:  # e.g. an OAuth code for the refresh token stored
        try:
            token = users.exchange(options, ctx, config.Secret(token, "input")).value
        except config.ConfigError as e:
            print(f"The {users.pasted} cannot be used: {e}. Nothing stored.")
            return 1
        except providers.ProviderError as e:
            print(f"The {users.pasted} does not work: {e}. Nothing stored.")
            return 1
    if not args.no_verify:
        try:
            candidate = users.build(options, ctx, config.Secret(token, "input"))
            candidate.check()
        except config.ConfigError as e:
            print(f"The token cannot be used: {e}. Nothing stored.")
            return 1
        except providers.ProviderError as e:
            print(f"The token does not work: {e}. Nothing stored.")
            return 1
    storage = os.path.dirname(state)  # Radicale's storage folder: the server's own files
    try:
        write_private(path, (token + "\n").encode(), service_folder=storage)
    except CredentialError as e:
        print(f"Not stored: {e}")
        return 1
    print(f"Stored for {args.user} in {path} (mode 600). It is used from the next save on.")
    return 0


def _storage(config_path: str):
    from radicale_meetplugin.radicale.reconcile import ToolStorage

    return ToolStorage(_radicale_configuration(config_path))


def _state(args: argparse.Namespace) -> tuple[str, str]:
    """(state folder, state URL): --state-dir, else what Radicale's config leads to."""

    from radicale_meetplugin import providers

    if getattr(args, "state_dir", None):
        return args.state_dir, ""
    plugin, state = _plugin_config(args.config)
    settings, _plugins = providers.load_settings(plugin)
    return _state_of(settings, state)


def _state_of(settings: Settings, state: str) -> tuple[str, str]:
    """(state folder, state URL) of loaded settings; `state`: the folder Radicale's config gives."""
    import os

    return os.path.expanduser(settings.main["state_dir"] or state), settings.main["state_url"]


def _records(state_dir: str, state_url: str) -> tuple[str, bool]:
    """The records database (its URL, or the file in the state folder) and whether it exists."""
    import os

    target = state_url or os.path.join(state_dir, "records.sqlite")
    return target, bool(state_url) or os.path.isfile(target)


def status_command(args: argparse.Namespace) -> int:
    """Print what the state says; read-only (nothing is created or changed)."""
    from radicale_meetplugin import status

    state_dir, state_url = _state(args)
    current = status.read(state_dir, state_url=state_url)
    if args.json:
        sys.stdout.write(status.as_json(current))
    elif args.prometheus:
        sys.stdout.write(status.prometheus(current))
    else:
        sys.stdout.write(status.text(current))
    return clitools.FINDINGS if current.findings() else clitools.OK


def reconcile_command(args: argparse.Namespace) -> int:
    """0: everything adds up; 1: findings; 2: could not run (one line on stderr, no traceback)."""
    import sqlite3

    from radicale_meetplugin import config

    def progress(text: str) -> None:
        clitools.progress(f"reconcile: {text}")

    try:
        from radicale_meetplugin.radicale.reconcile import reconcile, wait_for_jobs

        storage = _storage(args.config)
        if args.forget_suspects:
            print(f"forgot {storage.meet.engine.store.forget_suspects()} suspect attempts")
        findings = reconcile(storage, fix=args.fix, progress=progress)
        if args.fix:
            progress(f"running the queued provider jobs (up to {args.wait:g} s)")
            wait_for_jobs(storage, timeout=args.wait)
    except clitools.CommandError:
        raise  # the shared one-line error and exit 2
    except SystemExit as e:  # a config that is not the plugin's: its message, exit 2
        print(f"meetplugin reconcile: could not run: {e}", file=sys.stderr)
        return 2
    except (config.ConfigError, OSError, sqlite3.Error, RuntimeError, ValueError) as e:
        print(f"meetplugin reconcile: could not run: {clitools.one_line(e)}", file=sys.stderr)
        return 2
    for finding in findings:
        print(finding.line())
    problems = [f for f in findings if f.problem]
    if not problems:
        print("everything adds up: every conference has its event and every marked event its link")
    elif not args.fix:
        print(f"{len(problems)} to look at; run again with --fix to repair what can be repaired")
    return 1 if problems else 0


def explain_command(args: argparse.Namespace) -> int:
    """Print what the plugin knows and decides about one stored event; writes nothing."""
    import sqlite3

    from radicale_meetplugin import config
    from radicale_meetplugin.radicale.explain import CannotExplain, explain

    try:
        plugin, state = _plugin_config(args.config)
        lines = list(explain(_radicale_configuration(args.config), plugin, state, args.event))
    except SystemExit as e:
        print(f"meetplugin explain: could not run: {e}", file=sys.stderr)
        return 2
    except (CannotExplain, config.ConfigError, OSError, sqlite3.Error, RuntimeError) as e:
        print(f"meetplugin explain: could not run: {clitools.one_line(e)}", file=sys.stderr)
        return 2
    for line in lines:
        print(line)
    return 0 if lines and "not stored" not in lines[0] else 1


def imip_inbox_command(args: argparse.Namespace) -> int:
    """Attendees' iMIP REPLY letters (stdin or a Maildir) into the organizers' copies.

    Exit codes an MTA understands: 0 taken or ignored on purpose, 75
    (EX_TEMPFAIL) when it must try again (storage busy, config unreadable).
    """

    from radicale.storage import multifilesystem

    from radicale_meetplugin import config, providers
    from radicale_meetplugin.radicale import inbound
    from radicale_meetplugin.radicale.attendees import RadicaleCalendars
    from radicale_meetplugin.state.records import RecordStore

    logging.getLogger("radicale.meetplugin").setLevel(logging.INFO)
    try:
        raw = b"" if args.maildir else sys.stdin.buffer.read(inbound.MAX_MESSAGE + 1)
        configuration = _radicale_configuration(args.config)
        plugin, state = _plugin_config(args.config)
        settings, _plugins = providers.load_settings(plugin)
        if not settings.scheduling["enabled"]:
            print("meetplugin imip-inbox: [scheduling] is not enabled: ignored", file=sys.stderr)
            return inbound.EX_OK
        database, exists = _records(*_state_of(settings, state))
        if not exists:
            print(f"meetplugin imip-inbox: no state file {database}: ignored", file=sys.stderr)
            return inbound.EX_OK
        storage = multifilesystem.Storage(configuration)
        folder = str(configuration.get("storage", "filesystem_folder"))
        records = RecordStore(database, pool=2)
    except (CommandError, config.ConfigError, OSError, sqlite3.Error, RuntimeError) as e:
        print(f"meetplugin imip-inbox: try again later: {clitools.one_line(e)}", file=sys.stderr)
        return inbound.EX_TEMPFAIL
    try:
        calendars = RadicaleCalendars(
            lambda: storage,
            settings,
            records,
            lambda: inbound.storage_lock(folder, args.wait),
            configuration.get("server", "max_vevent_rrule_occurrence"),
        )
        taker = inbound.Inbound(calendars, folder, args.wait)
        if args.maildir:
            taker.maildir(args.maildir)
        elif len(raw) > inbound.MAX_MESSAGE:
            print("meetplugin imip-inbox: the letter is too big: ignored", file=sys.stderr)
        else:
            taker.take(raw)
    except (inbound.Busy, sqlite3.OperationalError) as e:
        print(f"meetplugin imip-inbox: try again later: {clitools.one_line(e)}", file=sys.stderr)
        return inbound.EX_TEMPFAIL
    finally:
        records.close()
    return inbound.EX_OK


def migrate_command(args: argparse.Namespace) -> int:
    """Bring the configured state's schema up to date (what a start does); --check reads only.

    0: up to date (now, or already); 1: --check found steps to run; 2: could not run.
    """

    from radicale_meetplugin.state.records import SCHEMA, RecordStore

    target, exists = _records(*_state(args))
    if not exists:
        raise clitools.CommandError(f"no plugin state at {target}: nothing to migrate")
    store = RecordStore(target, pool=1, read_only=args.check, migrate=False)
    try:
        before = store.db.version
        if before >= SCHEMA.version:
            print(f"{store.path}: schema version {before}: up to date, nothing to do")
            return clitools.OK
        if args.check:
            print(
                f"{store.path}: schema version {before}: {SCHEMA.version - before} step(s) to run"
            )
            return clitools.FINDINGS
        _, after = store.db.migrate()
    finally:
        store.close()
    print(f"{store.path}: schema version {before} -> {after}")
    return clitools.OK


def migrate_state_command(args: argparse.Namespace) -> int:
    """Copy a sqlite state file into PostgreSQL (see state/transfer.py); --check reads only."""
    from radicale_meetplugin.state.transfer import TransferError, migrate_state

    try:
        transfer = migrate_state(args.source, args.target, check=args.check)
    except TransferError as e:
        raise clitools.CommandError(str(e)) from None
    for line in transfer.lines(args.check):
        print(line)
    if args.check and (transfer.copied or transfer.created):
        return clitools.FINDINGS
    return clitools.OK


def _token_arguments(parser: argparse.ArgumentParser) -> None:
    clitools.add_config(parser)
    parser.add_argument("--user", required=True, help="the Radicale user the token is for")
    parser.add_argument(
        "--client-id", default="", help="ClientID of your OAuth app, where the steps need one"
    )
    parser.add_argument("--token-stdin", action="store_true", help="read the token from stdin")
    parser.add_argument(
        "--no-verify", action="store_true", help="store without asking the provider"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="meetplugin", description="Admin tools for radicale-meetplugin."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser(
        "reconcile",
        help="compare conference records, events, queued jobs and providers",
        description="Lists conferences without events (orphans), marked events without a "
        "link, unfinished attempts and queued jobs. Dry run unless --fix.",
    )
    clitools.add_config(rec)
    rec.add_argument(
        "--fix",
        action="store_true",
        help="delete orphan conferences, forget stale records, re-submit events "
        "whose link is missing, and run queued jobs now",
    )
    rec.add_argument(
        "--forget-suspects",
        action="store_true",
        help="clear the list of creates that got no answer (after checking the provider's account)",
    )
    rec.add_argument(
        "--wait",
        type=float,
        default=120,
        help="seconds to wait for provider calls with --fix (default 120)",
    )
    rec.set_defaults(run=reconcile_command)
    why = sub.add_parser(
        "explain",
        help="say what the plugin decided for a stored event and why",
        description="Prints, for one stored event, its conference record, pending jobs, "
        "letters, which provider it asks for, whether its owner organizes it, and what a "
        "save would decide now. Reads only: nothing is written, no provider is called.",
    )
    why.add_argument("-C", "--config", required=True, help="Radicale's config file")
    why.add_argument("event", metavar="CALENDAR/UID", help="e.g. alice/calendar/1234@example.com")
    why.set_defaults(run=explain_command)
    chk = sub.add_parser(
        "check",
        help="validate the config and verify each provider's credentials",
        description="Reads Radicale's and the plugin's config, and asks each "
        "provider whether its credentials work (nothing is created).",
    )
    clitools.add_config(chk)
    chk.set_defaults(run=check_command)
    tok = sub.add_parser(
        "token",
        help="get and store a user's own credential for a provider",
        description="Prints how to get the user's token at the provider, reads it, checks "
        "it and stores it as <user_token_dir>/<user>.token (mode 600, owned like that "
        "folder). Run as root, it refuses what Radicale could not read.",
    )
    tok.add_argument("provider", help="the provider's name, as in [provider:NAME]")
    _token_arguments(tok)
    tok.set_defaults(run=token_command)
    alias = sub.add_parser(
        "telemost-token",
        help="the same as: token telemost",
        description="The same as `meetplugin token telemost`.",
    )
    _token_arguments(alias)
    alias.set_defaults(run=token_command, provider="telemost")
    sta = sub.add_parser(
        "status",
        help="queue, suspects, letters, provider errors, bridge cycles (read-only)",
        description="Reads the state folder without changing it. Exit status 1 when "
        "something needs a look (suspects, undelivered letters, a failing bridge account).",
    )
    clitools.add_config(sta)
    sta.add_argument(
        "--state-dir",
        metavar="DIR",
        help="read this state folder instead of the one the config names "
        "(e.g. the bridge's /var/lib/meetplugin-bridge)",
    )
    form = sta.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="print JSON")
    form.add_argument(
        "--prometheus",
        action="store_true",
        help="print metrics in Prometheus' text format (for node_exporter's textfile collector)",
    )
    sta.set_defaults(run=status_command)
    imip = sub.add_parser(
        "imip-inbox",
        help="take attendees' iMIP replies (e-mail) into the organizers' events",
        description="Reads one e-mail message on stdin (an MTA pipe) or the unread "
        "messages of a Maildir; each iMIP REPLY whose sender is the attendee it "
        "answers for, about a meeting this server scheduled, sets that attendee's "
        "PARTSTAT in the organizer's event. Exit 0: taken or ignored; 75: try again.",
    )
    clitools.add_config(imip)
    imip.add_argument("--maildir", metavar="PATH", help="process this Maildir's unread letters")
    imip.add_argument(
        "--wait",
        type=float,
        default=30,
        metavar="SECONDS",
        help="how long to wait for Radicale's storage lock (default 30)",
    )
    imip.set_defaults(run=imip_inbox_command)
    mig = sub.add_parser(
        "migrate",
        help="bring the state's schema up to date (each start does it too)",
        description="Runs the schema steps the state (sqlite file or PostgreSQL database) "
        "has not seen yet. With --check it only says whether there are any (exit 1).",
    )
    clitools.add_config(mig)
    mig.add_argument("--check", action="store_true", help="report only; change nothing")
    mig.set_defaults(run=migrate_command)
    mst = sub.add_parser(
        "migrate-state",
        help="copy a sqlite state file into a PostgreSQL database",
        description="Copies conference records, pending jobs, suspects and letters (or, "
        "from a bridge.sqlite, the bridge's state) into PostgreSQL without loss. Refuses "
        "while Radicale or the bridge has the file open. A second run changes nothing.",
    )
    mst.add_argument(
        "--from", dest="source", required=True, metavar="sqlite:PATH", help="the state file"
    )
    mst.add_argument(
        "--to", dest="target", required=True, metavar="postgresql://…", help="the database"
    )
    mst.add_argument("--check", action="store_true", help="say what would be copied; write nothing")
    mst.set_defaults(run=migrate_state_command)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    return clitools.run(parser.prog, lambda: args.run(args))


if __name__ == "__main__":
    sys.exit(main())
