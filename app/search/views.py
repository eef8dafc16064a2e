"""The search page and /api/v1/search."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, Response, jsonify, render_template, request
from flask_login import current_user
from werkzeug.datastructures import MultiDict

from app.errors import ValidationFailed
from app.errors import lazy_gettext as _l
from app.search.query import FACETS, QueryError, SearchRequest, SearchResults
from app.search.service import search

bp = Blueprint("search", __name__)
FILTERS = ("code", "clause", "kind", "category", "comment_type", "disposition")


def request_from(args: MultiDict[str, str]) -> SearchRequest:
    """Read a search request from query parameters.

    Raises:
        QueryError: for malformed numbers or dates.
    """
    try:
        version = int(args["version"]) if args.get("version") else None
        page = int(args.get("page", "1") or 1)
        per_page = int(args.get("per_page", "20") or 20)
        date_from = dt.datetime.fromisoformat(args["from"]).replace(tzinfo=dt.UTC) if args.get("from") else None
        date_to = dt.datetime.fromisoformat(args["to"]).replace(tzinfo=dt.UTC) if args.get("to") else None
    except ValueError as error:
        raise QueryError(_l("Page numbers and versions are whole numbers; dates look like 2025-03-11.")) from error
    return SearchRequest(
        text=args.get("q", ""),
        audiences=(),
        version=version,
        page=page,
        per_page=per_page,
        date_from=date_from,
        date_to=date_to,
        **{name: (args.get(name) or None) for name in FILTERS},
    )


@bp.get("/search")
def search_page() -> str | tuple[str, int]:
    if not request.args.get("q"):
        return render_template("search/results.html", results=None, error=None, args=request.args)
    try:
        results = search(current_user, request_from(request.args))
    except QueryError as error:
        return render_template("search/results.html", results=None, error=str(error), args=request.args), 400
    groups: dict[tuple[str, str, int | None], list[Any]] = {}
    for hit in results.hits:
        groups.setdefault((hit.code, hit.code_title, hit.version), []).append(hit)
    return render_template("search/results.html", results=results, groups=groups, error=None, args=request.args)


def _json(results: SearchResults) -> dict[str, Any]:
    return {
        "total": results.total,
        "page": results.page,
        "per_page": results.per_page,
        "facets": {name: results.facets.get(name, {}) for name in FACETS},
        "hits": [
            {
                "id": hit.id, "kind": hit.kind, "code": hit.code, "version": hit.version, "clause": hit.clause,
                "title": hit.title, "url": hit.url, "snippet_html": hit.snippet_html, "date": hit.date.isoformat(),
                "category": hit.category, "disposition": hit.disposition,
            }
            for hit in results.hits
        ],
    }  # fmt: skip


@bp.get("/api/v1/search")
def search_api() -> Response:
    unknown = set(request.args) - {"q", "version", "page", "per_page", "from", "to", *FILTERS}
    if unknown:
        raise ValidationFailed(_l("Unknown filter: %(names)s.", names=", ".join(sorted(unknown))))
    try:
        results = search(current_user, request_from(request.args))
    except QueryError as error:
        raise ValidationFailed(error.message) from error
    return jsonify(_json(results))
