"""Pages for codes and versions: home, code, working text, version, compare, feed."""

from __future__ import annotations

from flask import Blueprint, Response, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.accounts.forms import EmptyForm
from app.accounts.models import User, WorkingGroup
from app.audit.chain import content_hash
from app.comments.margin import margin_for
from app.comments.views import comment_form_for
from app.db import db, in_transaction, utcnow
from app.drafting import service
from app.drafting.diffing import ops_to_html
from app.drafting.feed import atom_feed
from app.drafting.forms import CodeForm, CutVersionForm, StatusForm, WorkingTextForm
from app.drafting.models import Code
from app.drafting.rendering import localise_permalinks, render_cached
from app.drafting.texts import DOCUMENT_SLOT, TOC_SLOT
from app.errors import DomainError, NotFound, ValidationFailed
from app.exports import csv_response
from app.policy import Action, can

bp = Blueprint("drafting", __name__)


def _actor(session: Session) -> User:
    return session.get(User, current_user.id)  # type: ignore[return-value]


def _code_in(session: Session, slug: str) -> Code:
    return service.get_code(session, current_user, slug)


@bp.get("/")
def home() -> str:
    codes = service.list_codes(db.session, current_user)
    return render_template("drafting/home.html", codes=codes, latest=service.latest_visible_version)


@bp.route("/codes/new", methods=["GET", "POST"])
@login_required
def new_code() -> str | Response:
    form = CodeForm()
    groups = [g for g in db.session.scalars(select(WorkingGroup)) if can(current_user, Action.CREATE_CODE, g)]
    if not groups:
        abort(403)
    form.working_group.choices = [(g.slug, g.name) for g in groups]
    if form.validate_on_submit():
        try:
            code = in_transaction(
                lambda s: service.create_code(
                    s,
                    _actor(s),
                    group=s.scalars(select(WorkingGroup).where(WorkingGroup.slug == form.working_group.data)).one(),
                    slug=form.slug.data or "",
                    title=form.title.data or "",
                    language=form.language.data or "",
                    summary=form.summary.data or "",
                )
            )
        except DomainError as error:
            for name, message in error.field_errors.items():
                getattr(form, name).errors = [message]
            return render_template("drafting/new_code.html", form=form), error.status  # type: ignore[return-value]
        return redirect(url_for("drafting.working_text", slug=code.slug))
    return render_template("drafting/new_code.html", form=form), 422 if form.errors else 200  # type: ignore[return-value]


@bp.get("/codes/<slug>")
def code(slug: str) -> str:
    code = _code_in(db.session, slug)
    return render_template(
        "drafting/code.html",
        code=code,
        versions=list(reversed(service.visible_versions(current_user, code))),
        cut_form=CutVersionForm(),
        status_form=StatusForm(status=code.status.value),
        empty_form=EmptyForm(),
    )


@bp.route("/codes/<slug>/working", methods=["GET", "POST"])
@login_required
def working_text(slug: str) -> str | Response:
    code = _code_in(db.session, slug)
    if not can(current_user, Action.VIEW_WORKING_TEXT, code):
        raise NotFound()
    text = service.working_text(db.session, code)
    form = WorkingTextForm(text=text, base_sha256=content_hash(text))
    status = 200
    if form.validate_on_submit():
        try:
            in_transaction(
                lambda s: service.update_working_text(
                    s, _actor(s), _code_in(s, slug), form.text.data or "", base_sha256=form.base_sha256.data or None
                )
            )
        except service.WorkingTextConflict as error:
            flash(error.message, "error")
            status = error.status
            text = error.current_text
            form.base_sha256.data = content_hash(text)
        except DomainError as error:
            form.text.errors = [error.message]
            status = error.status
        else:
            flash(_("The working text is saved."), "success")
            return redirect(url_for("drafting.working_text", slug=slug))
    return render_template(
        "drafting/working_text.html",
        code=code,
        form=form,
        preview=render_cached(text),
        preview_html=localise_permalinks(render_cached(text).html, _("Permalink")),
        cut_form=CutVersionForm(),
        collab_config={"code": code.id, "can_write": can(current_user, Action.EDIT_WORKING_TEXT, code)},
    ), status  # type: ignore[return-value]


@bp.post("/codes/<slug>/preview")
@login_required
def preview(slug: str) -> Response:
    code = _code_in(db.session, slug)
    if not can(current_user, Action.VIEW_WORKING_TEXT, code):
        raise NotFound()
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict) or not isinstance(payload.get("text"), str):
        raise ValidationFailed(_('Send the text to preview as JSON: {"text": "…"}.'))
    rendered = render_cached(payload["text"])
    return jsonify({"html": localise_permalinks(rendered.html, _("Permalink")), "toc": rendered.toc})


@bp.post("/codes/<slug>/versions")
@login_required
def cut_version(slug: str) -> Response:
    form = CutVersionForm()
    if not form.validate_on_submit():
        raise ValidationFailed(_("Give the version a label, for example “Second draft”."))
    version = in_transaction(
        lambda s: service.cut_version(
            s, _actor(s), _code_in(s, slug), label=form.label.data or "", summary=form.summary.data or ""
        )
    )
    flash(
        _("Version %(name)s is cut. It is visible to the working group until you publish it.", name=version.name),
        "success",
    )
    return redirect(url_for("drafting.version", slug=slug, number=version.number))


