"""The host functions that need a grant: database, HTTP, email, jobs, other plugins, events.

Each checks the calling plugin's effective capabilities (its request cut down to its grant) and
writes an audit entry (plugin, function, decision, user) whether it is allowed or denied. The
backends do the work; the database and HTTP backends also enforce the grant themselves (the
database refuses tables outside it; the HTTP client refuses hosts and addresses outside it).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..errors import CapabilityDenied, HostCallError
from .api import HostAPI, HostContext, str_arg
from .jobs import check_schedule, next_run

if TYPE_CHECKING:
    from ..store import AuditEntry, Store
    from .db import PluginDatabase
    from .http import PluginHttp
    from .mail import PluginMailer

#: plugin_call chains deeper than this are refused (A → B → C → D → E).
MAX_CALL_DEPTH = 4
_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")

PluginCaller = Callable[[HostContext, str, str, bytes | None], Awaitable[bytes | None]]
EventPublisher = Callable[[str, str, Any], Awaitable[int]]


class GatedFunctions:
    """Registers the capability-checked host functions on a :class:`HostAPI`."""

    def __init__(
        self,
        host: HostAPI,
        *,
        audit: Callable[[AuditEntry], None],
        db: PluginDatabase | None = None,
        http: PluginHttp | None = None,
        mailer: PluginMailer | None = None,
        store: Store | None = None,
        call_plugin: PluginCaller | None = None,
        publish: EventPublisher | None = None,
    ) -> None:
        self._audit = audit
        self.db = db
        self.http = http
        self.mailer = mailer
        self.store = store
        self._call_plugin = call_plugin
        self._publish = publish
        for name, fn in {
            "db_query": self.db_query,
            "db_exec": self.db_exec,
            "http_request": self.http_request,
            "send_email": self.send_email,
            "schedule_job": self.schedule_job,
            "plugin_call": self.plugin_call,
            "publish_event": self.publish_event,
        }.items():
            host.async_functions[name] = fn

    # -- auditing and denial -----------------------------------------------------------------

    def _record(self, ctx: HostContext, function: str, decision: str, detail: str) -> None:
        from ..store import AuditEntry

        self._audit(AuditEntry(time.time(), ctx.plugin, function, decision, ctx.user, detail))

    def _deny(self, ctx: HostContext, function: str, what: str, grant: str) -> CapabilityDenied:
        self._record(ctx, function, "denied", what)
        return CapabilityDenied(
            f"{ctx.plugin}: {function} {what} is not granted; an administrator can grant "
            f"capabilities: {grant} (after the plugin's manifest asks for it)",
            plugin=ctx.plugin,
            function=function,
        )

    async def _run(self, ctx: HostContext, function: str, detail: str, work: Awaitable[Any]) -> Any:
        """Run a backend call, auditing it as allowed, or as denied if the backend refuses."""
        try:
            result = await work
        except CapabilityDenied as exc:
            self._record(ctx, function, "denied", f"{detail}: {exc.message}")
            raise
        self._record(ctx, function, "allowed", detail)
        return result

    def _unavailable(self, ctx: HostContext, function: str, what: str) -> HostCallError:
        return HostCallError(
            f"{ctx.plugin}: {function} is not available: {what}",
            plugin=ctx.plugin,
            function=function,
            code="unavailable",
        )

    # -- database ----------------------------------------------------------------------------

    async def db_query(self, ctx: HostContext, args: dict[str, Any]) -> Any:
        return await self._db(ctx, "db_query", args)

    async def db_exec(self, ctx: HostContext, args: dict[str, Any]) -> Any:
        return await self._db(ctx, "db_exec", args)

    async def _db(self, ctx: HostContext, function: str, args: dict[str, Any]) -> Any:
        if self.db is None:
            raise self._unavailable(ctx, function, "the platform has no database")
        sql = str_arg(ctx, function, args, "query", limit=100_000)
        params = args.get("args")
        if params is not None and not isinstance(params, list | dict):
            raise HostCallError(
                f'{function}: "args" must be a list (for ?) or an object (for :name)',
                plugin=ctx.plugin,
                function=function,
                code="bad_request",
            )
        detail = sql[:200]
        if function == "db_query":
            rows = await self._run(
                ctx,
                function,
                detail,
                self.db.query(ctx.plugin, ctx.caps, sql, params, timeout=ctx.remaining()),
            )
            return rows
        affected = await self._run(
            ctx,
            function,
            detail,
            self.db.execute(ctx.plugin, ctx.caps, sql, params, timeout=ctx.remaining()),
        )
        return {"affected": affected}

    # -- HTTP and email -----------------------------------------------------------------------

    async def http_request(self, ctx: HostContext, args: dict[str, Any]) -> Any:
        if self.http is None:
            raise self._unavailable(ctx, "http_request", "outbound HTTP is off")
        if not ctx.caps.http_hosts:
            raise self._deny(ctx, "http_request", "outbound HTTP", "{http: {hosts: [...]}}")
        detail = f"{args.get('method', 'GET')} {str(args.get('url', ''))[:200]}"
        return await self._run(
            ctx,
            "http_request",
            detail,
            self.http.request(ctx.plugin, ctx.caps.http_hosts, args, timeout=ctx.remaining()),
        )

    async def send_email(self, ctx: HostContext, args: dict[str, Any]) -> Any:
        if self.mailer is None:
            raise self._unavailable(ctx, "send_email", "no SMTP server is configured (smtp=...)")
        if not ctx.caps.email:
            raise self._deny(ctx, "send_email", "sending email", "{email: true}")
        detail = f"to {args.get('to')!r}: {str(args.get('subject', ''))[:100]}"
        return await self._run(
            ctx, "send_email", detail, self.mailer.send(ctx.plugin, args, timeout=ctx.remaining())
        )

    # -- jobs ----------------------------------------------------------------------------------

    async def schedule_job(self, ctx: HostContext, args: dict[str, Any]) -> Any:
        if self.store is None:
            raise self._unavailable(ctx, "schedule_job", "the platform has no database")
        if not ctx.caps.jobs:
            raise self._deny(ctx, "schedule_job", "scheduling jobs", "{jobs: true}")
        job_id = str_arg(ctx, "schedule_job", args, "id", limit=64)
        if not _JOB_ID.match(job_id):
            raise HostCallError(
                f'schedule_job: "id" {job_id!r} may use letters, digits and _ . : - only',
                plugin=ctx.plugin,
                function="schedule_job",
                code="bad_request",
            )
        schedule = str_arg(ctx, "schedule_job", args, "cron", limit=128)
        problem = check_schedule(schedule)
        if problem is not None:
            raise HostCallError(
                f"schedule_job: {problem}",
                plugin=ctx.plugin,
                function="schedule_job",
                code="bad_request",
            )
        callback = str_arg(ctx, "schedule_job", args, "callback", limit=128)
        await self.store.upsert_job(
            ctx.plugin,
            job_id,
            schedule,
            callback,
            args.get("args"),
            "schedule_job",
            next_run(schedule, time.time()),
        )
        self._record(ctx, "schedule_job", "allowed", f"{job_id} {schedule} -> {callback}")
        return {"id": job_id}

    # -- other plugins and events --------------------------------------------------------------

    async def plugin_call(self, ctx: HostContext, args: dict[str, Any]) -> Any:
        target = str_arg(ctx, "plugin_call", args, "plugin", limit=128)
        function = str_arg(ctx, "plugin_call", args, "function", limit=128)
        if self._call_plugin is None:
            raise self._unavailable(ctx, "plugin_call", "calls between plugins are off")
        if target == ctx.plugin:
            raise HostCallError(
                f"{ctx.plugin}: plugin_call to itself is refused (it would wait for its own "
                "instance); call the function directly",
                plugin=ctx.plugin,
                function="plugin_call",
                code="bad_request",
            )
        if target not in ctx.caps.plugins:
            raise self._deny(ctx, "plugin_call", f"calling {target!r}", f"{{plugins: [{target}]}}")
        if ctx.depth >= MAX_CALL_DEPTH:
            raise HostCallError(
                f"{ctx.plugin}: plugin_call chain is deeper than {MAX_CALL_DEPTH}; refused",
                plugin=ctx.plugin,
                function="plugin_call",
                code="too_deep",
            )
        payload = args.get("args")
        raw = None if payload is None else json.dumps(payload).encode()
        result = await self._run(
            ctx,
            "plugin_call",
            f"{target}.{function}",
            self._call_plugin(ctx, target, function, raw),
        )
        return None if result is None else json.loads(result)

    async def publish_event(self, ctx: HostContext, args: dict[str, Any]) -> Any:
        topic = str_arg(ctx, "publish_event", args, "topic", limit=256)
        if self._publish is None:
            raise self._unavailable(ctx, "publish_event", "the event bus is off")
        if not ctx.caps.events:
            raise self._deny(ctx, "publish_event", "publishing events", "{events: true}")
        delivered = await self._publish(ctx.plugin, topic, args.get("payload"))
        self._record(ctx, "publish_event", "allowed", topic)
        return {"ok": True, "delivered": delivered}
