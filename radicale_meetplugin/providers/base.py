"""The one small interface every provider implements."""

from __future__ import annotations

import abc
from dataclasses import dataclass

from radicale_meetplugin.core.model import Conference, Meeting


@dataclass(frozen=True)
class Capabilities:
    network: bool = True  # False: computed locally, done at once (no API call)
    schedule: bool = False  # takes time, topic and attendee updates
    deterministic_ids: bool = (
        False  # the caller chooses the id, so a retry can't make a second room
    )
    options: bool = False  # takes per-event options (see Provider.option_words)


@dataclass(frozen=True)
class BuildContext:
    timeout: float  # seconds one provider call may take
    state_dir: str  # where generated secrets may be kept


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
    name: str = ""
    labels: dict[str, str] = {}  # language -> name people know
    keywords: tuple[str, ...] = ()  # built-in keywords (Latin and Cyrillic)
    capabilities = Capabilities()
    # Words a person may add after the keyword ("телемост:все") -> (option, value).
    option_words: dict[str, tuple[str, str]] = {}

    def label(self, lang: str) -> str:
        return self.labels.get(lang) or self.labels.get("en") or self.name

    @abc.abstractmethod
    def create(self, meeting: Meeting) -> Conference:
        """Reserve a conference for the meeting."""

    def update(self, conference: Conference, meeting: Meeting) -> Conference:
        """Push schedule/topic/attendee changes; timeless rooms need nothing."""
        return conference

    @abc.abstractmethod
    def delete(self, conference: Conference) -> None:
        """Delete the conference; one that is already gone counts as deleted."""

    def check(self) -> None:
        """Verify the credentials against the provider without creating anything.

        Raises ProviderError when they do not work; providers without
        credentials have nothing to check.
        """

    def list_conferences(self) -> list[str] | None:
        """Ids of every conference this account holds; None: the API cannot list them."""
        return None
