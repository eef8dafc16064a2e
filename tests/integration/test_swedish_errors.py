"""Refusals from the domain speak the reader's language: pages, flash messages, field errors and JSON bodies."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from babel.numbers import format_decimal

from app.accounts.models import Role
from app.db import utcnow
from app.drafting import service as drafting
from app.errors import Forbidden
from tests.conftest import PASSWORD

COMMENTS = "/api/v1/codes/test-code/versions/1/comments"


@pytest.fixture
def swedish(client):
    client.post("/locale", data={"locale": "sv"})
    return client


def test_a_stakeholder_cutting_a_version_is_refused_in_swedish(client, make_user, make_code, login):
    make_code(versions=2, published=1)
    login(make_user())
    client.post("/locale", data={"locale": "sv"})

    response = client.post("/codes/test-code/versions", data={"label": "Tredje utkastet"})

    assert response.status_code == 403
    page = response.get_data(as_text=True)
    assert "Bara arbetsgruppens ordförande kan skapa versioner." in page
    assert "Only the working group's chairs cut versions." not in page


def test_a_second_registration_with_the_same_address_is_refused_in_swedish(swedish, make_user):
    make_user(email="ann@example.org")

    response = swedish.post(
        "/register",
        data={
            "email": "ann@example.org",
            "display_name": "Ann Exempel",
            "category": "academia",
            "password": PASSWORD,
            "confirm": PASSWORD,
        },
    )

    assert response.status_code == 409
    assert "Det finns redan ett konto med den här e-postadressen. Logga in i stället." in response.get_data(
        as_text=True
    )


def test_an_api_diff_without_version_numbers_answers_422_json_in_swedish(swedish, make_code):
    make_code(versions=2, published=2)

    response = swedish.get("/api/v1/codes/test-code/diff")

    assert response.status_code == 422
    assert response.get_json()["message"] == "Ange två versionsnummer som ?from=N&to=M."


def test_comment_field_errors_in_json_are_swedish_text(swedish, session, make_user, make_code, login):
    code = make_code(versions=2, published=1)
    now = utcnow()
    code.consultation_opens_at, code.consultation_closes_at = now - dt.timedelta(hours=1), now + dt.timedelta(hours=1)
    session.commit()
    login(make_user())

    wrong_type = swedish.post(COMMENTS, json={"clause": "c-2", "body": "Text.", "start": "3"})
    refused = swedish.post(
        COMMENTS,
        json={"clause": "c-2", "body": "x" * 20_001, "visibility": "hemlig"},
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )

    assert wrong_type.status_code == 422
    assert wrong_type.get_json()["message"] == "”start” måste vara av typen int."
    assert wrong_type.get_json()["fields"] == {"start": "Fel typ."}
    assert refused.status_code == 422
    limit = f"En synpunkt får vara högst {format_decimal(20_000, locale='sv')} tecken lång."
    assert refused.get_json()["fields"] == {"body": limit, "visibility": "Välj offentlig eller endast arbetsgruppen."}
    assert refused.get_json()["message"] == (
        f"Synpunkten togs inte emot: {limit} Välj offentlig eller endast arbetsgruppen."
    )


def test_a_bad_search_on_the_api_is_explained_in_swedish(swedish):
    response = swedish.get("/api/v1/search?q=a*")

    assert response.status_code == 422
    assert response.get_json()["message"] == "Skriv minst två bokstäver före tecknet *."


def test_outside_a_request_the_same_refusal_stays_english(session, make_user, make_code, group):
    # The CLI and services called directly have no reader: their messages are the English originals.
    code = make_code(versions=1, published=0)
    member = make_user(Role.MEMBER, group)

    with pytest.raises(Forbidden) as refused:
        drafting.cut_version(session, member, code, label="Draft")

    assert refused.value.message == "Only the working group's chairs cut versions."
    assert str(refused.value) == "Only the working group's chairs cut versions."
