"""The admin command line: ``meetplugin <command>``."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Optional, Sequence


def _storage(config_path: str):
    import radicale.config

    from .reconcile import ToolStorage
    configuration = radicale.config.load([(config_path, False)])
    if configuration.get("storage", "type") != "radicale_meetplugin":
        raise SystemExit(f"{config_path}: [storage] type is not radicale_meetplugin")
    return ToolStorage(configuration)


def reconcile_command(args: argparse.Namespace) -> int:
    from .reconcile import reconcile, wait_for_jobs
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


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="meetplugin",
                                     description="Admin tools for radicale-meetplugin.")
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser(
        "reconcile", help="compare conference records, events, queued jobs and providers",
        description="Lists conferences without events (orphans), marked events without a "
                    "link, unfinished attempts and queued jobs. Dry run unless --fix.")
    rec.add_argument("-C", "--config", required=True, help="Radicale's config file")
    rec.add_argument("--fix", action="store_true",
                     help="delete orphan conferences, forget stale records, re-submit events "
                          "whose link is missing, and run queued jobs now")
    rec.add_argument("--forget-suspects", action="store_true",
                     help="clear the list of creates that got no answer (after checking the "
                          "provider's account)")
    rec.add_argument("--wait", type=float, default=120,
                     help="seconds to wait for provider calls with --fix (default 120)")
    rec.set_defaults(run=reconcile_command)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
