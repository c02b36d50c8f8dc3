"""Plugin translations: YAML files over the registration's i18n, lookups, negotiation."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from goatkit_asgi.i18n import Translations, format_text, load_translations, negotiate_locale
from goatkit_asgi.registration import I18n


def write_i18n(plugin_dir: Path, files: dict[str, str]) -> Path:
    folder = plugin_dir / "i18n"
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return plugin_dir


def goatkit_logs(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "goatkit"]


# --- loading -----------------------------------------------------------------------------------


def test_flat_and_nested_files_are_flattened_with_dots(tmp_path: Path) -> None:
    plugin = write_i18n(
        tmp_path / "stats",
        {
            "en.yaml": "title: Statistics\nmenu:\n  title: Reports\n  items:\n    open: Open\n",
            "de.yml": "title: Statistik\nmenu:\n  title: Berichte\n",
        },
    )
    tr = load_translations(plugin, None)
    assert tr.languages == ("de", "en")
    assert dict(tr.catalog("en")) == {
        "title": "Statistics",
        "menu.title": "Reports",
        "menu.items.open": "Open",
    }
    assert tr.gettext("menu.title", "de") == "Berichte"
    assert tr.gettext("menu.items.open", "de") == "Open"  # missing in de: English


def test_files_win_over_the_registration_key_by_key(tmp_path: Path) -> None:
    plugin = write_i18n(tmp_path / "stats", {"de.yaml": "title: Statistik (Datei)\n"})
    inline = I18n(
        languages=("en", "de", "fr"),
        translations={
            "en": {"title": "Statistics"},
            "de": {"title": "Statistik", "subtitle": "Zahlen"},
            "fr": {"title": "Statistiques"},
        },
    )
    tr = load_translations(plugin, inline)
    assert tr.gettext("title", "de") == "Statistik (Datei)"
    assert tr.gettext("subtitle", "de") == "Zahlen"
    assert tr.gettext("title", "fr") == "Statistiques"
    assert set(tr.languages) == {"en", "de", "fr"}


def test_no_directory_and_no_registration_give_empty_translations(tmp_path: Path) -> None:
    assert load_translations(None, None).languages == ()
    assert load_translations(tmp_path / "nothing-here", None).gettext("k", "de") == "k"


def test_bad_yaml_is_logged_and_ignored_without_breaking_the_others(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    plugin = write_i18n(
        tmp_path / "stats",
        {
            "en.yaml": "title: Statistics\n",
            "de.yaml": "title: [unclosed\n",
            "fr.yaml": "- just\n- a list\n",
            "not a language.yaml": "title: x\n",
        },
    )
    with caplog.at_level(logging.WARNING, logger="goatkit"):
        tr = load_translations(plugin, None, plugin="stats")
    assert tr.languages == ("en",)
    assert tr.gettext("title", "de") == "Statistics"
    logs = goatkit_logs(caplog)
    assert any("stats: i18n/de.yaml: invalid YAML" in m and "ignored" in m for m in logs)
    assert any(
        "stats: i18n/fr.yaml: expected a mapping of keys to texts, got a list" in m for m in logs
    )
    assert any("i18n/not a language.yaml: the file name is not a language code" in m for m in logs)


def test_non_string_leaves_are_stringified_and_yes_no_stay_words(tmp_path: Path) -> None:
    plugin = write_i18n(
        tmp_path / "p",
        {
            "en.yaml": (
                "count: 42\nratio: 1.5\nflag: true\nempty:\nlist: [a, b]\n"
                "no: Nein\nyes: Ja\non: An\n"
            )
        },
    )
    en = load_translations(plugin, None).catalog("en")
    assert en["count"] == "42"
    assert en["ratio"] == "1.5"
    assert en["flag"] == "true"
    assert en["empty"] == ""
    assert en["list"] == "['a', 'b']"
    assert (en["no"], en["yes"], en["on"]) == ("Nein", "Ja", "An")


def test_alias_bombs_are_refused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    lines = ["a0: &a0 {x: y, z: w}"]
    for i in range(1, 20):
        lines.append(f"a{i}: &a{i} {{l: *a{i - 1}, r: *a{i - 1}}}")
    plugin = write_i18n(tmp_path / "p", {"en.yaml": "\n".join(lines) + "\n"})
    with caplog.at_level(logging.WARNING, logger="goatkit"):
        tr = load_translations(plugin, None)
    assert tr.languages == ()
    assert any("more than 10000 keys; the file is ignored" in m for m in goatkit_logs(caplog))


def test_language_spellings_are_merged(tmp_path: Path) -> None:
    plugin = write_i18n(tmp_path / "p", {"pt-BR.yaml": "a: Olá\n", "pt_BR.yml": "b: Tchau\n"})
    tr = load_translations(plugin, I18n(translations={"pt_br": {"c": "Oi"}}))
    assert len(tr.languages) == 1
    assert [tr.gettext(k, "pt-BR") for k in "abc"] == ["Olá", "Tchau", "Oi"]


# --- lookups -----------------------------------------------------------------------------------


@pytest.fixture
def tr() -> Translations:
    return Translations(
        {
            "en": {"hello": "Hello", "bye": "Bye", "only_en": "English only"},
            "de": {"hello": "Hallo", "bye": "Tschüss"},
            "de-AT": {"hello": "Servus"},
        }
    )


@pytest.mark.parametrize(
    ("key", "locale", "expected"),
    [
        ("hello", "de-AT", "Servus"),
        ("hello", "de_at", "Servus"),
        ("bye", "de-AT", "Tschüss"),  # not in de-AT: de
        ("only_en", "de-AT", "English only"),  # nor in de: en
        ("nowhere", "de-AT", "nowhere"),  # nowhere: the key
        ("hello", "fr", "Hello"),
        ("hello", None, "Hello"),
        ("hello", "", "Hello"),
        ("hello", "DE", "Hallo"),
    ],
)
def test_locale_falls_back_to_the_language_then_english_then_the_key(
    tr: Translations, key: str, locale: str | None, expected: str
) -> None:
    assert tr.gettext(key, locale) == expected


def test_params_fill_placeholders_and_never_raise() -> None:
    tr = Translations({"en": {"greet": "Hello {name}, you have {count} messages {missing}"}})
    assert tr.gettext("greet", "en", name="Ada", count=3) == (
        "Hello Ada, you have 3 messages {missing}"
    )
    assert format_text("{n:>3}|{n!r}", {"n": 7}) == "  7|7"
    assert format_text("{0} and {} and {x.y} and {x[0]}", {"x": "abc"}) == (
        "{0} and {} and {x.y} and {x[0]}"
    )
    assert format_text("unbalanced { brace", {"x": 1}) == "unbalanced { brace"
    assert format_text("{n:d}", {"n": "not a number"}) == "{n:d}"
    assert format_text("{{literal}} {v}", {"v": 1}) == "{literal} 1"
    assert format_text("no placeholders", {"v": 1}) == "no placeholders"


def test_ngettext_picks_by_count_and_passes_n() -> None:
    tr = Translations({"en": {"one": "{n} ticket", "many": "{n} tickets"}})
    assert tr.ngettext("one", "many", 1, "en") == "1 ticket"
    assert tr.ngettext("one", "many", 5, "de") == "5 tickets"


# --- negotiation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "en"),
        ("", "en"),
        ("de", "de"),
        ("de-AT,de;q=0.9,en;q=0.8", "de-AT"),
        ("de-CH,en;q=0.5", "de"),  # de-CH is not available: de, before the q=0.5 en
        ("fr;q=0.9,de;q=0.95", "de"),  # by quality, not by order
        ("fr;q=0.5,en-GB;q=0.5", "fr"),  # equal quality: header order
        ("de;q=0,fr", "fr"),  # q=0 means "not this one"
        ("it,es", "en"),  # nothing acceptable: the default
        ("*", "en"),
        ("FR", "fr"),  # spelled as available
        ("pt", "pt-BR"),  # a variant of the asked language
        ("pt-PT", "pt-BR"),
        ("de;q=abc,fr;q=2,es;q=0.1,!!,de-AT", "de-AT"),  # malformed entries are skipped
    ],
)
def test_negotiate_locale(header: str | None, expected: str) -> None:
    available = ["en", "de", "de-AT", "fr", "pt-BR"]
    assert negotiate_locale(header, available) == expected


def test_negotiate_locale_default_and_empty_available() -> None:
    assert negotiate_locale("de", [], default="en") == "en"
    assert negotiate_locale("it", ["de"], default="de") == "de"
