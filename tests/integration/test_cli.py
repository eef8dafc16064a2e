"""The command line: loading and exporting drafts, demo accounts, verifying the log, creating an admin."""

from __future__ import annotations

import shutil
import tomllib

import pytest
from sqlalchemy import func, select, text
from werkzeug.security import check_password_hash

from app.accounts.models import Membership, Role, User
from app.audit.models import PublicationLogEntry
from app.db import db
from app.drafting.models import Clause, Code, Version
from tests.conftest import ROOT, _empty_all_tables

DRAFTS = ROOT / "drafts"


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def row_counts(session) -> dict[str, int]:
    session.expire_all()
    return {t.name: session.scalar(select(func.count()).select_from(t)) for t in db.metadata.sorted_tables}


def code_snapshot(session, slug: str) -> dict:
    """Everything about a code that a round trip through a folder must keep."""
    session.expire_all()
    code = session.scalars(select(Code).where(Code.slug == slug)).one()
    log = {
        e.version_number: (e.seq, e.content_sha256, e.published_at, e.previous_hash, e.entry_hash)
        for e in session.scalars(select(PublicationLogEntry).where(PublicationLogEntry.code_slug == slug))
    }
    return {
        "code": (
            code.title,
            code.language,
            code.status,
            code.summary,
            code.working_group.slug,
            code.working_group.name,
        ),
        "versions": [
            (v.number, v.label, v.change_summary, v.content_sha256, v.created_at, v.published_at, v.word_count)
            for v in code.versions
        ],
        "clauses": [[(c.key, c.content_sha256) for c in v.clauses] for v in code.versions],
        "log": log,
    }


def test_loading_the_demo_drafts_creates_two_codes_and_five_versions_and_a_second_load_changes_nothing(runner, session):
    result = runner.invoke(args=["drafts", "load", str(DRAFTS)])

    assert result.exit_code == 0, result.output
    assert "2 code(s) and 5 version(s) created, 4 published" in result.stdout
    assert "Loading versions" in result.stderr  # progress, on stderr so that the summary can be piped
    counts = row_counts(session)
    assert counts["codes"] == 2
    assert counts["versions"] == 5
    assert counts["publication_log"] == 4
    assert counts["working_groups"] == 2
    assert session.scalars(select(Code.slug).order_by(Code.slug)).all() == ["gpai-code", "uppforandekod-ai"]
    third = session.scalars(select(Version).join(Code).where(Code.slug == "gpai-code", Version.number == 3)).one()
    assert not third.is_published
    clauses_per_version = session.execute(select(Clause.version_id, func.count()).group_by(Clause.version_id)).all()
    assert len(clauses_per_version) == 5
    assert all(count > 3 for _, count in clauses_per_version)

    again = runner.invoke(args=["drafts", "load", str(DRAFTS)])

    assert again.exit_code == 0, again.output
    assert "0 code(s) and 0 version(s) created, 0 published, 5 already present" in again.stdout
    assert row_counts(session) == counts


def test_an_exported_code_loads_into_an_empty_database_with_identical_hashes(runner, session, tmp_path):
    assert runner.invoke(args=["drafts", "load", str(DRAFTS)]).exit_code == 0
    before = code_snapshot(session, "gpai-code")
    folder = tmp_path / "gpai-code"

    exported = runner.invoke(args=["drafts", "export", "gpai-code", str(folder)])

    assert exported.exit_code == 0, exported.output
    assert sorted(p.name for p in folder.iterdir()) == ["code.toml", "v1.md", "v2.md", "v3.md"]
    assert (folder / "v2.md").read_text(encoding="utf-8") == (DRAFTS / "gpai-code" / "v2.md").read_text(
        encoding="utf-8"
    )
    session.rollback()
    _empty_all_tables()
    assert row_counts(session)["codes"] == 0

    loaded = runner.invoke(args=["drafts", "load", str(folder)])

    assert loaded.exit_code == 0, loaded.output
    assert code_snapshot(session, "gpai-code") == before


def test_export_of_an_unknown_code_fails_with_a_message(runner, tmp_path):
    result = runner.invoke(args=["drafts", "export", "no-such-code", str(tmp_path / "out")])

    assert result.exit_code == 1
    assert "No code with the short name 'no-such-code'." in result.output
    assert not (tmp_path / "out").exists()


