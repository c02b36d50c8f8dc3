"""The host side's moving parts, started and stopped together: the platform database, grants,
the audit log, outbound HTTP, email, the event bus and the job scheduler.

Grants live in the platform database, so they survive restarts. ``grants=`` given to the
Platform are applied at every start (code configuration stays authoritative for what it names);
``Platform.grant`` / ``revoke`` change the stored grants. With ``auto_grant=True`` (development
only) a plugin may do whatever its manifest asks, and a warning says so.

Audit entries are kept in memory (the recent ones, for the admin) and written to the database in
batches by a background task, so a host call never waits for an audit write.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc

from ..packaging.manifest import Capabilities
from ..registration import Job
from ..store import AuditEntry, JobRow, Store
from . import grants as caps_math
from .events import EventBus
from .http import PluginHttp
from .jobs import Scheduler, next_run
from .mail import PluginMailer, SmtpSettings

if TYPE_CHECKING:
    from .db import PluginDatabase

logger = logging.getLogger("goatkit")

AUDIT_FLUSH_SECONDS = 1.0


class HostServices:
    def __init__(
        self,
        *,
        database_url: str,
        grants: dict[str, Capabilities],
        auto_grant: bool,
        smtp: SmtpSettings | None,
        run_job: Callable[[JobRow, float], Awaitable[Any]],
        job_poll: float = 1.0,
    ) -> None:
        self.store = Store(database_url)
        self.db: PluginDatabase | None = None
        self._database_url = database_url
        self.http = PluginHttp()
        self.mailer = PluginMailer(smtp) if smtp is not None else None
        self.events = EventBus()
        self.scheduler = Scheduler(self.store, run_job, poll=job_poll)
        self.auto_grant = auto_grant
        self._configured = grants
        self._grants: dict[str, Capabilities] = {}
        self._recent: collections.deque[AuditEntry] = collections.deque(maxlen=2000)
        self._unwritten: list[AuditEntry] = []
        self._started = False

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, task_group: anyio.abc.TaskGroup) -> None:
        from .db import PluginDatabase

        await self.store.connect()
        self.db = PluginDatabase(self._database_url)
        await self.db.connect()
        for plugin, caps in self._configured.items():
            await self.store.set_grant(plugin, caps_math.union(await self._stored(plugin), caps))
        self._grants = await self.store.grants()
        if self.auto_grant:
            logger.warning(
                "auto_grant is on: every plugin may do whatever its manifest asks; use it only "
                "in development"
            )
        task_group.start_soon(self._flush_audit_forever)
        task_group.start_soon(self.scheduler.serve)
        self._started = True

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        with anyio.CancelScope(shield=True):
            await self.flush_audit()
            await self.http.aclose()
            if self.db is not None:
                await self.db.disconnect()
            await self.store.disconnect()

    async def _stored(self, plugin: str) -> Capabilities:
        return (await self.store.grants()).get(plugin, Capabilities())

    # -- grants ------------------------------------------------------------------------------

    def granted(self, plugin: str) -> Capabilities:
        return self._grants.get(plugin, Capabilities())

    def effective(self, plugin: str, requested: Capabilities) -> Capabilities:
        if self.auto_grant:
            return requested
        return caps_math.effective(requested, self.granted(plugin))

    def pending(self, plugin: str, requested: Capabilities) -> Capabilities:
        if self.auto_grant:
            return Capabilities()
        return caps_math.pending(requested, self.granted(plugin))

    async def grant(self, plugin: str, caps: Capabilities) -> Capabilities:
        merged = caps_math.union(self.granted(plugin), caps)
        await self.store.set_grant(plugin, merged)
        self._grants[plugin] = merged
        return merged

    async def revoke(self, plugin: str, caps: Capabilities | None) -> Capabilities:
        left = Capabilities() if caps is None else caps_math.without(self.granted(plugin), caps)
        await self.store.set_grant(plugin, left)
        self._grants[plugin] = left
        return left

    async def reload_grants(self) -> None:
        """Read the grants again (another worker may have changed them)."""
        self._grants = await self.store.grants()

    # -- audit -------------------------------------------------------------------------------

    def audit(self, entry: AuditEntry) -> None:
        self._recent.append(entry)
        self._unwritten.append(entry)
        if entry.decision == "denied":
            logger.warning("%s: %s denied: %s", entry.plugin, entry.function, entry.detail)

    def recent_audit(self, plugin: str | None = None) -> list[AuditEntry]:
        return [e for e in self._recent if plugin is None or e.plugin == plugin]

    async def flush_audit(self) -> None:
        entries, self._unwritten = self._unwritten, []
        try:
            await self.store.write_audit(entries)
        except Exception:  # the log must never take the host down; keep them for the next try
            logger.exception("could not write %d audit entries; will retry", len(entries))
            self._unwritten[:0] = entries

    async def _flush_audit_forever(self) -> None:
        while True:
            await anyio.sleep(AUDIT_FLUSH_SECONDS)
            await self.flush_audit()

    # -- jobs --------------------------------------------------------------------------------

    async def sync_registration_jobs(
        self, declared: dict[str, tuple[tuple[Job, ...], bool]]
    ) -> None:
        """Make the stored jobs match each plugin's registration: ``{plugin: (jobs, allowed)}``.

        Jobs need the ``jobs`` capability; without it they are not scheduled (and a warning says
        why). Jobs a plugin scheduled itself (``schedule_job``) are left alone. Only plugins whose
        jobs changed are written, so a start with nothing new costs one query.
        """
        stored: dict[str, dict[str, JobRow]] = {}
        for row in await self.store.jobs():
            if row.source == "registration":
                stored.setdefault(row.plugin, {})[row.job_id] = row
        now = time.time()
        for plugin, (jobs, allowed) in declared.items():
            wanted = {job.id: job for job in jobs if job.enabled} if allowed else {}
            if jobs and not allowed:
                logger.warning(
                    "%s: its registration declares jobs, but it was not granted {jobs: true}; "
                    "they will not run until an administrator grants it",
                    plugin,
                )
            have = stored.get(plugin, {})
            same = set(have) == set(wanted) and all(
                (have[i].schedule, have[i].callback) == (j.schedule, j.handler)
                for i, j in wanted.items()
            )
            if same:
                continue
            await self.store.delete_jobs(plugin, source="registration", keep=set(wanted))
            for job in wanted.values():
                await self.store.upsert_job(
                    plugin,
                    job.id,
                    job.schedule,
                    job.handler,
                    None,
                    "registration",
                    next_run(job.schedule, now),
                )
