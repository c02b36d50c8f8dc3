"""Scheduled jobs: cron schedules, and the scheduler loop that runs each tick once.

A job is a plugin function called on a schedule: declared in the registration (``jobs[]``) or
created at run time with the ``schedule_job`` host call. Jobs live in the platform database
(``goatkit_jobs``), so they survive restarts, and several workers or hosts can run the scheduler
at once: before running a tick, a worker takes a lease on it with one conditional UPDATE, and only
the worker whose UPDATE changed the row runs it.

Missed ticks (the app was down, or a run took longer than the interval) are coalesced: the job
runs once, as soon as it can, and the next run is the first tick after that run started. A failed
run is logged, recorded on the job (``last_status``, ``last_error``) and does not stop the
schedule.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio
from cronsim import CronSim, CronSimError

if TYPE_CHECKING:
    from ..store import JobRow, Store

logger = logging.getLogger("goatkit.jobs")

_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_EVERY = re.compile(r"^@every\s+(\d+(?:\.\d+)?)(ms|s|m|h)$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
MIN_INTERVAL = 1.0


def check_schedule(schedule: str) -> str | None:
    """None when ``schedule`` is valid, else what is wrong with it."""
    try:
        next_run(schedule, time.time())
    except ValueError as exc:
        return str(exc)
    return None


def next_run(schedule: str, after: float) -> float:
    """The first tick of ``schedule`` strictly after ``after`` (epoch seconds, UTC).

    ``schedule`` is a 5-field cron expression (``*/5 * * * *``), an alias (``@hourly``), or
    ``@every <n><ms|s|m|h>`` (GoatKit's form).
    """
    text = schedule.strip()
    every = _EVERY.match(text)
    if every is not None:
        interval = float(every.group(1)) * _UNITS[every.group(2)]
        if interval < MIN_INTERVAL:
            raise ValueError(f"{schedule!r}: the interval must be at least {MIN_INTERVAL:g}s")
        return after + interval
    expression = _ALIASES.get(text, text)
    start = dt.datetime.fromtimestamp(after, dt.UTC).replace(microsecond=0)
    try:
        tick = next(CronSim(expression, start))
    except (CronSimError, StopIteration) as exc:
        raise ValueError(
            f"{schedule!r} is not a cron schedule ({exc}); use 5 fields like '*/5 * * * *', "
            "an alias like '@hourly', or '@every 10m'"
        ) from exc
    return tick.timestamp()


JobRunner = Callable[["JobRow", float], Awaitable[Any]]


class Scheduler:
    """Runs due jobs. One per platform; safe to run in several processes on one database."""

    def __init__(
        self,
        store: Store,
        run: JobRunner,
        *,
        poll: float = 1.0,
        lease: float = 60.0,
        on_error: Callable[[JobRow, str], None] | None = None,
    ) -> None:
        self.store = store
        self._run = run
        self.poll = poll
        self.lease = lease
        self.owner = secrets.token_hex(8)
        self._on_error = on_error
        self.runs = 0

    async def serve(self) -> None:
        """Run until cancelled."""
        while True:
            try:
                await self.tick()
            except Exception:  # the database may be briefly unavailable: keep the loop alive
                logger.exception("the job scheduler failed to check for due jobs; retrying")
            await anyio.sleep(self.poll)

    async def tick(self, now: float | None = None) -> int:
        """Run every job that is due now; returns how many this worker ran."""
        now = time.time() if now is None else now
        ran = 0
        for job in await self.store.due_jobs(now):
            if not await self.store.lease_job(
                job.plugin, job.job_id, job.next_run, self.owner, now + self.lease, now
            ):
                continue  # another worker has this tick
            ran += 1
            await self._run_one(job, now)
        self.runs += ran
        return ran

    async def _run_one(self, job: JobRow, now: float) -> None:
        status, error = "ok", None
        started = time.time()
        try:
            await self._run(job, now)
        except Exception as exc:  # a failed job is recorded; the schedule goes on
            status, error = "failed", str(exc) or type(exc).__name__
            logger.warning("job %s of %s failed: %s", job.job_id, job.plugin, error)
            if self._on_error is not None:
                self._on_error(job, error)
        try:
            following = next_run(job.schedule, max(started, job.next_run))
        except ValueError as exc:  # cannot happen for stored jobs; never loop on one
            following, status, error = float("inf"), "failed", str(exc)
        await self.store.finish_job(
            job.plugin,
            job.job_id,
            self.owner,
            ran_at=started,
            next_run=following,
            status=status,
            error=error,
        )
