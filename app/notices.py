"""Notifications: an in-app notice for a person plus the same queued as mail, worded in the reader's language.

A notice stores its kind and the facts it reports (`params`), and is worded when it is read or mailed, in the
language of whoever reads it; `text` keeps an English wording for notices stored before `params` existed and
for kinds this module does not know.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from flask_babel import force_locale, format_datetime, ngettext
from flask_babel import gettext as _
from sqlalchemy.orm import Session

from app.accounts.models import User
from app.comments.models import Disposition, Notification
from app.outbox.service import queue_message

Params = Mapping[str, Any]


def notify(
    session: Session, user: User, kind: str, text: str | None, url: str, *, params: Params | None = None
) -> None:
    """Add an in-app notification and queue the same for mail.

    With `params`, readers get the wording of `kind` in their own language, and `text` (the English wording)
    may be left to this module.
    """
    facts = dict(params or {})
    if text is None:
        with force_locale("en"):
            text = notice_text(kind, facts, kind)
    session.add(Notification(user_id=user.id, kind=kind, text=text, url=url, params=facts or None))
    queue_message(
        session, kind=f"notification.{kind}", recipient=user.email, subject=text, body=url,
        payload={"params": facts} if facts else None,
    )  # fmt: skip


def notice_text(kind: str, params: Params | None, fallback: str) -> str:
    """Word a notice in the current language; the stored English text when its facts are missing or unknown."""
    wording = WORDINGS.get(kind)
    if wording is None or not params:
        return fallback
    try:
        return wording(params)
    except (KeyError, TypeError, ValueError):
        return fallback


def _moment(value: str) -> str:
    return format_datetime(dt.datetime.fromisoformat(value), "d MMM y, HH:mm z")


def _reply(p: Params) -> str:
    return _("%(name)s replied to your comment #%(comment)s.", name=p.get("name") or _("Someone"), comment=p["comment"])


def _disposition(p: Params) -> str:
    return _(
        "Your comment #%(comment)s on %(code)s %(version)s: %(disposition)s.",
        comment=p["comment"], code=p["code"], version=p["version"], disposition=Disposition(p["disposition"]).label,
    )  # fmt: skip


def _version(p: Params) -> str:
    return _("%(code)s: %(version)s (%(label)s) is available.", code=p["code"], version=p["version"], label=p["label"])


def _round_opened(p: Params) -> str:
    return _(
        "The round “%(round)s” in %(forum)s is open for positions on %(code)s %(version)s until %(closes)s.",
        round=p["round"], forum=p["forum"], code=p["code"], version=p["version"], closes=_moment(p["closes_at"]),
    )  # fmt: skip


def _round_closed(p: Params) -> str:
    return ngettext(
        "The round “%(round)s” in %(forum)s has closed with %(num)d position recorded; its results are out.",
        "The round “%(round)s” in %(forum)s has closed with %(num)d positions recorded; its results are out.",
        int(p["positions"]), round=p["round"], forum=p["forum"],
    )  # fmt: skip


WORDINGS: dict[str, Callable[[Params], str]] = {
    "reply": _reply,
    "disposition": _disposition,
    "version": _version,
    "round_opened": _round_opened,
    "round_closed": _round_closed,
}
