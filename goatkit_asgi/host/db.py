"""The database behind ``db_query`` and ``db_exec``: SQLite by default, PostgreSQL by URL.

A plugin sends SQL text and parameters (``?`` with a list, ``:name`` with a dict; never string
formatting). What the SQL may touch is decided by the database itself, not by reading the SQL:

* A plugin owns the tables named ``<prefix>_*``, where the prefix is its name with ``-`` replaced
  by ``_`` (plugin ``hello-wasm`` owns ``hello_wasm_items``). It may create, alter, index, drop,
  read and write them.
* ``capabilities.db.read`` tables may be read, ``capabilities.db.write`` tables read and written.
* ``db_query`` never writes, not even the plugin's own tables. ``db_exec`` writes only the
  plugin's own tables and its ``db.write`` tables.
* Its own full-text search tables (``CREATE VIRTUAL TABLE <prefix>_x USING fts5(...)``) count
  as its tables on SQLite; other virtual table modules are refused.
* Everything else is refused: other tables (directly, or through a view, a CTE, a subquery, a
  trigger), ATTACH, PRAGMA (but ``table_info`` and friends on readable tables), extensions,
  transaction control, temporary objects, objects not named ``<prefix>_*``, more than one
  statement per call.

Threat model: the plugin is hostile and writes any SQL it likes; the host application, its
administrator and the database server are trusted. The plugin must not read or change data
outside its grant, keep the host busy beyond its call's time, or change what later calls (its
own or other plugins') are allowed to do. Schema names and definitions are not secret: a plugin
can list tables (``sqlite_master`` on SQLite, the ``pg_catalog`` views on PostgreSQL), but not
read their rows.

SQLite
    Statements run on a small pool of ``sqlite3`` connections in worker threads. For every
    statement, in the one worker call that prepares and steps it, the connection gets an
    authorizer (``Connection.set_authorizer``) built from the calling plugin's grant, and a
    progress handler that interrupts it at the call's deadline; both are removed before the
    connection serves anyone else. SQLite calls the authorizer while it compiles the statement,
    with the real table names: those under a view, a CTE or a subquery, and the actions of every
    trigger the statement fires, so these are refused as if written directly. Prepared statements
    are not cached (``cached_statements=0``): a statement authorized for one plugin is never
    reused for another. ``db_query`` also runs under ``PRAGMA query_only``. ``db_exec`` runs in its
    own ``BEGIN IMMEDIATE`` transaction; when it changed the schema, the objects it added are
    checked before the commit (``ALTER TABLE ... RENAME TO`` names its new name to no authorizer):
    a name outside the prefix rolls it back, and so does a new trigger whose actions the plugin
    could not perform itself (checked by compiling, under the authorizer, an ``EXPLAIN`` of each
    kind of write to its table), because a trigger also fires, with the writer's rights, when
    the host writes the plugin's table. ``execute`` refuses a string holding more than one
    statement.

PostgreSQL
    Each plugin has its own role, ``goatkit_p_<prefix>``, and its own schema of the same name;
    both are created or updated on first use with the URL's (administrator) login, which needs
    ``CREATEROLE``. The role may use and create in its schema (so it owns the tables it creates
    there) and gets ``SELECT`` (read) or ``SELECT, INSERT, UPDATE, DELETE`` (write) on the
    granted tables, which are looked up in the administrator's ``search_path``; grants it no
    longer has are revoked. Plugin statements run on a connection pool that *logs in as the
    plugin role* (a password the host sets on the role and keeps in memory): an administrator
    connection that ``SET ROLE``-s to the plugin role would not do, because one statement can
    switch back (``SELECT set_config('role', ...)``, ``RESET ROLE`` inside a ``DO`` block, or
    ``query_to_xml('select ...')`` after either), and a login may become any role it is a member
    of. A login role that is a member of nothing has nowhere to switch to. Every statement runs in
    its own transaction (``READ ONLY`` for ``db_query``) with ``SET LOCAL statement_timeout``
    from the call's remaining time, as a single prepared statement (the server refuses several
    commands in one). Before ``db_exec`` commits, the objects the role owns are checked: a
    relation outside its schema or not named ``<prefix>_*``, a function or a type rolls the
    statement back (this stops squatting on names the host will use, and functions that would run
    with another user's rights when the host touches a plugin table). A statement that ends or
    opens a transaction is refused, and ``COPY`` is refused before it reaches the server, because
    its data travels outside the statement protocol (``COPY ... FROM STDIN`` would wait for data
    until the call's deadline); the role's privileges would refuse other tables in any case.
    The plugin roles must be allowed to log in with a password by ``pg_hba.conf`` on the URL's
    host (``scram-sha-256``, ``md5`` or ``trust``).

Known limits: on SQLite a view is read with the reader's rights, so granting a view needs its
tables granted too (on PostgreSQL a granted view reads with its owner's rights). On PostgreSQL,
grants are synced when a process first serves a plugin or its capabilities change, and again
when the server refuses a table the grant covers (one created later, or re-created), so the
statement is retried once; a column default of a plugin table runs with the rights of whoever
inserts, so the host should not write plugin tables as a privileged user. A trigger on SQLite
keeps the actions it was checked for even after a grant is withdrawn (they are checked again
when the plugin fires it, not when the host does). Plugin names whose prefixes nest
(``hello`` and ``hello-world``) share tables on SQLite: refuse such pairs at registration.

Why not ``databases``: its SQLite backend opens a new connection (and thread) per acquired
connection and gives no hook to run code in that thread around a statement, and its PostgreSQL
backend pools a single login, while enforcement needs one login per plugin role. So the module
uses ``sqlite3`` (through :func:`anyio.to_thread.run_sync` with its own limiter) and ``asyncpg``
directly; URLs are read with ``databases.DatabaseURL``, as everywhere else in the platform.

Results are lists of row objects (GoatKit's ``null`` for zero rows); bytes are base64, decimals,
dates, times and UUIDs strings. At most ``max_rows`` rows and about ``max_result_bytes`` bytes
come back; more is an error that says to use ``LIMIT``.
"""

from __future__ import annotations

import base64
import math
import re
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from datetime import time as dt_time
from decimal import Decimal
from fnmatch import fnmatchcase
from functools import partial
from hashlib import sha256
from typing import Any
from uuid import UUID

import anyio
import anyio.to_thread
from databases import DatabaseURL

from ..errors import CapabilityDenied, ConfigError, GoatKitError, HostCallError
from ..packaging.manifest import Capabilities
from ..specs import table_prefix

__all__ = [
    "MAX_RESULT_BYTES",
    "MAX_ROWS",
    "PluginDatabase",
    "numbered_placeholders",
    "role_name",
    "table_prefix",
]

MAX_ROWS = 10_000
"""Default cap on the rows one ``db_query`` returns."""

MAX_RESULT_BYTES = 8 * 1024 * 1024
"""Default cap on the (approximate) JSON size of one ``db_query`` result."""

MAX_SQL_CHARS = 1 << 20

Params = list[Any] | dict[str, Any] | None
Row = dict[str, Any]

