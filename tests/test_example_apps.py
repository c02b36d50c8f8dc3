"""examples/starlette_app.py and examples/fastapi_app.py, as their docstrings run them."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from starlette.testclient import TestClient

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load(name: str, state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    import goatkit_asgi

    # keep the example's state out of the checkout during tests
    original = goatkit_asgi.Platform

    def platform(*args: object, **kwargs: object) -> goatkit_asgi.Platform:
        kwargs["state_dir"] = state_dir
        kwargs["database_url"] = f"sqlite:///{state_dir / 'goatkit.db'}"
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(goatkit_asgi, "Platform", platform)
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("name", "who"), [("starlette_app", "Starlette"), ("fastapi_app", "FastAPI")]
)
def test_example_app_shows_plugin_menu_function_route_and_static(
    name: str, who: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = load(name, tmp_path / "state", monkeypatch)
    with TestClient(module.app) as client:
        home = client.get("/")
        assert home.status_code == 200
        assert f"<h1>{who} with plugins</h1>" in home.text
        assert '<p id="greeting">Hello, visitor!</p>' in home.text
        assert 'data-plugin="hello-wasm"' in home.text
        page = client.get("/hello/Grace")
        assert page.status_code == 200 and "<p>Hello, Grace</p>" in page.text
        assert "<nav>" in page.text  # wrapped in the host's layout
        css = client.get("/plugins/hello-wasm/static/hello.css")
        assert css.status_code == 200 and ".hello-wasm" in css.text
        platform = module.platform
        # every example plugin directory, and nothing else (_templates and the .py files are not)
        expected = {d.name for d in EXAMPLES.iterdir() if (d / "manifest.yaml").is_file()}
        assert set(platform.plugins) == expected and "hello-wasm" in expected


def test_fastapi_example_calls_the_plugin_from_python(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = load("fastapi_app", tmp_path / "state", monkeypatch)
    with TestClient(module.app) as client:
        assert client.get("/api/greeting/Linus").json() == {"message": "Hello, Linus!"}
