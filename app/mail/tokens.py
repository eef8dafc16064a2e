"""Signed unsubscribe tokens: who (an account, or an address without one) and which kind of mail, or all."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer

ALL = "*"
_SALT = "accord-mail-unsubscribe"


@dataclass(frozen=True)
class Unsubscribe:
    """What a token asks: stop `kind` (or ALL) for the account `user_id`, or for the address `email`."""

    kind: str
    user_id: int | None = None
    email: str | None = None


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=_SALT)


def make_token(kind: str, *, user_id: int | None = None, email: str | None = None) -> str:
    """Return a token for an unsubscribe link; it never expires, as mails are read long after they are sent."""
    data: dict[str, object] = {"k": kind}
    if user_id is not None:
        data["u"] = user_id
    else:
        data["e"] = email
    return str(_serializer().dumps(data))


def read_token(token: str) -> Unsubscribe | None:
    """Return what a token asks, or None when it was not made here (or was altered)."""
    try:
        data = _serializer().loads(token)
    except BadSignature:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("k"), str):
        return None
    user_id, email = data.get("u"), data.get("e")
    if isinstance(user_id, int):
        return Unsubscribe(data["k"], user_id=user_id)
    if isinstance(email, str) and email:
        return Unsubscribe(data["k"], email=email)
    return None
