"""Forms for comments, dispositions and consultation windows."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateTimeLocalField, HiddenField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from app.comments.models import DISPOSITION_LABELS, TYPE_LABELS, VISIBILITY_LABELS


def _choices(labels: dict) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    return [(member.value, str(label)) for member, label in labels.items()]


class CommentForm(FlaskForm):
    clause_key = SelectField(_l("Clause"), choices=lambda: [], validators=[DataRequired()])
    quote = TextAreaField(
        _l("Quoted passage (optional: select text in the document to fill it)"), validators=[Optional()]
    )
    start = IntegerField(validators=[Optional()])
    end = IntegerField(validators=[Optional()])
    body = TextAreaField(_l("Your comment (Markdown)"), validators=[DataRequired(), Length(max=20_000)])
    proposed_text = TextAreaField(_l("Proposed replacement for the quoted passage (optional)"), validators=[Optional()])
    type = SelectField(_l("Type"), choices=lambda: _choices(TYPE_LABELS))
    visibility = SelectField(_l("Who can read it"), choices=lambda: _choices(VISIBILITY_LABELS))
    idempotency_key = HiddenField()
    parent_id = HiddenField()


class ReplyForm(FlaskForm):
    body = TextAreaField(_l("Your reply (Markdown)"), validators=[DataRequired(), Length(max=20_000)])
    idempotency_key = HiddenField()


class EditCommentForm(FlaskForm):
    body = TextAreaField(_l("Comment (Markdown)"), validators=[DataRequired(), Length(max=20_000)])
    proposed_text = TextAreaField(_l("Proposed replacement (optional)"), validators=[Optional()])


class DispositionForm(FlaskForm):
    disposition = SelectField(_l("Disposition"), choices=lambda: _choices(DISPOSITION_LABELS))
    response = TextAreaField(_l("Response to the commenter"), validators=[Optional(), Length(max=20_000)])
    addressed_in = SelectField(_l("Addressed in version"), choices=lambda: [], validators=[Optional()])


class WindowForm(FlaskForm):
    opens_at = DateTimeLocalField(_l("Opens (UTC)"), format="%Y-%m-%dT%H:%M", validators=[DataRequired()])
    closes_at = DateTimeLocalField(_l("Closes (UTC)"), format="%Y-%m-%dT%H:%M", validators=[DataRequired()])


class CommentFilterForm(FlaskForm):
    class Meta:
        csrf = False

    clause = StringField(_l("Clause key"), validators=[Optional()])
    category = SelectField(_l("Stakeholder category"), choices=lambda: [], validators=[Optional()])
    organisation = StringField(_l("Organisation"), validators=[Optional()])
    type = SelectField(_l("Type"), choices=lambda: [("", "—"), *_choices(TYPE_LABELS)], validators=[Optional()])
    status = SelectField(
        _l("Status"),
        choices=lambda: [("", "—"), ("open", str(_l("Open"))), *_choices(DISPOSITION_LABELS)],
        validators=[Optional()],
    )
    campaign = IntegerField(_l("Campaign group"), validators=[Optional()])