_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PG_ROLE_PREFIX = "goatkit_p_"
_PG_NAME_LIMIT = 63
# The client gives the server this long to honour statement_timeout before it drops the
# connection itself.
_PG_CLIENT_GRACE = 0.5
_PG_POOL_IDLE = 60.0
_PG_SYNC_LOCK = 0x676F61746B6974  # advisory lock key held while plugin roles are changed


# --- naming and grants -------------------------------------------------------------------------


def role_name(plugin: str) -> str:
    """The PostgreSQL role (and schema) of a plugin: ``goatkit_p_<prefix>``.

    Names longer than PostgreSQL's 63 bytes are shortened with a hash, so that two long plugin
    names never share a role.
    """
    name = _PG_ROLE_PREFIX + table_prefix(plugin)
    if len(name) <= _PG_NAME_LIMIT:
        return name
    digest = sha256(name.encode()).hexdigest()[:10]
    return f"{name[: _PG_NAME_LIMIT - 11]}_{digest}"


@dataclass(frozen=True)
class _Grants:
    """A plugin's table rights, as the enforcement on either database sees them."""

    plugin: str
    prefix: str  # with the trailing "_"
    read: tuple[str, ...]  # lower-case patterns, db_read and db_write
    write: tuple[str, ...]  # lower-case patterns, db_write

    @classmethod
    def of(cls, plugin: str, caps: Capabilities) -> _Grants:
        write = tuple(dict.fromkeys(t.lower() for t in caps.db_write))
        read = tuple(dict.fromkeys([*(t.lower() for t in caps.db_read), *write]))
        return cls(plugin, table_prefix(plugin) + "_", read, write)

    def owns(self, name: str) -> bool:
        return name.lower().startswith(self.prefix)

    def can_read(self, name: str) -> bool:
        return self.owns(name) or _matches(name, self.read)

    def can_write(self, name: str) -> bool:
        return self.owns(name) or _matches(name, self.write)


def _matches(name: str, patterns: Sequence[str]) -> bool:
    lowered = name.lower()
    return any(fnmatchcase(lowered, p) or fnmatchcase(f"main.{lowered}", p) for p in patterns)


# --- errors ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Refusal:
    """What the database refused: ``kind`` is read, write, use (read or write), readonly,
    schema or statement."""

    kind: str
    name: str
    verb: str = ""


@dataclass(frozen=True)
class _Call:
    """One db_query / db_exec call, as the backends get it."""

    plugin: str
    function: str
    grants: _Grants
    sql: str
    params: Params
    deadline: float
    max_rows: int
    max_bytes: int

    @property
    def writes(self) -> bool:
        return self.function == "db_exec"

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def refused(self, refusal: _Refusal) -> CapabilityDenied:
        name, fn, plugin = refusal.name, self.function, self.plugin
        if refusal.kind == "read":
            message = (
                f'{plugin}: {fn} may not read table "{name}"; it needs the grant '
                f"capabilities.db.read: [{name}]"
            )
        elif refusal.kind == "use":
            message = (
                f'{plugin}: {fn} may not use table "{name}"; it needs the grant '
                f"capabilities.db.read: [{name}] to read it, capabilities.db.write: [{name}] "
                "to change it"
            )
        elif refusal.kind == "readonly":
            message = f"{plugin}: db_query is read-only ({name}); write with db_exec"
        elif refusal.kind == "write" and not self.writes:
            message = (
                f'{plugin}: db_query is read-only and may not write table "{name}"; '
                "write with db_exec"
            )
        elif refusal.kind == "write":
            message = (
                f'{plugin}: db_exec may not write table "{name}"; it needs the grant '
                f"capabilities.db.write: [{name}]"
            )
        elif refusal.kind == "schema" and not self.writes:
            message = (
                f'{plugin}: db_query is read-only and may not {refusal.verb} "{name}"; '
                "change the schema with db_exec"
            )
        elif refusal.kind == "schema":
            message = (
                f'{plugin}: db_exec may not {refusal.verb} "{name}": a plugin creates, changes '
                f"and drops only its own tables, named {self.grants.prefix}*"
            )
        else:
            message = f"{plugin}: {fn} may not use {name}; it is not available to plugins"
        return CapabilityDenied(message, plugin=plugin, function=fn)

    def error(self, message: str, code: str) -> HostCallError:
        return HostCallError(
            f"{self.plugin}: {self.function}: {message}",
            plugin=self.plugin,
            function=self.function,
            code=code,
        )

    def timeout(self) -> HostCallError:
        return self.error(
            "the statement ran past the call's deadline and was cancelled; make it cheaper "
            "(an index, a LIMIT) or give the plugin a longer call_timeout",
            "timeout",
        )

    def too_large(self, what: str) -> HostCallError:
        return self.error(
            f"the result has more than {what}; select fewer rows with LIMIT (and OFFSET or a "
            "key range to page through them) or fewer columns",
            "result_too_large",
        )


# --- parameters and results --------------------------------------------------------------------


def _check_params(plugin: str, function: str, params: object) -> Params:
    def bad(message: str) -> HostCallError:
        return HostCallError(
            f"{plugin}: {function}: {message}", plugin=plugin, function=function, code="bad_request"
        )

    def check(value: object, where: str) -> None:
        if value is None or isinstance(
            value,
            bool | int | float | str | bytes | bytearray | Decimal | date | dt_time | UUID,
        ):
            return
        raise bad(
            f"{where} is {type(value).__name__}; parameters are single values (string, number, "
            "true/false or null): encode structured values as JSON text"
        )

    if params is None:
        return None
    if isinstance(params, list | tuple):
        for i, value in enumerate(params):
            check(value, f"parameter {i + 1}")
        return list(params)
    if isinstance(params, Mapping):
        for key, value in params.items():
            if not isinstance(key, str) or not _PARAM_NAME.fullmatch(key):
                raise bad(f"parameter name {key!r} is not a valid name for :name")
            check(value, f"parameter :{key}")
        return dict(params)
    raise bad(
        f"args must be a list (for ? placeholders) or an object (for :name), "
        f"not {type(params).__name__}"
    )


def _json_value(value: object) -> object:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, date | dt_time):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_json_value(item) for item in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    return str(value)


def _json_size(value: object) -> int:
    if isinstance(value, str):
        return len(value) + 2
    if isinstance(value, list):
        return 2 + sum(_json_size(item) + 1 for item in value)
    if isinstance(value, dict):
        return 2 + sum(len(k) + 4 + _json_size(v) for k, v in value.items())
    return 8


def _rows(call: _Call, columns: Sequence[str], records: Sequence[Sequence[object]]) -> list[Row]:
    if len(records) > call.max_rows:
        raise call.too_large(f"{call.max_rows} rows")
    size = 0
    rows: list[Row] = []
    for record in records:
        row = {column: _json_value(value) for column, value in zip(columns, record, strict=True)}
        size += _json_size(row)
        if size > call.max_bytes:
            raise call.too_large(f"{call.max_bytes} bytes")
        rows.append(row)
    return rows


# --- placeholders ------------------------------------------------------------------------------


def _is_ident(char: str) -> bool:
    return char.isalnum() or char in "_$"


def _skip_quoted(sql: str, i: int, quote: str, backslash: bool) -> int:
    """The index after the literal or quoted identifier that starts at ``sql[i]``."""
    j, n = i + 1, len(sql)
    while j < n:
        char = sql[j]
        if backslash and char == "\\":
            j += 2
            continue
        if char == quote:
            if j + 1 < n and sql[j + 1] == quote:
                j += 2
                continue
            return j + 1
        j += 1
    return n


