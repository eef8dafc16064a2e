"""Footnotes in indexed text: a clause rendered on its own keeps the notes it refers to, wherever they are."""

from __future__ import annotations

from app.drafting.clauses import split_clauses
from app.search.plain import clause_text, footnote_definitions, with_notes

DOCUMENT = """# Uppförandekod

## Omfattning {#omfattning}

Koden gäller enligt artikel 53[^art] och skäl 109[^skal].

## Upphovsrätt {#upphovsratt}

Leverantörer respekterar förbehåll[^art].

## Noter {#noter}

[^art]: Enligt artikel 53.1 c i förordningen (EU) 2024/1689.
    Med en fortsättningsrad.

[^skal]: Skäl 109.
"""


def _clauses() -> dict[str, str]:
    return {clause.key: clause.markdown for clause in split_clauses(DOCUMENT, strict=False)}


def test_a_clause_keeps_the_text_of_notes_defined_at_the_end_of_the_document():
    clauses = _clauses()
    notes = footnote_definitions(DOCUMENT)

    _title, scope = clause_text(with_notes(clauses["omfattning"], notes))
    _title, copyright_ = clause_text(with_notes(clauses["upphovsratt"], notes))

    assert "Enligt artikel 53.1 c i förordningen (EU) 2024/1689. Med en fortsättningsrad." in scope
    assert "Skäl 109." in scope
    assert "Enligt artikel 53.1 c" in copyright_
    assert "Skäl 109." not in copyright_  # only the notes a clause refers to
    assert "[^" not in scope + copyright_


def test_without_the_whole_documents_notes_the_text_would_be_lost():
    _title, alone = clause_text(_clauses()["omfattning"])

    assert "2024/1689" not in alone


def test_a_clause_that_holds_its_own_note_is_left_as_it_is():
    clause = "## A {#a}\n\nText[^1].\n\n[^1]: Its own note.\n"

    assert with_notes(clause, footnote_definitions(clause + "\n[^1]: Another note.\n")) == clause
    assert "Its own note." in clause_text(clause)[1]
