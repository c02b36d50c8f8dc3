"""The admin's JSON shapes: plugins, logs, audit entries, jobs and health.

The pages render from these same dictionaries, so what a page shows and what the API answers
cannot drift apart. Values are plain JSON (no NaN or infinity: an unbounded latency bucket is
``null``); file locations are given by name only.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...packaging.manifest import Capabilities
from ...platform import PluginInfo, PluginState

if TYPE_CHECKING:
    from ...host.log import LogRecord
    from ...platform import Platform
    from ...store import AuditEntry, JobRow
    from .inspection import ModuleReport, SignatureReport

__all__ = [
    "audit_entry",
    "function_rows",
    "health",
    "job_row",
    "log_record",
    "plain",
    "plugin_detail",
    "plugin_summary",
]

#: Fields left out of the manifest and registration: machine paths and bulky texts.
_SKIPPED = frozenset({"source", "directory", "translations"})


def plain(value: Any) -> Any:
    """``value`` as JSON-able data: dataclasses and mappings to objects, tuples to lists."""
    if isinstance(value, Capabilities):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: plain(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.name not in _SKIPPED
        }
    if isinstance(value, enum.Enum):
        return plain(value.value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items() if k not in _SKIPPED}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    if isinstance(value, Path):
        return value.name
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _ms(seconds: object) -> float | None:
    if isinstance(seconds, int | float) and math.isfinite(seconds):
        return round(seconds * 1000, 3)
    return None


def plugin_summary(info: PluginInfo) -> dict[str, Any]:
    """One row of the plugin list."""
    manifest = info.manifest
    totals = info.totals
    last_used = None
    if info.last_used is not None:
        last_used = round(max(0.0, time.monotonic() - info.last_used), 3)
    return {
        "name": info.name,
        "version": manifest.version if manifest else None,
        "runtime": manifest.runtime if manifest else None,
        "description": manifest.description if manifest else "",
        "state": info.state.value,
        "source": info.source.name,
        "package": info.source.suffix == ".zip",
        "calls": _count(totals.get("calls")),
        "errors": _count(totals.get("errors")),
        "timeouts": _count(totals.get("timeouts")),
        "p50_ms": _ms(totals.get("p50")),
        "p99_ms": _ms(totals.get("p99")),
        "instances": info.instances,
        "memory_bytes": info.memory_bytes,
        "last_used_seconds_ago": last_used,
        "needs_review": not info.pending.is_empty(),
        "error": info.error.to_dict() if info.error else None,
    }


def function_rows(info: PluginInfo) -> list[dict[str, Any]]:
    rows = []
    for name, stats in sorted(info.stats.items()):
        rows.append(
            {
                "name": name,
                "calls": stats.get("calls", 0),
                "errors": plain(stats.get("errors", {})),
                "timeouts": stats.get("timeouts", 0),
                "inline_calls": stats.get("inline_calls", 0),
                "p50_ms": _ms(stats.get("p50")),
                "p99_ms": _ms(stats.get("p99")),
            }
        )
    return rows


def plugin_detail(
    info: PluginInfo,
    *,
    module: ModuleReport | None,
    signature: SignatureReport,
    jobs: list[JobRow],
    errors: list[LogRecord],
) -> dict[str, Any]:
    """Everything the detail page shows, except the log lines (``…/logs``)."""
    reg = info.registration
    return {
        **plugin_summary(info),
        "manifest": plain(info.manifest) if info.manifest else None,
        "registration": plain(reg) if reg else None,
        "capabilities": {
            "requested": info.requested.to_dict(),
            "granted": info.granted.to_dict(),
            "effective": info.effective.to_dict(),
            "pending": info.pending.to_dict(),
        },
        "functions": function_rows(info),
        "module": _module(module),
        "module_digest": info.module_digest,
        "signature": plain(signature),
        "jobs": [job_row(j) for j in jobs],
        "recent_errors": [log_record(r) for r in errors],
    }


def _module(module: ModuleReport | None) -> dict[str, Any] | None:
    if module is None:
        return None
    interface = module.interface
    return {
        "file": module.file,
        "size": module.size,
        "sha256": module.sha256,
        "imports": plain(interface.imports) if interface else [],
        "exports": plain(interface.exports) if interface else [],
        "error": module.error,
    }


def log_record(record: LogRecord) -> dict[str, Any]:
    return {
        "time": record.time,
        "level": record.level,
        "message": record.message,
        "fields": plain(record.fields),
    }


def audit_entry(entry: AuditEntry) -> dict[str, Any]:
    return {
        "at": entry.at,
        "function": entry.function,
        "decision": entry.decision,
        "user": entry.user,
        "detail": entry.detail,
    }


def job_row(job: JobRow) -> dict[str, Any]:
    return {
        "id": job.job_id,
        "schedule": job.schedule,
        "callback": job.callback,
        "source": job.source,
        "next_run": job.next_run,
        "last_run": job.last_run,
        "last_status": job.last_status,
        "last_error": job.last_error,
        "runs": job.runs,
    }


def health(platform: Platform) -> dict[str, Any]:
    """Counts by state, memory, totals, and the plugins that failed or wait for a review."""
    infos = list(platform.plugins.values())
    states = {state.value: 0 for state in PluginState}
    calls = errors = 0
    for info in infos:
        states[info.state.value] += 1
        calls += _count(info.totals.get("calls"))
        errors += _count(info.totals.get("errors"))
    failed = [
        {"name": i.name, "error": i.error.to_dict() if i.error else None}
        for i in infos
        if i.state is PluginState.FAILED
    ]
    review = [
        {"name": i.name, "pending": i.pending.to_dict()} for i in infos if not i.pending.is_empty()
    ]
    budget = platform.settings.memory_budget_mb
    return {
        "status": "degraded" if failed else "ok",
        "plugins": len(infos),
        "states": states,
        "memory_in_use_bytes": platform.memory_in_use(),
        "memory_budget_bytes": budget * 1024 * 1024 if budget is not None else None,
        "calls": calls,
        "errors": errors,
        "failed": failed,
        "needs_review": review,
    }