def _skip_block_comment(sql: str, i: int) -> int:
    depth, j, n = 0, i, len(sql)
    while j < n:
        if sql.startswith("/*", j):
            depth += 1
            j += 2
        elif sql.startswith("*/", j):
            depth -= 1
            j += 2
            if depth == 0:
                return j
        else:
            j += 1
    return n


_DOLLAR_TAG = re.compile(r"\$(?:[^\W\d]\w*)?\$")


def _tokens(sql: str) -> Iterator[tuple[int, int, str]]:
    """Yield ``(start, end, kind)`` for the parts of ``sql`` that are code, not data.

    ``kind`` is ``"word"`` (identifier, keyword or number), ``"?"``, ``":"`` or ``"::"``; string
    literals (``'…'``, ``E'…'``, ``$tag$…$tag$``), quoted identifiers and comments are skipped.
    """
    i, n = 0, len(sql)
    while i < n:
        char = sql[i]
        if char == "'":
            escapes = i > 0 and sql[i - 1] in "eE" and (i < 2 or not _is_ident(sql[i - 2]))
            i = _skip_quoted(sql, i, "'", escapes)
        elif char == '"':
            i = _skip_quoted(sql, i, '"', False)
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
        elif sql.startswith("/*", i):
            i = _skip_block_comment(sql, i)
        elif char == "$" and (tag := _DOLLAR_TAG.match(sql, i)):
            end = sql.find(tag.group(0), tag.end())
            i = n if end < 0 else end + len(tag.group(0))
        elif _is_ident(char):
            j = i + 1
            while j < n and _is_ident(sql[j]):
                j += 1
            yield i, j, "word"
            i = j
        elif sql.startswith("::", i):
            yield i, i + 2, "::"
            i += 2
        elif char in "?:":
            yield i, i + 1, char
            i += 1
        else:
            i += 1


def numbered_placeholders(sql: str, params: Params) -> tuple[str, list[Any]]:
    """Rewrite ``?`` (with a list) or ``:name`` (with a dict) as PostgreSQL's ``$1 … $n``.

    Placeholders inside string literals, quoted identifiers and comments are left alone, as are
    ``::`` casts. With a list, ``?`` is always a placeholder (use ``jsonb_exists()`` and friends
    instead of the ``?`` operators, or pass no parameters); with a dict, ``?`` is left as is. A
    name used twice is one parameter. Returns the new SQL and the arguments in ``$n`` order;
    raises :class:`ValueError` when the SQL and the parameters do not match.
    """
    if params is None:
        return sql, []
    positional = isinstance(params, list)
    parts: list[str] = []
    args: list[Any] = []
    numbers: dict[str, int] = {}
    last = 0
    for start, end, kind in _tokens(sql):
        if kind == "?" and positional:
            args.append(None)
            number = len(args)
        elif kind == ":" and not positional:
            match = _PARAM_NAME.match(sql, end)
            if match is None:
                continue
            name = match.group(0)
            if name not in params:
                raise ValueError(f"the query uses :{name}, but args has no {name!r}")
            if name not in numbers:
                args.append(params[name])  # type: ignore[call-overload]
                numbers[name] = len(args)
            number = numbers[name]
            end = match.end()
        else:
            continue
        parts.append(sql[last:start])
        parts.append(f"${number}")
        last = end
    parts.append(sql[last:])
    if positional:
        assert isinstance(params, list)
        if len(params) != len(args):
            raise ValueError(
                f"the query has {len(args)} ? placeholder(s), but {len(params)} argument(s) "
                "were given"
            )
        args = list(params)
    return "".join(parts), args


def _command_word(sql: str) -> str:
    """The first keyword of ``sql`` (after comments), upper-cased."""
    for start, end, kind in _tokens(sql):
        if kind == "word":
            return sql[start:end].upper()
    return ""


# --- SQLite ------------------------------------------------------------------------------------

_SQLITE_SCHEMA_TABLES = frozenset(
    {"sqlite_master", "sqlite_schema", "sqlite_temp_master", "sqlite_temp_schema"}
)
# Table-valued functions that read no table (the pragma ones are checked as PRAGMA).
_SQLITE_TABLE_FUNCTIONS = frozenset(
    {
        "json_each",
        "json_tree",
        "pragma_table_info",
        "pragma_table_xinfo",
        "pragma_index_list",
        "pragma_foreign_key_list",
    }
)
_SQLITE_PRAGMAS = frozenset({"table_info", "table_xinfo", "index_list", "foreign_key_list"})
# Read-only pragmas without a table that SQLite modules run themselves (FTS5 reads data_version).
_SQLITE_SAFE_PRAGMAS = frozenset({"data_version"})
_SQLITE_REFUSED_FUNCTIONS = frozenset({"load_extension", "fts3_tokenizer"})
_SQLITE_TEMP_ACTIONS = frozenset(
    {
        sqlite3.SQLITE_CREATE_TEMP_INDEX,
        sqlite3.SQLITE_CREATE_TEMP_TABLE,
        sqlite3.SQLITE_CREATE_TEMP_TRIGGER,
        sqlite3.SQLITE_CREATE_TEMP_VIEW,
        sqlite3.SQLITE_DROP_TEMP_INDEX,
        sqlite3.SQLITE_DROP_TEMP_TABLE,
        sqlite3.SQLITE_DROP_TEMP_TRIGGER,
        sqlite3.SQLITE_DROP_TEMP_VIEW,
    }
)
# action -> (verb, index of the argument naming the object, index naming its table)
_SQLITE_SCHEMA_ACTIONS = {
    sqlite3.SQLITE_CREATE_TABLE: ("create table", 0, 0),
    sqlite3.SQLITE_CREATE_VIEW: ("create view", 0, 0),
    sqlite3.SQLITE_CREATE_INDEX: ("create index", 0, 1),
    sqlite3.SQLITE_CREATE_TRIGGER: ("create trigger", 0, 1),
    sqlite3.SQLITE_DROP_TABLE: ("drop table", 0, 0),
    sqlite3.SQLITE_DROP_VIEW: ("drop view", 0, 0),
    sqlite3.SQLITE_DROP_INDEX: ("drop index", 0, 1),
    sqlite3.SQLITE_DROP_TRIGGER: ("drop trigger", 0, 1),
    sqlite3.SQLITE_ALTER_TABLE: ("alter table", 1, 1),
    sqlite3.SQLITE_REINDEX: ("reindex", 0, 0),  # an index name
}
_SQLITE_STATEMENTS = {
    sqlite3.SQLITE_TRANSACTION: "transaction control (BEGIN, COMMIT, ROLLBACK)",
    sqlite3.SQLITE_SAVEPOINT: "transaction control (SAVEPOINT, RELEASE)",
    sqlite3.SQLITE_ATTACH: "ATTACH",
    sqlite3.SQLITE_DETACH: "DETACH",
    sqlite3.SQLITE_ANALYZE: "ANALYZE",
    sqlite3.SQLITE_CREATE_VTABLE: "virtual tables",
    sqlite3.SQLITE_DROP_VTABLE: "virtual tables",
}
_SQLITE_WRITES = frozenset({sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE})


