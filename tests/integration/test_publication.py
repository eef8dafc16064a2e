"""Cutting, publishing and reading versions across roles."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from app.accounts.models import Role
from app.audit.models import AuditEvent, PublicationLogEntry
from app.audit.service import verify_publication_log
from app.db import db, in_transaction
from app.drafting import service as drafting
from app.drafting.models import Code, Version


def test_chair_cuts_and_publishes_and_public_then_sees_it(client, make_user, make_code, group, login, session):
    code = make_code(versions=2, published=1)
    chair = make_user(Role.CHAIR, group)

    assert client.get("/codes/test-code/v2").status_code == 404
    login(chair)
    assert client.get("/codes/test-code/v2").status_code == 200

    response = client.post("/codes/test-code/versions", data={"label": "Third draft", "summary": "Tightened."})
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/codes/test-code/v3")

    assert client.post("/codes/test-code/v3/publish").status_code == 302
    client.post("/logout")
    page = client.get("/codes/test-code/v3")
    assert page.status_code == 200
    assert "Third draft" in page.get_data(as_text=True)

    entries = session.scalars(select(PublicationLogEntry).order_by(PublicationLogEntry.seq)).all()
    assert [(e.code_slug, e.version_number) for e in entries] == [("test-code", 1), ("test-code", 3)]
    assert verify_publication_log(session).ok
    actions = set(session.scalars(select(AuditEvent.action)))
    assert {"login.succeeded", "version.cut", "version.published"} <= actions
    assert code.id


def test_concurrent_cuts_get_distinct_numbers_and_lose_no_text(app, make_code, make_user, group):
    code = make_code(versions=1, published=1)
    chair = make_user(Role.CHAIR, group)
    code_id, chair_id = code.id, chair.id
    errors: list[BaseException] = []

    def cut(label: str) -> None:
        with app.app_context():
            try:
                in_transaction(
                    lambda s: drafting.cut_version(s, s.get(type(chair), chair_id), s.get(Code, code_id), label=label)
                )
            except BaseException as error:  # collected and asserted below
                errors.append(error)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=cut, args=(f"Cut {i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    numbers = sorted(db.session.scalars(select(Version.number).where(Version.code_id == code_id)))
    assert numbers == [1, 2, 3, 4, 5, 6, 7]
    labels = set(db.session.scalars(select(Version.label).where(Version.code_id == code_id)))
    assert {f"Cut {i}" for i in range(6)} <= labels
    assert db.session.scalar(select(func.count()).select_from(Version)) == 7
