"""What the engine needs of the state and of users' own provider accounts: its ports (pure)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from radicale_meetplugin.core.model import Conference, EventKey, Job, Record
from radicale_meetplugin.providers.base import Capabilities, Provider, ProviderError


class UserSource(Protocol):
    capabilities: Capabilities  # decided by the provider's config, like an instance's

    def get(self, user: str) -> Provider | None: ...


@dataclass
class Outcome:
    """What one provider call came to: the conference, or the error."""

    conference: Conference | None = None
    error: ProviderError | None = None


class RecordReader(Protocol):
    """What step 1 reads of the state: it writes nothing before `commit`."""

    def get(self, key: EventKey) -> Record | None: ...

    def pending_job_for(self, key: EventKey, attempt: str) -> bool: ...

    def find_adoptable(self, key: EventKey, conference_id: str) -> Record | None: ...

    def sharing(self, key: EventKey, conference: Conference) -> list[EventKey]: ...

    def under(self, path: str) -> list[Record]: ...

    def mail_keys_under(self, path: str) -> list[EventKey]: ...

    def mail_state(self, key: EventKey) -> object | None: ...


class StateStore(RecordReader, Protocol):
    """The state the engine commits its effects to (state.records.RecordStore)."""

    path: str  # where it lives (the bridge keeps its own state beside it)

    def close(self) -> None: ...

    def transaction(self) -> AbstractContextManager[object]: ...

    def put(self, record: Record) -> None: ...

    def drop(self, key: EventKey, then: Job | None = None) -> Job | None: ...

    def begin_create(self, key: EventKey, provider: str, fingerprint: str, job: Job) -> Job: ...

    def enqueue(self, job: Job) -> Job: ...

    def move(self, old: EventKey, new: EventKey) -> Job | None: ...

    def copy_letters(self, old: EventKey, new: EventKey) -> None: ...

    def forget_letters(self, key: EventKey) -> None: ...

    def finish_attempt(self, key: EventKey, attempt: str, record: Record | None) -> bool: ...

    def holds(self, key: EventKey, record: Record | None) -> bool: ...

    def abandon_attempt(self, key: EventKey, attempt: str, then: Job) -> Job: ...


__all__ = ["Outcome", "RecordReader", "StateStore", "UserSource"]
