"""Pages for forums, rounds, the bulk position form, the dashboard, consensus calls and exports."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from flask import Blueprint, Response, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import format_percent
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response as BaseResponse

from app.accounts import service as accounts
from app.accounts.forms import EmptyForm
from app.accounts.models import CATEGORY_LABELS, StakeholderCategory, User, WorkingGroup
from app.consensus import service
from app.consensus.forms import CallForm, ForumForm, MemberForm, RoundForm
from app.consensus.models import LEVEL_LABELS, STANCE_LABELS, Forum, Round
from app.consensus.tally import Level, Stance, Thresholds, TrendPoint, change_in_support
from app.db import db, in_transaction, utcnow
from app.drafting import service as drafting
from app.errors import DomainError, Forbidden, NotFound, ValidationFailed
from app.exports import csv_response
from app.policy import Action, can, is_member, may_respond, may_see_results, require

bp = Blueprint("consensus", __name__)


def _actor(session: Session) -> User:
    return session.get(User, current_user.id)  # type: ignore[return-value]


def _round(session: Session, round_id: int) -> Round:
    return service.get_round(session, current_user, round_id)


# --- forums ----------------------------------------------------------------------------------------


@bp.get("/forums")
def forums() -> str:
    return render_template("consensus/forums.html", forums=service.list_forums(db.session), now=utcnow())


def _managed_groups(session: Session) -> list[tuple[str, str]]:
    groups = session.scalars(select(WorkingGroup).order_by(WorkingGroup.name))
    choices = [("", _("None (managed by admins)"))] if current_user.is_admin else []
    return choices + [(str(g.id), g.name) for g in groups if can(current_user, Action.MANAGE_MEMBERS, g)]


@bp.route("/forums/new", methods=["GET", "POST"])
@login_required
def new_forum() -> str | BaseResponse | tuple[str, int]:
    form = ForumForm()
    form.working_group.choices = _managed_groups(db.session)
    if not form.working_group.choices:
        raise Forbidden(_("Only admins, and chairs for their own working group, create forums."))
    if form.validate_on_submit():
        group_id = int(form.working_group.data) if (form.working_group.data or "").isdigit() else None

        def work(s: Session) -> Forum:
            return service.create_forum(
                s, _actor(s), slug=form.slug.data or "", name=form.name.data or "", kind=form.kind.data or "",
                description=form.description.data or "", is_open=bool(form.is_open.data),
                working_group=s.get(WorkingGroup, group_id) if group_id else None,
            )  # fmt: skip

        try:
            forum = in_transaction(work)
        except ValidationFailed as error:
            _field_errors(form, error)
            return render_template("consensus/new_forum.html", form=form), error.status
        except DomainError as error:
            form.slug.errors = [error.message]
            return render_template("consensus/new_forum.html", form=form), error.status
        flash(_("The forum is created."), "success")
        return redirect(url_for("consensus.forum", slug=forum.slug))
    return render_template("consensus/new_forum.html", form=form), 422 if form.errors else 200


def _field_errors(form: Any, error: DomainError) -> None:
    for name, message in error.field_errors.items():
        field = getattr(form, name, None)
        if field is not None:
            field.errors = [message]
    flash(error.message, "error")


@bp.get("/forums/<slug>")
def forum(slug: str) -> str:
    forum = service.get_forum(db.session, slug)
    manager = can(current_user, Action.MANAGE_FORUM, forum)
    now = utcnow()
    rounds = [r for r in forum.rounds if can(current_user, Action.VIEW_VERSION, r.version)]
    openable = []
    if current_user.is_authenticated:
        for code in drafting.list_codes(db.session, current_user):
            if can(current_user, Action.MANAGE_CONSULTATION, code) and (
                forum.working_group_id in (None, code.working_group_id)
            ):
                openable += [(code, v) for v in drafting.visible_versions(current_user, code)]
    return render_template(
        "consensus/forum.html", forum=forum, rounds=rounds, manager=manager, now=now, openable=openable,
        member_form=MemberForm(), empty_form=EmptyForm(),
        is_member=is_member(forum, current_user),
    )  # fmt: skip


@bp.post("/forums/<slug>/members")
@login_required
def add_member(slug: str) -> BaseResponse:
    form = MemberForm()
    if not form.validate_on_submit():
        raise ValidationFailed(_("Give the participant's email address."))

    def work(s: Session) -> bool:
        user = accounts.find_user_by_email(s, form.email.data or "")
        if user is None:
            raise ValidationFailed(_("Nobody is registered with that address; ask them to register first."))
        return service.add_member(s, _actor(s), service.get_forum(s, slug), user)

    added = in_transaction(work)
    flash(_("Participant added.") if added else _("They already take part in this forum."), "success")
    return redirect(url_for("consensus.forum", slug=slug))


@bp.post("/forums/<slug>/members/<int:user_id>/remove")
@login_required
def remove_member(slug: str, user_id: int) -> BaseResponse:
    if not EmptyForm().validate_on_submit():
        raise ValidationFailed(_("The form expired; reload the page and try again."))

    def work(s: Session) -> None:
        user = s.get(User, user_id)
        if user is None:
            raise NotFound()
        service.remove_member(s, _actor(s), service.get_forum(s, slug), user)

    in_transaction(work)
    flash(_("Participant removed; the positions they recorded stay counted."), "success")
    return redirect(url_for("consensus.forum", slug=slug))


# --- rounds ----------------------------------------------------------------------------------------


def _rules(form: RoundForm) -> service.RoundRules:
    def share(value: Decimal | None) -> float:
        return float(value) if value is not None else -1.0

    return service.RoundRules(
        title=form.title.data or "",
        opens_at=form.opens_at.data.replace(tzinfo=dt.UTC),  # type: ignore[union-attr]
        closes_at=form.closes_at.data.replace(tzinfo=dt.UTC),  # type: ignore[union-attr]
        clause_keys=list(form.clause_keys.data) or None if form.clause_keys.data else None,
        eligibility=form.eligibility.data or "",
        counting=form.counting.data or "",
        thresholds=Thresholds(
            consensus_support=share(form.consensus_support.data),
            rough_support=share(form.rough_support.data),
            category_floor=share(form.category_floor.data),
            min_participants=form.min_participants.data or 0,
            divergence=share(form.divergence.data),
            min_category_answers=form.min_category_answers.data or 0,
        ),
    )


def _round_form(version: Any, forums: list[Forum], obj: Round | None = None) -> RoundForm:
    form = RoundForm(obj=obj)
    form.forum.choices = [(f.slug, f.name) for f in forums]
    form.clause_keys.choices = [(c.key, f"{c.key} · {c.heading}" if c.heading else c.key) for c in version.clauses]
    if obj is not None and request.method == "GET":
        form.forum.data = obj.forum.slug
        form.clause_keys.data = obj.clause_keys or []
        form.opens_at.data = obj.opens_at.replace(tzinfo=None)
        form.closes_at.data = obj.closes_at.replace(tzinfo=None)
    return form


@bp.route("/codes/<slug>/v<int:number>/rounds/new", methods=["GET", "POST"])
@login_required
def new_round(slug: str, number: int) -> str | BaseResponse | tuple[str, int]:
    code = drafting.get_code(db.session, current_user, slug)
    version = drafting.get_version(db.session, current_user, code, number)
    require(current_user, Action.MANAGE_CONSULTATION, code, reason=_("Only the working group's chairs open rounds."))
    forums = [f for f in service.list_forums(db.session) if f.working_group_id in (None, code.working_group_id)]
    form = _round_form(version, forums)
    if request.method == "GET" and request.args.get("forum"):
        form.forum.data = request.args["forum"]
    if form.validate_on_submit():
        rules = _rules(form)
        try:
            created = in_transaction(
                lambda s: service.create_round(
                    s, _actor(s), service.get_forum(s, form.forum.data or ""),
                    drafting.get_version(s, current_user, drafting.get_code(s, current_user, slug), number), rules,
                ).id
            )  # fmt: skip
        except DomainError as error:
            _field_errors(form, error)
            return render_template("consensus/round_form.html", form=form, version=version, code=code), error.status
        flash(_("The round is saved. Its rules can change until it opens."), "success")
        return redirect(url_for("consensus.round_page", round_id=created))
    status = 422 if form.errors else 200
    return render_template("consensus/round_form.html", form=form, version=version, code=code), status


@bp.route("/rounds/<int:round_id>/edit", methods=["GET", "POST"])
@login_required
def edit_round(round_id: int) -> str | BaseResponse | tuple[str, int]:
    round_ = _round(db.session, round_id)
    require(
        current_user,
        Action.MANAGE_CONSULTATION,
        round_.code,
        reason=_("Only the working group's chairs change rounds."),
    )
    if request.method == "POST":
        service.check_unfrozen(round_, utcnow())
    form = _round_form(round_.version, [round_.forum], obj=round_)
    del form.forum  # a round stays in the forum it was opened in
    if form.validate_on_submit():
        rules = _rules(form)
        try:
            in_transaction(lambda s: service.update_round(s, _actor(s), _round(s, round_id), rules, now=utcnow()))
        except DomainError as error:
            _field_errors(form, error)
            return (
                render_template(
                    "consensus/round_form.html", form=form, version=round_.version, code=round_.code, round=round_
                ),
                error.status,
            )
        flash(_("The round's rules are saved."), "success")
        return redirect(url_for("consensus.round_page", round_id=round_id))
    status = 422 if form.errors else 200
    template = render_template(
        "consensus/round_form.html", form=form, version=round_.version, code=round_.code, round=round_
    )
    return template, status


def _sorted_clauses(result: service.RoundTally, order: str) -> list[Any]:
    clauses = list(result.clauses)
    if order == "contested":
        clauses.sort(key=lambda c: (-c.contestedness, c.support_share if c.support_share is not None else 2))
    elif order == "support":
        clauses.sort(key=lambda c: c.support_share if c.support_share is not None else -1)
    return clauses


@bp.get("/rounds/<int:round_id>")
def round_page(round_id: int) -> str:
    round_ = _round(db.session, round_id)
    now = utcnow()
    show_results = may_see_results(current_user, round_, now)
    result = service.round_tally(db.session, round_) if show_results else None
    order = request.args.get("sort", "order")
    return render_template(
        "consensus/round.html",
        round=round_,
        code=round_.code,
        version=round_.version,
        now=now,
        result=result,
        clauses=_sorted_clauses(result, order) if result else [],
        order=order,
        calls=service.latest_calls(db.session, round_) if show_results else {},
        trends=service.trends(db.session, round_, current_user, now) if show_results else {},
        manager=can(current_user, Action.MANAGE_CONSULTATION, round_.code),
        may_respond=may_respond(current_user, round_) and round_.is_open(now),
    )


# --- positions -------------------------------------------------------------------------------------


def _answers_from_form(round_: Round) -> list[service.PositionInput]:
    publish = request.form.get("publish") == "y"
    given = []
    for key in round_.scope():
        stance = request.form.get(f"stance-{key}", "")
        if not stance:
            continue
        raw_comment = request.form.get(f"comment-{key}", "")
        given.append(
            service.PositionInput(
                clause_key=key,
                stance=stance,
                serious_objection=request.form.get(f"serious-{key}") == "y",
                rationale=request.form.get(f"rationale-{key}", ""),
                comment_id=int(raw_comment) if raw_comment.isdigit() else None,
                publish=publish,
            )
        )
    return given


@bp.route("/rounds/<int:round_id>/positions", methods=["GET", "POST"])
@login_required
def positions(round_id: int) -> str | BaseResponse | tuple[str, int]:
    round_ = _round(db.session, round_id)
    form = EmptyForm()
    errors: dict[str, str] = {}
    status = 200
    if request.method == "POST":
        if not form.validate_on_submit():
            raise ValidationFailed(_("The form expired; reload the page and try again."))
        given = _answers_from_form(round_)
        try:
            results = in_transaction(lambda s: service.record_positions(s, _actor(s), _round(s, round_id), given))
        except ValidationFailed as error:
            errors, status = error.field_errors, error.status
            flash(error.message, "error")
        else:
            changed = sum(1 for _position, was_changed in results if was_changed)
            flash(_("%(changed)s of %(count)s positions recorded or changed; the rest were already as given.",
                    changed=changed, count=len(results)), "success")  # fmt: skip
            return redirect(url_for("consensus.positions", round_id=round_id, saved=1))
    mine = service.my_positions(db.session, round_, current_user)  # type: ignore[arg-type]
    page = render_template(
        "consensus/positions.html", round=round_, version=round_.version, code=round_.code, form=form, mine=mine,
        errors=errors, posted=request.form if request.method == "POST" else None, now=utcnow(),
        may_respond=may_respond(current_user, round_),
        stances=[(s.value, str(STANCE_LABELS[s])) for s in Stance],
        my_comments=service.my_comments_by_clause(db.session, round_, current_user),  # type: ignore[arg-type]
    )  # fmt: skip
    return page, status


# --- consensus calls -------------------------------------------------------------------------------


@bp.route("/rounds/<int:round_id>/calls/<clause_key>", methods=["GET", "POST"])
@login_required
def call(round_id: int, clause_key: str) -> str | BaseResponse | tuple[str, int]:
    round_ = _round(db.session, round_id)
    require(
        current_user, Action.MANAGE_CONSULTATION, round_.code, reason=_("Only the working group's chairs make calls.")
    )
    if clause_key not in round_.scope():
        raise NotFound()
    history = service.call_history(db.session, round_, clause_key)
    form = CallForm(obj=history[0] if history else None)
    objections = service.serious_objections(db.session, round_, clause_key)
    status = 200
    if form.validate_on_submit():
        given = service.CallInput(
            clause_key=clause_key, level=form.level.data or "", outcome=form.outcome.data or "",
            dissent=form.dissent.data or "",
            objections={p.id: request.form.get(f"handling-{p.id}", "") for p in objections},
        )  # fmt: skip
        try:
            in_transaction(lambda s: service.record_call(s, _actor(s), _round(s, round_id), given))
        except DomainError as error:
            _field_errors(form, error)
            status = error.status
        else:
            flash(_("The consensus call is recorded."), "success")
            return redirect(url_for("consensus.round_page", round_id=round_id, _anchor=f"clause-{clause_key}"))
    elif form.errors:
        status = 422
    handled = {int(item["position_id"]): str(item["handling"]) for item in (history[0].objections if history else [])}  # type: ignore[call-overload]
    result = service.round_tally(db.session, round_)
    page = render_template(
        "consensus/call.html", round=round_, code=round_.code, version=round_.version, form=form,
        clause=result.clause(clause_key), heading=result.headings.get(clause_key, clause_key), history=history,
        objections=objections, handled=handled,
    )  # fmt: skip
    return page, status


# --- exports ---------------------------------------------------------------------------------------


@bp.get("/rounds/<int:round_id>/export/<any(tallies, positions):kind>.<any(csv, json):fmt>")
def export(round_id: int, kind: str, fmt: str) -> Response:
    round_ = _round(db.session, round_id)
    service.require_results(current_user, round_, utcnow())
    rows = (
        service.tally_rows(service.round_tally(db.session, round_))
        if kind == "tallies"
        else service.position_rows(db.session, round_)
    )
    if fmt == "json":
        return jsonify({"round": service.rules_json(round_), kind: rows})
    return csv_response(rows, f"round-{round_id}-{kind}.csv")


@bp.app_template_filter("category_label")
def category_label(value: str) -> str:
    return str(CATEGORY_LABELS[StakeholderCategory(value)])


@bp.app_template_filter("level_label")
def level_label(value: str) -> str:
    return str(LEVEL_LABELS[Level(value)])


@bp.app_template_filter("pct")
def percent(share: float | None) -> str:
    return "—" if share is None else format_percent(share)


@bp.app_template_filter("support_change")
def support_change(points: list[TrendPoint]) -> str:
    """Support in the latest round against the first, in percentage points with a sign."""
    change = change_in_support(points)
    if change is None:
        return "—"
    return f"{'+' if change > 0 else '−' if change < 0 else '±'}{format_percent(abs(change))}"


@bp.app_template_filter("heat")
def heat_class(share: float | None) -> str:
    """A CSS class per tenth of support; the page styles them, since the CSP forbids inline styles."""
    return "heat-none" if share is None else f"heat-{min(10, int(share * 10 + 1e-9))}"
