"""The typed declarative base, shared column types and the database extension."""

from __future__ import annotations

import datetime as dt
import enum
import logging
import random
import time
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import DateTime, Integer, MetaData, event
from sqlalchemy import Enum as SAEnum
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, mapped_column, registry
from sqlalchemy.types import TypeDecorator

# A fixed naming convention keeps Alembic migrations identical on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    """Return the current time as an aware UTC datetime."""
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Store aware datetimes as UTC and always hand back aware UTC values.

    SQLite has no time zone type, so values read back would otherwise be naive.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use an aware UTC datetime")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


pk = Annotated[int, mapped_column(Integer, primary_key=True)]
created_at = Annotated[dt.datetime, mapped_column(UTCDateTime(), default=utcnow, nullable=False)]


class Base(DeclarativeBase):
    registry = registry(
        metadata=MetaData(naming_convention=NAMING_CONVENTION),
        type_annotation_map={dt.datetime: UTCDateTime()},
    )


db = SQLAlchemy(model_class=Base)

# Execution option for a statement that reads no comments, so the filter every ORM query gets for hidden
# comments (app/comments/models.py) is left off: for statements built once and run on every request
# (loading the signed-in user, a code with its versions), adding it cost a third of their time.
READS_NO_COMMENTS = "accord_reads_no_comments"


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    # WAL lets readers proceed while one writer commits; foreign keys are off by default in SQLite.
    module = type(dbapi_connection).__module__
    if not module.startswith("sqlite3"):
        return
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    # FULL: a commit is on disk before it is acknowledged, power loss included (NORMAL keeps it across a
    # crash of the process only). Comments and co-editing updates are committed in batches, so the sync is
    # paid once per batch, not once per comment or keystroke.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


@event.listens_for(Engine, "savepoint")
def _sqlite_savepoint_inside_a_transaction(connection: Any, name: str) -> None:
    # pysqlite (Python 3.11, legacy transaction control) opens a transaction only before INSERT, UPDATE or
    # DELETE, not before SAVEPOINT: a savepoint taken first would start the transaction itself, and its
    # RELEASE would commit everything so far on its own. Begin first, as pysqlite would at the next write.
    if connection.dialect.name != "sqlite":
        return
    dbapi_connection = connection.connection.dbapi_connection
    if dbapi_connection is not None and not dbapi_connection.in_transaction:
        dbapi_connection.execute("BEGIN")


def str_enum(enum_cls: type[enum.StrEnum], length: int = 40) -> SAEnum:
    """Return a column type storing a StrEnum by its value, as a plain VARCHAR on every database."""
    return SAEnum(
        enum_cls,
        native_enum=False,
        length=length,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )


T = TypeVar("T")


def in_transaction(work: Callable[[Session], T], *, attempts: int = 10) -> T:
    """Run `work` in a transaction and commit it, retrying when a concurrent writer got there first.

    Services flush but never commit. Where two requests race for the same unique value (the next version
    number, the next publication-log entry), the loser's flush or commit raises IntegrityError, or SQLite
    reports the database as locked; both are safe to retry from scratch because nothing was committed.
    `work` must load what it needs by id inside the call, since a rollback expires loaded objects.
    """
    session = db.session
    for attempt in range(1, attempts + 1):
        try:
            result = work(session)
            session.commit()
            return result
        except (IntegrityError, OperationalError) as error:
            session.rollback()
            if attempt == attempts or not _is_retryable(error):
                raise
            # Jitter, so that racers that collided once do not collide again in lockstep.
            time.sleep(random.uniform(0, 0.02 * attempt))
        except BaseException:
            session.rollback()
            raise
    raise AssertionError("unreachable")


def release_connection(session: Session) -> None:
    """End the session's transaction and give its connection back to the pool, keeping loaded objects loaded.

    For a request that has read what it needs and now waits on another thread (the intake writer): holding
    the connection meanwhile would let waiting requests take every connection of the pool, the writer's too.
    Nothing is expired, so the request's user and what it loaded stay usable without reading them again.
    """
    expire = session.expire_on_commit
    session.expire_on_commit = False
    try:
        session.commit()
    finally:
        session.expire_on_commit = expire


def _is_retryable(error: Exception) -> bool:
    text = str(error).lower()
    return isinstance(error, IntegrityError) or "locked" in text or "serializ" in text or "deadlock" in text


def after_commit(session: Session, callback: Callable[[], None]) -> None:
    """Run `callback` once the session's current transaction has committed; never if it rolls back.

    Broadcasts and index updates go here, so a failed request leaves no trace outside the database.
    """
    session.info.setdefault("after_commit", []).append(callback)


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    for callback in session.info.pop("after_commit", []):
        try:
            callback()
        except Exception:  # the commit stands; a failed side effect must not turn it into an error
            logging.getLogger(__name__).exception("after-commit callback failed")


@event.listens_for(Session, "after_rollback")
def _drop_after_commit(session: Session) -> None:
    session.info.pop("after_commit", None)
