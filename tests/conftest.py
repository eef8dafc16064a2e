"""Fixtures: a real database per backend (SQLite always, PostgreSQL when reachable), the app, factories."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, g, request_started
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from app import create_app
from app.accounts import service as accounts
from app.accounts.models import Role, StakeholderCategory, User, WorkingGroup
from app.db import db
from app.drafting import service as drafting
from app.drafting.models import Code, CodeStatus

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() == "true"
POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PASSWORD = "correct horse battery"
# A cheap hash for fixtures only; the services themselves hash with scrypt.
FAST_HASH = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")


def _postgres_reachable() -> str | None:
    try:
        engine = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text("select 1"))
        engine.dispose()
        return None
    except Exception as error:  # any failure to connect means: not reachable here
        return f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL} ({type(error).__name__})"


def require_postgres() -> None:
    """Skip when PostgreSQL is missing, except under CI=true, where it must be there."""
    reason = _postgres_reachable()
    if reason is None:
        return
    if IN_CI:
        pytest.fail(f"{reason}; under CI=true the PostgreSQL tests must run.")
    pytest.skip(reason)


def _migrate(url: str) -> None:
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True})
    with app.app_context():
        from flask_migrate import upgrade

        upgrade(directory=str(ROOT / "migrations"))
        db.engine.dispose()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A freshly migrated database of each kind, created for this test run and dropped after it."""
    if request.param == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite:///{folder}/accord-test.sqlite3"
            _migrate(url)
            yield url
        return
    with scratch_postgres_database("accord_test") as url:
        _migrate(url)
        yield url


@contextmanager
def scratch_postgres_database(prefix: str) -> Iterator[str]:
    """A new, empty PostgreSQL database for one test or run, dropped afterwards; skips without PostgreSQL."""
    require_postgres()
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _empty_all_tables() -> None:
    tables = list(reversed(db.metadata.sorted_tables))
    if db.engine.dialect.name == "postgresql":
        names = ", ".join(f'"{t.name}"' for t in tables)
        db.session.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    else:
        for table in tables:
            db.session.execute(table.delete())
    db.session.commit()


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": database_url,
            "WTF_CSRF_ENABLED": False,
            "SECRET_KEY": "test-secret",
            "SEARCH_INDEX_DIR": str(tmp_path / "index"),
            # Tests drain the search queue themselves (indexer.drain) unless they start the thread.
            "SEARCH_INDEXER_THREAD": False,
            "SERVER_NAME": "accord.test",
        }
    )

    def fresh_globals(sender: Flask, **extra: Any) -> None:
        # The fixture keeps one app context pushed, which Flask reuses for every request; clear `g` per
        # request as production does, or Flask-Login's and Flask-Babel's caches leak between requests.
        for name in list(g):
            g.pop(name, None)

    request_started.connect(fresh_globals, app)
    with app.app_context():
        try:
            yield app
        finally:
            request_started.disconnect(fresh_globals, app)
            db.session.rollback()
            _empty_all_tables()
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def session(app: Flask) -> Session:
    return db.session


@pytest.fixture
def make_user(session: Session) -> Callable[..., User]:
    counter = iter(range(1, 10_000))

    def make(
        role: Role | str | None = None,
        group: WorkingGroup | None = None,
        *,
        admin: bool = False,
        category: StakeholderCategory = StakeholderCategory.CIVIL_SOCIETY,
        organisation: str | None = "Example Org",
        email: str | None = None,
    ) -> User:
        n = next(counter)
        user = User(
            email=email or f"user{n}@example.org",
            password_hash=FAST_HASH,
            display_name=f"User {n}",
            organisation=organisation,
            category=category,
            is_admin=admin,
        )
        session.add(user)
        session.flush()
        if role is not None:
            assert group is not None, "a role needs a working group"
            accounts.set_role(session, None, group, user, role)
        session.commit()
        return user

    return make


@pytest.fixture
def group(session: Session) -> WorkingGroup:
    group = WorkingGroup(slug="wg-test", name="Test working group")
    session.add(group)
    session.commit()
    return group


SAMPLE_VERSIONS = [
    "# Test code {#title}\n\nIntro.\n\n## Transparency {#c-1}\n\nProviders shall document models.\n\n"
    "## Copyright {#c-2}\n\nProviders shall respect opt-outs.\n",
    "# Test code {#title}\n\nIntro.\n\n## Transparency {#c-1}\n\nProviders shall document their models and keep it "
    "current.\n\n## Safety {#c-3}\n\nProviders shall assess systemic risk.\n\n## Copyright {#c-2}\n\nProviders "
    "shall respect opt-outs.\n",
    "# Test code {#title}\n\nIntro.\n\n## Safety {#c-3}\n\nProviders shall assess and mitigate systemic risk.\n\n"
    "## Transparency {#c-1}\n\nProviders shall document their models and keep it current.\n",
]


@pytest.fixture
def make_code(session: Session, group: WorkingGroup) -> Callable[..., Code]:
    def make(*, versions: int = 3, published: int = 2, slug: str = "test-code", language: str = "en") -> Code:
        code = drafting.create_code(
            session, None, group=group, slug=slug, title="Test code", language=language,
            status=CodeStatus.CONSULTATION, working_text=SAMPLE_VERSIONS[min(versions, 3) - 1] if versions else "",
        )  # fmt: skip
        for index in range(versions):
            version = drafting.cut_version(
                session, None, code, label=f"Draft {index + 1}", markdown=SAMPLE_VERSIONS[index % 3]
            )
            if index < published:
                drafting.publish_version(session, None, version)
        session.commit()
        return code

    return make


@pytest.fixture
def login(client: FlaskClient) -> Callable[[User | None], Any]:
    def log_in(user: User | None) -> Any:
        if user is None:
            return None
        response = client.post("/login", data={"email": user.email, "password": PASSWORD})
        assert response.status_code == 302, response.get_data(as_text=True)[:500]
        return response

    return log_in
