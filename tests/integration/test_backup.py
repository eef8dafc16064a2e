"""`flask backup`: an online backup under concurrent writes restores into a fresh database with every row."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import Engine, create_engine, inspect, select, text, update
from sqlalchemy.orm import Session

from app import create_app
from app.accounts import service as accounts
from app.accounts.models import Role, StakeholderCategory, User, WorkingGroup
from app.audit.models import AuditEvent
from app.backup import sqlite_backup
from app.backup.manifest import MANIFEST
from app.backup.postgres_backup import client_tool, server_major
from app.collab import service as collab
from app.comments import service as comments
from app.comments.models import Comment
from app.consensus import service as consensus
from app.consensus.tally import Thresholds
from app.db import db, utcnow
from app.drafting import service as drafting
from app.drafting.models import Code
from app.outbox.models import OutboxMessage
from app.search.indexer import indexer
from app.search.query import SearchRequest
from app.search.service import backend_for
from tests.conftest import POSTGRES_ADMIN_URL, SAMPLE_VERSIONS, require_postgres, scratch_postgres_database
from tests.integration.test_migrations import MIGRATIONS, revisions

HOUR = dt.timedelta(hours=1)
WRITE_ACTION = "backup-test.write"
# The tables the data set below fills; every table in the database is compared, these must also hold rows.
FILLED = {
    "users", "working_groups", "memberships", "invitations", "codes", "versions", "clauses", "publication_log",
    "audit_events", "outbox", "search_queue", "collab_documents", "collab_updates", "comments",
    "comment_revisions", "comment_anchors", "intake_attempts", "notifications", "forums", "forum_members",
    "consensus_rounds", "positions", "position_revisions", "consensus_calls", "alembic_version",
}  # fmt: skip
# Rebuilt from the other tables by the restore (PostgreSQL search backend), so not expected byte for byte.
DERIVED = {"search_documents", "search_matches"}
SEARCHED_WORDS = "interoperable watermarking"


# --- a database of each kind, empty, for restoring into -------------------------------------------


@pytest.fixture
def fresh_database_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A new database of the same kind as `database_url`, with no tables at all."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path}/restored-{uuid.uuid4().hex[:8]}.sqlite3"
        return
    with scratch_postgres_database("accord_restore") as url:
        yield url


def app_for(url: str, index: Path) -> Flask:
    return create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": url,
            "SECRET_KEY": "test-secret",
            "SEARCH_INDEX_DIR": str(index),
            "SEARCH_INDEXER_THREAD": False,
        }
    )


def invoke(app: Flask, *args: str) -> Any:
    """Run `flask <args>` against `app`.

    Its own app context is pushed first: Flask's CLI reuses whichever app context is current, and the test's
    fixture keeps the source database's app pushed.
    """
    with app.app_context():
        try:
            return app.test_cli_runner().invoke(args=list(args))
        finally:
            db.session.remove()


def dispose(app: Flask) -> None:
    with app.app_context():
        db.engine.dispose()


# --- data of every kind ---------------------------------------------------------------------------


def fill_every_table(app: Flask, session: Session, make_user: Callable[..., User], make_code: Callable[..., Code],
                     group: WorkingGroup) -> int:  # fmt: skip
    """Write users, groups, codes, comments, positions, collaboration, mail and audit rows through the services.

    Returns the id of an outbox row that the concurrent writer uses as a counter.
    """
    code = make_code(versions=2, published=2)
    chair = make_user(Role.CHAIR, group)
    member = make_user(Role.MEMBER, group, category=StakeholderCategory.GPAI_PROVIDER, organisation="ModelCo")
    author = make_user(category=StakeholderCategory.ACADEMIA, organisation="University")
    admin = make_user(admin=True)
    accounts.create_invitation(session, chair, group, Role.EDITOR, email="invitee@example.org")
    session.commit()

    now = utcnow()
    code.consultation_opens_at, code.consultation_closes_at = now - HOUR, now + HOUR
    v1, v2 = code.versions
    remark = comments.Submission(clause_key="c-2", body=f"Opt-outs need {SEARCHED_WORDS}.", idempotency_key="key-0001")
    receipt = comments.submit_comment(session, author, v1, remark)
    session.commit()
    first = session.get(Comment, receipt.comment_id)
    assert first is not None
    comments.submit_comment(
        session, member, v1,
        comments.Submission(clause_key="c-2", body="Agreed.", idempotency_key="key-0002", parent_id=first.id),
    )  # fmt: skip
    comments.note_attempt(session, author, "key-0003")
    comments.edit_comment(session, author, first, f"Opt-outs need {SEARCHED_WORDS} standards.", None)
    comments.record_disposition(session, chair, first, "partially_accepted", "In part.", addressed_in=v2)
    session.commit()
    # A third version re-anchors the open comments into it.
    drafting.cut_version(session, chair, code, label="Draft 3", markdown=SAMPLE_VERSIONS[2])
    collab.write_whole_text(session, code, SAMPLE_VERSIONS[2] + "\nA sentence typed live.\n", chair.id)
    session.commit()

    forum = consensus.create_forum(session, chair, slug="plenary", name="Plenary", kind="plenary", working_group=group)
    consensus.add_member(session, chair, forum, member)
    round_ = consensus.create_round(
        session, chair, forum, v2,
        consensus.RoundRules(title="Round 1", opens_at=now - HOUR, closes_at=now + HOUR,
                             thresholds=Thresholds(min_participants=1, min_category_answers=1)),
    )  # fmt: skip
    consensus.record_position(session, member, round_, consensus.PositionInput(clause_key="c-1", stance="support"))
    consensus.record_position(
        session, member, round_,
        consensus.PositionInput(clause_key="c-1", stance="oppose", serious_objection=True, rationale="Too vague."),
    )  # fmt: skip
    consensus.record_call(
        session, chair, round_, consensus.CallInput(clause_key="c-1", level="contested", outcome="Not yet.")
    )
    counter = OutboxMessage(kind="backup-test-counter", recipient=admin.email, subject="counter", body="", payload={})
    session.add(counter)
    session.commit()

    # The PostgreSQL backend keeps its index in the database: fill it, then leave one change queued.
    indexer.drain(app)
    comments.edit_comment(session, author, first, f"Opt-outs need {SEARCHED_WORDS} standards, soon.", None)
    session.commit()
    return counter.id


# --- a writer that keeps committing while the backup runs -----------------------------------------


class Writer(threading.Thread):
    """Commit, again and again, one audit event and one outbox message and bump a counter, all in one transaction.

    A consistent snapshot then holds the writes 0..k-1 for some k, each with both of its rows, and the counter
    at exactly k.
    """

    def __init__(self, engine: Engine, counter_id: int) -> None:
        super().__init__(name="backup-test-writer", daemon=True)
        self.engine, self.counter_id = engine, counter_id
        self.committed = 0
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                i = self.committed
                with Session(self.engine) as session, session.begin():
                    session.add(AuditEvent(actor_label="writer", action=WRITE_ACTION, object_type="test",
                                           object_id=str(i), detail={"i": i}))  # fmt: skip
                    session.add(OutboxMessage(kind="backup-test", subject=f"write {i}", body="", payload={"i": i}))
                    session.execute(
                        update(OutboxMessage)
                        .where(OutboxMessage.id == self.counter_id)
                        .values(attempts=OutboxMessage.attempts + 1)
                    )
                self.committed = i + 1
                time.sleep(0.002)
        except BaseException as error:  # reported by the test, not lost in the thread
            self.error = error

    def wait_for(self, count: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.committed < count and self.error is None and time.monotonic() < deadline:
            time.sleep(0.005)

    def stop(self) -> None:
        self.stopping.set()
        self.join(30)
        assert self.error is None, self.error


# --- comparing databases --------------------------------------------------------------------------


def table_rows(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table, as the database driver returns them (no model types in between)."""
    with engine.connect() as connection:
        names = inspect(connection).get_table_names()
        return {
            name: [dict(row._mapping) for row in connection.execute(text(f'SELECT * FROM "{name}"'))]  # noqa: S608
            for name in names
        }


