"""The provider interface: the plugin object a module exports and the Provider it builds."""

from __future__ import annotations

import abc
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from radicale_meetplugin.config import Schema, Secret
from radicale_meetplugin.core.model import Conference, Meeting


@dataclass(frozen=True)
class Capabilities:
    network: bool = True  # False: computed locally, done at once (no API call)
    schedule: bool = False  # takes time, topic and attendee updates
    deterministic_ids: bool = (
        False  # the caller chooses the id, so a retry can't make a second room
    )
    options: bool = False  # takes per-event options (see ProviderPlugin.option_words)


@dataclass(frozen=True)
class BuildContext:
    timeout: float  # seconds one provider call may take
    state_dir: str  # where generated secrets may be kept
    read_only: bool = False  # `meetplugin check`: build without creating any file


class ProviderError(Exception):
    """A provider said no, or did not answer. Carries nothing secret.

    ``code`` names the reason (see i18n.REASONS); ``temporary`` errors are worth
    retrying later (timeouts, 5xx, 429), the others are not. ``maybe_done``: the
    request was sent but no answer came, so the provider may have acted on it.
    """

    def __init__(
        self,
        code: str,
        *,
        status: int = 0,
        provider_code: str = "",
        temporary: bool = False,
        retry_after: float | None = None,
        maybe_done: bool = False,
    ) -> None:
        super().__init__(
            f"{code} (HTTP {status or '-'}{', ' + provider_code if provider_code else ''})"
        )
        self.code = code
        self.status = status
        self.provider_code = provider_code
        self.temporary = temporary
        self.retry_after = retry_after
        self.maybe_done = maybe_done  # the request reached the provider; its outcome is unknown


class Provider(abc.ABC):
    """One account at a provider, built by its plugin from the config.

    ``capabilities`` is read from the instance: a provider whose abilities depend
    on its config (Videomost's ``update_method = NONE``) sets them in ``__init__``.
    """

    name: str = ""
    capabilities: Capabilities = Capabilities()

    @abc.abstractmethod
    def create(self, meeting: Meeting) -> Conference:
        """Reserve a conference for the meeting."""

    def update(self, conference: Conference, meeting: Meeting) -> Conference:
        """Push schedule/topic/attendee changes; timeless rooms need nothing."""
        return conference

    @abc.abstractmethod
    def delete(self, conference: Conference) -> None:
        """Delete the conference; one that is already gone counts as deleted."""

    def check(self) -> str:
        """Verify the credentials against the provider without creating anything.

        Returns a short note for the admin ("" when there is nothing to add);
        raises ProviderError when they do not work.
        """
        return ""

    def list_conferences(self) -> list[str] | None:
        """Ids of every conference this account holds; None: the API cannot list them."""
        return None


@dataclass(frozen=True)
class OptionWord:
    """A word a person may type after the keyword ("телемост:все") and what it sets."""

    option: str  # the Meeting option it sets ("waiting_room")
    value: str  # its value ("ADMINS")
    words: tuple[str, ...]  # every spelling accepted, any language, lower case
    help: Mapping[str, str]  # language -> what it does, in a few words

    def shown(self, lang: str) -> str:
        """The spelling an explanation shows: the first one in the language's script."""
        cyrillic = [w for w in self.words if any("а" <= ch <= "я" or ch == "ё" for ch in w)]
        latin = [w for w in self.words if w not in cyrillic]
        preferred = cyrillic if lang == "ru" else latin
        return (preferred or list(self.words))[0]


@dataclass(frozen=True)
class UserCredentials:
    """A provider that also takes users' own credentials, one file per user.

    The files live in the folder named by the provider option ``folder_option``,
    as ``<user>.token`` (mode 600, owned like the folder); ``meetplugin token
    PROVIDER`` writes them. A user's own account wins over the service account.
    """

    folder_option: str  # the provider option naming the folder ("user_token_dir")
    build: Callable[[Mapping[str, Any], BuildContext, Secret], Provider]  # one user's account
    steps: Callable[[Mapping[str, Any], str, Mapping[str, str]], str]  # what the admin does
    arguments: tuple[str, ...] = ()  # token command arguments `steps` needs ("client_id")
    what: str = "token"  # what the credential is called, for messages
    # What the admin pastes, turned into what is stored (an OAuth code -> a refresh
    # token); None: the pasted text is the credential. Raises ProviderError/ConfigError.
    exchange: Callable[[Mapping[str, Any], BuildContext, Secret], Secret] | None = None
    pasted: str = "token"  # what the admin pastes, for the prompt

    def folder(self, options: Mapping[str, Any]) -> str:
        value = options.get(self.folder_option) or ""
        return os.path.expanduser(value) if value else ""

    def path(self, options: Mapping[str, Any], user: str) -> str | None:
        """Where `user`'s credential lives; None for no folder or a name unfit for a file."""
        folder = self.folder(options)
        if not folder or not user or "/" in user or "\\" in user or user.startswith("."):
            return None
        return os.path.join(folder, f"{user}.token")

    def users(self, options: Mapping[str, Any]) -> list[str]:
        """Users with a stored credential."""
        folder = self.folder(options)
        try:
            names = os.listdir(folder) if folder else []
        except OSError:
            return []
        return sorted(n[:-6] for n in names if n.endswith(".token") and not n.startswith("."))


@dataclass(frozen=True)
class ProviderPlugin:
    """What a provider module exports as ``PLUGIN``: everything the server knows of it.

    - ``name``: the config section ``[provider:<name>]`` and the value of
      ``X-MEETPLUGIN-PROVIDER``; ``labels``: language -> the name people know;
    - ``keywords``: built-in words that ask for it (the admin may add more);
    - ``options``: its config schema (option -> (default, converter, help));
    - ``build(options, ctx)``: the service account, or None when only users'
      own credentials are configured; raises ConfigError when the config is
      incomplete. The Provider carries its capabilities;
    - ``capabilities(options)``: the same capabilities decided from the config
      alone (for a provider with users' credentials and no service account);
    - ``option_words``: per-event options with their help texts;
    - ``link_properties``: extra iCalendar properties that get the join link;
      ``marker_properties``: properties whose value TRUE asks for it;
    - ``users``: how it takes users' own credentials, None when it does not.
    """

    name: str
    labels: Mapping[str, str]
    keywords: tuple[str, ...]
    options: Schema
    build: Callable[[Mapping[str, Any], BuildContext], Provider | None]
    capabilities: Callable[[Mapping[str, Any]], Capabilities] = lambda options: Capabilities()
    option_words: tuple[OptionWord, ...] = ()
    link_properties: tuple[str, ...] = ()
    marker_properties: tuple[str, ...] = ()
    users: UserCredentials | None = None
    _words: Mapping[str, tuple[str, str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        words = {w.casefold(): (c.option, c.value) for c in self.option_words for w in c.words}
        object.__setattr__(self, "_words", words)

    def label(self, lang: str) -> str:
        return self.labels.get(lang) or self.labels.get("en") or self.name

    def words(self) -> Mapping[str, tuple[str, str]]:
        """Every accepted option word -> (option, value)."""
        return self._words

    def words_help(self, lang: str) -> str:
        """The option words with what they do: "все (…), выкл (…)"."""
        return ", ".join(
            f"{c.shown(lang)} ({c.help.get(lang) or c.help.get('en', '')})"
            for c in self.option_words
        )
