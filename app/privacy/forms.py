"""Forms for reporting a comment falsely submitted in one's name and for the admins handling reports."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional


class ReportForm(FlaskForm):
    comment_id = SelectField(_l("Which comment"), choices=lambda: [], validators=[DataRequired()])
    name = StringField(_l("Your name"), validators=[Optional(), Length(max=120)])
    email = EmailField(_l("Your email address (so that we can answer you)"), validators=[Optional(), Length(max=254)])
    explanation = TextAreaField(
        _l("Why do you believe this comment was submitted in your name?"),
        validators=[DataRequired(), Length(max=5_000)],
    )
    declaration = BooleanField(
        _l("I declare that I did not write or authorise this comment and that it was submitted in my name."),
        validators=[DataRequired(message=_l("Confirm the declaration to send the report."))],
    )


class ReasonForm(FlaskForm):
    reason = TextAreaField(_l("Reason (kept in the record)"), validators=[DataRequired(), Length(max=2_000)])
