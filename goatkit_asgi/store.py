"""The platform's own state in its database (``database_url``): grants, the audit log, jobs.

Kept in the database, not in memory, so it survives restarts and several workers (or hosts on one
PostgreSQL) share it. The tables are ``specs.PLATFORM_TABLES``; plugins can never reach them (a
plugin only ever owns tables prefixed with its own name, and a name whose prefix would cover one
of these is refused: ``specs.table_conflict``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import databases

from .errors import ConfigError
from .packaging.manifest import Capabilities

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS goatkit_grants (
        plugin VARCHAR(128) PRIMARY KEY,
        capabilities TEXT NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS goatkit_audit (
        id {serial},
        at DOUBLE PRECISION NOT NULL,
        plugin VARCHAR(128) NOT NULL,
        function VARCHAR(128) NOT NULL,
        decision VARCHAR(16) NOT NULL,
        username VARCHAR(256),
        detail TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS goatkit_jobs (
        plugin VARCHAR(128) NOT NULL,
        job_id VARCHAR(128) NOT NULL,
        schedule VARCHAR(128) NOT NULL,
        callback VARCHAR(128) NOT NULL,
        args TEXT NOT NULL,
        source VARCHAR(16) NOT NULL,
        next_run DOUBLE PRECISION NOT NULL,
        lease_owner VARCHAR(64),
        lease_until DOUBLE PRECISION NOT NULL DEFAULT 0,
        last_run DOUBLE PRECISION,
        last_status VARCHAR(16),
        last_error TEXT,
        runs INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (plugin, job_id)
    )""",
    """CREATE TABLE IF NOT EXISTS goatkit_installs (
        plugin VARCHAR(128) PRIMARY KEY,
        filename VARCHAR(256) NOT NULL,
        sha256 VARCHAR(64) NOT NULL,
        version VARCHAR(64) NOT NULL,
        installed_at DOUBLE PRECISION NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS goatkit_meta (
        key VARCHAR(64) PRIMARY KEY,
        value BIGINT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS goatkit_plugin_state (
        plugin VARCHAR(128) PRIMARY KEY,
        enabled INTEGER NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL
    )""",
]


@dataclass(frozen=True)
class AuditEntry:
    at: float
    plugin: str
    function: str
    decision: str  # "allowed" or "denied"
    user: str | None
    detail: str


@dataclass(frozen=True)
class InstallRecord:
    plugin: str
    filename: str
    sha256: str
    version: str
    installed_at: float


@dataclass(frozen=True)
class JobRow:
    plugin: str
    job_id: str
    schedule: str
    callback: str
    args: Any
    source: str  # "registration" or "schedule_job"
    next_run: float
    last_run: float | None
    last_status: str | None
    last_error: str | None
    runs: int