@bp.post("/codes/<slug>/status")
@login_required
def set_status(slug: str) -> Response:
    form = StatusForm()
    if not form.validate_on_submit():
        raise ValidationFailed(_("Choose a status from the list."))
    in_transaction(lambda s: service.set_code_status(s, _actor(s), _code_in(s, slug), form.status.data or ""))
    flash(_("The status is saved."), "success")
    return redirect(url_for("drafting.code", slug=slug))


@bp.get("/codes/<slug>/v<int:number>")
def version(slug: str, number: int) -> Response:
    page = service.get_version_page(db.session, current_user, slug, number, permalink_label=_("Permalink"))
    code, version = page.code, page.version
    open_now = code.consultation_open(utcnow())
    may_comment = open_now and can(current_user, Action.COMMENT, version)
    may_publish = not version.is_published and can(current_user, Action.PUBLISH_VERSION, version)
    rendered = render_template(
        "drafting/version.html",
        code=code,
        version=version,
        text=page.text,
        toc_slot=TOC_SLOT,
        document_slot=DOCUMENT_SLOT,
        previous=page.previous,
        versions=page.versions,
        publish_form=EmptyForm() if may_publish else None,
        margin=margin_for(db.session, current_user, version),
        consultation_open=open_now,
        comment_form=comment_form_for(version, page.text.clauses) if may_comment else None,
    )
    return Response(page.text.fill(rendered), mimetype="text/html")


@bp.get("/codes/<slug>/versions.<any(csv, json):fmt>")
def versions_export(slug: str, fmt: str) -> Response:
    """Every version of the code the reader may see (unpublished ones only for its working group)."""
    code = _code_in(db.session, slug)
    rows = service.version_rows(current_user, code)
    if fmt == "json":
        return jsonify({"code": code.slug, "versions": rows})
    return csv_response(rows, f"{code.slug}-versions.csv", columns=VERSION_COLUMNS)


@bp.get("/codes/<slug>/v<int:number>/clauses.<any(csv, json):fmt>")
def clauses_export(slug: str, number: int, fmt: str) -> Response:
    """A version's clauses, one row each, with the Markdown text a comment or a diff refers to."""
    code = _code_in(db.session, slug)
    version = service.get_version(db.session, current_user, code, number)
    rows = service.clause_rows(version)
    if fmt == "json":
        return jsonify({"code": code.slug, "version": number, "clauses": rows})
    return csv_response(rows, f"{code.slug}-v{number}-clauses.csv", columns=CLAUSE_COLUMNS)


VERSION_COLUMNS = (
    "code", "version", "label", "change_summary", "created_at", "published_at", "words", "content_sha256",
)  # fmt: skip
CLAUSE_COLUMNS = ("code", "version", "position", "key", "level", "heading", "content_sha256", "text")


@bp.get("/codes/<slug>/v<int:number>.md")
def version_markdown(slug: str, number: int) -> Response:
    code = _code_in(db.session, slug)
    version = service.get_version(db.session, current_user, code, number)
    return Response(
        version.markdown,
        mimetype="text/markdown",
        headers={"Content-Disposition": f'attachment; filename="{code.slug}-v{number}.md"'},
    )


@bp.post("/codes/<slug>/v<int:number>/publish")
@login_required
def publish(slug: str, number: int) -> Response:
    EmptyForm().validate_on_submit() or abort(400)

    def work(s: Session) -> None:
        code = _code_in(s, slug)
        service.publish_version(s, _actor(s), service.get_version(s, current_user, code, number))

    in_transaction(work)
    flash(_("v%(number)s is published and added to the publication log.", number=number), "success")
    return redirect(url_for("drafting.version", slug=slug, number=number))


@bp.get("/codes/<slug>/compare")
def compare(slug: str) -> str:
    code = _code_in(db.session, slug)
    visible = service.visible_versions(current_user, code)
    old, new = request.args.get("from", type=int), request.args.get("to", type=int)
    if old is None and new is None and len(visible) < 2:
        return render_template("drafting/compare.html", code=code, versions=visible, comparison=None)
    # Asked-for versions always go through the service: hidden ones answer 404 like missing ones.
    default_old = visible[-2].number if len(visible) >= 2 else 0
    default_new = visible[-1].number if visible else 0
    old = default_old if old is None else old
    new = default_new if new is None else new
    comparison = service.compare_versions(db.session, current_user, code, old, new)
    return render_template(
        "drafting/compare.html", code=code, versions=visible, comparison=comparison, ops_to_html=ops_to_html
    )


@bp.get("/codes/<slug>/feed.atom")
def feed(slug: str) -> Response:
    code = _code_in(db.session, slug)
    published = [v for v in code.versions if v.is_published]
    return Response(atom_feed(code, published), mimetype="application/atom+xml")
