"""The outbox: provider jobs (and, with a Mailer, letters) run by one worker, now and later.

A save hands its jobs to `submit` and waits for them up to the request budget;
a job that takes longer keeps running here and writes its result into the
event when it arrives. Temporary failures (timeouts, connection errors, 5xx,
429) are retried with exponential backoff and jitter, honouring Retry-After;
deletes are retried until done, creates until `retry_for` runs out. Jobs are
leased, so several processes sharing one state folder never run one job
twice at once, and a job whose process died is taken over.

The worker itself (pools, leases, the loop) is state/worker.py and knows
nothing of what it runs; this module is the provider jobs' handler, and wires
the letters' handler (mail/delivery.py) beside it when e-mails are on.

A create whose outcome is unknown — its worker died during the call, or the
call failed after the request may have reached the provider — is recorded as
a suspect (unless the provider's ids are ours, so a retry cannot make a second
room), so `meetplugin reconcile` lists the room it may have made.
"""

from __future__ import annotations

import concurrent.futures
import logging
import socket
import sys
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from radicale_meetplugin.core.model import ActionKind, Job
from radicale_meetplugin.protocol.engine import Engine
from radicale_meetplugin.protocol.ports import Outcome
from radicale_meetplugin.providers import ProviderError
from radicale_meetplugin.state.records import RecordStore
from radicale_meetplugin.state.worker import Held, Worker, backoff

if TYPE_CHECKING:  # mail is loaded only when [mail] is enabled
    from radicale_meetplugin.mail.mailer import Mailer

logger = logging.getLogger("radicale.meetplugin")

Settle = Callable[[Job, Outcome], list[Job]]
JOBS, LETTERS = "job", "e-mail"  # the worker's lanes (also how its log names a row)


def may_have_reached(error: ProviderError) -> bool:
    """Could the provider have acted on the request that ended in `error`?

    Yes when the adapter says so (no answer in time, an unreadable 2xx), and
    for any failure without an HTTP answer once a connection was made: reset
    or closed after sending, a bug reading the answer. No when the provider
    answered with an error status, or when no connection was ever made
    (refused, name not found, connect timeout) or no call was made at all.
    """
    if error.maybe_done:
        return True
    if error.status or error.code == "provider_disabled":
        return False
    return not _never_connected(error)


def _connect_timeouts() -> tuple[type[BaseException], ...]:
    """urllib3's ConnectTimeoutError (also the base of its NewConnectionError), once loaded.

    Looked up, not imported: a server whose providers never made an HTTP call
    has not loaded urllib3, and then no error of it can exist.
    """
    exceptions = sys.modules.get("urllib3.exceptions")
    return (exceptions.ConnectTimeoutError,) if exceptions is not None else ()


def _never_connected(error: BaseException) -> bool:
    """Does the error's chain of causes say the connection was never made?"""
    seen: set[int] = set()
    cause = error.__cause__ or error.__context__
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, (ConnectionRefusedError, socket.gaierror, *_connect_timeouts())):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


