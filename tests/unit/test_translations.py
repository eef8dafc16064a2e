"""Checks that every translation catalogue is complete and consistent.

A catalogue fails if a message is untranslated or fuzzy, if a translation
drops or invents a ``%(name)s`` placeholder, or if it is missing msgids that
are in ``messages.pot`` (i.e. it was not updated after extraction).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.pofile import read_po

TRANSLATIONS = Path(__file__).resolve().parents[2] / "app" / "translations"
TEMPLATE = TRANSLATIONS / "messages.pot"
CATALOGUES = sorted(TRANSLATIONS.glob("*/LC_MESSAGES/*.po"))

# Named printf-style placeholders: %(name)s, %(count)d, %(value).2f …
PLACEHOLDER = re.compile(r"%\((\w+)\)[#0 +-]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa]")


def _read(path: Path) -> Catalog:
    with path.open("rb") as f:
        return read_po(f)


def _as_tuple(value: str | tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def _placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


def _messages(catalogue: Catalog) -> list[Message]:
    """Every real message (not the header entry)."""
    return [m for m in catalogue if m.id]


def _label(message: Message) -> str:
    return repr(_as_tuple(message.id)[0])


def test_catalogues_exist() -> None:
    assert TEMPLATE.is_file(), f"{TEMPLATE} is missing"
    assert CATALOGUES, f"no .po files under {TRANSLATIONS}/*/LC_MESSAGES/"


@pytest.mark.parametrize("path", CATALOGUES, ids=lambda p: p.parent.parent.name)
def test_header_is_not_fuzzy(path: Path) -> None:
    catalogue = _read(path)
    assert not catalogue.fuzzy, f"{path}: the header entry is marked fuzzy"
    assert catalogue.locale is not None, f"{path}: the header has no Language"


@pytest.mark.parametrize("path", CATALOGUES, ids=lambda p: p.parent.parent.name)
def test_every_message_is_translated(path: Path) -> None:
    untranslated = [
        _label(m)
        for m in _messages(_read(path))
        if not _as_tuple(m.string) or not all(s.strip() for s in _as_tuple(m.string))
    ]
    assert not untranslated, f"{path}: untranslated messages: " + ", ".join(untranslated)


@pytest.mark.parametrize("path", CATALOGUES, ids=lambda p: p.parent.parent.name)
def test_no_message_is_fuzzy(path: Path) -> None:
    fuzzy = [_label(m) for m in _messages(_read(path)) if m.fuzzy]
    assert not fuzzy, f"{path}: fuzzy messages: " + ", ".join(fuzzy)


@pytest.mark.parametrize("path", CATALOGUES, ids=lambda p: p.parent.parent.name)
def test_placeholders_match(path: Path) -> None:
    problems = []
    for message in _messages(_read(path)):
        expected = set().union(*(_placeholders(s) for s in _as_tuple(message.id)))
        for index, translation in enumerate(_as_tuple(message.string)):
            if not translation:
                continue  # reported by test_every_message_is_translated
            found = _placeholders(translation)
            if found != expected:
                where = f"[{index}]" if message.pluralizable else ""
                problems.append(f"{_label(message)}{where}: expected {sorted(expected)}, got {sorted(found)}")
    assert not problems, f"{path}: placeholder mismatch:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("path", CATALOGUES, ids=lambda p: p.parent.parent.name)
def test_catalogue_is_up_to_date_with_template(path: Path) -> None:
    template_ids = {_as_tuple(m.id)[0] for m in _messages(_read(TEMPLATE))}
    catalogue_ids = {_as_tuple(m.id)[0] for m in _messages(_read(path))}
    missing = sorted(template_ids - catalogue_ids)
    assert not missing, f"{path}: msgids in messages.pot but not in the catalogue (run pybabel update): " + ", ".join(
        map(repr, missing)
    )
