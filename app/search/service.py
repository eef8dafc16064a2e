"""Search as a viewer: the backend for this deployment, and the audiences a viewer may read."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app

from app.accounts.models import User
from app.db import db
from app.search.documents import PUBLIC, group_audience
from app.search.indexer import indexer
from app.search.query import SearchRequest, SearchResults, check_request

EXTENSION = "accord_search"


def audiences_for(viewer: object) -> tuple[str, ...] | None:
    """Return the audiences whose documents the viewer may see (None: all of them, for site admins).

    The same rule as the pages: published material is public; unpublished versions, working texts and
    group-only comments belong to their working group, observers included.
    """
    if not isinstance(viewer, User):
        return (PUBLIC,)
    if viewer.is_admin:
        return None
    return (PUBLIC, *sorted(group_audience(m.working_group_id) for m in viewer.memberships))


def backend_for(app: Flask) -> Any:
    """Return this app's search backend, creating it on first use."""
    backend = app.extensions.get(EXTENSION)
    if backend is None:
        kind = app.config["SEARCH_BACKEND"]
        if kind == "auto":
            kind = "postgresql" if app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql") else "whoosh"
        if kind == "postgresql":
            from app.search.postgres_backend import PostgresBackend

            with app.app_context():
                backend = PostgresBackend(db.engine)
        else:
            from app.search.whoosh_backend import WhooshBackend

            backend = WhooshBackend(app.config["SEARCH_INDEX_DIR"])
        app.extensions[EXTENSION] = backend
    return backend


def init_app(app: Flask) -> None:
    app.config.setdefault("SEARCH_BACKEND", "auto")
    indexer.init_app(app, lambda: backend_for(app))


def search(viewer: object, request: SearchRequest) -> SearchResults:
    """Search as `viewer`: visibility is a filter inside the query, so counts and facets never leak.

    Raises:
        QueryError: for a query that cannot be searched, with a message for the person who wrote it.
    """
    check_request(request)
    scoped = SearchRequest(**{**request.__dict__, "audiences": audiences_for(viewer)})
    return backend_for(current_app._get_current_object()).search(scoped)  # type: ignore[attr-defined]
