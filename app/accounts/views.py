"""Register, log in and out, change password, choose language, manage working groups."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from app.accounts import service
from app.accounts.forms import (
    DeleteAccountForm,
    EmptyForm,
    InvitationForm,
    LoginForm,
    MailChoicesForm,
    MemberForm,
    PasswordForm,
    RegisterForm,
    WorkingGroupForm,
)
from app.accounts.models import MailKind, User, WorkingGroup
from app.db import db, in_transaction
from app.drafting.models import Code
from app.errors import DomainError, NotFound, ValidationFailed
from app.extensions import limiter
from app.mail.service import set_mail_choices
from app.policy import Action, require
from app.privacy import service as privacy

bp = Blueprint("accounts", __name__)


def _safe_next(default: str) -> str:
    target = request.args.get("next") or request.form.get("next") or ""
    parts = urlsplit(target)
    # Only same-site paths: an open redirect after login is a phishing aid.
    if target.startswith("/") and not target.startswith("//") and not parts.netloc and not parts.scheme:
        return target
    return default


def _apply_field_errors(form: object, error: DomainError) -> None:
    for name, message in error.field_errors.items():
        field = getattr(form, name, None)
        if field is not None:
            field.errors = [*field.errors, message]


def _start_session(user: User) -> None:
    locale = session.get("locale")
    # A fresh session at login, so a session id planted before login is worthless afterwards.
    session.clear()
    if locale:
        session["locale"] = locale
    login_user(user)


@bp.route("/register", methods=["GET", "POST"])
def register() -> str | Response:
    form = RegisterForm()
    if form.validate_on_submit():
        try:
            user = in_transaction(
                lambda s: service.register_user(
                    s,
                    email=form.email.data or "",
                    password=form.password.data or "",
                    display_name=form.display_name.data or "",
                    category=form.category.data or "",
                    organisation=form.organisation.data,
                    transparency_register_id=form.transparency_register_id.data,
                )
            )
        except DomainError as error:
            _apply_field_errors(form, error)
            flash(error.message, "error")
            return render_template("accounts/register.html", form=form), error.status  # type: ignore[return-value]
        _start_session(user)
        flash(_("Welcome to Accord, %(name)s.", name=user.display_name), "success")
        return redirect(_safe_next(url_for("drafting.home")))
    status = 422 if form.errors else 200
    return render_template("accounts/register.html", form=form), status  # type: ignore[return-value]


def _login_limit() -> str:
    return str(current_app.config["LOGIN_RATE_LIMIT"])


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def login() -> str | Response:
    form = LoginForm()
    if form.validate_on_submit():
        user = service.authenticate(db.session, form.email.data or "", form.password.data or "")
        db.session.commit()
        if user is None:
            form.password.errors = [_("The email address or password is not correct.")]
            return render_template("accounts/login.html", form=form), 401  # type: ignore[return-value]
        _start_session(user)
        return redirect(_safe_next(url_for("drafting.home")))
    status = 422 if form.errors else 200
    return render_template("accounts/login.html", form=form), status  # type: ignore[return-value]


@bp.post("/logout")
def logout() -> Response:
    EmptyForm().validate_on_submit() or abort(400)
    logout_user()
    session.clear()
    flash(_("You are logged out."), "success")
    return redirect(url_for("drafting.home"))


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def change_password() -> str | Response:
    form = PasswordForm()
    if form.validate_on_submit():
        try:
            in_transaction(
                lambda s: service.change_password(
                    s, s.get(User, current_user.id), form.current_password.data or "", form.password.data or ""
                )
            )
        except DomainError as error:
            _apply_field_errors(form, error)
            return render_template("accounts/password.html", form=form), error.status  # type: ignore[return-value]
        # Keep this browser logged in under the new session generation; all others are out.
        _start_session(db.session.get(User, current_user.id))
        flash(_("Your password is changed. Other sessions were logged out."), "success")
        return redirect(url_for("drafting.home"))
    status = 422 if form.errors else 200
    return render_template("accounts/password.html", form=form), status  # type: ignore[return-value]


@bp.route("/account/mail", methods=["GET", "POST"])
@login_required
def mail_choices() -> str | Response:
    form = MailChoicesForm(data={kind.value: current_user.wants_mail(kind) for kind in MailKind})
    if form.validate_on_submit():
        in_transaction(lambda s: set_mail_choices(s, s.get(User, current_user.id), form.wanted()))
        flash(_("Your mail choices are saved."), "success")
        return redirect(url_for("accounts.mail_choices"))
    mail_on = bool(current_app.config.get("MAIL_SMTP_HOST"))
    return render_template("accounts/mail.html", form=form, mail_on=mail_on)


@bp.get("/account/data.json")
@login_required
def download_data() -> Response:
    data = in_transaction(
        lambda s: privacy.export_user_data(s, s.get(User, current_user.id), s.get(User, current_user.id))
    )
    response = Response(json.dumps(data, indent=2, ensure_ascii=False), mimetype="application/json")
    response.headers["Content-Disposition"] = 'attachment; filename="accord-my-data.json"'
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/account/delete", methods=["GET", "POST"])
@login_required
def delete_account() -> str | Response:
    form = DeleteAccountForm()
    if form.validate_on_submit():
        try:
            in_transaction(
                lambda s: privacy.delete_account(
                    s, s.get(User, current_user.id), s.get(User, current_user.id), password=form.password.data
                )
            )
        except DomainError as error:
            _apply_field_errors(form, error)
            return render_template("accounts/delete.html", form=form), error.status  # type: ignore[return-value]
        logout_user()
        locale = session.get("locale")
        session.clear()
        if locale:
            session["locale"] = locale
        flash(_("Your account is deleted. Your contributions remain as those of a withdrawn participant."), "success")
        return redirect(url_for("drafting.home"))
    status = 422 if form.errors else 200
    return render_template("accounts/delete.html", form=form), status  # type: ignore[return-value]


@bp.post("/locale")
def set_locale() -> Response:
    EmptyForm().validate_on_submit() or abort(400)
    locale = request.form.get("locale", "")
    if locale in current_app.config["LANGUAGES"]:
        session["locale"] = locale
        if current_user.is_authenticated:
            in_transaction(lambda s: setattr(s.get(User, current_user.id), "locale", locale))
    return redirect(_safe_next(url_for("drafting.home")))


# --- working groups ------------------------------------------------------------------------------


@bp.route("/groups", methods=["GET", "POST"])
@login_required
def groups() -> str | Response:
    form = WorkingGroupForm()
    status = 200
    if form.validate_on_submit():
        try:
            group = in_transaction(
                lambda s: service.create_working_group(
                    s, s.get(User, current_user.id), slug=form.slug.data or "", name=form.name.data or ""
                )
            )
        except DomainError as error:
            _apply_field_errors(form, error)
            flash(error.message, "error")
            status = error.status
        else:
            return redirect(url_for("accounts.group", slug=group.slug))
    elif form.errors:
        status = 422
    if current_user.is_admin:
        listed = list(db.session.scalars(select(WorkingGroup).order_by(WorkingGroup.name)))
    else:
        listed = [m.working_group for m in current_user.memberships]
    return render_template("accounts/groups.html", groups=listed, form=form), status  # type: ignore[return-value]


@bp.get("/groups/<slug>")
@login_required
def group(slug: str) -> str:
    group = service.get_working_group(db.session, slug)
    require(current_user, Action.VIEW_GROUP, group)
    codes = db.session.scalars(select(Code).where(Code.working_group_id == group.id).order_by(Code.title))
    return render_template(
        "accounts/group.html",
        group=group,
        codes=list(codes),
        member_form=MemberForm(),
        invitation_form=InvitationForm(),
        empty_form=EmptyForm(),
        invitation_link=session.pop("invitation_link", None),
    )


@bp.post("/groups/<slug>/members")
@login_required
def set_member(slug: str) -> Response:
    form = MemberForm()
    if not form.validate_on_submit():
        flash(_("Enter an email address and choose a role."), "error")
        return redirect(url_for("accounts.group", slug=slug))

    def work(s: Session) -> None:
        group = service.get_working_group(s, slug)
        user = service.find_user_by_email(s, form.email.data or "")
        if user is None:
            raise ValidationFailed(_("No account uses that address. Send an invitation link instead."))
        service.set_role(s, s.get(User, current_user.id), group, user, form.role.data or "")

    in_transaction(work)
    flash(_("The role is saved."), "success")
    return redirect(url_for("accounts.group", slug=slug))


@bp.post("/groups/<slug>/members/<int:user_id>/remove")
@login_required
def remove_member(slug: str, user_id: int) -> Response:
    EmptyForm().validate_on_submit() or abort(400)

    def work(s: Session) -> None:
        group = service.get_working_group(s, slug)
        user = s.get(User, user_id)
        if user is None:
            raise NotFound()
        service.remove_member(s, s.get(User, current_user.id), group, user)

    in_transaction(work)
    flash(_("The member was removed from the group."), "success")
    return redirect(url_for("accounts.group", slug=slug))


@bp.post("/groups/<slug>/invitations")
@login_required
def invite(slug: str) -> Response:
    form = InvitationForm()
    if not form.validate_on_submit():
        flash(_("Choose a role for the invitation."), "error")
        return redirect(url_for("accounts.group", slug=slug))
    _invitation, token = in_transaction(
        lambda s: service.create_invitation(
            s,
            s.get(User, current_user.id),
            service.get_working_group(s, slug),
            form.role.data or "",
            form.email.data or None,
        )
    )
    session["invitation_link"] = url_for("accounts.invitation", token=token, _external=True)
    return redirect(url_for("accounts.group", slug=slug))


@bp.route("/invitations/<token>", methods=["GET", "POST"])
def invitation(token: str) -> str | Response:
    found = service.find_invitation(db.session, token)
    form = EmptyForm()
    if request.method == "POST":
        if not current_user.is_authenticated:
            return redirect(url_for("accounts.login", next=request.path))
        form.validate_on_submit() or abort(400)
        membership = in_transaction(lambda s: service.accept_invitation(s, s.get(User, current_user.id), token))
        flash(
            _("You joined %(group)s as %(role)s.", group=membership.working_group.name, role=membership.role.label),
            "success",
        )
        return redirect(url_for("accounts.group", slug=membership.working_group.slug))
    return render_template("accounts/invitation.html", invitation=found, form=form)
