"""The one error tree of goatkit_asgi.

Every error names the plugin it concerns (and the function or file where there is one) and says
what to do. Foreign errors (wasmtime traps, zip and YAML errors, database and gRPC errors) are
translated at the boundary into these, with the original kept as ``__cause__``.

    GoatKitError
    ├── ConfigError                  a Platform setting is wrong
    ├── PluginNotFound               no plugin of that name (HTTP 404)
    │   └── PluginDisabled           the plugin exists but is disabled (HTTP 404)
    ├── PluginLoadError              the plugin could not be loaded (HTTP 502)
    │   ├── ManifestError            manifest.yaml / plugin.yaml is missing or invalid
    │   ├── PackageError             a .zip package is unsafe or broken
    │   │   └── SignatureError       a signature is missing, invalid or from an untrusted key
    │   └── RegistrationError        the gk_register JSON is invalid
    ├── CapabilityDenied             the plugin asked for something it was not granted (HTTP 403)
    ├── PermissionDenied             the current user lacks a permission a route needs (HTTP 403)
    ├── HostCallError                a host function refused bad arguments or its backend failed
    └── PluginCallError              a call into the plugin failed (HTTP 502)
        ├── PluginReportedError      the plugin answered {"error": ...}: its own code and message
        ├── PluginTimeout            the call ran past its deadline (HTTP 504)
        ├── PluginMemoryExceeded     the guest needed more memory than its cap
        ├── PluginCrashed            the guest trapped or the plugin process died
        └── PluginBusy               every instance is busy and the wait queue is full (HTTP 503)
"""

from __future__ import annotations

__all__ = [
    "CapabilityDenied",
    "ConfigError",
    "GoatKitError",
    "HostCallError",
    "ManifestError",
    "PackageError",
    "PermissionDenied",
    "PluginBusy",
    "PluginCallError",
    "PluginCrashed",
    "PluginDisabled",
    "PluginLoadError",
    "PluginMemoryExceeded",
    "PluginNotFound",
    "PluginReportedError",
    "PluginTimeout",
    "RegistrationError",
    "SignatureError",
]


class GoatKitError(Exception):
    """Base of every error raised by goatkit_asgi.

    ``plugin`` and ``function`` name what the error concerns where that is known; ``code`` is a
    short machine-readable identifier (also used in ``gk.last_error`` and HTTP error bodies).
    """

    code = "error"
    http_status = 500

    def __init__(
        self,
        message: str,
        *,
        plugin: str | None = None,
        function: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.plugin = plugin
        self.function = function
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, str]:
        """The JSON shape used by ``gk.last_error`` and HTTP error bodies: never a traceback."""
        out = {"code": self.code, "message": self.message}
        if self.plugin is not None:
            out["plugin"] = self.plugin
        if self.function is not None:
            out["function"] = self.function
        return out


class ConfigError(GoatKitError):
    """A Platform setting (constructor argument or configuration value) is wrong."""

    code = "config_error"


class PluginNotFound(GoatKitError):
    """No plugin of that name was discovered."""

    code = "not_found"
    http_status = 404


class PluginDisabled(PluginNotFound):
    """The plugin exists but an administrator disabled it."""

    code = "disabled"


class PluginLoadError(GoatKitError):
    """The plugin could not be loaded: broken module, missing export, failed start, ..."""

    code = "load_error"
    http_status = 502


class ManifestError(PluginLoadError):
    """The manifest is missing or invalid; the message names the file and the key path."""

    code = "manifest_error"


class PackageError(PluginLoadError):
    """A plugin package (.zip) is unsafe or broken; the message names the file and the entry."""

    code = "package_error"


class SignatureError(PackageError):
    """A package signature is missing, does not match, or comes from an untrusted key."""

    code = "signature_error"


class RegistrationError(PluginLoadError):
    """The registration JSON returned by ``gk_register`` is invalid; the message names the field."""

    code = "registration_error"


class CapabilityDenied(GoatKitError):
    """The plugin asked the host for something it was not granted."""

    code = "capability_denied"
    http_status = 403


class PermissionDenied(GoatKitError):
    """The current user lacks the permission a plugin route or menu item needs."""

    code = "forbidden"
    http_status = 403


class HostCallError(GoatKitError):
    """A host function refused its arguments, or the backend behind it failed."""

    code = "host_error"


class PluginCallError(GoatKitError):
    """A call into a plugin failed (the plugin reported an error, or the call could not be made)."""

    code = "call_error"
    http_status = 502


class PluginReportedError(PluginCallError):
    """The plugin ran and answered with an error of its own (``{"error": {"code", "message"}}``).

    ``code`` is the plugin's code and ``detail`` its message as it wrote it. A hook that answers
    this way refuses the change it was told about (see :attr:`HookResult.refusal`).
    """

    def __init__(
        self,
        message: str,
        *,
        detail: str,
        plugin: str | None = None,
        function: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, plugin=plugin, function=function, code=code)
        self.detail = detail


class PluginTimeout(PluginCallError):
    """The call ran past its deadline and was stopped."""

    code = "timeout"
    http_status = 504


class PluginMemoryExceeded(PluginCallError):
    """The guest failed because it needed more linear memory than its cap allows."""

    code = "memory_exceeded"


class PluginCrashed(PluginCallError):
    """The guest trapped (out of bounds, unreachable, stack overflow, ...) or its process died."""

    code = "crashed"


class PluginBusy(PluginCallError):
    """Every instance of the plugin is busy and the queue of waiting calls is full."""

    code = "busy"
    http_status = 503