def canonical(rows: list[dict[str, Any]]) -> list[str]:
    return sorted(repr(sorted(row.items())) for row in rows)


def writes_in(rows: dict[str, list[dict[str, Any]]]) -> tuple[set[int], set[int]]:
    """The writer's iterations found among the audit events and among the outbox messages."""
    events = {int(r["object_id"]) for r in rows["audit_events"] if r["action"] == WRITE_ACTION}
    mails = {int(_payload(r)["i"]) for r in rows["outbox"] if r["kind"] == "backup-test"}
    return events, mails


def as_of_snapshot(rows: dict[str, list[dict[str, Any]]], counter_id: int, writes: int, total: int) -> None:
    """Turn the source's final rows into what they were when only the first `writes` of `total` had committed."""
    rows["audit_events"] = [
        r for r in rows["audit_events"] if r["action"] != WRITE_ACTION or int(r["object_id"]) < writes
    ]
    rows["outbox"] = [r for r in rows["outbox"] if r["kind"] != "backup-test" or _payload(r)["i"] < writes]
    for row in rows["outbox"]:
        if row["id"] == counter_id:
            row["attempts"] -= total - writes


def _payload(row: dict[str, Any]) -> dict[str, Any]:
    # SQLite hands JSON back as text, psycopg as a decoded object.
    return json.loads(row["payload"]) if isinstance(row["payload"], str) else dict(row["payload"])


