"""Pages for commenting, threads, dispositions, consultation windows, exports and notifications."""

from __future__ import annotations

import csv
import datetime as dt
import io
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from typing import Any, TypeVar

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask import session as browser_session
from flask_babel import gettext as _
from flask_login import current_user, login_required
from markupsafe import Markup
from sqlalchemy.orm import Session
from wtforms.widgets import Select

from app.accounts.forms import EmptyForm
from app.accounts.models import CATEGORY_LABELS, User
from app.comments import service
from app.comments.forms import (
    CommentFilterForm,
    CommentForm,
    DispositionForm,
    EditCommentForm,
    ReplyForm,
    WindowForm,
)
from app.comments.intake import intake_slot
from app.comments.models import Comment
from app.comments.writer import writer_for
from app.db import db, in_transaction, release_connection, utcnow
from app.drafting import service as drafting
from app.drafting.models import Version
from app.errors import DomainError, NotFound, Unauthorized, Unavailable, ValidationFailed
from app.policy import Action, require

bp = Blueprint("comments", __name__)
T = TypeVar("T")


def _actor(session: Session) -> User:
    return session.get(User, current_user.id)  # type: ignore[return-value]


def _version(session: Session, slug: str, number: int) -> Version:
    return drafting.find_version(session, current_user, slug, number)


def _comment(session: Session, comment_id: int) -> Comment:
    return service.get_comment(session, current_user, comment_id)


def new_key() -> str:
    return uuid.uuid4().hex


def submit(slug: str, number: int, submission: service.Submission) -> service.Receipt:
    """Take a submission through admission control and one transaction; shared by the form and the API."""
    return submit_with(slug, number, submission, lambda session, receipt: None)[0]


def submit_with(
    slug: str,
    number: int,
    submission: service.Submission,
    describe: Callable[[Session, service.Receipt], T],
) -> tuple[service.Receipt, T]:
    """`submit`, and `describe(session, receipt)` inside the transaction that stores the comment: an answer
    built from the rows just written, instead of reading them all again after the commit.

    The submission itself is checked in the process's intake writer, together with the others that arrive
    meanwhile (their authors and codes loaded once for the batch), and stored with them in one transaction
    (group commit); the receipt or the refusal comes back once that transaction has committed. So this
    request needs nothing from the database on the way. Timeliness is judged by the time the request arrived
    here, before any wait for an intake slot, not by the time of the write.

    Raises:
        Unauthorized: when no one is signed in, or the session has ended (a changed password).
        DomainError: what `service.plan_intakes` and `service.store_comment_rows` refuse.
        Unavailable: when the server is too busy or the write was not confirmed in time.
    """
    login_id = signed_in_login_id()
    if login_id is None:
        raise Unauthorized(service.LOG_IN_TO_COMMENT)
    intake = service.Intake(login_id, slug, number, submission, utcnow())
    taken = False
    try:
        with intake_slot():
            # A page's request may have read its user: the writer must not wait for that connection.
            release_connection(db.session())
            taken = True
            return writer_for(current_app._get_current_object()).store(intake, describe)  # type: ignore[attr-defined]
    except Unavailable:
        # Not confirmed in time, or not taken at all: a retry after the deadline must be judged by this
        # first sight (a taken comment may still be stored while its retry would be refused as late).
        in_transaction(lambda s: service.note_unconfirmed(s, intake, taken=taken))
        raise


def signed_in_login_id() -> str | None:
    """The signed-in person's login id (`User.get_id`), taken from the session without loading the account:
    the intake writer checks it, with the other authors of its batch. A session that Flask-Login restores
    from the remember-me cookie holds no id until it has loaded the user, which it then does here."""
    # Equivalent to Flask-Login's own loading under session protection "basic" (set in app/__init__.py),
    # which only marks a session from a new address as not fresh; "strong" would clear such a session.
    login_id = browser_session.get("_user_id")
    if login_id is None and current_user.is_authenticated:
        login_id = current_user.get_id()
    if not isinstance(login_id, str):
        return None
    login = User.parse_login_id(login_id)
    if login is not None:
        g.signed_in_user_id = login[0]  # for the access log, which never loads the user itself
    return login_id


class _RenderedOnceSelect(Select):
    """A select element rendered by WTForms once per process for the same field, choices and value.

    A long version's clause choice has hundreds of options, which WTForms would escape and render again for
    every reader of the version page (more time than the rest of the page). The output depends only on
    what the key holds (the field's flags come from its validators, fixed for the process).
    """

    def __call__(self, field: Any, **kwargs: Any) -> Markup:
        key = (field.name, field.id, field.data, tuple(field.choices), tuple(sorted(kwargs.items())))
        try:
            hash(key)
        except TypeError:  # a value that cannot key the cache: render as WTForms always does
            return super().__call__(field, **kwargs)
        with _rendered_lock:
            html = _rendered_selects.get(key)
            if html is not None:
                _rendered_selects.move_to_end(key)
                return html
        html = super().__call__(field, **kwargs)
        with _rendered_lock:
            _rendered_selects[key] = html
            while len(_rendered_selects) > 64:
                _rendered_selects.popitem(last=False)
        return html


