"""Build a ready Engine from the plugin config: providers, record store, state folder."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from radicale_meetplugin import config, providers
from radicale_meetplugin.protocol.engine import Engine
from radicale_meetplugin.protocol.outbox import Outbox, Settle
from radicale_meetplugin.providers import access
from radicale_meetplugin.providers.users import UserProviders
from radicale_meetplugin.state import heap
from radicale_meetplugin.state.records import RecordStore
from radicale_meetplugin.state.worker import Worker

if TYPE_CHECKING:
    from radicale_meetplugin.mail.mailer import Mailer

logger = logging.getLogger("radicale.meetplugin")


def build_providers(
    settings: config.Settings,
    plugins: Mapping[str, providers.ProviderPlugin],
    ctx: providers.BuildContext,
) -> tuple[dict[str, providers.Provider], dict[str, UserProviders]]:
    """(service accounts, sources of users' own accounts) of every enabled provider."""
    ready: dict[str, providers.Provider] = {}
    per_user: dict[str, UserProviders] = {}
    for name, plugin in plugins.items():
        options = settings.providers[name]
        if not options["enabled"]:
            continue
        try:
            service = plugin.build(options.values, ctx)
        except config.ConfigError as e:
            if name in settings.configured:
                raise  # the admin asked for it: say what is missing and stop
            logger.info("meetplugin: provider %s is off: %s", name, e)
            continue
        if service is not None:
            ready[name] = service
        if plugin.users is not None and plugin.users.folder(options.values):
            per_user[name] = UserProviders(plugin, options.values, ctx)
    return ready, per_user


def build_groups(settings: config.Settings, radicale_groups_file: str = "") -> access.Groups:
    """Users' groups for the providers' allow-lists: our groups file, else Radicale's."""
    path = settings.main["groups_file"] or radicale_groups_file
    if path:
        return access.GroupFile(path)
    wanted = sorted(
        name
        for name, section in settings.providers.items()
        if section["enabled"] and any(e.startswith("@") for e in section["users"])
    )
    if wanted:
        logger.warning(
            "meetplugin: [provider:%s] users name groups, but no groups are known: set "
            "[meetplugin] groups_file (or Radicale's [group] type = htgroup); only the "
            "users named one by one may create rooms",
            wanted[0],
        )
    return access.no_groups


def _owned_like(paths: Sequence[str], folder: str) -> None:
    """Run as root: give what root just made the owner of `folder` (the server's files).

    An admin runs the plugin's first start or `reconcile --fix` as root; a state
    folder or sqlite file left owned by root would stop the server, which runs
    as its own user, from starting.
    """
    if os.geteuid() != 0 or not folder:
        return
    try:
        st = os.stat(folder)
    except OSError:
        return
    if st.st_uid == 0:
        return
    for path in paths:
        try:
            if os.lstat(path).st_uid == 0:
                os.chown(path, st.st_uid, st.st_gid, follow_symlinks=False)
        except FileNotFoundError:
            continue
        except OSError as e:
            raise config.ConfigError(
                f"{path} belongs to root and cannot be given to uid {st.st_uid} "
                f"(the owner of {folder}): {e.strerror}; run: chown {st.st_uid}:{st.st_gid} {path}"
            ) from None


def build_engine(
    config_path: str,
    default_state_dir: str,
    service_folder: str | None = None,
    radicale_groups_file: str = "",
    default_state_url: str = "",
) -> Engine[RecordStore]:
    """The engine over the state in `state_dir` (default: `default_state_dir`), or in the
    PostgreSQL database of `state_url` (default: `default_state_url`; "" = sqlite).

    `service_folder`: the folder whose owner the state's files must belong to
    (default: the one holding `default_state_dir`, Radicale's storage folder).
    `radicale_groups_file`: Radicale's htgroup file, for the providers' allow-lists.
    """
    settings, plugins = providers.load_settings(config_path)
    state_dir = os.path.expanduser(settings.main["state_dir"] or default_state_dir)
    if service_folder is None:
        service_folder = os.path.dirname(os.path.abspath(default_state_dir))
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    _owned_like([state_dir], service_folder)  # before a generated secret is made in it
    ctx = providers.BuildContext(timeout=settings.main["call_timeout"], state_dir=state_dir)
    ready, per_user = build_providers(settings, plugins, ctx)
    logger.info(
        "meetplugin: config %s; providers: %s; default: %s; state: %s",
        settings.source,
        ", ".join(sorted({*ready, *per_user})) or "none",
        settings.main["default_provider"],
        state_dir,
    )
    state_url = settings.main["state_url"] or default_state_url
    database = os.path.join(state_dir, "records.sqlite")
    store = RecordStore(state_url or database)
    if state_url:
        logger.info("meetplugin: records in %s", store.path)  # the password masked
    sqlite_files = [] if state_url else [database, f"{database}-wal", f"{database}-shm"]
    _owned_like([*sqlite_files, os.path.join(state_dir, "jitsi.secret")], service_folder)
    engine = Engine(settings, ready, plugins, store, per_user)
    engine.state_dir = state_dir  # where the local files stay (secrets, the bridge's id)
    engine.groups = build_groups(settings, radicale_groups_file)
    engine.mailer = build_mailer(settings)
    return engine


def build_mailer(settings: config.Settings) -> Mailer | None:
    """The SMTP sender of [mail], or None when invitation e-mails are off."""
    mail = settings.mail
    if not mail["enabled"]:
        return None
    from radicale_meetplugin.mail.mailer import Mailer  # only with [mail] enabled

    password = config.Secret("")
    if mail["username"]:
        password = config.read_secret(mail["password_file"], mail["password_env"], "SMTP password")
        if not password:
            raise config.ConfigError(
                f"{settings.source}: [mail] username is set but there is no password: set "
                f"password_file, or put it in the environment variable {mail['password_env']}"
            )
    mailer = Mailer(
        mail["host"],
        mail["port"],
        mail["security"],
        mail["username"],
        password,
        mail["timeout"],
        mail["ca_file"],
    )
    if mailer.username and mailer.security == "none":
        logger.warning(
            "meetplugin: [mail] sends the SMTP password unencrypted "
            "(security = none); use starttls or tls"
        )
    logger.info(
        "meetplugin: invitation e-mails on: %s:%d (%s)%s, From: %s",
        mailer.host,
        mailer.port,
        mailer.security,
        f", login {mailer.username}" if mailer.username else "",
        mail["sender"] if mail["sender_policy"] == "fixed" else "the organizer",
    )
    return mailer


def build_outbox(
    engine: Engine[RecordStore], settle: Settle, worker: Worker | None = None
) -> Outbox:
    """The outbox over the engine's queues; `worker`: its own loop and pools (the bridge's
    shared workers pass one that runs only their accounts' jobs)."""
    main = engine.settings.main
    outbox = Outbox(
        engine,
        settle,
        workers=main["max_concurrency"],
        lease=2 * main["call_timeout"] + 30,
        retry_initial=main["retry_initial"],
        retry_max_delay=main["retry_max_delay"],
        retry_for=main["retry_for"],
        mailer=engine.mailer,
        worker=worker,
    )
    if engine.mailing is not None:
        engine.mailing.wake = outbox.mail_queued
    if main["malloc_arenas"]:
        heap.limit_arenas(main["malloc_arenas"])
    if main["release_memory"] and heap.available():
        outbox.worker.when_idle(heap.release)
    return outbox