# --- the tests ------------------------------------------------------------------------------------


def test_a_backup_taken_under_concurrent_writes_restores_every_table_into_a_fresh_database(
    app, session, make_user, make_code, group, fresh_database_url, tmp_path, monkeypatch
):
    counter_id = fill_every_table(app, session, make_user, make_code, group)
    # One page per step, so the writer commits between the steps of SQLite's copy, not only before or after it.
    monkeypatch.setattr(sqlite_backup, "PAGES_PER_STEP", 1)
    db.session.remove()
    source_engine = db.engine
    writer = Writer(source_engine, counter_id)
    writer.start()
    try:
        writer.wait_for(20)
        before = writer.committed
        started = time.monotonic()
        created = invoke(app, "backup", "create", "--output", str(tmp_path / "backups"))
        backup_seconds = time.monotonic() - started
        during = writer.committed - before
        writer.wait_for(writer.committed + 10)
    finally:
        writer.stop()

    assert created.exit_code == 0, created.output
    assert "Backup written to" in created.output
    assert during > 0, "the writer kept committing while the backup ran"
    [folder] = list((tmp_path / "backups").iterdir())
    assert not folder.name.endswith(".partial")
    manifest = json.loads((folder / MANIFEST).read_text())
    kind = "sqlite" if fresh_database_url.startswith("sqlite") else "postgresql"
    assert manifest["database_kind"] == kind
    assert manifest["alembic_revision"] == revisions()[-1]
    assert manifest["created_at"].endswith("Z")
    assert [f["name"] for f in manifest["files"]] == [f"database.{'sqlite3' if kind == 'sqlite' else 'pgdump'}"]
    snapshot_writes = manifest["row_counts"]["audit_events"] - sum(
        1 for r in table_rows(source_engine)["audit_events"] if r["action"] != WRITE_ACTION
    )
    assert before <= snapshot_writes <= writer.committed

    restored_app = app_for(fresh_database_url, tmp_path / "restored-index")
    restored_engine = create_engine(fresh_database_url)
    try:
        started = time.monotonic()
        restored = invoke(restored_app, "backup", "restore", str(folder))
        restore_seconds = time.monotonic() - started
        assert restored.exit_code == 0, restored.output
        assert "matching the manifest" in restored.output

        got = table_rows(restored_engine)
        expected = table_rows(source_engine)
        # Consistency: the writes in the snapshot are exactly the first k, each with both rows and the counter.
        events, mails = writes_in(got)
        k = len(events)
        assert events == mails == set(range(k))
        assert k == snapshot_writes
        as_of_snapshot(expected, counter_id, k, writer.committed)

        assert set(got) == set(expected)
        assert {name: len(rows) for name, rows in got.items() if name not in DERIVED} == {
            name: count for name, count in manifest["row_counts"].items() if name not in DERIVED
        }
        assert {name: len(rows) for name, rows in expected.items()} == manifest["row_counts"]
        empty = sorted(name for name in FILLED if not expected[name])
        assert empty == [], f"the data set should fill every table: {empty} are empty"
        for name in sorted(set(expected) - DERIVED):
            assert canonical(got[name]) == canonical(expected[name]), f"table {name} differs after the restore"

        with restored_app.app_context():
            # The restore rebuilt the index (whoosh on disk, or PostgreSQL's table), including the change that
            # was still queued at backup time.
            results = backend_for(restored_app).search(SearchRequest(text=f"{SEARCHED_WORDS} soon", audiences=None))
            assert [hit.kind for hit in results.hits] == ["comment"]
            # Identity sequences came back too: the restored database takes new rows.
            db.session.add(User(email="after@example.org", password_hash="x", display_name="After",
                                category=StakeholderCategory.OTHER))  # fmt: skip
            db.session.commit()
            db.session.remove()

        again = invoke(restored_app, "backup", "restore", str(folder))
        assert again.exit_code != 0
        [line] = again.output.strip().splitlines()
        assert line.startswith("Error: Refusing to restore: the database")
        assert "is not empty" in line
    finally:
        restored_engine.dispose()
        dispose(restored_app)
    print(
        f"\n{kind}: {sum(manifest['row_counts'].values())} rows in {len(manifest['row_counts'])} tables; "
        f"backup {backup_seconds:.2f} s with {during} concurrent commits, snapshot at write {k}; "
        f"restore {restore_seconds:.2f} s"
    )