class Store:
    """The platform database. ``connect()`` creates the tables it needs."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.db = databases.Database(url)
        self.postgres = url.startswith(("postgresql", "postgres"))

    async def connect(self) -> None:
        path = sqlite_path(self.url)
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            await self.db.connect()
            serial = (
                "BIGSERIAL PRIMARY KEY" if self.postgres else "INTEGER PRIMARY KEY AUTOINCREMENT"
            )
            if not self.postgres:
                # Several workers share one SQLite file: WAL lets readers and one writer coexist.
                await self.db.execute("PRAGMA journal_mode=WAL")
                await self.db.execute("PRAGMA busy_timeout=5000")
            for statement in _SCHEMA:
                await self.db.execute(statement.format(serial=serial))
        except Exception as exc:  # any driver error: the message says which database
            raise ConfigError(
                f"database_url: cannot open the platform database {_redact(self.url)} ({exc}); "
                "check the URL and that the database server is running"
            ) from exc

    async def disconnect(self) -> None:
        await self.db.disconnect()

    # -- grants ------------------------------------------------------------------------------

    async def grants(self) -> dict[str, Capabilities]:
        rows = await self.db.fetch_all("SELECT plugin, capabilities FROM goatkit_grants")
        return {row["plugin"]: _caps(json.loads(row["capabilities"])) for row in rows}

    async def set_grant(self, plugin: str, caps: Capabilities) -> None:
        data = json.dumps(caps.to_dict(), sort_keys=True)
        async with self.db.transaction():
            await self.db.execute("DELETE FROM goatkit_grants WHERE plugin = :p", {"p": plugin})
            if not caps.is_empty():
                await self.db.execute(
                    "INSERT INTO goatkit_grants (plugin, capabilities, updated_at) "
                    "VALUES (:p, :c, :t)",
                    {"p": plugin, "c": data, "t": time.time()},
                )

    # -- audit -------------------------------------------------------------------------------

    async def write_audit(self, entries: list[AuditEntry]) -> None:
        if not entries:
            return
        await self.db.execute_many(
            "INSERT INTO goatkit_audit (at, plugin, function, decision, username, detail) "
            "VALUES (:at, :plugin, :function, :decision, :username, :detail)",
            [
                {
                    "at": e.at,
                    "plugin": e.plugin,
                    "function": e.function,
                    "decision": e.decision,
                    "username": e.user,
                    "detail": e.detail[:2000],
                }
                for e in entries
            ],
        )

    async def audit(self, plugin: str | None = None, limit: int = 200) -> list[AuditEntry]:
        query = "SELECT at, plugin, function, decision, username, detail FROM goatkit_audit"
        values: dict[str, Any] = {"n": limit}
        if plugin is not None:
            query += " WHERE plugin = :p"
            values["p"] = plugin
        rows = await self.db.fetch_all(query + " ORDER BY id DESC LIMIT :n", values)
        return [
            AuditEntry(
                r["at"], r["plugin"], r["function"], r["decision"], r["username"], r["detail"]
            )
            for r in rows
        ]

    # -- install records ---------------------------------------------------------------------

    async def record_install(self, plugin: str, filename: str, sha256: str, version: str) -> None:
        async with self.db.transaction():
            await self.db.execute("DELETE FROM goatkit_installs WHERE plugin = :p", {"p": plugin})
            await self.db.execute(
                "INSERT INTO goatkit_installs (plugin, filename, sha256, version, installed_at) "
                "VALUES (:p, :f, :s, :v, :t)",
                {"p": plugin, "f": filename, "s": sha256, "v": version, "t": time.time()},
            )

    async def forget_install(self, plugin: str) -> None:
        await self.db.execute("DELETE FROM goatkit_installs WHERE plugin = :p", {"p": plugin})

    async def installs(self) -> list[InstallRecord]:
        rows = await self.db.fetch_all(
            "SELECT plugin, filename, sha256, version, installed_at FROM goatkit_installs "
            "ORDER BY plugin"
        )
        return [
            InstallRecord(r["plugin"], r["filename"], r["sha256"], r["version"], r["installed_at"])
            for r in rows
        ]

    # -- the state version: bumped by every change other workers must see -------------------

    async def state_version(self) -> int:
        value = await self.db.fetch_val("SELECT value FROM goatkit_meta WHERE key = 'state'")
        return int(value or 0)

    async def bump_state_version(self) -> int:
        async with self.db.transaction():
            row = await self.db.fetch_one(
                "UPDATE goatkit_meta SET value = value + 1 WHERE key = 'state' RETURNING value"
            )
            if row is None:
                await self.db.execute("INSERT INTO goatkit_meta (key, value) VALUES ('state', 1)")
                return 1
            return int(row["value"])

    # -- plugin state (enabled / disabled) ---------------------------------------------------

    async def disabled_plugins(self) -> set[str]:
        rows = await self.db.fetch_all("SELECT plugin FROM goatkit_plugin_state WHERE enabled = 0")
        return {row["plugin"] for row in rows}

    async def set_enabled(self, plugin: str, enabled: bool) -> None:
        async with self.db.transaction():
            await self.db.execute(
                "DELETE FROM goatkit_plugin_state WHERE plugin = :p", {"p": plugin}
            )
            await self.db.execute(
                "INSERT INTO goatkit_plugin_state (plugin, enabled, updated_at) "
                "VALUES (:p, :e, :t)",
                {"p": plugin, "e": int(enabled), "t": time.time()},
            )

    # -- jobs --------------------------------------------------------------------------------

    async def upsert_job(
        self,
        plugin: str,
        job_id: str,
        schedule: str,
        callback: str,
        args: Any,
        source: str,
        next_run: float,
    ) -> None:
        """Create or update a job; an unchanged schedule keeps its next run."""
        async with self.db.transaction():
            row = await self.db.fetch_one(
                "SELECT schedule, callback, args FROM goatkit_jobs "
                "WHERE plugin = :p AND job_id = :j",
                {"p": plugin, "j": job_id},
            )
            encoded = json.dumps(args, sort_keys=True)
            values = {"p": plugin, "j": job_id, "s": schedule, "c": callback, "a": encoded,
                      "src": source, "n": next_run}  # fmt: skip
            if row is None:
                await self.db.execute(
                    "INSERT INTO goatkit_jobs (plugin, job_id, schedule, callback, args, source, "
                    "next_run, lease_until, runs) VALUES (:p, :j, :s, :c, :a, :src, :n, 0, 0)",
                    values,
                )
            elif (row["schedule"], row["callback"], row["args"]) != (schedule, callback, encoded):
                await self.db.execute(
                    "UPDATE goatkit_jobs SET schedule = :s, callback = :c, args = :a, "
                    "source = :src, next_run = :n WHERE plugin = :p AND job_id = :j",
                    values,
                )

    async def delete_jobs(
        self, plugin: str, *, source: str | None = None, keep: set[str] | None = None
    ) -> None:
        rows = await self.db.fetch_all(
            "SELECT job_id, source FROM goatkit_jobs WHERE plugin = :p", {"p": plugin}
        )
        for row in rows:
            if source is not None and row["source"] != source:
                continue
            if keep is not None and row["job_id"] in keep:
                continue
            await self.db.execute(
                "DELETE FROM goatkit_jobs WHERE plugin = :p AND job_id = :j",
                {"p": plugin, "j": row["job_id"]},
            )

    async def jobs(self, plugin: str | None = None) -> list[JobRow]:
        if plugin is None:
            return await self._select_jobs("", {})
        return await self._select_jobs("WHERE plugin = :p", {"p": plugin})

    async def due_jobs(self, now: float) -> list[JobRow]:
        """Jobs due at ``now`` (and not leased), found by the database: every worker asks this
        every poll, so it must not read the whole table."""
        return await self._select_jobs(
            "WHERE next_run <= :now AND lease_until < :now", {"now": now}
        )

    async def _select_jobs(self, where: str, values: dict[str, Any]) -> list[JobRow]:
        rows = await self.db.fetch_all(
            "SELECT plugin, job_id, schedule, callback, args, source, next_run, last_run, "
            f"last_status, last_error, runs FROM goatkit_jobs {where} ORDER BY plugin, job_id",
            values,
        )
        return [
            JobRow(
                r["plugin"],
                r["job_id"],
                r["schedule"],
                r["callback"],
                json.loads(r["args"]),
                r["source"],
                r["next_run"],
                r["last_run"],
                r["last_status"],
                r["last_error"],
                r["runs"],
            )
            for r in rows
        ]

    async def lease_job(
        self, plugin: str, job_id: str, due: float, owner: str, until: float, now: float
    ) -> bool:
        """Take the lease on one due tick of a job; exactly one worker wins it.

        The row must still be due at ``due`` and not leased: the conditional UPDATE is atomic in
        the database, so two workers racing for the same tick cannot both see a row changed.
        """
        row = await self.db.fetch_one(
            "UPDATE goatkit_jobs SET lease_owner = :o, lease_until = :u "
            "WHERE plugin = :p AND job_id = :j AND next_run = :d AND lease_until < :now "
            "RETURNING job_id",
            {"o": owner, "u": until, "p": plugin, "j": job_id, "d": due, "now": now},
        )
        return row is not None

    async def finish_job(
        self,
        plugin: str,
        job_id: str,
        owner: str,
        *,
        ran_at: float,
        next_run: float,
        status: str,
        error: str | None,
    ) -> None:
        await self.db.execute(
            "UPDATE goatkit_jobs SET next_run = :n, last_run = :r, last_status = :s, "
            "last_error = :e, runs = runs + 1, lease_owner = NULL, lease_until = 0 "
            "WHERE plugin = :p AND job_id = :j AND lease_owner = :o",
            {
                "n": next_run,
                "r": ran_at,
                "s": status,
                "e": error,
                "p": plugin,
                "j": job_id,
                "o": owner,
            },
        )


def _caps(data: dict[str, Any]) -> Capabilities:
    def fail(message: str) -> Exception:
        return ConfigError(f"stored grant: {message}")

    return Capabilities.from_dict(data, "grant", fail)


def sqlite_path(url: str) -> str | None:
    """The file of a ``sqlite:///path`` URL (None for other databases or in-memory SQLite)."""
    if not url.startswith("sqlite"):
        return None
    path = url.split(":///", 1)[1] if ":///" in url else ""
    path = path.split("?", 1)[0]
    return path if path and path != ":memory:" else None


def _redact(url: str) -> str:
    """The URL without its password."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"
