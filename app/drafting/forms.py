"""Forms for codes and versions."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import HiddenField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional, Regexp

from app.drafting.models import STATUS_LABELS


def status_choices() -> list[tuple[str, str]]:
    return [(status.value, str(label)) for status, label in STATUS_LABELS.items()]


LANGUAGE_CHOICES = [("en", "English"), ("sv", "Svenska"), ("de", "Deutsch"), ("fr", "Français")]


class CodeForm(FlaskForm):
    title = StringField(_l("Title"), validators=[DataRequired(), Length(max=300)])
    slug = StringField(
        _l("Short name (used in addresses)"),
        validators=[
            DataRequired(),
            Regexp(r"^[a-z0-9][a-z0-9-]{1,79}$", message=_l("Use lowercase letters, digits and hyphens.")),
        ],
    )
    language = SelectField(_l("Language of the text"), choices=lambda: LANGUAGE_CHOICES)
    # Filled per request with the groups the user may create codes in.
    working_group = SelectField(_l("Working group"), choices=lambda: [])
    summary = TextAreaField(_l("Summary"), validators=[Optional(), Length(max=2000)])


class WorkingTextForm(FlaskForm):
    text = TextAreaField(_l("Working text (Markdown)"))
    base_sha256 = HiddenField()


class CutVersionForm(FlaskForm):
    label = StringField(_l("Label"), validators=[DataRequired(), Length(max=200)])
    summary = TextAreaField(_l("What changed"), validators=[Optional(), Length(max=5000)])


class StatusForm(FlaskForm):
    status = SelectField(_l("Status"), choices=status_choices)


class CompareForm(FlaskForm):
    class Meta:
        csrf = False

    old = IntegerField(_l("From"))
    new = IntegerField(_l("To"))
