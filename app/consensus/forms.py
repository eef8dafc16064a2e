"""Forms for forums, rounds and consensus calls (the bulk position form is built per round in the view)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateTimeLocalField,
    DecimalField,
    EmailField,
    IntegerField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from app.consensus.models import COUNTING_LABELS, ELIGIBILITY_LABELS, FORUM_KIND_LABELS, LEVEL_LABELS
from app.consensus.tally import Thresholds


def _choices(labels: dict) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    return [(member.value, str(label)) for member, label in labels.items()]


class ForumForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    slug = StringField(
        _l("Address (lower-case letters, digits and hyphens)"), validators=[DataRequired(), Length(max=80)]
    )
    kind = SelectField(_l("Kind"), choices=lambda: _choices(FORUM_KIND_LABELS))
    description = TextAreaField(_l("Description"), validators=[Optional(), Length(max=5000)])
    is_open = BooleanField(_l("Open: any registered participant may take part"))
    working_group = SelectField(_l("Working group"), choices=lambda: [])


class MemberForm(FlaskForm):
    email = EmailField(_l("Participant's email address"), validators=[DataRequired(), Length(max=254)])


class CheckboxList(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


_DEFAULTS = Thresholds()


class RoundForm(FlaskForm):
    forum = SelectField(_l("Forum"), choices=lambda: [])
    title = StringField(_l("Title"), validators=[DataRequired(), Length(max=200)])
    opens_at = DateTimeLocalField(_l("Opens (UTC)"), format="%Y-%m-%dT%H:%M", validators=[DataRequired()])
    closes_at = DateTimeLocalField(_l("Closes (UTC)"), format="%Y-%m-%dT%H:%M", validators=[DataRequired()])
    clause_keys = CheckboxList(_l("Clauses in scope (none ticked: all clauses)"), choices=lambda: [])
    eligibility = SelectField(_l("Who may respond"), choices=lambda: _choices(ELIGIBILITY_LABELS))
    counting = SelectField(_l("How positions count"), choices=lambda: _choices(COUNTING_LABELS))
    consensus_support = DecimalField(
        _l("Consensus: support share at least"), places=2, default=_DEFAULTS.consensus_support,
        validators=[NumberRange(0, 1)],
    )  # fmt: skip
    rough_support = DecimalField(
        _l("Rough consensus: support share at least"), places=2, default=_DEFAULTS.rough_support,
        validators=[NumberRange(0, 1)],
    )  # fmt: skip
    category_floor = DecimalField(
        _l("Consensus: no category's support below"), places=2, default=_DEFAULTS.category_floor,
        validators=[NumberRange(0, 1)],
    )  # fmt: skip
    min_participants = IntegerField(
        _l("Sufficient participation: at least this many taking a side"), default=_DEFAULTS.min_participants,
        validators=[NumberRange(1, 1_000_000)],
    )  # fmt: skip
    divergence = DecimalField(
        _l("Flag a category whose support differs from the rest by at least"), places=2,
        default=_DEFAULTS.divergence, validators=[NumberRange(0, 1)],
    )  # fmt: skip
    min_category_answers = IntegerField(
        _l("A category counts for the floor with at least this many answers"),
        default=_DEFAULTS.min_category_answers, validators=[NumberRange(1, 1_000_000)],
    )  # fmt: skip


class CallForm(FlaskForm):
    level = SelectField(_l("Consensus level called"), choices=lambda: _choices(LEVEL_LABELS))
    outcome = TextAreaField(_l("Outcome statement"), validators=[DataRequired(), Length(max=20_000)])
    dissent = TextAreaField(_l("Dissent noted"), validators=[Optional(), Length(max=20_000)])