_rendered_selects: OrderedDict[Hashable, Markup] = OrderedDict()
_rendered_lock = threading.Lock()


def comment_form_for(version: Version, clauses: Iterable[tuple[str, str]] | None = None) -> CommentForm:
    """Return a comment form whose clause choices are the version's clauses.

    `clauses` are (key, heading) pairs already at hand (the version page keeps them per process), which
    spares loading every clause row of a long version.
    """
    form = CommentForm(idempotency_key=new_key())
    pairs = clauses if clauses is not None else ((c.key, c.heading) for c in version.clauses)
    form.clause_key.choices = [(key, heading or key) for key, heading in pairs]
    form.clause_key.widget = _RenderedOnceSelect()
    return form


@bp.post("/codes/<slug>/v<int:number>/comments")
@login_required
def add_comment(slug: str, number: int) -> Response | tuple[str, int]:
    version = _version(db.session, slug, number)
    form = comment_form_for(version)
    if not form.validate_on_submit():
        return render_template("comments/new.html", version=version, code=version.code, form=form), 422
    submission = service.Submission(
        clause_key=form.clause_key.data or "",
        body=form.body.data or "",
        idempotency_key=form.idempotency_key.data or "",
        start=form.start.data,
        end=form.end.data,
        quote=(form.quote.data or None) if form.start.data is None else None,
        proposed_text=form.proposed_text.data or None,
        type=form.type.data or "general",
        visibility=form.visibility.data or "public",
        parent_id=int(form.parent_id.data) if (form.parent_id.data or "").isdigit() else None,
    )
    try:
        receipt = submit(slug, number, submission)
    except ValidationFailed as error:
        for name, message in error.field_errors.items():
            field = getattr(form, name, None)
            if field is not None:
                field.errors = [message]
        flash(error.message, "error")
        return render_template("comments/new.html", version=version, code=version.code, form=form), error.status
    return redirect(url_for("comments.thread", comment_id=receipt.comment_id, receipt=1))


@bp.get("/codes/<slug>/v<int:number>/comments/new")
@login_required
def new_comment(slug: str, number: int) -> str:
    version = _version(db.session, slug, number)
    form = comment_form_for(version)
    if request.args.get("clause"):
        form.clause_key.data = request.args["clause"]
    return render_template("comments/new.html", version=version, code=version.code, form=form)


@bp.get("/comments/<int:comment_id>")
def thread(comment_id: int) -> str:
    comment = _comment(db.session, comment_id)
    root = comment.parent or comment
    replies = [
        reply for reply in root.replies if service.can_see_comment(current_user, reply) and not reply.is_withdrawn
    ]
    disposition_form = DispositionForm(
        disposition=root.disposition.value if root.disposition else None,
        response=root.disposition_response,
        addressed_in=str(root.addressed_in_version_id or ""),
    )
    disposition_form.addressed_in.choices = [("", "—")] + [(str(v.id), v.name) for v in root.code.versions]
    return render_template(
        "comments/thread.html",
        comment=root,
        replies=replies,
        code=root.code,
        version=root.version,
        receipt_comment=comment
        if request.args.get("receipt") == "1" and comment.author_id == getattr(current_user, "id", None)
        else None,
        reply_form=ReplyForm(idempotency_key=new_key()),
        edit_form=EditCommentForm(body=root.body, proposed_text=root.proposed_text),
        disposition_form=disposition_form,
        empty_form=EmptyForm(),
        open_now=root.code.consultation_open(utcnow()),
    )


@bp.post("/comments/<int:comment_id>/replies")
@login_required
def reply(comment_id: int) -> Response:
    comment = _comment(db.session, comment_id)
    form = ReplyForm()
    if not form.validate_on_submit():
        raise ValidationFailed(_("Write your reply."))
    receipt = submit(
        comment.code.slug,
        comment.version.number,
        service.Submission(
            clause_key=comment.clause_key,
            body=form.body.data or "",
            idempotency_key=form.idempotency_key.data or "",
            parent_id=comment.id,
            visibility=comment.visibility.value,
        ),
    )
    return redirect(
        url_for(
            "comments.thread",
            comment_id=receipt.comment_id,
            receipt=1,
            _anchor=f"comment-{receipt.comment_id}",
        )
    )


@bp.post("/comments/<int:comment_id>/edit")
@login_required
def edit(comment_id: int) -> Response:
    form = EditCommentForm()
    if not form.validate_on_submit():
        raise ValidationFailed(_("Write your comment."))
    in_transaction(
        lambda s: service.edit_comment(
            s, _actor(s), _comment(s, comment_id), form.body.data or "", form.proposed_text.data
        )
    )
    flash(_("Your comment is changed; the earlier text is kept in its history."), "success")
    return redirect(url_for("comments.thread", comment_id=comment_id))


@bp.post("/comments/<int:comment_id>/withdraw")
@login_required
def withdraw(comment_id: int) -> Response:
    EmptyForm().validate_on_submit() or abort(400)
    comment = in_transaction(lambda s: _withdrawn(s, comment_id))
    flash(_("Your comment is withdrawn."), "success")
    return redirect(url_for("drafting.version", slug=comment.code.slug, number=comment.version.number))