@dataclass
class _AuthState:
    """What the authorizer saw while one statement was compiled."""

    refusals: list[_Refusal] = field(default_factory=list)
    schema_changed: bool = False


def _is_bookkeeping(table: str) -> bool:
    return table == "sqlite_sequence" or table.startswith("sqlite_stat")


def _sqlite_decide(
    grants: _Grants,
    writes: bool,
    state: _AuthState,
    tables: frozenset[str],
    action: int,
    arg1: str | None,
    arg2: str | None,
    db_name: str | None,
) -> _Refusal | None:
    if action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_RECURSIVE):
        return None
    if action == sqlite3.SQLITE_FUNCTION:
        name = (arg2 or "").lower()
        if name in _SQLITE_REFUSED_FUNCTIONS:
            return _Refusal("statement", f"the function {name}()")
        return None
    if action == sqlite3.SQLITE_READ or action in _SQLITE_WRITES:
        table = arg1 or ""
        lowered = table.lower()
        # Statements never write the schema tables directly (SQLite refuses that while
        # writable_schema is off, and PRAGMA is refused): these are the writes of an authorized
        # CREATE / DROP / ALTER, reported before the action itself.
        if lowered in _SQLITE_SCHEMA_TABLES:
            return None
        reading = action == sqlite3.SQLITE_READ
        if _is_bookkeeping(lowered):
            ok = state.schema_changed
        elif reading and lowered in _SQLITE_TABLE_FUNCTIONS:
            ok = True
        elif db_name == "temp":
            ok = False
        elif reading and arg2 == "" and lowered not in tables:
            # A FROM item none of whose columns is used (count(*)) is reported by name: for a
            # CTE or subquery that is not a table, and what it reads is reported on its own.
            ok = True
        elif reading:
            ok = grants.can_read(table)
        else:
            ok = writes and grants.can_write(table)
        return None if ok else _Refusal("read" if reading else "write", table)
    if action in _SQLITE_SCHEMA_ACTIONS:
        verb, name_at, table_at = _SQLITE_SCHEMA_ACTIONS[action]
        args = (arg1 or "", arg2 or "")
        name, table = args[name_at], args[table_at]
        if not writes:
            return _Refusal("schema", name or "(all indexes)", verb)
        database = arg1 if action == sqlite3.SQLITE_ALTER_TABLE else db_name
        if database not in (None, "main"):
            return _Refusal("schema", f"{database}.{name}", verb)
        # A plugin may drop an index or trigger on its table whatever its name; what it
        # creates carries its prefix (SQLite names the indexes of UNIQUE constraints itself).
        named = grants.owns(name) or name.startswith(f"sqlite_autoindex_{grants.prefix}")
        if action == sqlite3.SQLITE_REINDEX:  # also reported when CREATE INDEX fills an index
            table = name if named else ""
        if grants.owns(table) and (verb.startswith("drop") or named):
            state.schema_changed = True
            return None
        if name == "sqlite_sequence" and state.schema_changed:
            return None  # created with the first AUTOINCREMENT table
        if table != name and not grants.owns(table):
            return _Refusal("schema", table, f"{verb} on")
        return _Refusal("schema", name, verb)
    if action in (sqlite3.SQLITE_CREATE_VTABLE, sqlite3.SQLITE_DROP_VTABLE):
        # Full-text search tables of its own (FTS5 only: other modules can read files or other
        # tables). FTS5's shadow tables are named after the table, so they carry the prefix too,
        # and the module's own statements on them pass through this authorizer as well.
        name, module = arg1 or "", (arg2 or "").lower()
        if writes and module == "fts5" and grants.owns(name) and db_name in (None, "main"):
            state.schema_changed = True
            return None
        if module != "fts5":
            return _Refusal(
                "statement", f"virtual tables of the module {module or '?'} (only fts5)"
            )
        return _Refusal("schema", name, "create virtual table")
    if action in _SQLITE_TEMP_ACTIONS:
        return _Refusal("statement", "temporary tables, views, indexes and triggers")
    if action == sqlite3.SQLITE_PRAGMA:
        pragma = (arg1 or "").lower()
        if pragma in _SQLITE_PRAGMAS and arg2 and grants.can_read(arg2):
            return None
        if pragma in _SQLITE_SAFE_PRAGMAS and arg2 is None:
            return None
        return _Refusal("statement", f"PRAGMA {pragma}")
    return _Refusal("statement", _SQLITE_STATEMENTS.get(action, f"this statement ({action})"))


def _sqlite_authorizer(
    grants: _Grants, writes: bool, state: _AuthState, tables: frozenset[str]
) -> Callable[[int, str | None, str | None, str | None, str | None], int]:
    def authorize(
        action: int, arg1: str | None, arg2: str | None, db_name: str | None, _: str | None
    ) -> int:
        refusal = _sqlite_decide(grants, writes, state, tables, action, arg1, arg2, db_name)
        if refusal is None:
            return sqlite3.SQLITE_OK
        state.refusals.append(refusal)
        return sqlite3.SQLITE_DENY

    return authorize


def _sqlite_param(value: object) -> object:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, date | dt_time):
        return value.isoformat()
    if isinstance(value, bytearray):
        return bytes(value)
    return value


def _sqlite_params(params: Params) -> Sequence[object] | dict[str, object]:
    if params is None:
        return ()
    if isinstance(params, dict):
        return {key: _sqlite_param(value) for key, value in params.items()}
    return [_sqlite_param(value) for value in params]


@dataclass
class _SQLiteConnection:
    db: sqlite3.Connection
    schema_version: int = -1
    schema: frozenset[tuple[str, str, str]] = frozenset()
    tables: frozenset[str] = frozenset()  # lower-cased names of tables and views

    def refresh_schema(self) -> None:
        """Re-read the schema if it changed; call inside a transaction, so it stays as read."""
        version = self.db.execute("PRAGMA schema_version").fetchone()[0]
        if version != self.schema_version:
            self.schema = self.read_schema()
            self.tables = frozenset(n.lower() for t, n, _ in self.schema if t in ("table", "view"))
            self.schema_version = version

    def read_schema(self) -> frozenset[tuple[str, str, str]]:
        rows = self.db.execute("SELECT type, name, tbl_name FROM sqlite_master").fetchall()
        return frozenset((str(t), str(n), str(tbl)) for t, n, tbl in rows)


