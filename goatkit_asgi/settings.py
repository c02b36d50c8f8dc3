"""Platform settings: the constructor's keyword arguments, checked once, with clear errors."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .host.mail import SmtpSettings
from .packaging.archive import ArchiveLimits
from .packaging.manifest import Capabilities
from .packaging.signing import load_public_key

DEFAULT_DATABASE_URL = "sqlite:///goatkit.db"
DATABASE_SCHEMES = ("sqlite", "postgresql", "postgres")


@dataclass(frozen=True)
class Settings:
    """Everything a :class:`~goatkit_asgi.Platform` is configured with."""

    plugins_dir: Path
    state_dir: Path
    database_url: str = DEFAULT_DATABASE_URL
    call_timeout: float = 5.0
    max_call_timeout: float = 60.0
    memory_mb: int = 16
    memory_budget_mb: int | None = None
    max_instances: int = 4
    max_queue: int = 64
    worker_threads: int = 16
    grants: dict[str, Capabilities] = field(default_factory=dict)
    auto_grant: bool = False
    plugin_config: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    archive_limits: ArchiveLimits = field(default_factory=ArchiveLimits)
    inline_calls: bool = True
    has_permission: Callable[[Any, str], Any] | None = None
    static_prefix: str = "/plugins"
    debug: bool = False
    smtp: SmtpSettings | None = None
    idle_timeout: float | None = None
    hot_reload: bool = False
    sync_interval: float = 1.0
    shutdown_grace: float = 10.0
    require_signatures: bool = False
    trusted_keys: tuple[str, ...] = ()


def _positive_number(name: str, value: object, *, maximum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{name}: expected a positive number of seconds, got {value!r}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name}: {value}s is more than the maximum of {maximum}s")
    return float(value)


def _positive_int(name: str, value: object, *, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{name}: expected a positive whole number, got {value!r}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name}: {value} is more than the maximum of {maximum}")
    return value


def build_settings(
    *,
    plugins_dir: str | os.PathLike[str],
    state_dir: str | os.PathLike[str] | None,
    database_url: str,
    call_timeout: float,
    max_call_timeout: float,
    memory_mb: int,
    memory_budget_mb: int | None,
    max_instances: int,
    max_queue: int,
    worker_threads: int,
    grants: Mapping[str, Mapping[str, Any]] | None,
    auto_grant: bool,
    plugin_config: Mapping[str, Mapping[str, Any]] | None,
    archive_limits: ArchiveLimits | None,
    inline_calls: bool,
    has_permission: Callable[[Any, str], Any] | None = None,
    static_prefix: str = "/plugins",
    debug: bool = False,
    smtp: SmtpSettings | Mapping[str, Any] | None = None,
    idle_timeout: float | None = None,
    hot_reload: bool | None = None,
    sync_interval: float = 1.0,
    shutdown_grace: float = 10.0,
    require_signatures: bool = False,
    trusted_keys: Sequence[str] = (),
) -> Settings:
    """Check every setting; a wrong one is a ConfigError that names it and says what is expected."""
    plugins = Path(plugins_dir)
    if plugins.exists() and not plugins.is_dir():
        raise ConfigError(f"plugins_dir: {plugins} exists but is not a directory")
    state = Path(state_dir) if state_dir is not None else plugins.resolve().parent / ".goatkit"
    if (
        not isinstance(database_url, str)
        or database_url.split(":", 1)[0].split("+")[0] not in DATABASE_SCHEMES
    ):
        raise ConfigError(
            f"database_url: {database_url!r} is not supported; use sqlite:///path.db or "
            "postgresql://user:pass@host/db"
        )
    max_timeout = _positive_number("max_call_timeout", max_call_timeout)
    timeout = _positive_number("call_timeout", call_timeout, maximum=max_timeout)
    mem = _positive_int("memory_mb", memory_mb, maximum=4096)
    budget = (
        None if memory_budget_mb is None else _positive_int("memory_budget_mb", memory_budget_mb)
    )
    for name, value in (("grants", grants), ("plugin_config", plugin_config)):
        if value is not None and not (
            isinstance(value, Mapping) and all(isinstance(v, Mapping) for v in value.values())
        ):
            raise ConfigError(f"{name}: expected a mapping of plugin name to a mapping")
    if has_permission is not None and not callable(has_permission):
        raise ConfigError("has_permission: expected a callable (request, permission) -> bool")
    if (
        not isinstance(static_prefix, str)
        or not static_prefix.startswith("/")
        or static_prefix.endswith("/")
        or "//" in static_prefix
    ):
        raise ConfigError(
            f"static_prefix: expected a path like '/plugins' (leading slash, no trailing slash), "
            f"got {static_prefix!r}"
        )
    if not isinstance(auto_grant, bool):
        raise ConfigError(f"auto_grant: expected True or False, got {auto_grant!r}")
    return Settings(
        plugins_dir=plugins,
        state_dir=state,
        database_url=database_url,
        call_timeout=timeout,
        max_call_timeout=max_timeout,
        memory_mb=mem,
        memory_budget_mb=budget,
        max_instances=_positive_int("max_instances", max_instances, maximum=64),
        max_queue=_positive_int("max_queue", max_queue),
        worker_threads=_positive_int("worker_threads", worker_threads, maximum=256),
        grants=_grants(grants or {}),
        auto_grant=auto_grant,
        plugin_config=dict(plugin_config or {}),
        archive_limits=archive_limits or ArchiveLimits(),
        inline_calls=bool(inline_calls),
        has_permission=has_permission,
        static_prefix=static_prefix,
        debug=bool(debug),
        smtp=_smtp(smtp),
        idle_timeout=None
        if idle_timeout is None
        else _positive_number("idle_timeout", idle_timeout),
        # Hot reload is on by default only in development (debug=True).
        hot_reload=bool(debug) if hot_reload is None else bool(hot_reload),
        sync_interval=_positive_number("sync_interval", sync_interval),
        shutdown_grace=_positive_number("shutdown_grace", shutdown_grace),
        require_signatures=bool(require_signatures),
        trusted_keys=_trusted_keys(trusted_keys, require_signatures),
    )


def _trusted_keys(keys: Sequence[str], required: object) -> tuple[str, ...]:
    if not isinstance(required, bool):
        raise ConfigError(f"require_signatures: expected True or False, got {required!r}")
    if isinstance(keys, str) or not all(isinstance(k, str) for k in keys):
        raise ConfigError("trusted_keys: expected a list of public keys like 'ed25519:<base64>'")
    for key in keys:
        load_public_key(key)  # a ConfigError naming the key
    if required and not keys:
        raise ConfigError(
            "require_signatures=True needs trusted_keys: the public keys whose signatures are "
            "accepted (gk plugin keygen prints one)"
        )
    return tuple(keys)


def _grants(value: Mapping[str, Mapping[str, Any]]) -> dict[str, Capabilities]:
    out = {}
    for plugin, caps in value.items():

        def fail(message: str, plugin: str = plugin) -> Exception:
            return ConfigError(f"grants[{plugin!r}]: {message}")

        out[str(plugin)] = Capabilities.from_dict(dict(caps), "", fail)
    return out


def _smtp(value: SmtpSettings | Mapping[str, Any] | None) -> SmtpSettings | None:
    if value is None or isinstance(value, SmtpSettings):
        return value
    if not isinstance(value, Mapping):
        raise ConfigError("smtp: expected SmtpSettings or a mapping like {'host': ..., 'port': 25}")
    known = set(SmtpSettings.__dataclass_fields__)
    unknown = sorted(set(value) - known)
    if unknown:
        raise ConfigError(f"smtp: unknown settings {unknown}; known: {sorted(known)}")
    try:
        return SmtpSettings(**value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"smtp: {exc}") from exc