def _withdrawn(session: Session, comment_id: int) -> Comment:
    comment = _comment(session, comment_id)
    service.withdraw_comment(session, _actor(session), comment)
    return comment


@bp.post("/comments/<int:comment_id>/disposition")
@login_required
def disposition(comment_id: int) -> Response:
    form = DispositionForm()
    form.addressed_in.choices = None  # type: ignore[assignment]
    form.addressed_in.validate_choice = False
    if not form.validate_on_submit():
        raise ValidationFailed(_("Choose a disposition."))

    def work(s: Session) -> None:
        comment = _comment(s, comment_id)
        addressed = None
        if (form.addressed_in.data or "").isdigit():
            addressed = s.get(Version, int(form.addressed_in.data))
        service.record_disposition(
            s, _actor(s), comment, form.disposition.data or "", form.response.data or "", addressed
        )

    in_transaction(work)
    flash(_("The disposition is recorded and the commenter notified."), "success")
    return redirect(url_for("comments.thread", comment_id=comment_id))


@bp.get("/codes/<slug>/v<int:number>/comments")
def comment_table(slug: str, number: int) -> str:
    version = _version(db.session, slug, number)
    form = CommentFilterForm(request.args)
    form.category.choices = [("", "—")] + [(c.value, str(label)) for c, label in CATEGORY_LABELS.items()]
    filters = service.CommentFilter(
        clause_key=form.clause.data or None,
        category=form.category.data or None,
        organisation=form.organisation.data or None,
        type=form.type.data or None,
        status=form.status.data or None,
        campaign=form.campaign.data,
    )
    comments = service.list_comments(db.session, current_user, version, filters)
    return render_template(
        "comments/table.html", version=version, code=version.code, comments=comments, form=form, empty_form=EmptyForm()
    )


@bp.get("/codes/<slug>/v<int:number>/comments.<fmt>")
def export(slug: str, number: int, fmt: str) -> Response:
    version = _version(db.session, slug, number)
    rows = service.resolution_matrix(db.session, current_user, version)
    name = f"{version.code.slug}-{version.name}-comments"
    if fmt == "json":
        response = jsonify({"code": version.code.slug, "version": version.number, "comments": rows})
    elif fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=service.MATRIX_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
        response = Response(buffer.getvalue(), mimetype="text/csv")
    else:
        raise NotFound()
    response.headers["Content-Disposition"] = f'attachment; filename="{name}.{fmt}"'
    return response


@bp.post("/codes/<slug>/v<int:number>/campaigns")
@login_required
def regroup(slug: str, number: int) -> Response:
    EmptyForm().validate_on_submit() or abort(400)

    def work(s: Session) -> int:
        version = _version(s, slug, number)
        require(_actor(s), Action.MANAGE_CONSULTATION, version.code, reason="Only the working group's chairs do this.")
        return service.regroup_campaigns(s, version)

    groups = in_transaction(work)
    flash(_("%(count)s campaign groups found.", count=groups), "success")
    return redirect(url_for("comments.comment_table", slug=slug, number=number))


@bp.route("/codes/<slug>/consultation", methods=["GET", "POST"])
@login_required
def consultation(slug: str) -> str | Response:
    code = drafting.get_code(db.session, current_user, slug)
    require(
        current_user,
        Action.MANAGE_CONSULTATION,
        code,
        reason="Only the working group's chairs set consultation windows.",
    )
    form = WindowForm(
        opens_at=code.consultation_opens_at.replace(tzinfo=None) if code.consultation_opens_at else None,
        closes_at=code.consultation_closes_at.replace(tzinfo=None) if code.consultation_closes_at else None,
    )
    if form.validate_on_submit():
        opens = form.opens_at.data.replace(tzinfo=dt.UTC)  # type: ignore[union-attr]
        closes = form.closes_at.data.replace(tzinfo=dt.UTC)  # type: ignore[union-attr]
        try:
            in_transaction(
                lambda s: service.set_consultation_window(
                    s, _actor(s), drafting.get_code(s, current_user, slug), opens, closes
                )
            )
        except DomainError as error:
            form.closes_at.errors = [error.message]
            return render_template("comments/consultation.html", code=code, form=form), error.status  # type: ignore[return-value]
        flash(_("The consultation window is saved."), "success")
        return redirect(url_for("drafting.code", slug=slug))
    return render_template("comments/consultation.html", code=code, form=form), 422 if form.errors else 200  # type: ignore[return-value]


@bp.get("/me/comments")
@login_required
def mine() -> str:
    return render_template("comments/mine.html", comments=service.my_comments(db.session, current_user))


@bp.route("/me/notifications", methods=["GET", "POST"])
@login_required
def notifications() -> str | Response:
    if request.method == "POST":
        EmptyForm().validate_on_submit() or abort(400)
        in_transaction(lambda s: service.mark_notifications_read(s, _actor(s)))
        return redirect(url_for("comments.notifications"))
    return render_template(
        "comments/notifications.html",
        notifications=service.notifications_for(db.session, current_user),
        empty_form=EmptyForm(),
    )
