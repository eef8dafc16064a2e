"""Who may reach what: every route × every role × a published and an unpublished version, as one table."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from app.accounts.models import Role
from app.drafting.models import Version

ROLES = ("anonymous", "stakeholder", "observer", "member", "editor", "chair", "admin")
# The fixture code has v1 published and v2 cut but unpublished; 99 never exists.
ANY, PUB, UNPUB = "any", "published", "unpublished"
VERSION = {PUB: 1, UNPUB: 2}
MISSING = 99
LOGIN = "→login"  # 302 to the login page

# fmt: off
# Routes without a version number answer the same in both states, so they are listed once (ANY).
#    method  path                                              state  anon   stake  obs    member editor chair  admin
TABLE = [
    ("GET",  "/",                                              ANY,   200,   200,   200,   200,   200,   200,   200),
    ("GET",  "/codes/test-code",                               ANY,   200,   200,   200,   200,   200,   200,   200),
    ("GET",  "/codes/test-code/working",                       ANY,   LOGIN, 404,   200,   200,   200,   200,   200),
    ("GET",  "/codes/test-code/feed.atom",                     ANY,   200,   200,   200,   200,   200,   200,   200),
    ("GET",  "/api/v1/codes/test-code",                        ANY,   200,   200,   200,   200,   200,   200,   200),
    ("GET",  "/publication-log",                               ANY,   200,   200,   200,   200,   200,   200,   200),
    ("GET",  "/admin/audit",                                   ANY,   LOGIN, 403,   403,   403,   403,   403,   200),
    ("GET",  "/groups/wg-test",                                ANY,   LOGIN, 404,   200,   200,   200,   200,   200),
    ("POST", "/codes/test-code/versions",                      ANY,   LOGIN, 403,   403,   403,   403,   302,   302),
    ("GET",  "/codes/test-code/v{n}",                          PUB,   200,   200,   200,   200,   200,   200,   200),
    ("GET",  "/codes/test-code/v{n}",                          UNPUB, 404,   404,   200,   200,   200,   200,   200),
    ("GET",  "/codes/test-code/v{n}.md",                       PUB,   200,   200,   200,   200,   200,   200,   200),
    ("GET",  "/codes/test-code/v{n}.md",                       UNPUB, 404,   404,   200,   200,   200,   200,   200),
    ("GET",  "/codes/test-code/v{n}/clauses.csv",              PUB,   200,   200,   200,   200,   200,   200,   200),
    ("GET",  "/codes/test-code/v{n}/clauses.json",             UNPUB, 404,   404,   200,   200,   200,   200,   200),
    # from=1&to=1 asks for a version compared with itself: refused for everyone alike.
    ("GET",  "/codes/test-code/compare?from=1&to={n}",         PUB,   422,   422,   422,   422,   422,   422,   422),
    ("GET",  "/codes/test-code/compare?from=1&to={n}",         UNPUB, 404,   404,   200,   200,   200,   200,   200),
    ("GET",  "/api/v1/codes/test-code/versions/{n}",           PUB,   200,   200,   200,   200,   200,   200,   200),
    ("GET",  "/api/v1/codes/test-code/versions/{n}",           UNPUB, 404,   404,   200,   200,   200,   200,   200),
    ("GET",  "/api/v1/codes/test-code/versions/{n}/markdown",  PUB,   200,   200,   200,   200,   200,   200,   200),
    ("GET",  "/api/v1/codes/test-code/versions/{n}/markdown",  UNPUB, 404,   404,   200,   200,   200,   200,   200),
    ("GET",  "/api/v1/codes/test-code/diff?from=1&to={n}",     PUB,   422,   422,   422,   422,   422,   422,   422),
    ("GET",  "/api/v1/codes/test-code/diff?from=1&to={n}",     UNPUB, 404,   404,   200,   200,   200,   200,   200),
    ("POST", "/codes/test-code/v{n}/publish",                  PUB,   LOGIN, 403,   403,   403,   403,   409,   409),
    ("POST", "/codes/test-code/v{n}/publish",                  UNPUB, LOGIN, 404,   403,   403,   403,   302,   302),
]
# fmt: on

CASES = [
    pytest.param(method, path, state, role, expected, id=f"{method} {path} [{state}] {role}")
    for method, path, state, *statuses in TABLE
    for role, expected in zip(ROLES, statuses, strict=True)
]


def _as(role: str, make_user, group):
    if role == "anonymous":
        return None
    if role == "stakeholder":
        return make_user()
    if role == "admin":
        return make_user(admin=True)
    return make_user(Role(role), group)


def _request(client, method: str, path: str):
    if method == "POST" and path.endswith("/versions"):
        return client.post(path, data={"label": "Third draft", "summary": "Cut in the access test."})
    return client.open(path, method=method)


def _normalised(body: str) -> str:
    # Pages echo the requested address in their log-in and language links, carry a timed CSRF token, and
    # count the session's seconds left, which can tick between the two requests.
    body = re.sub(r"next=[^\"&]*", "next=…", body)
    body = re.sub(r'data-(idle|absolute)-left="\d*"', r'data-\1-left="…"', body)
    return re.sub(r'name="csrf_token" type="hidden" value="[^"]*"|name="csrf_token" value="[^"]*"', "csrf", body)


def _version_count(session) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(Version))


@pytest.mark.parametrize(("method", "path", "state", "role", "expected"), CASES)
def test_each_role_gets_the_expected_status_on_every_route(
    client, make_user, make_code, group, login, session, method, path, state, role, expected
):
    make_code(versions=2, published=1)
    login(_as(role, make_user, group))
    url = path.format(n=VERSION.get(state, 1))

    response = _request(client, method, url)

    want = 302 if expected == LOGIN else expected
    assert response.status_code == want, response.get_data(as_text=True)[:300]
    if expected == LOGIN:
        assert urlsplit(response.headers["Location"]).path == "/login"
    if path.endswith("/versions"):
        # A refused cut leaves the two versions alone; an allowed one adds v3 and goes to it.
        assert _version_count(session) == (3 if expected == 302 else 2)
        if expected == 302:
            assert response.headers["Location"].endswith("/codes/test-code/v3")
    if path.endswith("/publish"):
        session.expire_all()
        published = session.scalars(select(Version.number).where(Version.published_at.is_not(None))).all()
        assert sorted(published) == ([1, 2] if expected == 302 else [1])
    if expected == 404 and "{n}" in path:
        # Hidden must be indistinguishable from missing: same status, same body.
        missing = _request(client, method, path.format(n=MISSING))
        assert missing.status_code == 404
        assert _normalised(response.get_data(as_text=True)) == _normalised(missing.get_data(as_text=True))
        assert response.mimetype == missing.mimetype
