"""Forms for accounts, working groups and invitations."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, EqualTo, Length, Optional, Regexp

from app.accounts.models import CATEGORY_LABELS, MAIL_KIND_LABELS, ROLE_LABELS, MailKind
from app.accounts.service import MIN_PASSWORD_LENGTH


def category_choices() -> list[tuple[str, str]]:
    return [(category.value, str(label)) for category, label in CATEGORY_LABELS.items()]


def role_choices() -> list[tuple[str, str]]:
    return [(role.value, str(label)) for role, label in ROLE_LABELS.items()]


class RegisterForm(FlaskForm):
    email = EmailField(_l("Email address"), validators=[DataRequired(), Length(max=254)])
    display_name = StringField(_l("Name shown with your contributions"), validators=[DataRequired(), Length(max=120)])
    organisation = StringField(_l("Organisation (optional)"), validators=[Optional(), Length(max=200)])
    category = SelectField(_l("Stakeholder category"), choices=category_choices, validators=[DataRequired()])
    transparency_register_id = StringField(
        _l("EU Transparency Register id (optional)"),
        validators=[Optional(), Regexp(r"^[0-9]{6,15}-[0-9]{2}$", message=_l("Use the form 123456789012-34."))],
    )
    password = PasswordField(
        _l("Password"),
        validators=[DataRequired(), Length(min=MIN_PASSWORD_LENGTH, message=_l("Use at least 10 characters."))],
    )
    confirm = PasswordField(
        _l("Repeat the password"), validators=[EqualTo("password", message=_l("The passwords do not match."))]
    )


class LoginForm(FlaskForm):
    email = EmailField(_l("Email address"), validators=[DataRequired()])
    password = PasswordField(_l("Password"), validators=[DataRequired()])


class PasswordForm(FlaskForm):
    current_password = PasswordField(_l("Current password"), validators=[DataRequired()])
    password = PasswordField(
        _l("New password"),
        validators=[DataRequired(), Length(min=MIN_PASSWORD_LENGTH, message=_l("Use at least 10 characters."))],
    )
    confirm = PasswordField(
        _l("Repeat the new password"), validators=[EqualTo("password", message=_l("The passwords do not match."))]
    )


class WorkingGroupForm(FlaskForm):
    slug = StringField(
        _l("Short name"),
        validators=[
            DataRequired(),
            Regexp(r"^[a-z0-9][a-z0-9-]{1,79}$", message=_l("Use lowercase letters, digits and hyphens.")),
        ],
    )
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])


class MemberForm(FlaskForm):
    email = EmailField(_l("Email address of a registered user"), validators=[DataRequired()])
    role = SelectField(_l("Role"), choices=role_choices, validators=[DataRequired()])


class InvitationForm(FlaskForm):
    role = SelectField(_l("Role"), choices=role_choices, validators=[DataRequired()])
    email = EmailField(_l("Email address (optional)"), validators=[Optional()])


class EmptyForm(FlaskForm):
    """A form with only the CSRF token, for buttons that post."""


class MailChoicesForm(FlaskForm):
    """One box per kind of mail; a ticked box means: mail me this."""

    reply = BooleanField(MAIL_KIND_LABELS[MailKind.REPLY])
    disposition = BooleanField(MAIL_KIND_LABELS[MailKind.DISPOSITION])
    version = BooleanField(MAIL_KIND_LABELS[MailKind.VERSION])
    round = BooleanField(MAIL_KIND_LABELS[MailKind.ROUND])
    invitation = BooleanField(MAIL_KIND_LABELS[MailKind.INVITATION])

    def wanted(self) -> set[str]:
        return {kind.value for kind in MailKind if getattr(self, kind.value).data}


class DeleteAccountForm(FlaskForm):
    password = PasswordField(_l("Your password"), validators=[DataRequired()])
    confirm = BooleanField(
        _l("I understand that my account and personal data are erased and that this cannot be undone."),
        validators=[DataRequired(message=_l("Tick the box to confirm."))],
    )
