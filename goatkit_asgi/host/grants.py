"""Capability arithmetic: what a plugin asked for, what it was granted, what it may do.

A plugin may do what it requested (manifest ``capabilities``) *and* was granted: a grant beyond
the request gives nothing more, and a request beyond the grant waits for approval (``pending``).
"""

from __future__ import annotations

from collections.abc import Iterable

from ..packaging.manifest import Capabilities


def _host_covered(host: str, grants: Iterable[str]) -> bool:
    """A requested host pattern is covered by an identical grant, or by a wildcard grant
    ``*.d`` when it is a name under ``d`` (``api.d`` or ``*.api.d``)."""
    host = host.lower()
    for grant in grants:
        grant = grant.lower()
        if host == grant:
            return True
        if grant.startswith("*."):
            suffix = grant[1:]
            name = host.removeprefix("*.") if host.startswith("*.") else host
            if ("." + name).endswith(suffix) and name != suffix[1:]:
                return True
    return False


def effective(requested: Capabilities, granted: Capabilities) -> Capabilities:
    """What a plugin may do: its request, cut down to its grant."""
    write = tuple(t for t in requested.db_write if t in granted.db_write)
    readable = set(granted.db_read) | set(granted.db_write)
    read = tuple(t for t in requested.db_read if t in readable)
    return Capabilities(
        db_read=read,
        db_write=write,
        http_hosts=tuple(h for h in requested.http_hosts if _host_covered(h, granted.http_hosts)),
        email=requested.email and granted.email,
        jobs=requested.jobs and granted.jobs,
        plugins=tuple(p for p in requested.plugins if p in granted.plugins),
        events=requested.events and granted.events,
    )


def pending(requested: Capabilities, granted: Capabilities) -> Capabilities:
    """What a plugin asked for and has not been granted (it waits for approval)."""
    allowed = effective(requested, granted)
    return Capabilities(
        db_read=tuple(t for t in requested.db_read if t not in allowed.db_read),
        db_write=tuple(t for t in requested.db_write if t not in allowed.db_write),
        http_hosts=tuple(h for h in requested.http_hosts if h not in allowed.http_hosts),
        email=requested.email and not allowed.email,
        jobs=requested.jobs and not allowed.jobs,
        plugins=tuple(p for p in requested.plugins if p not in allowed.plugins),
        events=requested.events and not allowed.events,
    )


def union(a: Capabilities, b: Capabilities) -> Capabilities:
    def both(x: tuple[str, ...], y: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*x, *y)))

    return Capabilities(
        db_read=both(a.db_read, b.db_read),
        db_write=both(a.db_write, b.db_write),
        http_hosts=both(a.http_hosts, b.http_hosts),
        email=a.email or b.email,
        jobs=a.jobs or b.jobs,
        plugins=both(a.plugins, b.plugins),
        events=a.events or b.events,
    )


def without(a: Capabilities, b: Capabilities) -> Capabilities:
    """``a`` less everything named in ``b`` (for revoking part of a grant)."""
    return Capabilities(
        db_read=tuple(t for t in a.db_read if t not in b.db_read),
        db_write=tuple(t for t in a.db_write if t not in b.db_write),
        http_hosts=tuple(h for h in a.http_hosts if h not in b.http_hosts),
        email=a.email and not b.email,
        jobs=a.jobs and not b.jobs,
        plugins=tuple(p for p in a.plugins if p not in b.plugins),
        events=a.events and not b.events,
    )
