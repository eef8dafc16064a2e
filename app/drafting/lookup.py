"""Finding a version by its code's slug and its number, with the checks every path makes.

Kept apart from `drafting.service` so that the comment intake, which that module imports, can use it too.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from app.db import READS_NO_COMMENTS
from app.drafting.models import Code, Version, code_with_versions_without_texts
from app.errors import NotFound
from app.policy import Action, require

# One statement for the code and its versions' small columns, built once since only the slug changes.
_CODE_WITH_VERSIONS = (
    select(Code)
    .where(Code.slug == bindparam("slug"))
    .options(*code_with_versions_without_texts())
    .execution_options(**{READS_NO_COMMENTS: True})
)


def code_with_versions(session: Session, slug: str) -> Code | None:
    """A code by its slug, with its versions and none of the texts; no check of who may see it."""
    return session.scalars(_CODE_WITH_VERSIONS, {"slug": slug}).unique().one_or_none()


def codes_with_versions(session: Session, slugs: Iterable[str]) -> dict[str, Code]:
    """As `code_with_versions`, for several codes in one statement (a batch of submissions)."""
    found = session.scalars(
        select(Code)
        .where(Code.slug.in_(set(slugs)))
        .options(*code_with_versions_without_texts())
        .execution_options(**{READS_NO_COMMENTS: True})
    ).unique()
    return {code.slug: code for code in found}


def version_in(code: Code | None, viewer: object, number: int) -> Version:
    """A loaded code's version by number, if the viewer may see both (the same checks as `get_code` and
    `get_version`).

    Raises:
        NotFound: when the code or version does not exist or the viewer may not see it.
    """
    if code is None:
        raise NotFound()
    require(viewer, Action.VIEW_CODE, code)
    version = next((v for v in code.versions if v.number == number), None)
    if version is None:
        raise NotFound()
    require(viewer, Action.VIEW_VERSION, version)
    return version
