"""Build a ready Engine from the plugin config: providers, record store, state folder."""

from __future__ import annotations

import logging
import os
import threading

from radicale_meetplugin import config, providers
from radicale_meetplugin.mail.mailer import Mailer
from radicale_meetplugin.protocol.engine import Engine
from radicale_meetplugin.protocol.outbox import Outbox, Settle
from radicale_meetplugin.state.records import RecordStore

logger = logging.getLogger("radicale.meetplugin")


def build_engine(config_path: str, default_state_dir: str) -> Engine:
    settings = config.load(config_path, providers.schemas())
    state_dir = os.path.expanduser(settings.main["state_dir"] or default_state_dir)
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    ctx = providers.BuildContext(timeout=settings.main["call_timeout"], state_dir=state_dir)
    ready: dict[str, providers.Provider] = {}
    per_user: dict[str, UserProviders] = {}
    for name, module in providers.MODULES.items():
        options = settings.providers[name]
        if not options["enabled"]:
            continue
        try:
            service = module.build(options.values, ctx)
        except config.ConfigError as e:
            if name in settings.configured:
                raise  # the admin asked for it: say what is missing and stop
            logger.info("meetplugin: provider %s is off: %s", name, e)
            continue
        if service is not None:
            ready[name] = service
        if hasattr(module, "for_user") and options.values.get("user_token_dir"):
            per_user[name] = UserProviders(module, options.values, ctx)
    logger.info(
        "meetplugin: config %s; providers: %s; default: %s; state: %s",
        settings.source,
        ", ".join(sorted({*ready, *per_user})) or "none",
        settings.main["default_provider"],
        state_dir,
    )
    store = RecordStore(os.path.join(state_dir, "records.sqlite"))
    engine = Engine(settings, ready, providers.CLASSES, store, per_user)
    engine.mailer = build_mailer(settings)
    return engine


def build_mailer(settings: config.Settings) -> Mailer | None:
    """The SMTP sender of [mail], or None when invitation e-mails are off."""
    mail = settings.mail
    if not mail["enabled"]:
        return None
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


class UserProviders:
    """Providers built from users' own credentials, rebuilt when a credential file changes."""

    def __init__(self, module, options, ctx: providers.BuildContext) -> None:
        self.module, self.options, self.ctx = module, options, ctx
        self._cache: dict[str, tuple[float, providers.Provider | None]] = {}
        self._lock = threading.Lock()

    def get(self, user: str) -> providers.Provider | None:
        path = self.module.user_token_path(self.options, user)
        try:
            stamp = os.stat(path).st_mtime if path else -1.0
        except OSError:
            stamp = -1.0
        with self._lock:
            cached = self._cache.get(user)
            if cached is not None and cached[0] == stamp:
                return cached[1]
        provider = self.module.for_user(self.options, self.ctx, user) if stamp >= 0 else None
        with self._lock:
            self._cache[user] = (stamp, provider)
        return provider


def build_outbox(engine: Engine, settle: Settle) -> Outbox:
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
    )
    if engine.mailing is not None:
        engine.mailing.wake = outbox.mail_queued
    return outbox
