"""Users' own credentials: private files owned like their folder, and the accounts built on them."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

from radicale_meetplugin.config import ConfigError, read_secret
from radicale_meetplugin.core.model import Conference, Meeting
from radicale_meetplugin.providers.base import (
    BuildContext,
    Capabilities,
    Provider,
    ProviderError,
    ProviderPlugin,
    UserCredentials,
)

logger = logging.getLogger("radicale.meetplugin")


class CredentialError(RuntimeError):
    """A credential file cannot be written as it must be; the message is one line."""


def _owner_of(folder: str) -> tuple[int, int] | None:
    try:
        st = os.stat(folder)
    except OSError:
        return None
    return st.st_uid, st.st_gid


def _nearest_owner(folder: str) -> tuple[int, int] | None:
    """The owner of `folder`, or of the nearest folder above it that exists."""
    current = os.path.abspath(folder)
    while True:
        owner = _owner_of(current)
        if owner is not None:
            return owner
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


def write_private(
    path: str, data: bytes, *, exclusive: bool = False, service_folder: str = ""
) -> None:
    """Write `data` to `path` with mode 600, owned like the folder it lives in.

    Run as root, the file (and the folder, when it is made here) gets the uid/gid
    of that folder, so a server running as its own user can read it. A missing
    folder is made owned like `service_folder` (the storage folder of the server
    that reads the file), else like the nearest folder above it.

    Refused with a one-line CredentialError when the file would end up owned
    by someone the server is not: run as another user than the folder's owner,
    or run as root into a root-owned folder while `service_folder` belongs to
    another user. `exclusive`: fail with FileExistsError if the file exists
    (another process made it first); otherwise it is replaced atomically.
    """
    folder = os.path.dirname(os.path.abspath(path))
    root = os.geteuid() == 0
    service = _owner_of(service_folder) if service_folder else None
    owner = _owner_of(folder)
    if owner is None:
        owner = service or _nearest_owner(folder)
        if owner is None:
            raise CredentialError(f"cannot make {folder}: no folder above it exists")
        if not root and owner[0] != os.geteuid():
            raise CredentialError(
                f"{folder} does not exist and this user (uid {os.geteuid()}) is not its "
                f"future owner (uid {owner[0]}); make it first, or run this as that user"
            )
        try:
            os.makedirs(folder, mode=0o700, exist_ok=True)
            if root:
                os.chown(folder, *owner)
        except OSError as e:
            raise CredentialError(f"cannot make {folder}: {e.strerror}") from None
    if root and owner[0] == 0 and service is not None and service[0] != 0:
        raise CredentialError(
            f"{folder} belongs to root, but {service_folder} to uid {service[0]}: the "
            f"server could not read the file; run: chown {service[0]}:{service[1]} {folder}"
        )
    if not root and owner[0] != os.geteuid():
        raise CredentialError(
            f"{folder} belongs to uid {owner[0]}, not to this user (uid {os.geteuid()}): "
            "run this as that user, or as root"
        )
    target = path if exclusive else f"{path}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    try:
        fd = os.open(target, flags, 0o600)
    except FileExistsError:
        raise
    except OSError as e:
        raise CredentialError(f"cannot write {target}: {e.strerror}") from None
    try:
        if root:
            os.fchown(fd, *owner)
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    if not exclusive:
        os.replace(target, path)


class UserAccount(Provider):
    """A user's own account: the provider built on their credential.

    A refusal of the credential (``auth``) becomes ``user_auth``, so the event
    says that the user's own token was refused, not the server's credentials.
    """

    def __init__(self, inner: Provider, user: str) -> None:
        self.inner = inner
        self.user = user
        self.name = inner.name
        self.capabilities = inner.capabilities

    @staticmethod
    def _own(error: ProviderError) -> ProviderError:
        if error.code != "auth":
            return error
        return ProviderError(
            "user_auth",
            status=error.status,
            provider_code=error.provider_code,
            temporary=error.temporary,
            retry_after=error.retry_after,
            maybe_done=error.maybe_done,
        )

    def create(self, meeting: Meeting) -> Conference:
        try:
            return self.inner.create(meeting)
        except ProviderError as e:
            raise self._own(e) from None

    def update(self, conference: Conference, meeting: Meeting) -> Conference:
        try:
            return self.inner.update(conference, meeting)
        except ProviderError as e:
            raise self._own(e) from None

    def delete(self, conference: Conference) -> None:
        try:
            self.inner.delete(conference)
        except ProviderError as e:
            raise self._own(e) from None

    def check(self) -> str:
        try:
            return self.inner.check()
        except ProviderError as e:
            raise self._own(e) from None

    def list_conferences(self) -> list[str] | None:
        return self.inner.list_conferences()

    def __getattr__(self, name: str) -> Any:  # the provider's own helpers (tests, reconcile)
        return getattr(self.inner, name)


def for_user(
    users: UserCredentials, options: Mapping[str, Any], ctx: BuildContext, user: str
) -> Provider | None:
    """The user's own account, if a credential is stored for them."""
    path = users.path(options, user)
    if path is None or not os.path.exists(path):
        return None
    secret = read_secret(path, "", f"{users.what} of {user}")
    if not secret:
        return None
    return UserAccount(users.build(options, ctx, secret), user)


class UserProviders:
    """Providers built from users' own credentials, rebuilt when a credential file changes."""

    def __init__(
        self, plugin: ProviderPlugin, options: Mapping[str, Any], ctx: BuildContext
    ) -> None:
        assert plugin.users is not None
        self.plugin = plugin
        self.users = plugin.users
        self.options = options
        self.ctx = ctx
        self.capabilities: Capabilities = plugin.capabilities(options)
        self._cache: dict[str, tuple[float, Provider | None]] = {}
        self._unreadable: set[str] = set()  # users whose stored credential cannot be read
        self._lock = threading.Lock()

    def get(self, user: str) -> Provider | None:
        path = self.users.path(self.options, user)
        try:
            stamp = os.stat(path).st_mtime if path else -1.0
        except OSError:
            stamp = -1.0
        with self._lock:
            cached = self._cache.get(user)
            if cached is not None and cached[0] == stamp:
                return cached[1]
        provider: Provider | None = None
        unreadable = False
        if stamp >= 0:
            try:
                provider = for_user(self.users, self.options, self.ctx, user)
            except ConfigError as e:  # unreadable: the user gets the service account
                logger.warning("meetplugin: %s: %s", self.plugin.name, e)
                unreadable = True
        with self._lock:
            self._cache[user] = (stamp, provider)
            if unreadable:
                self._unreadable.add(user)
            else:
                self._unreadable.discard(user)
        return provider

    def unreadable(self, user: str) -> bool:
        """The user's stored credential exists but could not be read (asked after `get`)."""
        with self._lock:
            return user in self._unreadable

    def known_users(self) -> list[str]:
        return self.users.users(self.options)
