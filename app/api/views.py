"""Read endpoints under /api/v1/ and the OpenAPI document."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request, url_for
from flask_login import current_user
from werkzeug.exceptions import UnsupportedMediaType

from app.accounts.models import User
from app.api.openapi import openapi_document
from app.audit.service import publication_log, verify_publication_log
from app.comments import service as comments
from app.comments.models import Comment
from app.comments.views import signed_in_login_id, submit_with
from app.consensus import service as consensus
from app.consensus.models import Position
from app.db import db, in_transaction, utcnow
from app.drafting import service
from app.drafting.models import Code, Version
from app.errors import Unauthorized, ValidationFailed
from app.errors import lazy_gettext as _l

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
        raise ValidationFailed(_l("Give two version numbers as ?from=N&to=M."))
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


def _comment_json(comment: Comment, *, with_replies: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": comment.id,
        "code": comment.code.slug,
        "version": comment.version.number,
        "clause": comment.clause_key,
        "parent_id": comment.parent_id,
        "quote": comment.quote,
        "start": comment.start,
        "end": comment.end,
        "body": comment.body,
        "proposed_text": comment.proposed_text,
        "type": comment.type.value,
        "visibility": comment.visibility.value,
        "author": comment.author.display_name if comment.author else None,
        "author_category": comment.author_category.value,
        "author_organisation": comment.author_organisation,
        "received_at": comment.created_at.isoformat(),
        "edited_at": comment.edited_at.isoformat() if comment.edited_at else None,
        "disposition": comment.disposition.value if comment.disposition else None,
        "response": comment.disposition_response,
        "addressed_in": comment.addressed_in.number if comment.addressed_in else None,
        "applied_in": comment.applied_in.number if comment.applied_in else None,
    }
    if with_replies:
        data["replies"] = [
            _comment_json(reply)
            for reply in comment.replies
            if not reply.is_withdrawn and comments.can_see_comment(current_user, reply)
        ]
    return data


def _typed(payload: dict[str, Any], name: str, kind: type, default: Any = None) -> Any:
    """Return a JSON field, refusing a value of the wrong type with a message naming the field."""
    value = payload.get(name, default)
    # bool is a subclass of int in Python; JSON true is not a position or an id.
    if value is not None and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
        raise ValidationFailed(
            _l("'%(name)s' must be a %(kind)s.", name=name, kind=kind.__name__),
            field_errors={name: _l("Wrong type.")},
        )
    return value


def _versioned(slug: str, number: int) -> Version:
    code = service.get_code(db.session, current_user, slug)
    return service.get_version(db.session, current_user, code, number)


@bp.post("/api/v1/codes/<slug>/versions/<int:number>/comments")
def submit_comment(slug: str, number: int) -> tuple[Response, int]:
    # Nothing here reads the database: `submit_with` takes the intake slot (503 under overload, with the
    # attempt noted) and leaves every check that needs a row to the intake writer.
    if signed_in_login_id() is None:
        raise Unauthorized(comments.LOG_IN_TO_COMMENT)
    # Requiring JSON keeps cross-site forms out: a browser cannot send it cross-origin without CORS consent.
    if not request.is_json:
        raise UnsupportedMediaType()
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        raise ValidationFailed(_l("Send a JSON object."))
    key = request.headers.get("Idempotency-Key") or payload.get("idempotency_key") or ""

    def field(name: str, kind: type, default: Any = None) -> Any:
        return _typed(payload, name, kind, default)

    submission = comments.Submission(
        clause_key=field("clause", str) or "",
        body=field("body", str) or "",
        idempotency_key=str(key),
        start=field("start", int),
        end=field("end", int),
        quote=field("quote", str),
        proposed_text=field("proposed_text", str),
        type=field("type", str) or "general",
        visibility=field("visibility", str) or "public",
        parent_id=field("parent_id", int),
    )
    receipt, comment_json = submit_with(
        slug,
        number,
        submission,
        lambda session, receipt: _comment_json(session.get_one(Comment, receipt.comment_id)),
    )
    return jsonify({"receipt": receipt.as_json(), "comment": comment_json}), 200 if receipt.replayed else 201


@bp.get("/api/v1/codes/<slug>/versions/<int:number>/comments")
def list_comments(slug: str, number: int) -> Response:
    version = _versioned(slug, number)
    threads = comments.list_comments(db.session, current_user, version, threads=True)
    return jsonify({"comments": [_comment_json(c, with_replies=True) for c in threads]})


@bp.get("/api/v1/comments/<int:comment_id>")
def comment_thread(comment_id: int) -> Response:
    comment = comments.get_comment(db.session, current_user, comment_id)
    return jsonify(_comment_json(comment.parent or comment, with_replies=True))


@bp.get("/api/v1/codes/<slug>/versions/<int:number>/dispositions")
def dispositions(slug: str, number: int) -> Response:
    version = _versioned(slug, number)
    return jsonify({"comments": comments.resolution_matrix(db.session, current_user, version)})


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


# --- consensus -------------------------------------------------------------------------------------


def _position_json(position: Position, changed: bool) -> dict[str, Any]:
    return {
        "id": position.id,
        "round": position.round_id,
        "clause": position.clause_key,
        "stance": position.stance.value,
        "serious_objection": position.serious_objection,
        "rationale": position.rationale,
        "comment_id": position.comment_id,
        "publish": position.publish,
        "revision": position.revision,
        "recorded_at": position.updated_at.isoformat(),
        "changed": changed,
    }


def _position_input(item: Any) -> consensus.PositionInput:
    if not isinstance(item, dict):
        raise ValidationFailed(_l("Each position must be a JSON object."))
    return consensus.PositionInput(
        clause_key=_typed(item, "clause", str) or "",
        stance=_typed(item, "stance", str) or "",
        serious_objection=bool(_typed(item, "serious_objection", bool)),
        rationale=_typed(item, "rationale", str) or "",
        comment_id=_typed(item, "comment_id", int),
        publish=bool(_typed(item, "publish", bool)),
    )


@bp.post("/api/v1/rounds/<int:round_id>/positions")
def record_positions(round_id: int) -> tuple[Response, int]:
    if not current_user.is_authenticated:
        raise Unauthorized(_l("Log in to record positions; the API uses the same session cookie as the pages."))
    if not request.is_json:
        raise UnsupportedMediaType()
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        raise ValidationFailed(_l("Send a JSON object."))
    items = payload.get("positions", [payload])
    if not isinstance(items, list) or not items:
        raise ValidationFailed(_l("Send one position, or a non-empty list of them as 'positions'."))
    given = [_position_input(item) for item in items]
    results = in_transaction(
        lambda s: consensus.record_positions(
            s,
            s.get(User, current_user.id),
            consensus.get_round(s, current_user, round_id),
            given,  # type: ignore[arg-type]
        )
    )
    body = {"positions": [_position_json(position, changed) for position, changed in results]}
    return jsonify(body), 201 if any(changed for _position, changed in results) else 200


def _round_with_results(round_id: int) -> Any:
    round_ = consensus.get_round(db.session, current_user, round_id)
    consensus.require_results(current_user, round_, utcnow())
    return round_


@bp.get("/api/v1/rounds/<int:round_id>/tallies")
def round_tallies(round_id: int) -> Response:
    round_ = _round_with_results(round_id)
    result = consensus.round_tally(db.session, round_)
    return jsonify(
        {
            "round": consensus.rules_json(round_),
            "participants": result.participants,
            "tallies": consensus.tally_rows(result),
        }
    )


@bp.get("/api/v1/rounds/<int:round_id>/positions")
def round_positions(round_id: int) -> Response:
    round_ = _round_with_results(round_id)
    return jsonify({"round": consensus.rules_json(round_), "positions": consensus.position_rows(db.session, round_)})
