"""The outbox worker: runs provider jobs now, and again later until they are done.

A save hands its jobs to `submit` and waits for them up to the request budget;
a job that takes longer keeps running here and writes its result into the
event when it arrives. Temporary failures (timeouts, connection errors, 5xx,
429) are retried with exponential backoff and jitter, honouring Retry-After;
deletes are retried until done, creates until `retry_for` runs out. Jobs are
leased, so several processes sharing one state folder never run one job
twice at once, and a job whose process died is taken over.

With a `Mailer`, the same loop delivers the queued invitation letters
(mail_queue.py): leased the same way, retried with the same backoff while the
SMTP server answers 4xx or cannot be reached, given up on a 5xx or after
`retry_for`, and never sent again once it may have been taken (see mailer.py).
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable

from radicale_meetplugin.core.model import ActionKind, Job
from radicale_meetplugin.mail.mailer import LeaseLost, Mailer, MailError
from radicale_meetplugin.protocol.engine import Engine, Outcome
from radicale_meetplugin.providers import ProviderError
from radicale_meetplugin.state.letters import FAILED, SENT, UNKNOWN, Mail

logger = logging.getLogger("radicale.meetplugin")

Settle = Callable[[Job, Outcome], list[Job]]


def backoff(
    tries: int,
    initial: float,
    cap: float,
    retry_after: float | None = None,
    rng: Callable[[], float] = random.random,
) -> float:
    """Seconds before the next try: exponential, with jitter, never before Retry-After."""
    delay = min(cap, initial * (2**tries)) * (0.5 + rng() / 2)
    if retry_after is not None:
        delay = max(delay, retry_after)  # the provider asked for this pause: give it
    return delay


class Outbox:
    def __init__(
        self,
        engine: Engine,
        settle: Settle,
        *,
        workers: int,
        lease: float,
        retry_initial: float,
        retry_max_delay: float,
        retry_for: float,
        mailer: Mailer | None = None,
    ) -> None:
        self.engine = engine
        self.store = engine.store
        self.settle = settle
        self.lease = lease
        self.retry_initial = retry_initial
        self.retry_max_delay = retry_max_delay
        self.retry_for = retry_for
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._pool = concurrent.futures.ThreadPoolExecutor(workers, "meetplugin-job")
        self._running: dict[int, concurrent.futures.Future] = {}
        self.mailer = mailer
        # Every SMTP step may take `timeout`: a letter's lease outlasts the slowest session.
        self.mail_lease = 10 * mailer.timeout + 30 if mailer else 0.0
        self._mail_pool = (
            concurrent.futures.ThreadPoolExecutor(2, "meetplugin-mail") if mailer else None
        )
        self._sending: dict[int, concurrent.futures.Future] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- who holds a lease ---------------------------------------------------

    def alive(self, holder: str) -> bool:
        """Is the worker named `holder` still running? Only knowable on this host."""
        host, _, rest = holder.partition(":")
        pid = rest.partition(":")[0]
        if host != socket.gethostname() or not pid.isdigit():
            return True  # another machine: trust its lease
        if int(pid) == os.getpid():
            return True  # this process (perhaps an older Storage in it): let it finish
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    # --- running jobs --------------------------------------------------------

    def submit(self, job_ids: Iterable[int]) -> list[concurrent.futures.Future]:
        return self._start(job_ids, self._running, self._pool, self._run)

    def _start(
        self,
        ids: Iterable[int],
        running: dict[int, concurrent.futures.Future],
        pool: concurrent.futures.ThreadPoolExecutor,
        work: Callable[[int], object],
    ) -> list[concurrent.futures.Future]:
        """Run `work(id)` once per id not already running; the futures, old and new.

        The done-callbacks are added after `self._lock` is released: a future
        that is already done runs its callback at once, in this thread, and the
        callback takes the lock (taking it here would deadlock the caller).
        """
        futures, started = [], []
        with self._lock:
            for i in ids:
                future = running.get(i)
                if future is None:
                    future = running[i] = pool.submit(work, i)
                    started.append((i, future))
                futures.append(future)
        for i, future in started:
            future.add_done_callback(lambda f, i=i: self._forget(running, i, f))
        return futures

    def _forget(
        self,
        running: dict[int, concurrent.futures.Future],
        i: int,
        future: concurrent.futures.Future,
    ) -> None:
        with self._lock:
            if running.get(i) is future:  # not a newer run of the same id
                del running[i]

    def _run(self, job_id: int) -> Outcome | None:
        try:
            job = self.store.claim(job_id, self.owner, self.lease, self.alive)
            if job is None:
                return None  # done already, or a live worker elsewhere has it
            if self._obsolete(job):
                self.store.finish_job(job.id)
                if job.old is not None:  # a REPLACE overtaken by events: the old room still goes
                    self.submit([self.store.enqueue(self.engine._delete_job(job.key, job.old)).id])
                return None
            creates = job.kind in (ActionKind.CREATE, ActionKind.REPLACE)
            if job.interrupted:
                logger.warning(
                    "meetplugin: %s/%s: resuming a %s job interrupted mid-call",
                    job.key.calendar,
                    job.key.uid,
                    job.kind.value,
                )
                if creates and not self._deterministic(job):
                    self.store.add_suspect(job, "interrupted")
            outcome = self.engine.call(job)
            error = outcome.error
            if error is not None and error.maybe_done and creates and not self._deterministic(job):
                self.store.add_suspect(job, "no answer")
            if error is not None:
                if self._retry(job, error):
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
            self.store.finish_job(job.id)
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
        except Exception:  # keep the worker alive; the lease runs out and the job returns
            logger.exception("meetplugin: job %s failed inside the plugin", job_id)
            return None

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

    def _retry(self, job: Job, error: ProviderError) -> bool:
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
        self.store.reschedule(job.id, self.owner, time.time() + delay, str(error))
        logger.info(
            "meetplugin: %s/%s: %s %s failed (%s), next try in %.1f s",
            job.key.calendar,
            job.key.uid,
            job.provider,
            job.kind.value,
            error,
            delay,
        )
        self._wake.set()
        return True

    # --- letters ------------------------------------------------------------

    def mail_queued(self) -> None:
        """Letters were queued: the loop sends them (or, without a loop, send them now)."""
        if self._thread is not None:
            self._wake.set()
        elif self.mailer is not None:
            self.submit_mails(self.store.due_mails(time.time()))

    def submit_mails(self, mail_ids: Iterable[int]) -> list[concurrent.futures.Future]:
        if self._mail_pool is None:
            return []
        return self._start(mail_ids, self._sending, self._mail_pool, self._send)

    def sending(self) -> list[concurrent.futures.Future]:
        with self._lock:
            return list(self._sending.values())

    def _send(self, mail_id: int) -> None:
        assert self.mailer is not None
        try:
            mail = self.store.claim_mail(mail_id, self.owner, self.mail_lease, self.alive)
            if mail is None:
                return  # sent already, or a live worker elsewhere has it
            what = (
                f"{mail.key.calendar}/{mail.key.uid}: {mail.method} e-mail (SEQUENCE "
                f"{mail.sequence}) to {mail.recipient}"
            )
            if time.time() - mail.created_at > self.retry_for:  # e.g. mail was off meanwhile
                self.store.finish_mail(mail.id, FAILED, "expired")
                logger.warning("meetplugin: %s: queued too long ago, not sent", what)
                return
            if mail.interrupted_in_data:
                self.store.finish_mail(mail.id, UNKNOWN, "interrupted during DATA")
                logger.warning(
                    "meetplugin: %s: the sender stopped while the SMTP server "
                    "received it; it may have arrived and is not sent again",
                    what,
                )
                return
            mailing = self.engine.mailing
            try:
                assert mailing is not None
                sender, message = mailing.render(mail)
            except Exception as e:  # the same text would fail again: not retried
                self.store.finish_mail(mail.id, FAILED, f"cannot build the letter: {e}")
                logger.warning("meetplugin: %s: cannot build the letter: %s", what, e)
                return
            try:
                self.mailer.send(
                    sender,
                    mail.recipient,
                    message,
                    lambda: self.store.mail_in_data(mail.id, self.owner),
                )
            except LeaseLost:
                return  # another worker took the letter over: it decides
            except MailError as e:
                self._mail_failed(mail, what, e)
                return
            self.store.finish_mail(mail.id, SENT)
            logger.info("meetplugin: %s sent", what)
        except Exception:  # keep the sender alive; the lease runs out and the letter returns
            logger.exception("meetplugin: e-mail %s failed inside the plugin", mail_id)

    def _mail_failed(self, mail: Mail, what: str, error: MailError) -> None:
        if error.unknown:
            self.store.finish_mail(mail.id, UNKNOWN, str(error))
            logger.warning("meetplugin: %s: %s; not sent again", what, error)
            return
        if error.temporary and time.time() - mail.created_at <= self.retry_for:
            delay = backoff(mail.tries, self.retry_initial, self.retry_max_delay)
            self.store.retry_mail(mail.id, self.owner, time.time() + delay, str(error))
            logger.info("meetplugin: %s failed (%s), next try in %.1f s", what, error, delay)
            self._wake.set()
            return
        self.store.finish_mail(mail.id, FAILED, str(error))
        logger.warning(
            "meetplugin: %s not sent%s: %s",
            what,
            "" if not error.temporary else f" after {mail.tries + 1} tries",
            error,
        )

    # --- the background loop -------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._loop, name="meetplugin-outbox", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._mail_pool is not None:
            self._mail_pool.shutdown(wait=False, cancel_futures=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                now = time.time()
                orphaned = [
                    i
                    for i, holder in self.store.held_by_others(self.owner)
                    if not self.alive(holder)
                ]
                self.submit([*self.store.due_jobs(now), *orphaned])
                next_at = self.store.next_due_at()
                if self.mailer is not None:
                    stranded = [
                        i
                        for i, holder in self.store.mails_held_by_others(self.owner)
                        if not self.alive(holder)
                    ]
                    self.submit_mails([*self.store.due_mails(now), *stranded])
                    mail_at = self.store.next_mail_at()
                    if mail_at is not None:
                        next_at = mail_at if next_at is None else min(next_at, mail_at)
                wait = 30.0 if next_at is None else min(30.0, max(0.05, next_at - now))
            except Exception:
                logger.exception("meetplugin: outbox loop")
                wait = 5.0
            self._wake.wait(wait)
            self._wake.clear()
