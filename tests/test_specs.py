from __future__ import annotations

import dataclasses
import re

import pytest

from goatkit_asgi.errors import ManifestError
from goatkit_asgi.specs import (
    NAME_RE,
    SEMVER_RE,
    ArgSpec,
    FunctionSpec,
    describe,
    expect_mapping,
    get_bool,
    get_duration,
    get_int,
    get_str,
    get_str_tuple,
    get_version,
    parse_duration,
    parse_function_spec,
    refuse_duplicates,
    warn_unknown_keys,
)


def fail(message: str) -> ManifestError:
    return ManifestError(message)


# --- parse_duration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (5, 5.0),
        (2.5, 2.5),
        ("5", 5.0),
        ("0.25", 0.25),
        ("500ms", 0.5),
        ("2s", 2.0),
        ("1.5s", 1.5),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("250us", 0.00025),
        (" 2s ", 2.0),
        ("-2s", -2.0),
        (0, 0.0),
    ],
)
def test_parse_duration_accepts_numbers_and_go_durations(value: object, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value",
    [
        "soon",
        "",
        "  ",
        "5x",
        "ms",
        "2 s",
        "1.5.5s",
        "s2",
        True,
        False,
        None,
        [1],
        {"s": 1},
        float("inf"),
        float("nan"),
    ],
)
def test_parse_duration_returns_none_when_unparseable(value: object) -> None:
    assert parse_duration(value) is None


# --- patterns ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["stats", "hello-wasm", "a", "9lives", "my_plugin", "a" * 64])
def test_name_re_accepts_plugin_names(name: str) -> None:
    assert NAME_RE.match(name)


@pytest.mark.parametrize(
    "name", ["", "Stats", "-x", "_x", "a b", "a.b", "a/b", "a" * 65, "stats\n", "ünï"]
)
def test_name_re_refuses_other_names(name: str) -> None:
    assert not NAME_RE.match(name)


@pytest.mark.parametrize(
    "version", ["0.0.0", "1.2.3", "10.20.30", "1.0.0-rc.1", "1.0.0+build.5", "1.0.0-alpha+001"]
)
def test_semver_re_accepts_semantic_versions(version: str) -> None:
    assert SEMVER_RE.match(version)


@pytest.mark.parametrize("version", ["1", "1.0", "v1.0.0", "01.0.0", "1.0.0-", "1.0.0\n", "x.y.z"])
def test_semver_re_refuses_other_versions(version: str) -> None:
    assert not SEMVER_RE.match(version)


# --- getters ----------------------------------------------------------------------------------


def test_get_duration_message_names_the_key_path_and_the_value() -> None:
    with pytest.raises(ManifestError) as info:
        get_duration({"call_timeout": "soon"}, "call_timeout", "resources", fail)
    assert str(info.value).startswith(
        'resources.call_timeout: expected seconds as a number or a string like "500ms" or "2s", '
        'got "soon"; '
    )


@pytest.mark.parametrize("value", [0, -1, "-2s", "0ms"])
def test_get_duration_refuses_zero_and_negative(value: object) -> None:
    with pytest.raises(ManifestError, match=r"^resources\.call_timeout: must be more than 0"):
        get_duration({"call_timeout": value}, "call_timeout", "resources", fail)


def test_get_duration_returns_seconds_or_none() -> None:
    assert get_duration({"t": "2s"}, "t", "", fail) == 2.0
    assert get_duration({}, "t", "", fail) is None
    assert get_duration({"t": None}, "t", "", fail) is None


@pytest.mark.parametrize("value", [True, False, "32", 2.5, [1]])
def test_get_int_refuses_non_integers_including_bools(value: object) -> None:
    with pytest.raises(ManifestError, match=r"^resources\.memory_mb: expected a positive whole"):
        get_int({"memory_mb": value}, "memory_mb", "resources", fail, minimum=1)


def test_get_int_checks_bounds_and_accepts_integral_floats() -> None:
    assert get_int({"n": 4}, "n", "", fail, minimum=1, maximum=64) == 4
    assert get_int({"n": 4.0}, "n", "", fail) == 4
    assert get_int({}, "n", "", fail, default=7) == 7
    with pytest.raises(ManifestError, match=r"^n: expected a whole number from 1 to 64, got 65;"):
        get_int({"n": 65}, "n", "", fail, minimum=1, maximum=64)


def test_get_str_refuses_other_types_and_requires_when_asked() -> None:
    assert get_str({"a": "x"}, "a", "p", fail) == "x"
    assert get_str({}, "a", "p", fail, default="d") == "d"
    with pytest.raises(ManifestError, match=r"^p\.a: expected a string, got 1\.0; "):
        get_str({"a": 1.0}, "a", "p", fail)
    with pytest.raises(ManifestError, match=r"^p\.a: is missing; "):
        get_str({}, "a", "p", fail, required=True)
    with pytest.raises(ManifestError, match=r"^p\.a: must not be empty; "):
        get_str({"a": ""}, "a", "p", fail, required=True)


def test_get_bool_refuses_yes_and_numbers() -> None:
    assert get_bool({"a": True}, "a", "", fail) is True
    assert get_bool({}, "a", "", fail, default=True) is True
    for value in ("yes", 1, "true"):
        with pytest.raises(ManifestError, match=r"^a: expected true or false"):
            get_bool({"a": value}, "a", "", fail)


