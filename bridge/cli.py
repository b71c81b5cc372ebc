"""``meetplugin-bridge``: run the CalDAV bridge once (cron) or as a daemon (systemd)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import sys
from collections.abc import Sequence

from bridge import config, notify
from radicale_meetplugin import __version__, clitools
from radicale_meetplugin.config import ConfigError


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
    )
    if verbose:
        for name in ("meetplugin.bridge", "radicale.meetplugin"):
            logging.getLogger(name).setLevel(logging.DEBUG)
    # The HTTP layers log headers and bodies at debug level: keep them quiet.
    for name in ("caldav", "niquests", "urllib3", "urllib3_future", "requests"):
        logging.getLogger(name).setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="meetplugin-bridge",
        description="Video conferences for events on any CalDAV server (Nextcloud, SOGo, "
        "Baïkal, DAViCal, Xandikos, …): follows the calendars over CalDAV and "
        "writes the links back.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    clitools.add_config(
        parser,
        "the bridge's config file",
        env_name=clitools.BRIDGE_CONFIG_ENV,
        fallback=clitools.BRIDGE_CONFIG,
        hidden_aliases=("-c",),  # the spelling of earlier releases
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="one cycle, then exit (for cron); exit status 1 if an account failed",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=None,
        help="seconds between cycles (overrides [bridge] interval)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="check the config, the plugin config and its providers, and log in to each "
        "account's CalDAV server; writes nothing (exit 0 OK, 1 findings, 2 could not run)",
    )
    parser.add_argument(
        "--adopt",
        action="store_true",
        help="take over events another bridge instance manages (their mark and conference "
        "become this instance's); for a one-off move from one state folder to another",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log every cycle and decision (debug level)"
    )
    args = parser.parse_args(argv)
    _logging(args.verbose)
    log = logging.getLogger("meetplugin.bridge")
    if args.check:
        return clitools.run(parser.prog, lambda: _check(args), log)
    return clitools.run(parser.prog, lambda: _run(args, log), log)


def _check(args: argparse.Namespace) -> int:
    """The bridge config, its plugin config's providers, and a login at every account."""
    from bridge.caldav_client import CalDAVClient, CalDAVError
    from radicale_meetplugin.cli import check_plugin

    path = clitools.config_file(args.config)
    try:
        settings = config.load(path)
    except ConfigError as e:
        print(f"config: NOT OK: {e}")
        return 1
    print(f"config: OK ({settings.source})")
    failures = check_plugin(settings.meetplugin_config, settings.state_dir, settings.state_url)
    for account in settings.accounts:
        client = CalDAVClient(
            account.url, account.username, account.password.value, settings.http_timeout
        )
        try:
            home = client.discover_home()  # PROPFINDs only: reads, writes nothing
        except (CalDAVError, OSError) as e:
            failures += 1
            print(f"account {account.name} ({account.url}): NOT OK: {clitools.one_line(e)}")
        else:
            print(f"account {account.name} ({account.url}): OK (calendar home {home})")
    return 1 if failures else 0


def _run(args: argparse.Namespace, log: logging.Logger) -> int:
    try:
        settings = config.load(clitools.config_file(args.config))
        if args.interval is not None:
            if args.interval <= 0:
                raise ConfigError("--interval must be greater than 0")
            settings = dataclasses.replace(settings, interval=args.interval)
        try:
            from bridge.runner import Bridge, BridgeBusy
        except ImportError as e:
            raise clitools.CommandError(
                f"{e}; install the bridge's dependencies: pip install 'radicale-meetplugin[bridge]'"
            ) from None
        try:
            bridge = Bridge(settings, adopt=args.adopt)
        except BridgeBusy as e:
            if args.once:  # cron: the previous run is still at work, which is fine
                log.warning("meetplugin-bridge: %s; this run does nothing", e)
                return 0
            raise clitools.CommandError(str(e)) from None  # could not run: exit 2
    except ConfigError as e:
        raise clitools.CommandError(str(e)) from None

    def on_signal(signum, _frame) -> None:
        log.info(
            "bridge: %s received, stopping after the current step", signal.Signals(signum).name
        )
        bridge.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        if args.once:
            report = bridge.run_once()
            if not report.busy:  # a busy cycle has logged itself already
                log.info("bridge: cycle: %s", report.line())
            return 1 if report.errors else 0
        bridge.run_forever(notify.Notifier.from_environment())
        return 0
    finally:
        bridge.close()


if __name__ == "__main__":
    sys.exit(main())
