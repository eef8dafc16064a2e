"""Read endpoints under /api/v1/ and the OpenAPI document."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request, url_for
from flask_login import current_user

from app.api.openapi import openapi_document
from app.audit.service import publication_log, verify_publication_log
from app.db import db
from app.drafting import service
from app.drafting.models import Code, Version
from app.errors import ValidationFailed

bp = Blueprint("api", __name__)


def _code_json(code: Code) -> dict[str, Any]:
    return {
        "slug": code.slug,
        "title": code.title,
        "language": code.language,
        "status": code.status.value,
        "summary": code.summary,
        "working_group": code.working_group.slug,
        "url": url_for("drafting.code", slug=code.slug, _external=True),
        "versions": [_version_json(v) for v in service.visible_versions(current_user, code)],
    }


def _version_json(version: Version, *, full: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "number": version.number,
        "label": version.label,
        "change_summary": version.change_summary,
        "created_at": version.created_at.isoformat(),
        "published_at": version.published_at.isoformat() if version.published_at else None,
        "content_sha256": version.content_sha256,
        "word_count": version.word_count,
        "url": url_for("drafting.version", slug=version.code.slug, number=version.number, _external=True),
    }
    if full:
        data["markdown"] = version.markdown
        data["html"] = version.html
        data["toc"] = version.toc
        data["clauses"] = [
            {"key": c.key, "heading": c.heading, "level": c.level, "content_sha256": c.content_sha256}
            for c in version.clauses
        ]
    return data


@bp.get("/api/openapi.json")
def openapi() -> Response:
    return jsonify(openapi_document())


@bp.get("/api/v1/codes")
def codes() -> Response:
    return jsonify({"codes": [_code_json(code) for code in service.list_codes(db.session, current_user)]})


@bp.get("/api/v1/codes/<slug>")
def code(slug: str) -> Response:
    return jsonify(_code_json(service.get_code(db.session, current_user, slug)))


@bp.get("/api/v1/codes/<slug>/versions/<int:number>")
def version(slug: str, number: int) -> Response:
    code = service.get_code(db.session, current_user, slug)
    return jsonify(_version_json(service.get_version(db.session, current_user, code, number), full=True))


@bp.get("/api/v1/codes/<slug>/versions/<int:number>/markdown")
def version_markdown(slug: str, number: int) -> Response:
    code = service.get_code(db.session, current_user, slug)
    version = service.get_version(db.session, current_user, code, number)
    return Response(version.markdown, mimetype="text/markdown")


@bp.get("/api/v1/codes/<slug>/diff")
def diff(slug: str) -> Response:
    old, new = request.args.get("from", type=int), request.args.get("to", type=int)
    if old is None or new is None:
        raise ValidationFailed("Give two version numbers as ?from=N&to=M.")
    code = service.get_code(db.session, current_user, slug)
    comparison = service.compare_versions(db.session, current_user, code, old, new)
    return jsonify(
        {
            "from": old,
            "to": new,
            "summary": {name: [d.key for d in diffs] for name, diffs in comparison.summary.items()},
            "clauses": [
                {
                    "key": d.key,
                    "heading": d.heading,
                    "status": d.status,
                    "moved": d.moved,
                    "ops": [[op, text] for op, text in d.ops],
                }
                for d in comparison.clauses
            ],
        }
    )


@bp.get("/api/v1/publication-log")
def publication_log_json() -> Response:
    report = verify_publication_log(db.session)
    return jsonify(
        {
            "verified": report.ok,
            "problems": report.problems,
            "algorithm": "sha256 over canonical JSON of seq, code, version, content_sha256, "
            "published_at, previous_hash",
            "entries": [
                {
                    "seq": e.seq,
                    "code": e.code_slug,
                    "version": e.version_number,
                    "content_sha256": e.content_sha256,
                    "published_at": e.published_at.isoformat(timespec="microseconds"),
                    "previous_hash": e.previous_hash,
                    "entry_hash": e.entry_hash,
                }
                for e in publication_log(db.session)
            ],
        }
    )