class Outbox:
    def __init__(
        self,
        engine: Engine[RecordStore],
        settle: Settle,
        *,
        workers: int,
        lease: float,
        retry_initial: float,
        retry_max_delay: float,
        retry_for: float,
        mailer: Mailer | None = None,
        worker: Worker | None = None,
    ) -> None:
        self.engine = engine
        self.store = engine.store
        self.settle = settle
        self.retry_initial = retry_initial
        self.retry_max_delay = retry_max_delay
        self.retry_for = retry_for
        self.mailer = mailer
        self.worker = worker or Worker()
        self.owner = self.worker.owner
        self.worker.add(JOBS, self.store.jobs_queue, self._run, workers=workers, lease=lease)
        mailing = engine.mailing
        # Letters need an SMTP sender; deliveries into local calendars (scheduling) do not.
        self.letters = mailing is not None and (mailer is not None or mailing.calendars is not None)
        if self.letters and mailing is not None:
            from radicale_meetplugin.mail.delivery import Delivery  # only with [mail] enabled

            delivery = Delivery(mailing, mailer, retry_initial, retry_max_delay, retry_for)
            self.worker.add(
                LETTERS, self.store.letters_queue, delivery, workers=2, lease=delivery.lease
            )

    def alive(self, holder: str) -> bool:
        """Is the worker named `holder` still running? Only knowable on this host."""
        return self.worker.alive(holder)

    # --- what the shells call ------------------------------------------------

    def submit(self, job_ids: Iterable[int]) -> list[concurrent.futures.Future]:
        """Run these jobs now; futures of their outcomes (None: not run here, or no outcome)."""
        return self.worker.submit(JOBS, job_ids)

    def submit_due(self) -> list[concurrent.futures.Future]:
        """Run the due jobs and those of dead workers now (a run without the loop)."""
        return self.worker.submit_due(JOBS)

    def submit_mails(self, mail_ids: Iterable[int]) -> list[concurrent.futures.Future]:
        if not self.letters:
            return []
        return self.worker.submit(LETTERS, mail_ids)

    def sending(self) -> list[concurrent.futures.Future]:
        return self.worker.running(LETTERS)

    def mail_queued(self) -> None:
        """Letters were queued: the loop sends them (or, without a loop, send them now)."""
        if self.worker.started:
            self.worker.wake()
        elif self.letters:
            self.worker.submit_due(LETTERS)

    def start(self) -> None:
        """Run the loop; the jobs this process adds are leased to it from the start (another
        process sharing the state would otherwise take a job before its event is stored)."""
        self.store.jobs_queue.hold_new_rows(self.owner, self.worker.lane(JOBS).lease)
        self.worker.start()

    def stop(self) -> None:
        """End the loop and the pools (calls under way get a few seconds to end)."""
        self.worker.stop()

    # --- one provider job ----------------------------------------------------

    def _run(self, job: Job, held: Held) -> Outcome | None:
        unsure = job.kind in (ActionKind.CREATE, ActionKind.REPLACE) and not self._deterministic(
            job
        )
        if job.interrupted:
            logger.warning(
                "meetplugin: %s/%s: resuming a %s job interrupted mid-call",
                job.key.calendar,
                job.key.uid,
                job.kind.value,
            )
            if unsure:  # first: even an attempt nobody wants any more may have made a room
                self.store.add_suspect(job, "interrupted")
        if self._obsolete(job):
            held.finish()
            if job.old is not None:  # a REPLACE overtaken by events: the old room still goes
                self.submit([self.store.enqueue(self.engine._delete_job(job.key, job.old)).id])
            return None
        if not job.interrupted and not held.start():
            return None  # the lease went to another worker meanwhile: it runs the job
        outcome = self.engine.call(job)
        error = outcome.error
        if error is not None and unsure and may_have_reached(error):
            self.store.add_suspect(job, "no answer")
        if error is not None:
            if self._retry(job, error, held):
                return outcome
            logger.warning(
                "meetplugin: %s/%s: %s %s: %s",
                job.key.calendar,
                job.key.uid,
                job.provider,
                job.kind.value,
                error,
            )
        more = self.settle(job, outcome)
        held.finish()
        logger.info(
            "meetplugin: %s/%s: %s %s done after %d %s",
            job.key.calendar,
            job.key.uid,
            job.provider,
            job.kind.value,
            job.tries + 1,
            "try" if job.tries == 0 else "tries",
        )
        self.submit(j.id for j in more)
        return outcome

    def _deterministic(self, job: Job) -> bool:
        """A retry of this provider's create can never make a second room."""
        provider = self.engine.providers.get(job.provider)
        return bool(provider and provider.capabilities.deterministic_ids)

    def _obsolete(self, job: Job) -> bool:
        """A create whose record no longer waits for it (finished, or superseded)."""
        if job.kind not in (ActionKind.CREATE, ActionKind.REPLACE):
            return False
        record = self.store.get(job.key)
        return record is None or record.attempt != job.attempt

    def _retry(self, job: Job, error: ProviderError, held: Held) -> bool:
        """Reschedule a temporary failure; False when it is final."""
        if not error.temporary:
            return False
        age = time.time() - job.created_at
        if job.kind is not ActionKind.DELETE and age > self.retry_for:
            logger.warning(
                "meetplugin: %s/%s: giving up after %d tries",
                job.key.calendar,
                job.key.uid,
                job.tries + 1,
            )
            return False
        delay = backoff(job.tries, self.retry_initial, self.retry_max_delay, error.retry_after)
        held.retry(delay, str(error))
        logger.info(
            "meetplugin: %s/%s: %s %s failed (%s), next try in %.1f s",
            job.key.calendar,
            job.key.uid,
            job.provider,
            job.kind.value,
            error,
            delay,
        )
        return True