def _sqlite_run(conn: _SQLiteConnection, call: _Call) -> list[Row] | int:
    """Run one plugin statement on ``conn`` (in a worker thread that has it to itself)."""
    db = conn.db
    remaining = call.remaining()
    if remaining <= 0:
        raise call.timeout()
    state = _AuthState()
    try:
        db.execute(f"PRAGMA busy_timeout = {max(1, int(remaining * 1000))}")
        if not call.writes:
            db.execute("PRAGMA query_only = ON")
        # The transaction keeps the schema the authorizer is given the one the statement sees.
        db.execute("BEGIN IMMEDIATE" if call.writes else "BEGIN")
        conn.refresh_schema()
        db.set_progress_handler(lambda: time.monotonic() > call.deadline, 1000)
        db.set_authorizer(_sqlite_authorizer(call.grants, call.writes, state, conn.tables))
        try:
            cursor = db.execute(call.sql, _sqlite_params(call.params))
            if call.writes:
                for _ in cursor:
                    pass
                result: list[Row] | int = max(cursor.rowcount, 0)
            else:
                records = cursor.fetchmany(call.max_rows + 1)
                columns = [d[0] for d in cursor.description or ()]
            cursor.close()
        finally:
            db.set_authorizer(None)
            db.set_progress_handler(None, 0)
        if call.writes:
            if state.schema_changed:
                _sqlite_check_new_objects(conn, call)
            db.execute("COMMIT")
        else:
            db.execute("ROLLBACK")
            result = _rows(call, columns, records)
        return result
    except (sqlite3.Error, sqlite3.Warning, OverflowError, ValueError) as exc:
        raise _sqlite_error(call, state, exc) from exc
    finally:
        if db.in_transaction:
            db.execute("ROLLBACK")
        if not call.writes:
            db.execute("PRAGMA query_only = OFF")


def _sqlite_check_new_objects(conn: _SQLiteConnection, call: _Call) -> None:
    """Refuse objects a schema change added outside the prefix, and triggers that do more than
    the plugin may."""
    grants = call.grants
    added = conn.read_schema() - conn.schema
    for kind, name, table in sorted(added, key=lambda o: (o[0] != "table", o)):
        if name == "sqlite_sequence":
            continue
        named = grants.owns(name) or name.startswith(f"sqlite_autoindex_{grants.prefix}")
        if not (grants.owns(table) and named):
            raise call.refused(_Refusal("schema", name, f"create {kind}"))
    for table in sorted({table for kind, _, table in added if kind == "trigger"}):
        _sqlite_check_triggers(conn, call, table)


def _sqlite_check_triggers(conn: _SQLiteConnection, call: _Call, table: str) -> None:
    """Compile (EXPLAIN, never run) a write of each kind on ``table`` under the plugin's
    authorizer, which compiles its triggers too.

    A trigger fires for whoever writes the table, the host included, and then runs with that
    writer's rights: one that does anything the plugin itself may not is refused when created.
    """
    db = conn.db
    quoted = _qident(table)
    columns = [_qident(row[1]) for row in db.execute(f"PRAGMA table_info({quoted})")]
    writes = [f"INSERT INTO {quoted} DEFAULT VALUES", f"DELETE FROM {quoted}"]
    if columns:
        writes.append(f"UPDATE {quoted} SET " + ", ".join(f"{c} = {c}" for c in columns))
    for sql in writes:
        state = _AuthState()
        db.set_authorizer(_sqlite_authorizer(call.grants, True, state, frozenset()))
        try:
            db.execute("EXPLAIN " + sql).fetchall()
        except sqlite3.Error:
            pass  # e.g. a view without an INSTEAD OF trigger for this write: nothing to check
        finally:
            db.set_authorizer(None)
        if state.refusals:
            raise call.refused(state.refusals[0])


def _sqlite_error(call: _Call, state: _AuthState, exc: Exception) -> Exception:
    if state.refusals:
        return call.refused(state.refusals[0])
    message = str(exc)
    if message == "interrupted" or ("database is locked" in message and call.remaining() <= 0):
        return call.timeout()
    if "readonly database" in message and not call.writes:
        return call.refused(_Refusal("readonly", message))
    if "one statement at a time" in message:
        return call.error(
            "SQL error: only one statement is allowed per call; send them one by one",
            "sql_error",
        )
    if isinstance(exc, sqlite3.ProgrammingError | sqlite3.InterfaceError | OverflowError):
        return call.error(f"bad parameters: {message}", "bad_request")
    if isinstance(exc, ValueError):
        return call.error(message, "bad_request")
    return call.error(f"SQL error: {message}", "sql_error")


class _SQLiteBackend:
    """A few sqlite3 connections, each used by one worker thread at a time."""

    def __init__(self, path: str, pool_size: int) -> None:
        self._path = path
        memory = path in ("", ":memory:") or "mode=memory" in path
        self._size = 1 if memory else pool_size
        self._free: list[_SQLiteConnection] = []
        self._slots: anyio.Semaphore | None = None
        self._limiter: anyio.CapacityLimiter | None = None

    def _open(self) -> _SQLiteConnection:
        db = sqlite3.connect(
            self._path,
            isolation_level=None,
            check_same_thread=False,
            cached_statements=0,
            uri=self._path.startswith("file:"),
        )
        # Functions in views and triggers run only if they are safe for untrusted schemas.
        db.execute("PRAGMA trusted_schema = OFF")
        return _SQLiteConnection(db)

    async def connect(self) -> None:
        self._limiter = anyio.CapacityLimiter(self._size)
        try:
            for _ in range(self._size):
                opened = await anyio.to_thread.run_sync(self._open, limiter=self._limiter)
                self._free.append(opened)
        except sqlite3.Error as exc:
            for conn in self._free:
                conn.db.close()
            self._free.clear()
            raise ConfigError(f"cannot open the SQLite database {self._path!r}: {exc}") from exc
        self._slots = anyio.Semaphore(self._size)

    async def disconnect(self) -> None:
        if self._slots is None:
            return
        with anyio.CancelScope(shield=True):
            for _ in range(self._size):
                await self._slots.acquire()
        for conn in self._free:
            conn.db.close()
        self._free.clear()
        self._slots = None

    async def run(self, call: _Call) -> list[Row] | int:
        slots, limiter = self._slots, self._limiter
        if slots is None or limiter is None:
            raise call.error("the database is not connected", "unavailable")
        remaining = call.remaining()
        if remaining <= 0:
            raise call.timeout()
        try:
            with anyio.fail_after(remaining):
                await slots.acquire()
        except TimeoutError:
            raise call.timeout() from None
        conn = self._free.pop()
        try:
            # Not abandoned on cancellation: the connection is returned only once the worker
            # is done with it, and the progress handler ends the statement at the deadline.
            return await anyio.to_thread.run_sync(partial(_sqlite_run, conn, call), limiter=limiter)
        finally:
            self._free.append(conn)
            slots.release()


# --- PostgreSQL --------------------------------------------------------------------------------

_PG_TRANSACTION_TAGS = frozenset(
    {
        "BEGIN",
        "START TRANSACTION",
        "COMMIT",
        "ROLLBACK",
        "SAVEPOINT",
        "RELEASE",
        "PREPARE TRANSACTION",
        "COMMIT PREPARED",
        "ROLLBACK PREPARED",
    }
)
_PG_DML_TAGS = frozenset({"INSERT", "UPDATE", "DELETE", "MERGE"})
_PG_READ = ("SELECT",)
_PG_WRITE = ("SELECT", "INSERT", "UPDATE", "DELETE")

