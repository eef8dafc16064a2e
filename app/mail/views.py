"""Unsubscribe links from mails: they work without logging in, the signed token being the permission."""

from __future__ import annotations

from dataclasses import replace

from flask import Blueprint, render_template, request

from app.accounts.models import MailKind
from app.db import in_transaction
from app.errors import NotFound
from app.extensions import csrf
from app.mail import service
from app.mail.tokens import ALL, read_token

bp = Blueprint("mail", __name__)


# No CSRF token: the link comes from a mail, and mail programs send RFC 8058 one-click POSTs to it.
@csrf.exempt
@bp.route("/mail/unsubscribe/<token>", methods=["GET", "POST"])
def unsubscribe(token: str) -> str:
    wanted = read_token(token)
    if wanted is None:
        raise NotFound()
    kind = None if wanted.kind == ALL else MailKind(wanted.kind)
    if request.method == "POST":
        if request.form.get("scope") == "all":
            wanted = replace(wanted, kind=ALL)
            kind = None
        in_transaction(lambda s: service.unsubscribe(s, wanted))
        return render_template("accounts/unsubscribed.html", kind=kind)
    # A GET only asks: link checkers and mail scanners open links without anyone clicking.
    return render_template("accounts/unsubscribe.html", kind=kind, for_account=wanted.user_id is not None)
