"""``db_query`` / ``db_exec`` (:class:`PluginDatabase`) against real SQLite and PostgreSQL.

Every behaviour test runs on SQLite (a temporary file) and on PostgreSQL. The PostgreSQL runs need
a server: set ``GOATKIT_TEST_POSTGRES_DSN`` to the URL of a superuser login, for example
``postgresql://postgres:postgres@127.0.0.1:5432/postgres``; without it they are skipped, with that
reason. CI always sets it. On Debian a local server for them is::

    apt-get install -y postgresql
    pg_ctlcluster 15 main start
    su postgres -c "psql -c \\"ALTER USER postgres PASSWORD 'postgres'\\""
    export GOATKIT_TEST_POSTGRES_DSN=postgresql://postgres:postgres@127.0.0.1:5432/postgres

The plugin roles log in with a password over TCP, which Debian's default ``pg_hba.conf`` allows
for 127.0.0.1. Each test works in a schema of its own (dropped afterwards) and removes the roles
and schemas of the test plugins before and after it; runs against one server must not overlap.

The "hostile" tests send SQL that tries to reach a table outside the grant, and check that the
database refuses it: with a :class:`CapabilityDenied` naming the plugin, the table and the grant
it would need, and with the secret table unread and unchanged.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest

from goatkit_asgi.errors import CapabilityDenied, ConfigError, GoatKitError, HostCallError
from goatkit_asgi.host.db import PluginDatabase, numbered_placeholders, role_name, table_prefix
from goatkit_asgi.packaging.manifest import Capabilities

pytestmark = pytest.mark.anyio

PG_DSN = os.environ.get("GOATKIT_TEST_POSTGRES_DSN", "")
PLUGIN = "hello-wasm"
OTHER = "other-plugin"
NONE = Capabilities()
READ_TICKETS = Capabilities(db_read=("tickets",))
WRITE_FAQ = Capabilities(db_read=("tickets",), db_write=("faq",))

SETUP = [
    "CREATE TABLE secrets (id integer PRIMARY KEY, secret text)",
    "INSERT INTO secrets VALUES (1, 'the root password')",
    "CREATE TABLE tickets (id integer PRIMARY KEY, title text)",
    "INSERT INTO tickets VALUES (1, 'printer on fire'), (2, 'no coffee')",
    "CREATE TABLE faq (id integer PRIMARY KEY, question text)",
    "CREATE VIEW secret_view AS SELECT id, secret FROM secrets",
]


@dataclass
class Backend:
    """The database under test, with an administrator's connection beside the plugins'."""

    kind: str
    url: str
    db: PluginDatabase
    admin: Callable[[str], Awaitable[None]]
    fetch: Callable[[str], Awaitable[list[tuple[Any, ...]]]]
    extra: list[PluginDatabase] = field(default_factory=list)

    async def query(
        self,
        sql: str,
        params: list[Any] | dict[str, Any] | None = None,
        caps: Capabilities = NONE,
        *,
        plugin: str = PLUGIN,
        timeout: float = 10.0,
    ) -> list[dict[str, Any]] | None:
        return await self.db.query(plugin, caps, sql, params, timeout=timeout)

    async def execute(
        self,
        sql: str,
        params: list[Any] | dict[str, Any] | None = None,
        caps: Capabilities = NONE,
        *,
        plugin: str = PLUGIN,
        timeout: float = 10.0,
    ) -> int:
        return await self.db.execute(plugin, caps, sql, params, timeout=timeout)

    async def another(self, **options: Any) -> PluginDatabase:
        """A second PluginDatabase on the same database (closed with the test)."""
        db = PluginDatabase(self.url, **options)
        await db.connect()
        self.extra.append(db)
        return db

    async def secrets(self) -> list[tuple[Any, ...]]:
        return await self.fetch("SELECT id, secret FROM secrets ORDER BY id")


@pytest.fixture(params=["sqlite", "postgresql"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "sqlite":
        async with _sqlite_backend(tmp_path) as b:
            yield b
    else:
        if not PG_DSN:
            pytest.skip("PostgreSQL: set GOATKIT_TEST_POSTGRES_DSN to run (CI always does)")
        async with _postgres_backend() as b:
            yield b


sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
postgres_only = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


class _sqlite_backend:
    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "host.db"

    async def __aenter__(self) -> Backend:
        self.conn = sqlite3.connect(self.path, isolation_level=None)
        for statement in SETUP:
            self.conn.execute(statement)

        async def admin(sql: str) -> None:
            self.conn.executescript(sql)

        async def fetch(sql: str) -> list[tuple[Any, ...]]:
            return self.conn.execute(sql).fetchall()

        url = f"sqlite:///{self.path}"
        self.backend = Backend("sqlite", url, PluginDatabase(url), admin, fetch)
        await self.backend.db.connect()
        return self.backend

    async def __aexit__(self, *exc_info: object) -> None:
        for db in [self.backend.db, *self.backend.extra]:
            await db.disconnect()
        self.conn.close()


class _postgres_backend:
    async def __aenter__(self) -> Backend:
        import asyncpg  # type: ignore[import-untyped]

        self.schema = f"gkt_{uuid.uuid4().hex[:12]}"
        self.conn = await asyncpg.connect(PG_DSN)
        await _drop_plugin_roles(self.conn)
        await self.conn.execute(f"CREATE SCHEMA {self.schema}; SET search_path = {self.schema}")
        await self.conn.execute(";\n".join(SETUP))

        async def admin(sql: str) -> None:
            await self.conn.execute(sql)

        async def fetch(sql: str) -> list[tuple[Any, ...]]:
            return [tuple(row.values()) for row in await self.conn.fetch(sql)]

        url = PG_DSN + ("&" if "?" in PG_DSN else "?") + f"search_path={self.schema}"
        self.backend = Backend("postgresql", url, PluginDatabase(url), admin, fetch)
        await self.backend.db.connect()
        return self.backend

    async def __aexit__(self, *exc_info: object) -> None:
        for db in [self.backend.db, *self.backend.extra]:
            await db.disconnect()
        await self.conn.execute(f"DROP SCHEMA {self.schema} CASCADE")
        await _drop_plugin_roles(self.conn)
        await self.conn.close()


async def _drop_plugin_roles(conn: Any) -> None:
    for plugin in (PLUGIN, OTHER):
        role = role_name(plugin)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{role}" CASCADE')
        if await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
            await conn.execute(f'DROP OWNED BY "{role}"; DROP ROLE "{role}"')


async def refused(
    call: Awaitable[object], *fragments: str, plugin: str = PLUGIN
) -> CapabilityDenied:
    """Await ``call``, check it raised CapabilityDenied naming the plugin and ``fragments``."""
    with pytest.raises(CapabilityDenied) as info:
        await call
    message = str(info.value)
    assert message.startswith(f"{plugin}: "), message
    for fragment in fragments:
        assert fragment in message, message
    assert info.value.plugin == plugin
    assert "Traceback" not in message
    return info.value


SECRET_ROWS = [(1, "the root password")]


# --- plain use ---------------------------------------------------------------------------------


async def test_own_tables_are_created_written_and_read(backend: Backend) -> None:
    await backend.execute("CREATE TABLE hello_wasm_notes (id integer PRIMARY KEY, body text)")
    inserted = await backend.execute(
        "INSERT INTO hello_wasm_notes (id, body) VALUES (?, ?), (?, ?), (?, ?)",
        [1, "one", 2, "two", 3, "three"],
    )
    assert inserted == 3
    assert await backend.execute("UPDATE hello_wasm_notes SET body = upper(body) WHERE id < 3") == 2
    rows = await backend.query("SELECT id, body FROM hello_wasm_notes ORDER BY id")
    assert rows == [
        {"id": 1, "body": "ONE"},
        {"id": 2, "body": "TWO"},
        {"id": 3, "body": "three"},
    ]
    assert await backend.execute("DELETE FROM hello_wasm_notes WHERE id = ?", [3]) == 1


async def test_own_schema_can_change(backend: Backend) -> None:
    await backend.execute("CREATE TABLE hello_wasm_a (id integer PRIMARY KEY, body text UNIQUE)")
    await backend.execute("ALTER TABLE hello_wasm_a ADD COLUMN extra text")
    await backend.execute("CREATE INDEX hello_wasm_a_extra ON hello_wasm_a (extra)")
    await backend.execute("ALTER TABLE hello_wasm_a RENAME TO hello_wasm_b")
    await backend.execute("CREATE VIEW hello_wasm_v AS SELECT id, body FROM hello_wasm_b")
    await backend.execute("INSERT INTO hello_wasm_b (id, body, extra) VALUES (1, 'x', 'y')")
    assert await backend.query("SELECT body FROM hello_wasm_v") == [{"body": "x"}]
    await backend.execute("DROP VIEW hello_wasm_v")
    await backend.execute("DROP INDEX hello_wasm_a_extra")
    await backend.execute("DROP TABLE hello_wasm_b")
    with pytest.raises(HostCallError) as info:
        await backend.query("SELECT * FROM hello_wasm_b")
    assert info.value.code == "sql_error"


async def test_granted_tables_are_read_and_written(backend: Backend) -> None:
    rows = await backend.query("SELECT id, title FROM tickets ORDER BY id", caps=READ_TICKETS)
    assert rows == [{"id": 1, "title": "printer on fire"}, {"id": 2, "title": "no coffee"}]
    assert await backend.execute("INSERT INTO faq VALUES (1, 'why?')", caps=WRITE_FAQ) == 1
    # write implies read, in db_query and in db_exec
    assert await backend.query("SELECT question FROM faq", caps=WRITE_FAQ) == [{"question": "why?"}]
    await backend.execute("CREATE TABLE hello_wasm_copy (id integer, title text)")
    copied = await backend.execute(
        "INSERT INTO hello_wasm_copy SELECT id, title FROM tickets", caps=READ_TICKETS
    )
    assert copied == 2


async def test_wildcard_grants(backend: Backend) -> None:
    caps = Capabilities(db_read=("tick*",))
    assert await backend.query("SELECT count(*) AS n FROM tickets", caps=caps) == [{"n": 2}]
    await refused(backend.query("SELECT * FROM secrets", caps=caps), '"secrets"')


async def test_zero_rows_is_null(backend: Backend) -> None:
    assert await backend.query("SELECT * FROM tickets WHERE id = ?", [99], READ_TICKETS) is None


async def test_named_parameters(backend: Backend) -> None:
    rows = await backend.query(
        "SELECT id FROM tickets WHERE id = :id OR (id = :id AND title = :title)",
        {"id": 2, "title": "ignored"},
        READ_TICKETS,
    )
    assert rows == [{"id": 2}]


async def test_parameters_are_data_never_sql(backend: Backend) -> None:
    await backend.execute("CREATE TABLE hello_wasm_notes (id integer, body text)")
    hostile = "x'); DROP TABLE secrets; --"
    await backend.execute("INSERT INTO hello_wasm_notes VALUES (?, ?)", [1, hostile])
    await backend.execute(
        "INSERT INTO hello_wasm_notes VALUES (:id, :body)", {"id": 2, "body": "?"}
    )
    rows = await backend.query("SELECT body FROM hello_wasm_notes ORDER BY id")
    assert rows == [{"body": hostile}, {"body": "?"}]
    assert await backend.secrets() == SECRET_ROWS


@sqlite_only
async def test_sqlite_types(backend: Backend) -> None:
    await backend.execute(
        "CREATE TABLE hello_wasm_t (id integer PRIMARY KEY AUTOINCREMENT, b blob, r real, "
        "n numeric, s text, z text)"
    )
    await backend.execute(
        "INSERT INTO hello_wasm_t (b, r, n, s, z) VALUES (?, ?, ?, ?, ?)",
        [b"\x00\x01\xff", 1.5, "12.50", "héllo", None],
    )
    rows = await backend.query("SELECT b, r, n, s, z, x'cafe' AS lit FROM hello_wasm_t")
    assert rows == [
        {"b": "AAH/", "r": 1.5, "n": 12.5, "s": "héllo", "z": None, "lit": "yv4="},
    ]


@postgres_only
async def test_postgresql_types(backend: Backend) -> None:
    await backend.execute(
        "CREATE TABLE hello_wasm_t (b bytea, amount numeric(10, 2), day date, at timestamp, "
        "atz timestamptz, t time, u uuid, i interval, ok boolean, j jsonb, big bigint, f real)"
    )
    await backend.execute(
        "INSERT INTO hello_wasm_t VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            b"\x00\x01\xff",
            "12.5",
            "2024-01-02",
            "2024-01-02 03:04:05.5",
            "2024-01-02 03:04:05+02",
            "13:14:15",
            "12345678-1234-5678-1234-567812345678",
            "1 day 2 hours",
            True,
            '{"a": [1, 2]}',
            2**40,
            0.5,
        ],
    )
    rows = await backend.query("SELECT * FROM hello_wasm_t")
    assert rows == [
        {
            "b": "AAH/",
            "amount": "12.50",
            "day": "2024-01-02",
            "at": "2024-01-02T03:04:05.5",
            "atz": "2024-01-02T01:04:05+00:00",
            "t": "13:14:15",
            "u": "12345678-1234-5678-1234-567812345678",
            "i": "P1DT2H",
            "ok": True,
            "j": '{"a": [1, 2]}',
            "big": 2**40,
            "f": 0.5,
        }
    ]
    # A date given as a string compares as a date.
    assert await backend.query("SELECT 1 AS hit FROM hello_wasm_t WHERE day > ?", ["2023-12-31"])


# --- no grant, no access -----------------------------------------------------------------------


async def test_read_without_grant_is_refused(backend: Backend) -> None:
    await refused(
        backend.query("SELECT * FROM secrets", caps=READ_TICKETS),
        "db_query",
        '"secrets"',
        "capabilities.db.read: [secrets]",
    )
    await refused(
        backend.execute("DELETE FROM secrets", caps=READ_TICKETS),
        "capabilities.db.write: [secrets]",
    )
    assert await backend.secrets() == SECRET_ROWS


async def test_write_without_grant_is_refused(backend: Backend) -> None:
    error = await refused(
        backend.execute("INSERT INTO tickets VALUES (3, 'mine')", caps=READ_TICKETS),
        "db_exec",
        '"tickets"',
        "capabilities.db.write: [tickets]",
    )
    assert error.function == "db_exec"
    await refused(
        backend.execute("UPDATE tickets SET title = 'x'", caps=READ_TICKETS),
        "capabilities.db.write: [tickets]",
    )
    rows = await backend.fetch("SELECT title FROM tickets ORDER BY id")
    assert rows == [("printer on fire",), ("no coffee",)]


async def test_a_withdrawn_grant_no_longer_reads(backend: Backend) -> None:
    assert await backend.query("SELECT id FROM tickets WHERE id = 1", caps=READ_TICKETS)
    await refused(backend.query("SELECT id FROM tickets", caps=NONE), '"tickets"')
    assert await backend.execute("INSERT INTO faq VALUES (1, 'q')", caps=WRITE_FAQ) == 1
    await refused(
        backend.execute("INSERT INTO faq VALUES (2, 'q')", caps=READ_TICKETS),
        "capabilities.db.write: [faq]",
    )


async def test_a_granted_table_created_later_is_readable(backend: Backend) -> None:
    caps = Capabilities(db_read=("tickets", "reports"))
    assert await backend.query("SELECT id FROM tickets WHERE id = 1", caps=caps)
    await backend.admin("CREATE TABLE reports (id integer); INSERT INTO reports VALUES (7)")
    assert await backend.query("SELECT id FROM reports", caps=caps) == [{"id": 7}]
    # recreated by the host: still granted
    await backend.admin("DROP TABLE reports; CREATE TABLE reports (id integer)")
    assert await backend.query("SELECT id FROM reports", caps=caps) is None


async def test_another_plugins_tables_are_out_of_reach(backend: Backend) -> None:
    await backend.execute("CREATE TABLE other_plugin_data (x text)", plugin=OTHER)
    await backend.execute("INSERT INTO other_plugin_data VALUES ('theirs')", plugin=OTHER)
    # On PostgreSQL the table lives in the other plugin's schema, which this plugin's search
    # path does not name: "does not exist" (sql_error) there, a refusal on SQLite.
    with pytest.raises((CapabilityDenied, HostCallError)):
        await backend.query("SELECT * FROM other_plugin_data")
    if backend.kind == "postgresql":
        await refused(
            backend.query(f"SELECT * FROM {role_name(OTHER)}.other_plugin_data"),
            role_name(OTHER),
        )
    assert await backend.query("SELECT x FROM other_plugin_data", plugin=OTHER) == [{"x": "theirs"}]


# --- hostile SQL -------------------------------------------------------------------------------

HOSTILE_READS = {
    "direct": "SELECT secret FROM secrets",
    "count": "SELECT count(*) FROM secrets",
    "exists": "SELECT EXISTS (SELECT 1 FROM secrets) AS e",
    "view": "SELECT secret FROM secret_view",
    "cte": "WITH s AS (SELECT secret FROM secrets) SELECT secret FROM s",
    "recursive cte": (
        "WITH RECURSIVE s(x) AS (SELECT secret FROM secrets UNION SELECT x FROM s) SELECT x FROM s"
    ),
    "subquery": "SELECT (SELECT secret FROM secrets LIMIT 1) AS s",
    "derived table": "SELECT count(*) FROM (SELECT 1 FROM secrets) AS t",
    "join": "SELECT t.title, s.secret FROM tickets t JOIN secrets s ON s.id = t.id",
    "union": "SELECT title FROM tickets UNION SELECT secret FROM secrets",
    "where": "SELECT title FROM tickets WHERE id IN (SELECT id FROM secrets)",
}


@pytest.mark.parametrize("sql", HOSTILE_READS.values(), ids=HOSTILE_READS.keys())
async def test_hostile_reads_are_refused(backend: Backend, sql: str) -> None:
    error = await refused(backend.query(sql, caps=READ_TICKETS), "db_query", "capabilities.db.read")
    assert "secret" in str(error)


async def test_hostile_read_into_own_table_is_refused(backend: Backend) -> None:
    await backend.execute("CREATE TABLE hello_wasm_loot (x text)")
    await refused(
        backend.execute("INSERT INTO hello_wasm_loot SELECT secret FROM secrets"),
        '"secrets"',
        "capabilities.db.read: [secrets]",
    )
    await refused(
        backend.execute("CREATE TABLE hello_wasm_loot2 AS SELECT * FROM secrets"),
        '"secrets"',
    )
    assert await backend.query("SELECT * FROM hello_wasm_loot") is None


async def test_own_view_over_a_secret_table_reads_nothing(backend: Backend) -> None:
    # Creating the view may succeed (nothing is read yet), but reading through it is refused.
    with pytest.raises(CapabilityDenied):
        await backend.execute("CREATE VIEW hello_wasm_peek AS SELECT secret FROM secrets")
        await backend.query("SELECT * FROM hello_wasm_peek")


@sqlite_only
async def test_trigger_that_writes_a_secret_table_is_refused_when_created(
    backend: Backend,
) -> None:
    # It would also fire when the host writes the plugin's table, with the host's rights.
    await backend.execute("CREATE TABLE hello_wasm_items (name text)")
    await refused(
        backend.execute(
            "CREATE TRIGGER hello_wasm_spy AFTER UPDATE OF name ON hello_wasm_items BEGIN "
            "UPDATE secrets SET secret = new.name; END"
        ),
        '"secrets"',
        "capabilities.db.write: [secrets]",
    )
    await refused(
        backend.execute(
            "CREATE TRIGGER hello_wasm_spy AFTER DELETE ON hello_wasm_items BEGIN "
            "INSERT INTO hello_wasm_items SELECT secret FROM secrets; END"
        ),
        "capabilities.db.read: [secrets]",
    )
    assert await backend.fetch("SELECT name FROM sqlite_master WHERE type = 'trigger'") == []
    # A trigger within the grant is fine.
    await backend.execute(
        "CREATE TRIGGER hello_wasm_log AFTER INSERT ON hello_wasm_items BEGIN "
        "INSERT INTO faq (question) VALUES (new.name); END",
        caps=WRITE_FAQ,
    )
    await backend.execute("INSERT INTO hello_wasm_items VALUES ('logged')", caps=WRITE_FAQ)
    assert await backend.fetch("SELECT question FROM faq") == [("logged",)]


@sqlite_only
async def test_trigger_on_own_table_cannot_write_a_secret_table(backend: Backend) -> None:
    await backend.execute("CREATE TABLE hello_wasm_items (name text)")
    # Made outside the plugin (or before a grant was withdrawn): refused when the plugin fires it.
    await backend.admin(
        "CREATE TRIGGER hello_wasm_spy AFTER INSERT ON hello_wasm_items BEGIN "
        "UPDATE secrets SET secret = new.name; END"
    )
    await refused(
        backend.execute("INSERT INTO hello_wasm_items VALUES ('pwned')"),
        "db_exec",
        '"secrets"',
        "capabilities.db.write: [secrets]",
    )
    assert await backend.secrets() == SECRET_ROWS
    assert await backend.query("SELECT * FROM hello_wasm_items") is None


@sqlite_only
async def test_trigger_on_own_table_cannot_read_a_secret_table(backend: Backend) -> None:
    await backend.execute("CREATE TABLE hello_wasm_items (name text)")
    await backend.execute("CREATE TABLE hello_wasm_loot (x text)")
    await backend.admin(
        "CREATE TRIGGER hello_wasm_spy AFTER INSERT ON hello_wasm_items BEGIN "
        "INSERT INTO hello_wasm_loot SELECT secret FROM secrets; END"
    )
    await refused(backend.execute("INSERT INTO hello_wasm_items VALUES ('a')"), '"secrets"')
    assert await backend.query("SELECT * FROM hello_wasm_loot") is None


@sqlite_only
async def test_admin_trigger_on_granted_table_does_not_widen_the_grant(backend: Backend) -> None:
    await backend.admin(
        "CREATE TRIGGER faq_audit AFTER INSERT ON faq BEGIN "
        "UPDATE secrets SET secret = 'touched'; END"
    )
    await refused(backend.execute("INSERT INTO faq VALUES (1, 'q')", caps=WRITE_FAQ), '"secrets"')
    assert await backend.secrets() == SECRET_ROWS


@postgres_only
async def test_trigger_on_own_table_cannot_write_a_secret_table_pg(backend: Backend) -> None:
    # Plugins may not create functions (below), so the trigger uses one the host made; it runs
    # with the plugin's rights.
    await backend.admin(
        "CREATE FUNCTION spy() RETURNS trigger LANGUAGE plpgsql AS "
        "$$BEGIN UPDATE secrets SET secret = NEW.name; RETURN NEW; END$$"
    )
    await backend.execute("CREATE TABLE hello_wasm_items (name text)")
    await backend.execute(
        "CREATE TRIGGER hello_wasm_spy AFTER INSERT ON hello_wasm_items "
        "FOR EACH ROW EXECUTE FUNCTION spy()"
    )
    await refused(
        backend.execute("INSERT INTO hello_wasm_items VALUES ('pwned')"),
        '"secrets"',
        "capabilities.db.",
    )
    assert await backend.secrets() == SECRET_ROWS
    assert await backend.query("SELECT * FROM hello_wasm_items") is None


@postgres_only
async def test_plugin_functions_and_types_are_refused(backend: Backend) -> None:
    await refused(
        backend.execute("CREATE FUNCTION hello_wasm_f() RETURNS int LANGUAGE sql AS 'SELECT 1'"),
        'function "hello_wasm_f"',
    )
    await refused(backend.execute("CREATE TYPE hello_wasm_mood AS ENUM ('ok')"), "type")
    await refused(backend.execute("SELECT lo_from_bytea(0, 'x')"), "large object")
    rows = await backend.fetch(
        f"SELECT count(*) FROM pg_proc WHERE proowner = '{role_name(PLUGIN)}'::regrole"
    )
    assert rows == [(0,)]


async def test_query_never_writes_even_own_tables(backend: Backend) -> None:
    await backend.execute("CREATE TABLE hello_wasm_notes (id integer, body text)")
    await refused(
        backend.query("INSERT INTO hello_wasm_notes VALUES (1, 'x')"), "db_query", "read-only"
    )
    await refused(backend.query("DELETE FROM hello_wasm_notes"), "read-only")
    await refused(backend.query("CREATE TABLE hello_wasm_more (x integer)"), "read-only")
    await refused(backend.query("DROP TABLE hello_wasm_notes"), "read-only")
    assert await backend.query("SELECT * FROM hello_wasm_notes") is None


async def test_exec_does_not_write_a_read_only_grant(backend: Backend) -> None:
    await refused(
        backend.execute("DELETE FROM tickets", caps=READ_TICKETS),
        "capabilities.db.write: [tickets]",
    )
    assert len(await backend.fetch("SELECT * FROM tickets")) == 2


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE TABLE users (id integer)",
        "CREATE TABLE hello_other (id integer)",
        "CREATE VIEW users AS SELECT 1 AS one",
    ],
)
async def test_tables_outside_the_prefix_are_refused(backend: Backend, sql: str) -> None:
    await refused(backend.execute(sql), "db_exec", "hello_wasm_*")


async def test_renaming_an_own_table_out_of_the_prefix_is_refused(backend: Backend) -> None:
    await backend.execute("CREATE TABLE hello_wasm_users (id integer PRIMARY KEY)")
    await refused(backend.execute("ALTER TABLE hello_wasm_users RENAME TO users"), '"users"')
    assert await backend.query("SELECT * FROM hello_wasm_users") is None  # still there


async def test_index_outside_the_prefix_is_refused(backend: Backend) -> None:
    await backend.execute("CREATE TABLE hello_wasm_users (id integer)")
    await refused(backend.execute("CREATE INDEX users_id ON hello_wasm_users (id)"), "users_id")
    await refused(backend.execute("CREATE INDEX hello_wasm_t_id ON tickets (id)"), "tickets")


async def test_secret_tables_cannot_be_dropped_or_changed(backend: Backend) -> None:
    caps = Capabilities(db_write=("secrets",))
    for sql in [
        "DROP TABLE secrets",
        "ALTER TABLE secrets ADD COLUMN x integer",
        "ALTER TABLE secrets RENAME TO hello_wasm_secrets",
        "DROP VIEW secret_view",
        "CREATE INDEX hello_wasm_idx ON secrets (secret)",
    ]:
        # Not even with write access to the rows.
        await refused(backend.execute(sql, caps=caps), "db_exec")
    assert await backend.secrets() == SECRET_ROWS


@pytest.mark.parametrize(
    "sql",
    [
        "BEGIN",
        "COMMIT",
        "ROLLBACK",
        "SAVEPOINT hello_wasm_sp",
    ],
)
async def test_transaction_control_is_refused(backend: Backend, sql: str) -> None:
    await refused(backend.execute(sql), "transaction control")


async def test_temporary_objects_are_refused(backend: Backend) -> None:
    await refused(backend.execute("CREATE TEMP TABLE hello_wasm_tmp (x integer)"), "db_exec")
    await refused(backend.query("CREATE TEMP TABLE hello_wasm_tmp (x integer)"), "db_query")


async def test_multiple_statements_are_refused(backend: Backend) -> None:
    await backend.execute("CREATE TABLE hello_wasm_notes (x integer)")
    sql = "INSERT INTO hello_wasm_notes VALUES (1); DROP TABLE secrets"
    with pytest.raises(HostCallError) as info:
        await backend.execute(sql)
    assert info.value.code == "sql_error"
    assert "one statement" in str(info.value)
    # db_query may already refuse the write in the first statement (SQLite compiles it first).
    with pytest.raises((HostCallError, CapabilityDenied)):
        await backend.query(sql)
    assert await backend.query("SELECT * FROM hello_wasm_notes") is None
    assert await backend.secrets() == SECRET_ROWS


async def test_a_statement_authorized_for_one_plugin_is_not_reused_for_another(
    backend: Backend,
) -> None:
    sql = "SELECT secret FROM secrets"
    granted = Capabilities(db_read=("secrets",))
    assert await backend.query(sql, caps=granted, plugin=OTHER) == [{"secret": "the root password"}]
    await refused(backend.query(sql), '"secrets"')
    assert await backend.query(sql, caps=granted, plugin=OTHER)


async def test_concurrent_plugins_keep_their_own_rights(backend: Backend) -> None:
    granted = Capabilities(db_read=("secrets",))
    outcomes: dict[str, list[object]] = {PLUGIN: [], OTHER: []}

    async def call(plugin: str, caps: Capabilities) -> None:
        try:
            outcomes[plugin].append(
                await backend.query("SELECT secret FROM secrets", caps=caps, plugin=plugin)
            )
        except CapabilityDenied as exc:
            outcomes[plugin].append(exc)

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(call, OTHER, granted)
            tg.start_soon(call, PLUGIN, NONE)
    assert all(o == [{"secret": "the root password"}] for o in outcomes[OTHER])
    assert all(isinstance(o, CapabilityDenied) for o in outcomes[PLUGIN])


@sqlite_only
@pytest.mark.parametrize(
    "sql",
    [
        "ATTACH DATABASE '{path}' AS stolen",
        "ATTACH DATABASE ':memory:' AS hello_wasm_mem",
        "DETACH DATABASE main",
    ],
)
async def test_sqlite_attach_is_refused(backend: Backend, sql: str) -> None:
    path = backend.url.removeprefix("sqlite:///")
    await refused(backend.execute(sql.format(path=path)), "ATTACH" if "ATTACH" in sql else "DETACH")


@sqlite_only
@pytest.mark.parametrize(
    "sql",
    [
        "PRAGMA writable_schema = ON",
        "PRAGMA query_only = OFF",
        "PRAGMA table_info(secrets)",
        "SELECT * FROM pragma_table_info('secrets')",
        "PRAGMA secure_delete",
        "PRAGMA main.journal_mode = OFF",
    ],
)
async def test_sqlite_pragmas_are_refused(backend: Backend, sql: str) -> None:
    await refused(backend.execute(sql), "PRAGMA")


@sqlite_only
async def test_sqlite_vacuum_into_a_file_is_refused(backend: Backend, tmp_path: Path) -> None:
    target = tmp_path / "copy.db"
    with pytest.raises(GoatKitError):
        await backend.execute(f"VACUUM INTO '{target}'")
    assert not target.exists()


@sqlite_only
async def test_sqlite_harmless_pragmas_on_readable_tables(backend: Backend) -> None:
    rows = await backend.query("PRAGMA table_info(tickets)", caps=READ_TICKETS)
    assert rows is not None
    assert [row["name"] for row in rows] == ["id", "title"]


@sqlite_only
async def test_sqlite_schema_cannot_be_written_or_extended(backend: Backend) -> None:
    with pytest.raises(GoatKitError):  # SQLite itself refuses: writable_schema stays off
        await backend.execute("UPDATE sqlite_master SET sql = 'CREATE TABLE secrets (x)'")
    await refused(backend.query("SELECT load_extension('/tmp/evil')"), "load_extension")
    await backend.execute("CREATE TABLE hello_wasm_auto (id integer PRIMARY KEY AUTOINCREMENT)")
    await refused(backend.execute("UPDATE sqlite_sequence SET seq = 0"), "sqlite_sequence")
    await refused(backend.query("SELECT * FROM sqlite_sequence"), "sqlite_sequence")
    await refused(backend.execute("ANALYZE"), "db_exec")  # refused at sqlite_stat1 or ANALYZE
    assert await backend.secrets() == SECRET_ROWS


@sqlite_only
async def test_sqlite_own_fts5_table_searches(backend: Backend) -> None:
    await backend.execute("CREATE VIRTUAL TABLE hello_wasm_fts USING fts5(title, body)")
    await backend.execute(
        "INSERT INTO hello_wasm_fts (title, body) VALUES (?, ?), (?, ?)",
        ["Reset a password", "Use the self-service portal", "VPN drops", "Update the client"],
    )
    rows = await backend.query(
        "SELECT title FROM hello_wasm_fts WHERE hello_wasm_fts MATCH ? ORDER BY rank",
        ["password"],
    )
    assert rows == [{"title": "Reset a password"}]
    await backend.execute("DROP TABLE hello_wasm_fts")
    assert await backend.query("SELECT name FROM sqlite_master WHERE name LIKE 'hello_wasm%'") in (
        None,
        [],
    )


@sqlite_only
@pytest.mark.parametrize(
    ("sql", "words"),
    [
        ("CREATE VIRTUAL TABLE other_fts USING fts5(x)", "other_fts"),
        ("CREATE VIRTUAL TABLE hello_wasm_r USING rtree(id, a, b)", "module rtree"),
        ("CREATE VIRTUAL TABLE hello_wasm_f4 USING fts4(x)", "module fts4"),
        ("CREATE VIRTUAL TABLE temp.hello_wasm_t USING fts5(x)", "virtual"),
        # an external-content index over a table it may not read
        ("CREATE VIRTUAL TABLE hello_wasm_x USING fts5(secret, content='secrets')", "secrets"),
    ],
)
async def test_sqlite_other_virtual_tables_are_refused(
    backend: Backend, sql: str, words: str
) -> None:
    with pytest.raises(GoatKitError) as info:
        await backend.execute(sql)
        # an external-content index: building it must read the table through the grant
        await backend.execute("INSERT INTO hello_wasm_x (hello_wasm_x) VALUES ('rebuild')")
        await backend.query("SELECT * FROM hello_wasm_x WHERE hello_wasm_x MATCH 'x'")
    assert words in str(info.value) or "refused" in str(info.value)
    assert await backend.secrets() == SECRET_ROWS


@postgres_only
@pytest.mark.parametrize(
    "sql",
    [
        "SET ROLE postgres",
        "SET SESSION AUTHORIZATION postgres",
        "SELECT set_config('role', 'postgres', false)",
        "SELECT set_config('session_authorization', 'postgres', false)",
        "SELECT pg_read_file('/etc/passwd')",
    ],
)
async def test_postgresql_role_cannot_be_left(backend: Backend, sql: str) -> None:
    await refused(backend.execute(sql), "refused by the database")
    # and the next statement is still the plugin's
    await refused(backend.query("SELECT secret FROM secrets"), '"secrets"')


@postgres_only
@pytest.mark.parametrize(
    "sql",
    [
        "RESET ROLE; SELECT secret FROM secrets",
        "SET ROLE NONE; SELECT secret FROM secrets",
        "SELECT 1; DROP TABLE secrets",
    ],
)
async def test_postgresql_statements_cannot_be_chained(backend: Backend, sql: str) -> None:
    with pytest.raises(HostCallError, match="one statement"):
        await backend.query(sql)
    with pytest.raises(HostCallError, match="one statement"):
        await backend.execute(sql)
    assert await backend.secrets() == SECRET_ROWS


@postgres_only
@pytest.mark.parametrize(
    "sql",
    [
        "DO $$BEGIN RESET ROLE; PERFORM * FROM secrets; END$$",
        "SELECT query_to_xml('SELECT * FROM secrets', true, true, '')",
        "SELECT pg_catalog.set_config('search_path', 'pg_catalog', true), "
        "(SELECT count(*) FROM secrets)",
    ],
)
async def test_postgresql_indirect_reads_are_refused(backend: Backend, sql: str) -> None:
    await refused(backend.execute(sql), '"secrets"')


@postgres_only
@pytest.mark.parametrize(
    "sql",
    [
        "COPY secrets TO STDOUT",
        "COPY (SELECT * FROM secrets) TO STDOUT",
        "COPY secrets FROM STDIN",
        "COPY secrets TO '/tmp/stolen'",
        "/* hi */ copy hello_wasm_x FROM STDIN",
    ],
)
async def test_postgresql_copy_is_refused(backend: Backend, sql: str) -> None:
    started = time.monotonic()
    await refused(backend.execute(sql, timeout=5), "COPY")
    assert time.monotonic() - started < 2  # refused, not left waiting for data


@postgres_only
async def test_postgresql_read_only_cannot_be_switched_off(backend: Backend) -> None:
    await backend.execute("CREATE TABLE hello_wasm_notes (x integer)")
    with pytest.raises(HostCallError):
        await backend.query("SELECT set_config('transaction_read_only', 'off', true)")
    await refused(
        backend.query(
            "WITH w AS (INSERT INTO hello_wasm_notes VALUES (1) RETURNING x) SELECT * FROM w"
        ),
        "read-only",
    )
    assert await backend.query("SELECT * FROM hello_wasm_notes") is None


@postgres_only
async def test_postgresql_role_is_a_plain_login(backend: Backend) -> None:
    await backend.query("SELECT 1 AS one")
    rows = await backend.fetch(
        "SELECT rolsuper, rolcreaterole, rolcreatedb, rolinherit, rolbypassrls, "
        "(SELECT count(*) FROM pg_auth_members WHERE member = r.oid) "
        f"FROM pg_roles r WHERE rolname = '{role_name(PLUGIN)}'"
    )
    assert rows == [(False, False, False, False, False, 0)]


# --- limits and errors -------------------------------------------------------------------------


async def test_slow_statements_time_out(backend: Backend) -> None:
    slow = (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
        if backend.kind == "sqlite"
        else "SELECT pg_sleep(30)"
    )
    started = time.monotonic()
    with pytest.raises(HostCallError) as info:
        await backend.query(slow, timeout=0.5)
    elapsed = time.monotonic() - started
    assert info.value.code == "timeout"
    assert info.value.plugin == PLUGIN
    assert 0.4 < elapsed < 2.5
    # the connection is usable afterwards
    assert await backend.query("SELECT 1 AS one") == [{"one": 1}]


async def test_no_time_left_runs_nothing(backend: Backend) -> None:
    await backend.execute("CREATE TABLE hello_wasm_notes (x integer)")
    with pytest.raises(HostCallError) as info:
        await backend.execute("INSERT INTO hello_wasm_notes VALUES (1)", timeout=0)
    assert info.value.code == "timeout"
    assert await backend.query("SELECT * FROM hello_wasm_notes") is None


async def test_sql_errors_carry_the_database_message_and_no_traceback(backend: Backend) -> None:
    with pytest.raises(HostCallError) as info:
        await backend.query("SELEC nonsense")
    error = info.value
    assert error.code == "sql_error"
    assert error.plugin == PLUGIN
    assert error.function == "db_query"
    assert "syntax error" in error.message
    assert "Traceback" not in error.message
    assert error.to_dict() == {
        "code": "sql_error",
        "message": error.message,
        "plugin": PLUGIN,
        "function": "db_query",
    }


async def test_too_many_rows_asks_for_limit(backend: Backend) -> None:
    db = await backend.another(max_rows=1)
    with pytest.raises(HostCallError) as info:
        await db.query(PLUGIN, READ_TICKETS, "SELECT * FROM tickets", None, timeout=5)
    assert info.value.code == "result_too_large"
    assert "LIMIT" in str(info.value)
    assert await db.query(PLUGIN, READ_TICKETS, "SELECT * FROM tickets LIMIT 1", None, timeout=5)


async def test_too_large_a_result_asks_for_limit(backend: Backend) -> None:
    db = await backend.another(max_result_bytes=1000)
    with pytest.raises(HostCallError, match="LIMIT") as info:
        await db.query(PLUGIN, NONE, "SELECT ? AS big", ["x" * 2000], timeout=5)
    assert info.value.code == "result_too_large"


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ([[1, 2]], "parameter 1 is list"),
        ({"id": {"a": 1}}, "parameter :id is dict"),
        ({"not a name": 1}, "not a valid name"),
        ("1", "args must be a list"),
    ],
)
async def test_bad_parameters_are_refused(backend: Backend, params: Any, fragment: str) -> None:
    with pytest.raises(HostCallError, match=fragment) as info:
        await backend.query("SELECT 1", params)
    assert info.value.code == "bad_request"


async def test_parameter_count_must_match(backend: Backend) -> None:
    with pytest.raises(HostCallError) as info:
        await backend.query("SELECT ? AS a, ? AS b", [1], caps=NONE)
    assert info.value.code in ("bad_request", "sql_error")
    with pytest.raises(HostCallError) as info:
        await backend.query("SELECT :a AS a", {"b": 1})
    assert info.value.code in ("bad_request", "sql_error")


async def test_empty_sql_is_refused(backend: Backend) -> None:
    with pytest.raises(HostCallError, match="non-empty") as info:
        await backend.query("  ")
    assert info.value.code == "bad_request"


async def test_calls_before_connect_are_refused(tmp_path: Path) -> None:
    db = PluginDatabase(f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(HostCallError) as info:
        await db.query(PLUGIN, NONE, "SELECT 1", None, timeout=1)
    assert info.value.code == "unavailable"


def test_unsupported_urls_are_refused() -> None:
    with pytest.raises(ConfigError, match="mysql"):
        PluginDatabase("mysql://localhost/db")


# --- naming and placeholders -------------------------------------------------------------------


def test_table_prefix_and_role_name() -> None:
    assert table_prefix("hello-wasm") == "hello_wasm"
    assert role_name("hello-wasm") == "goatkit_p_hello_wasm"
    long_a, long_b = "a" * 60 + "-one", "a" * 60 + "-two"
    assert len(role_name(long_a)) <= 63
    assert role_name(long_a) != role_name(long_b)


@pytest.mark.parametrize(
    ("sql", "params", "expected", "args"),
    [
        ("SELECT ?, ?", [1, 2], "SELECT $1, $2", [1, 2]),
        ("SELECT '?', ?", [1], "SELECT '?', $1", [1]),
        ("SELECT 'it''s ?', ?", [1], "SELECT 'it''s ?', $1", [1]),
        ("SELECT E'\\' ?', ?", [1], "SELECT E'\\' ?', $1", [1]),
        ("SELECT '\\', ?", [1], "SELECT '\\', $1", [1]),
        ('SELECT "a?b", ?', [1], 'SELECT "a?b", $1', [1]),
        ("SELECT $$ ? $$, ?", [1], "SELECT $$ ? $$, $1", [1]),
        ("SELECT $q$ ? $ $q$, ?", [1], "SELECT $q$ ? $ $q$, $1", [1]),
        ("SELECT ? -- ?\n, ?", [1, 2], "SELECT $1 -- ?\n, $2", [1, 2]),
        ("SELECT /* ? /* ? */ ? */ ?", [1], "SELECT /* ? /* ? */ ? */ $1", [1]),
        ("SELECT x FROM t WHERE a = ?", [None], "SELECT x FROM t WHERE a = $1", [None]),
        ("SELECT :a::int, :b, :a", {"a": 1, "b": 2}, "SELECT $1::int, $2, $1", [1, 2]),
        ("SELECT ':a', \":a\", :a", {"a": 1}, "SELECT ':a', \":a\", $1", [1]),
        (
            "SELECT j ? 'k' FROM t WHERE id = :id",
            {"id": 3},
            "SELECT j ? 'k' FROM t WHERE id = $1",
            [3],
        ),
        ("SELECT f(x := :v)", {"v": 1}, "SELECT f(x := $1)", [1]),
        ("SELECT a$1 FROM t WHERE b = ?", [1], "SELECT a$1 FROM t WHERE b = $1", [1]),
        ("SELECT 1 WHERE ?", None, "SELECT 1 WHERE ?", []),
    ],
)
def test_numbered_placeholders(sql: str, params: Any, expected: str, args: list[Any]) -> None:
    assert numbered_placeholders(sql, params) == (expected, args)


@pytest.mark.parametrize(
    ("sql", "params", "fragment"),
    [
        ("SELECT ?", [1, 2], "1 ? placeholder(s), but 2"),
        ("SELECT '?'", [1], "0 ? placeholder(s), but 1"),
        ("SELECT :missing", {"other": 1}, ":missing"),
    ],
)
def test_numbered_placeholders_must_match(sql: str, params: Any, fragment: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fragment)):
        numbered_placeholders(sql, params)