# Objects the plugin role owns that it should not: relations outside its schema or not named
# with its prefix, functions and procedures (they would run with the rights of whoever calls
# them, e.g. the host writing to a plugin table), types, schemas (where the database lets
# everyone create them) and large objects. Run with search_path pinned to pg_catalog, so the
# statement before it cannot shadow what it calls.
_PG_FOREIGN_OBJECTS = """
SELECT kind, name FROM (
    SELECT CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
        WHEN 'i' THEN 'index' WHEN 'I' THEN 'index' WHEN 'S' THEN 'sequence'
        WHEN 'c' THEN 'type' WHEN 'f' THEN 'foreign table' ELSE 'table' END AS kind,
        n.nspname || '.' || c.relname AS name
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relowner = $1 AND n.nspname NOT LIKE 'pg\\_toast%'
      AND (c.relnamespace <> $2 OR NOT pg_catalog.starts_with(c.relname, $3))
    UNION ALL
    SELECT 'function', n.nspname || '.' || p.proname
    FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
    WHERE p.proowner = $1
    UNION ALL
    SELECT 'type', n.nspname || '.' || t.typname
    FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
    WHERE t.typowner = $1 AND t.typrelid = 0 AND t.typelem = 0
    UNION ALL
    SELECT 'schema', nspname FROM pg_catalog.pg_namespace WHERE nspowner = $1
    UNION ALL
    SELECT 'large object', oid::text FROM pg_catalog.pg_largeobject_metadata WHERE lomowner = $1
) AS foreign_objects
LIMIT 1
"""

_PG_DENIED = re.compile(
    r"(?:permission denied for|must be owner of) "
    r"(table|view|materialized view|sequence|schema|relation|foreign table) (\S+)"
)