def test_loading_a_changed_version_file_fails_with_a_clear_message_and_changes_nothing(runner, session, tmp_path):
    drafts = tmp_path / "drafts"
    shutil.copytree(DRAFTS, drafts)
    assert runner.invoke(args=["drafts", "load", str(drafts)]).exit_code == 0
    counts = row_counts(session)
    # A new fourth version of the first code, which is read first, and a rewritten first version of the second.
    gpai = drafts / "gpai-code"
    (gpai / "v4.md").write_text("# Fourth draft {#title}\n\nNew.\n", encoding="utf-8")
    meta = (gpai / "code.toml").read_text(encoding="utf-8")
    meta += '\n[[versions]]\nnumber = 4\nfile = "v4.md"\nlabel = "Fourth"\ncreated_at = "2025-05-01T10:00:00Z"\n'
    (gpai / "code.toml").write_text(meta, encoding="utf-8")
    assert [v["number"] for v in tomllib.loads(meta)["versions"]] == [1, 2, 3, 4]
    changed = drafts / "uppforandekod-ai" / "v1.md"
    changed.write_text(changed.read_text(encoding="utf-8") + "\nA sentence added afterwards.\n", encoding="utf-8")

    result = runner.invoke(args=["drafts", "load", str(drafts)])

    assert result.exit_code == 1
    assert "uppforandekod-ai v1 is stored with a different text" in result.output
    assert "versions are immutable, so add a new version instead" in result.output
    assert row_counts(session) == counts


def test_demo_seed_creates_seven_accounts_with_their_roles_once(runner, group, session):
    result = runner.invoke(args=["demo", "seed"])

    assert result.exit_code == 0, result.output
    assert "7 demo account(s) created." in result.stdout
    assert session.scalar(select(func.count()).select_from(User)) == 7
    roles = dict(session.execute(select(User.email, Membership.role).join(Membership.user)).all())
    assert roles == {
        "chair@accord.example": Role.CHAIR,
        "vicechair@accord.example": Role.VICE_CHAIR,
        "editor@accord.example": Role.EDITOR,
        "member@accord.example": Role.MEMBER,
        "observer@accord.example": Role.OBSERVER,
    }
    admin = session.scalars(select(User).where(User.email == "admin@accord.example")).one()
    assert admin.is_admin
    assert check_password_hash(admin.password_hash, "accord-demo")

    again = runner.invoke(args=["demo", "seed"])
    assert "0 demo account(s) created." in again.stdout
    assert session.scalar(select(func.count()).select_from(User)) == 7


def test_audit_verify_passes_then_names_the_entry_whose_text_was_tampered_with(runner, session):
    assert runner.invoke(args=["drafts", "load", str(DRAFTS)]).exit_code == 0

    intact = runner.invoke(args=["audit", "verify"])

    assert intact.exit_code == 0, intact.output
    assert "Publication log verified: 4 entries, chain intact." in intact.stdout

    session.execute(
        text(
            "UPDATE versions SET markdown = :markdown WHERE number = 2 "
            "AND code_id = (SELECT id FROM codes WHERE slug = 'gpai-code')"
        ),
        {"markdown": "# Quietly rewritten {#title}\n"},
    )
    session.commit()

    tampered = runner.invoke(args=["audit", "verify"])

    assert tampered.exit_code == 1
    assert "PROBLEM: entry 2 (gpai-code v2): the version's text differs from what was published" in tampered.stderr
    assert "entry 1 " not in tampered.stderr


def test_create_admin_creates_a_site_admin(runner, session):
    result = runner.invoke(
        args=["create-admin", "--email", "a@b.eu", "--name", "A", "--password", "long enough password"]
    )

    assert result.exit_code == 0, result.output
    assert "Created site admin a@b.eu." in result.stdout
    admin = session.scalars(select(User).where(User.email == "a@b.eu")).one()
    assert admin.is_admin
    assert admin.display_name == "A"
    assert check_password_hash(admin.password_hash, "long enough password")


def test_create_admin_refuses_a_short_password(runner, session):
    result = runner.invoke(args=["create-admin", "--email", "a@b.eu", "--name", "A", "--password", "short"])

    assert result.exit_code == 1
    assert "Use a password of at least 10 characters." in result.output
    assert session.scalar(select(func.count()).select_from(User)) == 0


def test_create_admin_promotes_an_existing_account(runner, make_user, session):
    user = make_user(email="someone@example.org")

    result = runner.invoke(
        args=["create-admin", "--email", "someone@example.org", "--name", "S", "--password", "long enough password"]
    )

    assert result.exit_code == 0, result.output
    session.expire_all()
    assert session.get(User, user.id).is_admin
