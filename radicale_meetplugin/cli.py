"""The admin command line: ``meetplugin <command>``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from radicale_meetplugin import __version__

SCOPES = (
    "telemost-api:conferences.create",
    "telemost-api:conferences.read",
    "telemost-api:conferences.update",
    "telemost-api:conferences.delete",
)


def _radicale_configuration(config_path: str):
    import radicale.config

    configuration = radicale.config.load([(config_path, False)])
    if configuration.get("storage", "type") != "radicale_meetplugin":
        raise SystemExit(f"{config_path}: [storage] type is not radicale_meetplugin")
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
    from radicale_meetplugin import config
    from radicale_meetplugin.bootstrap import build_engine
    from radicale_meetplugin.providers import ProviderError

    try:
        plugin, state = _plugin_config(args.config)
        engine = build_engine(plugin, state)
    except (config.ConfigError, RuntimeError, ValueError) as e:
        print(f"config: NOT OK: {e}")
        return 1
    print(f"config: OK ({engine.settings.source})")
    if not engine.enabled:
        print("providers: none enabled")
    failures = 0
    accounts = [(name, "service account", p) for name, p in sorted(engine.providers.items())]
    for name, source in sorted(engine.per_user.items()):
        for user in _users_with_tokens(source):
            accounts.append((name, f"user {user}", source.get(user)))
    for name, who, provider in accounts:
        if provider is None:
            continue
        try:
            provider.check()
        except ProviderError as e:
            failures += 1
            print(f"{name} ({who}): NOT OK: {engine.reason_text(e.code, name, error=e)}")
        else:
            print(f"{name} ({who}): OK")
    default = engine.settings.main["default_provider"]
    if default not in engine.enabled:
        failures += 1
        print(f"default_provider {default}: NOT OK: it is not enabled")
    return 1 if failures else 0


def _users_with_tokens(source) -> list[str]:
    import os

    folder = os.path.expanduser(source.options["user_token_dir"])
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return sorted(n[:-6] for n in names if n.endswith(".token") and not n.startswith("."))


def telemost_token_command(args: argparse.Namespace) -> int:
    import getpass
    import os
    import urllib.parse

    from radicale_meetplugin import config, providers
    from radicale_meetplugin.providers import ProviderError, telemost

    plugin, state = _plugin_config(args.config)
    settings = config.load(plugin, providers.schemas())
    options = settings.providers["telemost"].values
    path = telemost.user_token_path(options, args.user)
    if path is None:
        print(
            "Set [provider:telemost] user_token_dir in the plugin config first "
            "(a folder readable only by Radicale), and give a valid user name."
        )
        return 2
    query = urllib.parse.urlencode(
        {"response_type": "token", "client_id": args.client_id, "scope": " ".join(SCOPES)}
    )
    print(f"""Telemost token for Radicale user {args.user!r}:
1. In a browser signed in with the user's Yandex 360 for business account, open
   https://oauth.yandex.ru/authorize?{query}
   (the app {args.client_id} needs the four scopes {", ".join(SCOPES)}
   and the redirect URI https://oauth.yandex.ru/verification_code)
2. Allow access and copy the token shown on the page.""")
    token = (
        sys.stdin.readline()
        if args.token_stdin
        else getpass.getpass("3. Paste the token (not shown): ")
    ).strip()
    if not token:
        print("No token given; nothing stored.")
        return 2
    if not args.no_verify:
        candidate = telemost.Telemost(
            options["api_url"], config.Secret(token, "input"), options["waiting_room_level"], 15
        )
        try:
            candidate.check()
        except ProviderError as e:
            print(f"The token does not work: {e}. Nothing stored.")
            return 1
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    os.replace(path + ".tmp", path)
    print(f"Stored for {args.user} in {path} (mode 600). It is used from the next save on.")
    return 0


def _storage(config_path: str):
    from radicale_meetplugin.radicale.reconcile import ToolStorage

    return ToolStorage(_radicale_configuration(config_path))


def reconcile_command(args: argparse.Namespace) -> int:
    from radicale_meetplugin.radicale.reconcile import reconcile, wait_for_jobs

    storage = _storage(args.config)
    if args.forget_suspects:
        print(f"forgot {storage.meet.engine.store.forget_suspects()} suspect attempts")
    findings = reconcile(storage, fix=args.fix)
    if args.fix:
        wait_for_jobs(storage, timeout=args.wait)
    for finding in findings:
        print(finding.line())
    problems = [f for f in findings if f.kind not in ("queued", "cannot-list") and not f.fixed]
    if not problems:
        print("everything adds up: every conference has its event and every marked event its link")
    elif not args.fix:
        print(f"{len(problems)} to look at; run again with --fix to repair what can be repaired")
    return 1 if problems else 0


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
    rec.add_argument("-C", "--config", required=True, help="Radicale's config file")
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
    chk = sub.add_parser(
        "check",
        help="validate the config and verify each provider's credentials",
        description="Reads Radicale's and the plugin's config, and asks each "
        "provider whether its credentials work (nothing is created).",
    )
    chk.add_argument("-C", "--config", required=True, help="Radicale's config file")
    chk.set_defaults(run=check_command)
    tok = sub.add_parser(
        "telemost-token",
        help="get and store a user's Telemost OAuth token",
        description="Prints the Yandex authorize URL, reads the token, checks it "
        "and stores it as <user_token_dir>/<user>.token (chmod 600).",
    )
    tok.add_argument("-C", "--config", required=True, help="Radicale's config file")
    tok.add_argument("--user", required=True, help="the Radicale user the token is for")
    tok.add_argument("--client-id", required=True, help="ClientID of your Yandex OAuth app")
    tok.add_argument("--token-stdin", action="store_true", help="read the token from stdin")
    tok.add_argument("--no-verify", action="store_true", help="store without asking Telemost")
    tok.set_defaults(run=telemost_token_command)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
