"""The public surface is exactly what the README documents."""

from __future__ import annotations

import goatkit_asgi
from goatkit_asgi import errors


def test_all_is_the_documented_set() -> None:
    assert sorted(goatkit_asgi.__all__) == [
        "GoatKitMiddleware",
        "Platform",
        "PluginInfo",
        "PluginState",
        "PluginTemplates",
        "PluginsExtension",
    ]
    for name in goatkit_asgi.__all__:
        assert getattr(goatkit_asgi, name).__module__.startswith("goatkit_asgi")


def test_every_error_is_in_one_tree_rooted_at_goatkit_error() -> None:
    classes = [getattr(errors, name) for name in errors.__all__]
    assert all(issubclass(cls, errors.GoatKitError) for cls in classes)
    assert errors.PluginDisabled.__mro__[1] is errors.PluginNotFound
    assert issubclass(errors.SignatureError, errors.PackageError)
    assert issubclass(errors.PackageError, errors.PluginLoadError)
    for cls in (
        errors.PluginTimeout,
        errors.PluginMemoryExceeded,
        errors.PluginCrashed,
        errors.PluginBusy,
    ):
        assert issubclass(cls, errors.PluginCallError)
    # every class is drawn in the module docstring
    for name in errors.__all__:
        assert name in (errors.__doc__ or "")


def test_http_statuses_follow_the_design() -> None:
    assert errors.PluginTimeout("x").http_status == 504
    assert errors.PluginCrashed("x").http_status == 502
    assert errors.PluginNotFound("x").http_status == 404
    assert errors.PluginDisabled("x").http_status == 404
    assert errors.CapabilityDenied("x").http_status == 403


def test_error_dict_names_plugin_and_function_never_a_traceback() -> None:
    exc = errors.PluginTimeout("stats: slow did not finish", plugin="stats", function="slow")
    assert exc.to_dict() == {
        "code": "timeout",
        "message": "stats: slow did not finish",
        "plugin": "stats",
        "function": "slow",
    }
    custom = errors.PluginCallError("x", code="not_found")
    assert custom.code == "not_found" and errors.PluginCallError.code == "call_error"


def test_light_submodules_do_not_load_the_platform() -> None:
    """A gRPC plugin imports the SDK: it must not pay for wasmtime, databases or Starlette."""
    import subprocess
    import sys

    code = (
        "import sys, goatkit_asgi.sdk.python, goatkit_asgi.errors;"
        "print(sorted(m for m in ('wasmtime', 'databases', 'starlette') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