def test_get_str_tuple_names_the_failing_item() -> None:
    assert get_str_tuple({"a": ["x", "y"]}, "a", "p", fail) == ("x", "y")
    with pytest.raises(ManifestError, match=r"^p\.a\[1\]: expected a non-empty string, got 5;"):
        get_str_tuple({"a": ["x", 5]}, "a", "p", fail)
    with pytest.raises(ManifestError, match=r"^p\.a: expected a list, got \"x\";"):
        get_str_tuple({"a": "x"}, "a", "p", fail)
    with pytest.raises(ManifestError, match=r"^p\.a\[0\]: expected a plugin name"):
        get_str_tuple({"a": ["Bad"]}, "a", "p", fail, pattern=NAME_RE, what="a plugin name")


def test_get_version_strict_and_loose() -> None:
    assert get_version({"v": "1.2.3"}, "v", "", fail) == "1.2.3"
    assert get_version({"v": "0.7"}, "v", "", fail, loose=True) == "0.7"
    assert get_version({"v": "v1"}, "v", "", fail, loose=True) == "v1"
    with pytest.raises(ManifestError, match=r"^v: expected a semantic version"):
        get_version({"v": "0.7"}, "v", "", fail)
    with pytest.raises(ManifestError, match=r"^v: .* got 1\.0; quote it"):
        get_version({"v": 1.0}, "v", "", fail)


def test_expect_mapping_refuses_lists_and_non_string_keys() -> None:
    with pytest.raises(ManifestError, match=r"^top level: expected a mapping, got a list;"):
        expect_mapping([1], "", fail)
    with pytest.raises(ManifestError, match=r"^resources\.1: keys must be strings"):
        expect_mapping({1: "x"}, "resources", fail)


def test_warn_unknown_keys_reports_each_unknown_key_with_its_path() -> None:
    seen: list[str] = []
    warn_unknown_keys({"a": 1, "b": 2, "c": 3}, {"a"}, "x", seen.append)
    assert seen == [
        "x.b: unknown key, ignored; check its spelling",
        "x.c: unknown key, ignored; check its spelling",
    ]


def test_refuse_duplicates_names_both_places() -> None:
    with pytest.raises(
        ManifestError, match=re.escape('e[2]: duplicate export "a" (already at e[0])')
    ):
        refuse_duplicates([("a", "e[0]"), ("b", "e[1]"), ("a", "e[2]")], fail, "export")


def test_describe_keeps_messages_short() -> None:
    assert describe("x" * 200).endswith('..."')
    assert len(describe("x" * 200)) == 60
    assert describe(None) == "null"
    assert describe(True) == "true"
    assert describe({"a": 1}) == "a mapping"


# --- function specs ---------------------------------------------------------------------------


def test_parse_function_spec_from_a_bare_name() -> None:
    assert parse_function_spec("ticket_counts", "exports[0]", fail) == FunctionSpec("ticket_counts")


def test_parse_function_spec_from_a_mapping_with_both_arg_forms() -> None:
    spec = parse_function_spec(
        {
            "name": "top_queues",
            "args": [
                "days",
                {"name": "limit", "type": "int", "required": True, "description": "n"},
            ],
            "returns": "list",
            "description": "Busiest queues",
        },
        "exports[1]",
        fail,
    )
    assert spec == FunctionSpec(
        name="top_queues",
        args=(ArgSpec("days"), ArgSpec("limit", "int", True, "n")),
        returns="list",
        description="Busiest queues",
    )
    assert spec.arg_names == ("days", "limit")
    assert hash(spec) == hash(dataclasses.replace(spec))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (5, r"^exports\[0\]: expected a function name or a mapping with a name, got 5;"),
        ("", r"^exports\[0\]: expected a function name, got \"\";"),
        ("two words", r"^exports\[0\]: expected a function name"),
        ({"args": []}, r"^exports\[0\]\.name: expected a function name, got null;"),
        ({"name": "f", "args": "x"}, r"^exports\[0\]\.args: expected a list"),
        ({"name": "f", "args": [7]}, r"^exports\[0\]\.args\[0\]: expected a mapping"),
        ({"name": "f", "args": [{"type": "int"}]}, r"^exports\[0\]\.args\[0\]\.name: expected"),
        ({"name": "f", "args": ["a", "a"]}, r"^exports\[0\]\.args\[1\]: duplicate argument \"a\""),
        ({"name": "f", "returns": 3}, r"^exports\[0\]\.returns: expected a string"),
        ({"name": "f", "args": [{"name": "a", "required": "no"}]}, r"\.args\[0\]\.required:"),
    ],
)
def test_parse_function_spec_refuses_bad_specs(value: object, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        parse_function_spec(value, "exports[0]", fail)


def test_parse_function_spec_warns_about_unknown_keys() -> None:
    seen: list[str] = []
    spec = parse_function_spec(
        {"name": "f", "cache": True, "args": [{"name": "a", "default": 1}]},
        "functions[0]",
        fail,
        warn=seen.append,
    )
    assert spec.name == "f"
    assert seen == [
        "functions[0].cache: unknown key, ignored; check its spelling",
        "functions[0].args[0].default: unknown key, ignored; check its spelling",
    ]


def test_specs_are_frozen() -> None:
    spec = FunctionSpec("f")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "g"  # type: ignore[misc]