def _qident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _pg_encode(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, date | dt_time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return f"{value.total_seconds()} seconds"
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return str(value)
    raise TypeError(f"expected a string, got {type(value).__name__}")


_PG_OFFSET = re.compile(r"([+-]\d\d)$")


def _pg_timestamp(text: str) -> str:
    return _PG_OFFSET.sub(r"\1:00", text.replace(" ", "T", 1))


def _pg_time(text: str) -> str:
    return _PG_OFFSET.sub(r"\1:00", text)


def _same(text: str) -> str:
    return text


# Types a JSON argument names as text (a date, an amount): exchanged in text form, so that a
# string argument is parsed by the server (as GoatKit's drivers do) and the result is exact.
_PG_TEXT_CODECS: dict[str, Callable[[str], str]] = {
    "date": _same,
    "time": _pg_time,
    "timetz": _pg_time,
    "timestamp": _pg_timestamp,
    "timestamptz": _pg_timestamp,
    "interval": _same,
    "numeric": _same,
}


async def _pg_init_connection(conn: Any) -> None:
    for typename, decoder in _PG_TEXT_CODECS.items():
        await conn.set_type_codec(
            typename, schema="pg_catalog", encoder=_pg_encode, decoder=decoder, format="text"
        )


@dataclass
class _PgPlugin:
    """A plugin's PostgreSQL role, as far as this process knows it."""

    role: str
    prefix: str  # with the trailing "_"
    password: str = ""
    role_oid: int = 0
    schema_oid: int = 0
    synced: tuple[tuple[str, ...], tuple[str, ...]] | None = None
    pool: Any = None
    lock: anyio.Lock = field(default_factory=anyio.Lock)


class _PostgresBackend:
    """One login role, schema and connection pool per plugin; see the module docstring."""

    def __init__(self, dsn: str, pool_size: int) -> None:
        self._dsn = dsn
        self._pool_size = pool_size
        self._plugins: dict[str, _PgPlugin] = {}
        self._shared_schemas: list[str] = []
        self._connected = False

    async def _admin(self) -> Any:
        import asyncpg  # type: ignore[import-untyped]

        return await asyncpg.connect(self._dsn)

    async def connect(self) -> None:
        import asyncpg

        try:
            admin = await self._admin()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise ConfigError(f"cannot connect to PostgreSQL: {exc}") from exc
        try:
            row = await admin.fetchrow(
                "SELECT r.rolsuper OR r.rolcreaterole AS ok, pg_catalog.current_schemas(false) "
                "AS schemas FROM pg_catalog.pg_roles r WHERE r.rolname = current_user"
            )
        finally:
            await admin.close()
        if not row["ok"]:
            raise ConfigError(
                "the PostgreSQL user of database_url needs CREATEROLE (or superuser) to give "
                "each plugin its own role; ALTER ROLE ... CREATEROLE, or use another user"
            )
        self._shared_schemas = list(row["schemas"])
        self._connected = True

    async def disconnect(self) -> None:
        self._connected = False
        plugins, self._plugins = self._plugins, {}
        for state in plugins.values():
            if state.pool is None:
                continue
            with anyio.move_on_after(5, shield=True) as scope:
                await state.pool.close()
            if scope.cancelled_caught:
                state.pool.terminate()

    async def run(self, call: _Call) -> list[Row] | int:
        if not self._connected:
            raise call.error("the database is not connected", "unavailable")
        if _command_word(call.sql) == "COPY":
            raise call.refused(_Refusal("statement", "COPY (use INSERT or SELECT)"))
        try:
            sql, args = numbered_placeholders(call.sql, call.params)
        except ValueError as exc:
            raise call.error(str(exc), "bad_request") from None
        remaining = call.remaining()
        if remaining <= 0:
            raise call.timeout()
        try:
            with anyio.fail_after(remaining + _PG_CLIENT_GRACE):
                state = await self._plugin(call)
                result = await self._attempt(state, call, sql, args, retry=True)
                if result is None:
                    # A granted table the role had no privilege on: created (or recreated)
                    # after the grants were last synced. Sync them and try once more.
                    state.synced = None
                    state = await self._plugin(call)
                    result = await self._attempt(state, call, sql, args, retry=False)
                assert result is not None
                return result
        except TimeoutError:
            raise call.timeout() from None

    async def _attempt(
        self, state: _PgPlugin, call: _Call, sql: str, args: list[Any], *, retry: bool
    ) -> list[Row] | int | None:
        """Run the statement once; ``None`` asks for a retry after a grant sync."""
        import asyncpg

        conn = await self._acquire(call, state)
        clean = False
        try:
            try:
                result = await self._statement(conn, state, call, sql, args)
            except asyncpg.PostgresError as exc:
                error, stale = await self._error(conn, call, exc)
                clean = True
                if stale and retry:
                    return None
                raise error from exc
            except GoatKitError:
                if conn.is_in_transaction():
                    await conn.execute("ROLLBACK")
                clean = True
                raise
            except (asyncpg.DataError, asyncpg.InterfaceError) as exc:
                raise call.error(f"bad parameters: {exc}", "bad_request") from exc
            clean = True
            return result
        finally:
            with anyio.CancelScope(shield=True):
                if not clean:
                    # Cancelled or broken half-way: the protocol state is unknown.
                    conn.terminate()
                await state.pool.release(conn)

    async def _statement(
        self, conn: Any, state: _PgPlugin, call: _Call, sql: str, args: list[Any]
    ) -> list[Row] | int:
        ms = max(1, int(call.remaining() * 1000))
        mode = "READ WRITE" if call.writes else "READ ONLY"
        await conn.execute(
            f"BEGIN ISOLATION LEVEL READ COMMITTED {mode}; SET LOCAL statement_timeout = {ms}"
        )
        stmt = await conn.prepare(sql)
        if not call.writes and stmt.get_attributes():
            cursor = await stmt.cursor(*args)
            records = await cursor.fetch(call.max_rows + 1)
            columns = [a.name for a in stmt.get_attributes()]
            await conn.execute("ROLLBACK")
            return _rows(call, columns, [tuple(r.values()) for r in records])
        await stmt.fetch(*args)
        tag = stmt.get_statusmsg() or ""
        if tag in _PG_TRANSACTION_TAGS or not conn.is_in_transaction():
            raise call.refused(_Refusal("statement", "transaction control"))
        if not call.writes:
            await conn.execute("ROLLBACK")
            return []
        if tag.split(" ", 1)[0] not in _PG_DML_TAGS:
            await conn.execute("SET LOCAL search_path = pg_catalog, pg_temp")
            foreign = await conn.fetchrow(
                _PG_FOREIGN_OBJECTS, state.role_oid, state.schema_oid, state.prefix
            )
            if foreign is not None:
                kind, name = foreign["kind"], foreign["name"]
                raise call.refused(_Refusal("schema", name.split(".", 1)[-1], f"create {kind}"))
        await conn.execute("COMMIT")
        words = tag.split()
        return int(words[-1]) if words and words[-1].isdigit() else 0

    async def _error(self, conn: Any, call: _Call, exc: Any) -> tuple[Exception, bool]:
        """Roll back after a server error and translate it; the flag is true when the grant
        allows what the role was refused (the role's privileges are out of date)."""
        if conn.is_in_transaction():
            await conn.execute("ROLLBACK")
        state = getattr(exc, "sqlstate", None)
        message = getattr(exc, "message", None) or str(exc)
        if state == "57014":
            return call.timeout(), False
        if state == "25006":
            return call.refused(_Refusal("readonly", message)), False
        if state == "42501":
            found = _PG_DENIED.search(message)
            if found is None:
                denied = CapabilityDenied(
                    f"{call.plugin}: {call.function} was refused by the database: {message}",
                    plugin=call.plugin,
                    function=call.function,
                )
                return denied, False
            kind, name = found.group(1), found.group(2).strip('"')
            if kind == "schema":
                return call.refused(_Refusal("schema", name, "create objects in schema")), False
            if message.startswith("must be owner"):
                return call.refused(_Refusal("schema", name, "alter or drop")), False
            grants = call.grants
            if not call.writes:
                return call.refused(_Refusal("read", name)), _matches(name, grants.read)
            # The server does not say whether reading or writing was refused.
            readable = await conn.fetchval(
                "SELECT pg_catalog.has_table_privilege(pg_catalog.to_regclass($1), 'SELECT')",
                name,
            )
            stale = _matches(name, grants.write if readable else grants.read)
            return call.refused(_Refusal("write" if readable else "use", name)), stale
        if state == "42601" and "multiple commands" in message:
            message = "only one statement is allowed per call; send them one by one"
        return call.error(f"SQL error: {message}", "sql_error"), False

    async def _plugin(self, call: _Call) -> _PgPlugin:
        import asyncpg

        state = self._plugins.get(call.plugin)
        if state is None:
            state = _PgPlugin(role_name(call.plugin), call.grants.prefix)
            self._plugins[call.plugin] = state
        wanted = (call.grants.read, call.grants.write)
        if state.synced == wanted and state.pool is not None:
            return state
        async with state.lock:
            try:
                if state.synced != wanted:
                    await self._sync(state, call)
                    state.synced = wanted
                if state.pool is None:
                    search_path = ", ".join(_qident(s) for s in [state.role, *self._shared_schemas])
                    state.pool = await asyncpg.create_pool(
                        self._dsn,
                        user=state.role,
                        password=lambda: state.password,
                        min_size=0,
                        max_size=self._pool_size,
                        max_inactive_connection_lifetime=_PG_POOL_IDLE,
                        init=_pg_init_connection,
                        server_settings={
                            "search_path": search_path,
                            "DateStyle": "ISO, YMD",
                            "IntervalStyle": "iso_8601",
                            "TimeZone": "UTC",
                            "application_name": f"goatkit plugin {call.plugin}"[:63],
                        },
                    )
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                raise call.error(
                    f"cannot set up the plugin's database role {state.role}: {exc}",
                    "unavailable",
                ) from exc
        return state

    async def _acquire(self, call: _Call, state: _PgPlugin) -> Any:
        import asyncpg

        for attempt in range(2):
            try:
                return await state.pool.acquire()
            except asyncpg.InvalidPasswordError as exc:
                # Another process (or the plugin itself) set a new password: set ours again.
                if attempt:
                    raise call.error(
                        f"cannot log in as {state.role}: {exc}", "unavailable"
                    ) from exc
                admin = await self._admin()
                try:
                    await self._set_password(admin, state)
                finally:
                    await admin.close()
            except asyncpg.InvalidAuthorizationSpecificationError as exc:
                raise call.error(
                    f"PostgreSQL refused the login of the plugin role {state.role} ({exc}); "
                    "allow password logins for the goatkit_p_* roles in pg_hba.conf",
                    "unavailable",
                ) from exc
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                raise call.error(f"cannot connect as {state.role}: {exc}", "unavailable") from exc
        raise AssertionError("unreachable")

    async def _set_password(self, admin: Any, state: _PgPlugin) -> None:
        password = secrets.token_hex(24)
        await admin.execute(f"ALTER ROLE {_qident(state.role)} PASSWORD '{password}'")
        state.password = password

    async def _sync(self, state: _PgPlugin, call: _Call) -> None:
        """Create or update the plugin's role, schema and table grants to match ``call``."""
        role = _qident(state.role)
        admin = await self._admin()
        try:
            async with admin.transaction():
                # One lock for every plugin and process: grants on a shared schema update one
                # catalog row, which concurrent transactions cannot both change.
                await admin.execute("SELECT pg_catalog.pg_advisory_xact_lock($1)", _PG_SYNC_LOCK)
                existing = await admin.fetchrow(
                    "SELECT r.oid, r.rolsuper OR r.rolcreaterole OR r.rolcreatedb "
                    "OR r.rolreplication OR r.rolbypassrls AS privileged, EXISTS (SELECT 1 FROM "
                    "pg_catalog.pg_auth_members m WHERE m.member = r.oid) AS member "
                    "FROM pg_catalog.pg_roles r WHERE r.rolname = $1",
                    state.role,
                )
                if existing is None:
                    await admin.execute(
                        f"CREATE ROLE {role} LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE "
                        "NOREPLICATION NOBYPASSRLS"
                    )
                elif existing["privileged"] or existing["member"]:
                    raise call.error(
                        f"the database role {state.role} has attributes or role memberships "
                        "beyond a plugin's; remove them (or drop the role) before the plugin "
                        "uses the database",
                        "unsafe_role",
                    )
                else:
                    await admin.execute(f"ALTER ROLE {role} LOGIN NOINHERIT")
                await self._set_password(admin, state)
                await admin.execute(f"CREATE SCHEMA IF NOT EXISTS {role}")
                await admin.execute(f"REVOKE ALL ON SCHEMA {role} FROM PUBLIC")
                await admin.execute(f"GRANT USAGE, CREATE ON SCHEMA {role} TO {role}")
                state.role_oid = await admin.fetchval(
                    "SELECT oid FROM pg_catalog.pg_roles WHERE rolname = $1", state.role
                )
                state.schema_oid = await admin.fetchval(
                    "SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $1", state.role
                )
                await self._sync_grants(admin, state, call.grants)
        finally:
            await admin.close()

    async def _sync_grants(self, admin: Any, state: _PgPlugin, grants: _Grants) -> None:
        role = _qident(state.role)
        schemas = list(self._shared_schemas)
        schemas += [p.split(".", 1)[0] for p in grants.read if "." in p]
        relations = await admin.fetch(
            "SELECT c.oid, n.nspname, c.relname FROM pg_catalog.pg_class c "
            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname = ANY($1::text[])",
            schemas,
        )
        order = {name: i for i, name in reversed(list(enumerate(schemas)))}
        visible: dict[str, Any] = {}  # unqualified name -> first relation on the search path
        for rel in sorted(relations, key=lambda r: order[r["nspname"]]):
            visible.setdefault(rel["relname"].lower(), rel)

        def matching(pattern: str) -> list[Any]:
            if "." in pattern:
                schema, table = pattern.split(".", 1)
                return [
                    r
                    for r in relations
                    if r["nspname"].lower() == schema and fnmatchcase(r["relname"].lower(), table)
                ]
            return [r for name, r in visible.items() if fnmatchcase(name, pattern)]

        wanted: dict[int, tuple[str, str, frozenset[str]]] = {}
        for patterns, privileges in ((grants.read, _PG_READ), (grants.write, _PG_WRITE)):
            for pattern in patterns:
                for rel in matching(pattern):
                    name = f"{_qident(rel['nspname'])}.{_qident(rel['relname'])}"
                    old = wanted.get(rel["oid"], ("TABLE", name, frozenset()))[2]
                    wanted[rel["oid"]] = ("TABLE", name, old | set(privileges))
        writable = [oid for oid, (_, _, privs) in wanted.items() if "INSERT" in privs]
        sequences = await admin.fetch(
            "SELECT DISTINCT s.oid, n.nspname, s.relname FROM pg_catalog.pg_depend d "
            "JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S' "
            "JOIN pg_catalog.pg_namespace n ON n.oid = s.relnamespace "
            "WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.deptype IN ('a', 'i') "
            "AND d.refobjid = ANY($1::oid[])",
            writable,
        )
        for seq in sequences:
            name = f"{_qident(seq['nspname'])}.{_qident(seq['relname'])}"
            wanted[seq["oid"]] = ("SEQUENCE", name, frozenset({"USAGE"}))
        current = await admin.fetch(
            "SELECT c.oid, c.relkind, n.nspname, c.relname, "
            "array_agg(a.privilege_type) AS privileges "
            "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
            "ON n.oid = c.relnamespace, pg_catalog.aclexplode(c.relacl) a "
            "WHERE a.grantee = $1 AND c.relnamespace <> $2 GROUP BY 1, 2, 3, 4",
            state.role_oid,
            state.schema_oid,
        )
        have = {row["oid"]: frozenset(row["privileges"]) for row in current}
        for row in current:
            if row["oid"] not in wanted or wanted[row["oid"]][2] != have[row["oid"]]:
                kind = "SEQUENCE" if row["relkind"] == "S" else "TABLE"
                name = f"{_qident(row['nspname'])}.{_qident(row['relname'])}"
                await admin.execute(f"REVOKE ALL ON {kind} {name} FROM {role}")
        for schema in dict.fromkeys(schemas):
            usable = await admin.fetchval(
                "SELECT pg_catalog.has_schema_privilege($1, n.oid, 'USAGE') "
                "FROM pg_catalog.pg_namespace n WHERE n.nspname = $2",
                state.role,
                schema,
            )
            if usable is False:
                await admin.execute(f"GRANT USAGE ON SCHEMA {_qident(schema)} TO {role}")
        for oid, (object_kind, object_name, rights) in wanted.items():
            if have.get(oid) != rights:
                await admin.execute(
                    f"GRANT {', '.join(sorted(rights))} ON {object_kind} {object_name} TO {role}"
                )


# --- the public face ---------------------------------------------------------------------------


class PluginDatabase:
    """The database plugins reach through db_query / db_exec.

    ``url`` is ``sqlite:///path.db`` (relative) or ``sqlite:////abs/path.db``, or
    ``postgresql://user:password@host:port/database`` whose user has ``CREATEROLE``.
    ``timeout`` is the calling plugin call's remaining time, in seconds.
    """

    def __init__(
        self,
        url: str,
        *,
        max_rows: int = MAX_ROWS,
        max_result_bytes: int = MAX_RESULT_BYTES,
        pool_size: int = 4,
    ) -> None:
        scheme = url.split(":", 1)[0].split("+", 1)[0].lower()
        self.url = url
        self.max_rows = max_rows
        self.max_result_bytes = max_result_bytes
        self._backend: _SQLiteBackend | _PostgresBackend
        if scheme == "sqlite":
            self._backend = _SQLiteBackend(DatabaseURL(url).database, pool_size)
        elif scheme in ("postgresql", "postgres"):
            self._backend = _PostgresBackend("postgresql:" + url.split(":", 1)[1], pool_size)
        else:
            raise ConfigError(
                f"database_url {scheme}:… is not supported; use sqlite:///path.db or "
                "postgresql://user@host/database"
            )

    async def connect(self) -> None:
        """Open the connections (PostgreSQL: check the login may create plugin roles)."""
        await self._backend.connect()

    async def disconnect(self) -> None:
        """Close every connection; calls after this fail until :meth:`connect`."""
        await self._backend.disconnect()

    async def __aenter__(self) -> PluginDatabase:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.disconnect()

    async def query(
        self,
        plugin: str,
        caps: Capabilities,
        sql: str,
        params: list[Any] | dict[str, Any] | None,
        *,
        timeout: float,
    ) -> list[dict[str, Any]] | None:
        """Run a read-only statement for ``plugin``: its rows as objects, ``None`` for none."""
        result = await self._backend.run(self._call(plugin, "db_query", caps, sql, params, timeout))
        assert isinstance(result, list)
        return result or None

    async def execute(
        self,
        plugin: str,
        caps: Capabilities,
        sql: str,
        params: list[Any] | dict[str, Any] | None,
        *,
        timeout: float,
    ) -> int:
        """Run a writing statement for ``plugin``: the number of rows it changed."""
        result = await self._backend.run(self._call(plugin, "db_exec", caps, sql, params, timeout))
        assert isinstance(result, int)
        return result

    def _call(
        self,
        plugin: str,
        function: str,
        caps: Capabilities,
        sql: object,
        params: object,
        timeout: float,
    ) -> _Call:
        if not isinstance(sql, str) or not sql.strip():
            raise HostCallError(
                f'{plugin}: {function}: "query" must be a non-empty SQL string',
                plugin=plugin,
                function=function,
                code="bad_request",
            )
        if len(sql) > MAX_SQL_CHARS:
            raise HostCallError(
                f'{plugin}: {function}: "query" is longer than {MAX_SQL_CHARS} characters',
                plugin=plugin,
                function=function,
                code="bad_request",
            )
        return _Call(
            plugin=plugin,
            function=function,
            grants=_Grants.of(plugin, caps),
            sql=sql,
            params=_check_params(plugin, function, params),
            deadline=time.monotonic() + timeout,
            max_rows=self.max_rows,
            max_bytes=self.max_result_bytes,
        )
