"""The publication hash chain: building, verifying and catching every kind of tampering."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.audit.chain import GENESIS_HASH, ChainLink, content_hash, entry_hash, verify_links

START = dt.datetime(2025, 3, 1, 9, 30, 0, 123456, tzinfo=dt.UTC)
PUBLISHED = [
    ("gpai-code", 1, "# Code\n\nFirst draft.\n"),
    ("gpai-code", 2, "# Code\n\nSecond draft.\n"),
    ("uppförandekod", 1, "# Kod\n\nÅtgärder för öppenhet.\n"),
    ("gpai-code", 3, "# Code\n\nThird draft.\n"),
]


def build_chain(published: list[tuple[str, int, str]] = PUBLISHED) -> list[ChainLink]:
    links: list[ChainLink] = []
    previous = GENESIS_HASH
    for seq, (slug, number, markdown) in enumerate(published, start=1):
        fields = {
            "seq": seq,
            "code_slug": slug,
            "version_number": number,
            "content_sha256": content_hash(markdown),
            "published_at": START + dt.timedelta(days=seq),
            "previous_hash": previous,
        }
        link = ChainLink(**fields, entry_hash=entry_hash(**fields))
        links.append(link)
        previous = link.entry_hash
    return links


def contents_of(published: list[tuple[str, int, str]] = PUBLISHED) -> dict[tuple[str, int], str]:
    return {(slug, number): markdown for slug, number, markdown in published}


def name(link: ChainLink) -> str:
    return f"entry {link.seq} ({link.code_slug} v{link.version_number})"


def problems_naming(report_problems: list[str], link: ChainLink) -> list[str]:
    return [problem for problem in report_problems if problem.startswith(name(link) + ":")]


def test_chain_built_with_entry_hash_verifies():
    report = verify_links(build_chain(), contents_of())

    assert report.ok
    assert report.entries == len(PUBLISHED)
    assert report.problems == []


def test_empty_chain_verifies():
    report = verify_links([])

    assert (report.ok, report.entries, report.problems) == (True, 0, [])


def test_verify_accepts_any_iterable_of_links():
    report = verify_links(iter(build_chain()))

    assert report.ok
    assert report.entries == len(PUBLISHED)


def test_first_entry_points_to_the_genesis_hash():
    first = build_chain()[0]

    assert GENESIS_HASH == "0" * 64
    assert first.previous_hash == GENESIS_HASH


def test_first_entry_pointing_elsewhere_than_genesis_is_reported():
    fields = {
        "seq": 1,
        "code_slug": "gpai-code",
        "version_number": 1,
        "content_sha256": content_hash("x"),
        "published_at": START,
        "previous_hash": "f" * 64,
    }
    link = ChainLink(**fields, entry_hash=entry_hash(**fields))

    report = verify_links([link])

    assert not report.ok
    assert report.problems == [f"{name(link)}: previous hash does not match the entry before it"]


def test_content_hash_is_sha256_of_utf8_markdown():
    assert content_hash("Åtgärder 😀") == hashlib.sha256("Åtgärder 😀".encode()).hexdigest()


# --- tampering -----------------------------------------------------------------------------------


def altered(value: object) -> object:
    if isinstance(value, int):
        return value + 10
    if isinstance(value, dt.datetime):
        return value + dt.timedelta(microseconds=1)
    if isinstance(value, str) and len(value) == 64:
        return ("1" if value[0] != "1" else "2") + value[1:]
    assert isinstance(value, str)
    return value + "-x"


FIELDS = [field.name for field in dataclasses.fields(ChainLink)]


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("index", [0, 1, 3], ids=["first", "middle", "last"])
def test_altering_any_field_of_any_entry_is_reported_naming_that_entry(field, index):
    links = build_chain()
    tampered = dataclasses.replace(links[index], **{field: altered(getattr(links[index], field))})
    links[index] = tampered

    report = verify_links(links)

    assert not report.ok
    assert problems_naming(report.problems, tampered), report.problems


@settings(max_examples=200, deadline=None)
@given(
    index=st.integers(0, len(PUBLISHED) - 1),
    field=st.sampled_from(FIELDS),
    data=st.data(),
)
def test_any_change_to_a_field_value_is_reported(index, field, data):
    links = build_chain()
    original = getattr(links[index], field)
    if isinstance(original, int):
        value = data.draw(st.integers(-(2**40), 2**40).filter(lambda v: v != original))
    elif isinstance(original, dt.datetime):
        value = data.draw(
            st.datetimes(timezones=st.just(dt.UTC)).filter(lambda v: v != original),
        )
    else:
        value = data.draw(st.text(max_size=70).filter(lambda v: v != original))
    tampered = dataclasses.replace(links[index], **{field: value})
    links[index] = tampered

    report = verify_links(links)

    assert problems_naming(report.problems, tampered), report.problems


def test_reordering_entries_is_reported():
    links = build_chain()
    links[1], links[2] = links[2], links[1]

    report = verify_links(links)

    assert not report.ok
    assert problems_naming(report.problems, links[1])
    assert f"{name(links[1])}: sequence number 3, expected 2" in report.problems


@pytest.mark.parametrize("index", [0, 1, 2])
def test_deleting_an_entry_is_reported_at_the_entry_after_the_gap(index):
    links = build_chain()
    del links[index]
    following = links[index]

    report = verify_links(links)

    assert not report.ok
    assert f"{name(following)}: previous hash does not match the entry before it" in report.problems
    assert f"{name(following)}: sequence number {index + 2}, expected {index + 1}" in report.problems


def test_deleting_the_last_entry_is_reported_when_its_version_is_still_published():
    # Only the stored published versions can reveal a truncated chain: nothing follows the last entry.
    links = build_chain()[:-1]

    report = verify_links(links, contents_of())

    assert not report.ok
    assert any("gpai-code v3" in problem for problem in report.problems), report.problems


def test_changed_stored_text_is_reported_naming_the_entry():
    links = build_chain()
    contents = contents_of()
    contents[("uppförandekod", 1)] = "# Kod\n\nÅtgärder för öppenhet, ändrade i efterhand.\n"

    report = verify_links(links, contents)

    assert report.problems == [f"{name(links[2])}: the version's text differs from what was published"]


def test_missing_stored_version_is_reported_naming_the_entry():
    links = build_chain()
    contents = contents_of()
    del contents[("gpai-code", 2)]

    report = verify_links(links, contents)

    assert report.problems == [f"{name(links[1])}: the published version is missing"]


def test_stored_texts_are_not_checked_without_contents():
    links = build_chain()

    assert verify_links(links).ok
    assert not verify_links(links, {}).ok


# --- time zones ----------------------------------------------------------------------------------


def fields_at(published_at: dt.datetime) -> dict[str, object]:
    return {
        "seq": 1,
        "code_slug": "gpai-code",
        "version_number": 1,
        "content_sha256": content_hash("text"),
        "published_at": published_at,
        "previous_hash": GENESIS_HASH,
    }


@pytest.mark.parametrize("zone", ["Europe/Stockholm", "America/Los_Angeles", "Asia/Kolkata", "Pacific/Chatham"])
def test_published_at_in_another_time_zone_hashes_like_the_same_instant_in_utc(zone):
    local = START.astimezone(ZoneInfo(zone))

    assert local.utcoffset() != dt.timedelta(0)
    assert entry_hash(**fields_at(local)) == entry_hash(**fields_at(START))


def test_chain_read_back_in_another_time_zone_still_verifies():
    links = [
        dataclasses.replace(link, published_at=link.published_at.astimezone(ZoneInfo("Europe/Stockholm")))
        for link in build_chain()
    ]

    assert verify_links(links, contents_of()).ok


@settings(max_examples=200, deadline=None)
@given(
    st.datetimes(
        min_value=dt.datetime(1970, 1, 2),
        max_value=dt.datetime(2200, 1, 1),
        timezones=st.just(dt.UTC),
    ),
    st.integers(-23 * 60, 23 * 60),
)
def test_any_fixed_offset_hashes_like_utc_and_another_instant_does_not(instant, offset_minutes):
    shifted = instant.astimezone(dt.timezone(dt.timedelta(minutes=offset_minutes)))

    assert entry_hash(**fields_at(shifted)) == entry_hash(**fields_at(instant))
    assert entry_hash(**fields_at(instant + dt.timedelta(microseconds=1))) != entry_hash(**fields_at(instant))