def test_a_damaged_backup_is_refused_before_anything_is_restored(
    app, session, make_user, make_code, group, fresh_database_url, tmp_path
):
    make_code(versions=1, published=1)
    created = invoke(app, "backup", "create", "--output", str(tmp_path / "backups"))
    assert created.exit_code == 0, created.output
    [folder] = list((tmp_path / "backups").iterdir())
    [dump] = [p for p in folder.iterdir() if p.name != MANIFEST]
    data = bytearray(dump.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dump.write_bytes(bytes(data))
    restored_app = app_for(fresh_database_url, tmp_path / "restored-index")

    result = invoke(restored_app, "backup", "restore", str(folder))
    verified = invoke(restored_app, "backup", "verify", str(folder))

    try:
        assert result.exit_code == 1
        assert f"{dump.name} does not match its SHA-256 in the manifest" in result.output
        assert verified.exit_code == 1
        assert "the backup is damaged" in verified.output
        engine = create_engine(fresh_database_url)
        with engine.connect() as connection:
            assert inspect(connection).get_table_names() == []
        engine.dispose()
    finally:
        dispose(restored_app)


def backed_up_sqlite(tmp_path: Path, revision: str = "head") -> Path:
    """Back up a small SQLite database migrated to `revision`, holding one working group; return the folder."""
    source = app_for(f"sqlite:///{tmp_path}/source.sqlite3", tmp_path / "source-index")
    with source.app_context():
        upgrade(directory=MIGRATIONS, revision=revision)
        db.session.execute(
            text("INSERT INTO working_groups (slug, name, created_at) VALUES ('wg-old', 'Old', '2025-01-15 09:30:00')")
        )
        db.session.commit()
        db.session.remove()
    created = invoke(source, "backup", "create", "--output", str(tmp_path / "backups"))
    dispose(source)
    assert created.exit_code == 0, created.output
    [folder] = list((tmp_path / "backups").iterdir())
    return folder


def rewrite_manifest(folder: Path, **changes: object) -> None:
    manifest = json.loads((folder / MANIFEST).read_text())
    (folder / MANIFEST).write_text(json.dumps({**manifest, **changes}))


def test_a_backup_of_a_schema_this_release_does_not_know_is_refused_before_restoring(tmp_path):
    folder = backed_up_sqlite(tmp_path)
    rewrite_manifest(folder, alembic_revision="ffffffffffff")
    target = app_for(f"sqlite:///{tmp_path}/target.sqlite3", tmp_path / "index")

    result = invoke(target, "backup", "restore", str(folder))

    dispose(target)
    assert result.exit_code == 1
    assert "schema revision ffffffffffff, which this version of Accord does not know" in result.output
    assert not (tmp_path / "target.sqlite3").exists()


def test_a_sqlite_backup_is_not_restored_into_postgresql(tmp_path):
    folder = backed_up_sqlite(tmp_path)
    # The kind is checked before connecting, so this database need not exist.
    target = app_for("postgresql+psycopg://postgres@127.0.0.1:5432/accord_never_created", tmp_path / "index")

    result = invoke(target, "backup", "restore", str(folder))

    dispose(target)
    assert result.exit_code == 1
    assert "restore SQLite backups into SQLite and PostgreSQL backups into PostgreSQL" in result.output


def test_a_backup_of_an_older_schema_is_restored_and_upgraded_to_the_current_one(tmp_path):
    folder = backed_up_sqlite(tmp_path, revision=revisions()[0])
    assert json.loads((folder / MANIFEST).read_text())["alembic_revision"] == revisions()[0]
    new = app_for(f"sqlite:///{tmp_path}/new.sqlite3", tmp_path / "new-index")

    result = invoke(new, "backup", "restore", str(folder))

    assert result.exit_code == 0, result.output
    assert f"then upgraded to {revisions()[-1]}" in result.output
    with new.app_context():
        assert db.session.scalar(text("SELECT version_num FROM alembic_version")) == revisions()[-1]
        assert db.session.scalars(select(WorkingGroup.slug)).all() == ["wg-old"]
        db.session.remove()
        db.engine.dispose()


def test_without_pg_dump_the_backup_says_what_to_install_and_leaves_nothing_behind(tmp_path, monkeypatch):
    require_postgres()
    # The server is asked its version before pg_dump is looked for; no tables are needed for that.
    source = app_for(POSTGRES_ADMIN_URL, tmp_path / "index")
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))

    result = invoke(source, "backup", "create", "--output", str(tmp_path / "backups"))

    dispose(source)
    assert result.exit_code == 1
    assert "pg_dump was not found on PATH: install the PostgreSQL client tools" in result.output
    assert list((tmp_path / "backups").iterdir()) == []


def test_the_installed_pg_dump_and_pg_restore_can_work_with_this_server():
    require_postgres()
    engine = create_engine(POSTGRES_ADMIN_URL)
    with engine.connect() as connection:
        major = server_major(connection)
    engine.dispose()
    for tool in ("pg_dump", "pg_restore"):
        path, version = client_tool(tool, major)
        assert shutil.which(tool) == path
        assert int(version.split(".")[0]) >= major
