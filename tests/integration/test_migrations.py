"""Alembic migrations on a fresh SQLite file and a fresh PostgreSQL database, with data in them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask_migrate import downgrade, upgrade
from sqlalchemy import DateTime, bindparam, inspect, text

from app import create_app
from app.accounts.models import Role, StakeholderCategory, User
from app.audit.chain import GENESIS_HASH, content_hash, entry_hash
from app.audit.service import verify_publication_log
from app.db import db
from app.drafting import service as drafting
from app.drafting.models import Code
from tests.conftest import ROOT, scratch_postgres_database

MIGRATIONS = str(ROOT / "migrations")
WHEN = dt.datetime(2025, 1, 15, 9, 30, tzinfo=dt.UTC)
MARKDOWN = "# Old code {#title}\n\nWritten before the upgrade.\n\n## Scope {#c-1}\n\nAll providers.\n"


def revisions() -> list[str]:
    """Return every revision id from the first to the head."""
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    script = ScriptDirectory.from_config(config)
    assert len(script.get_heads()) == 1, "the migrations have a single head"
    return [revision.revision for revision in reversed(list(script.walk_revisions()))]


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """An empty database of each kind with no tables at all."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/migrations.sqlite3"
        return
    with scratch_postgres_database("accord_migrations") as url:
        yield url


@pytest.fixture
def migration_app(empty_database: str, tmp_path):
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": empty_database,
            "TESTING": True,
            "SECRET_KEY": "test-secret",
            "SEARCH_INDEX_DIR": str(tmp_path / "index"),
            # No indexer thread: it would index the database while a test downgrades it.
            "SEARCH_INDEXER_THREAD": False,
        }
    )
    with app.app_context():
        try:
            yield app
        finally:
            db.session.remove()
            db.engine.dispose()


def _insert(sql: str, **values) -> int:
    statement = text(sql).bindparams(
        *(
            bindparam(name, type_=DateTime(timezone=True))
            for name, value in values.items()
            if isinstance(value, dt.datetime)
        )
    )
    return db.session.execute(statement, values).scalar_one()


def insert_data_at_first_revision() -> None:
    """Write a user, a group, a membership, a code, a published version and its log entry with plain SQL."""
    user_id = _insert(
        "INSERT INTO users (email, password_hash, display_name, organisation, category, is_admin, "
        "session_generation, created_at) VALUES (:email, 'x', 'Old User', NULL, 'academia', :admin, 1, :at) "
        "RETURNING id",
        email="old@example.org",
        admin=False,
        at=WHEN,
    )
    group_id = _insert(
        "INSERT INTO working_groups (slug, name, created_at) VALUES ('wg-old', 'Old group', :at) RETURNING id", at=WHEN
    )
    _insert(
        "INSERT INTO memberships (user_id, working_group_id, role, created_at) "
        "VALUES (:user_id, :group_id, 'chair', :at) RETURNING id",
        user_id=user_id,
        group_id=group_id,
        at=WHEN,
    )
    code_id = _insert(
        "INSERT INTO codes (slug, title, language, summary, status, working_group_id, working_text, "
        "working_revision, created_at, updated_at) VALUES ('old-code', 'Old code', 'sv', '', 'consultation', "
        ":group_id, :markdown, 3, :at, :at) RETURNING id",
        group_id=group_id,
        markdown=MARKDOWN,
        at=WHEN,
    )
    sha = content_hash(MARKDOWN)
    version_id = _insert(
        "INSERT INTO versions (code_id, number, label, change_summary, markdown, content_sha256, html, toc, "
        "word_count, author_id, created_at, published_at, published_by_id) VALUES (:code_id, 1, 'First', '', "
        ":markdown, :sha, '<h1 id=\"title\">Old code</h1>', '[]', 12, :user_id, :at, :at, :user_id) RETURNING id",
        code_id=code_id,
        markdown=MARKDOWN,
        sha=sha,
        user_id=user_id,
        at=WHEN,
    )
    link = entry_hash(
        seq=1, code_slug="old-code", version_number=1, content_sha256=sha, published_at=WHEN, previous_hash=GENESIS_HASH
    )
    _insert(
        "INSERT INTO publication_log (seq, version_id, code_slug, version_number, content_sha256, previous_hash, "
        "entry_hash, published_at) VALUES (1, :version_id, 'old-code', 1, :sha, :previous, :link, :at) RETURNING id",
        version_id=version_id,
        sha=sha,
        previous=GENESIS_HASH,
        link=link,
        at=WHEN,
    )
    db.session.commit()


def table_names() -> set[str]:
    return set(inspect(db.engine).get_table_names()) - {"alembic_version"}


def test_upgrading_a_database_with_data_keeps_it_and_downgrade_then_upgrade_works(migration_app):
    steps = revisions()
    upgrade(directory=MIGRATIONS, revision=steps[0])
    insert_data_at_first_revision()

    upgrade(directory=MIGRATIONS, revision="head")

    assert table_names() == set(db.metadata.tables)
    user = db.session.scalars(db.select(User).where(User.email == "old@example.org")).one()
    assert user.category is StakeholderCategory.ACADEMIA
    assert [(m.working_group.slug, m.role) for m in user.memberships] == [("wg-old", Role.CHAIR)]
    code = db.session.scalars(db.select(Code).where(Code.slug == "old-code")).one()
    assert code.working_revision == 3
    assert [(v.number, v.markdown, v.published_at) for v in code.versions] == [(1, MARKDOWN, WHEN)]
    assert verify_publication_log(db.session).ok
    # A code written before the upgrade still opens and cuts with the current code.
    assert drafting.working_text(db.session, code) == MARKDOWN
    version = drafting.cut_version(db.session, user, code, label="After the upgrade")
    db.session.commit()
    assert (version.number, version.markdown) == (2, MARKDOWN)

    db.session.remove()
    downgrade(directory=MIGRATIONS, revision="base")
    assert table_names() == set()

    upgrade(directory=MIGRATIONS, revision="head")
    assert table_names() == set(db.metadata.tables)
    assert db.session.scalar(text("SELECT count(*) FROM users")) == 0


def test_every_step_downgrades_and_upgrades_again(migration_app):
    steps = revisions()
    for index, revision in enumerate(steps):
        upgrade(directory=MIGRATIONS, revision=revision)
        if index:
            downgrade(directory=MIGRATIONS, revision=steps[index - 1])
            upgrade(directory=MIGRATIONS, revision=revision)
    with db.engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() == steps[-1]


def test_the_migrated_schema_matches_the_models(migration_app):
    upgrade(directory=MIGRATIONS, revision="head")

    def include_object(obj, name, type_, reflected, compare_to):
        # The PostgreSQL search backend's generated tsvector column and its GIN index exist only in the
        # database (added by the migration), not in the portable models.
        return name not in {"tsv", "ix_search_documents_tsv"}

    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"include_object": include_object})
        differences = compare_metadata(context, db.metadata)

    assert differences == []
