"""Flask extensions, created once and bound in create_app()."""

from __future__ import annotations

from flask import has_request_context, request, session
from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager, current_user
from flask_migrate import Migrate
from flask_socketio import SocketIO
from flask_wtf.csrf import CSRFProtect

login_manager = LoginManager()
csrf = CSRFProtect()
migrate = Migrate()
limiter = Limiter(key_func=get_remote_address, default_limits=[])
socketio = SocketIO()


def select_locale() -> str | None:
    """Pick the UI language: the account's choice, then this browser's, then Accept-Language."""
    from flask import current_app

    languages = list(current_app.config["LANGUAGES"])
    if not has_request_context():
        return None  # CLI and background threads: the default language
    if current_user.is_authenticated and current_user.locale in languages:
        return str(current_user.locale)
    chosen = session.get("locale")
    if chosen in languages:
        return str(chosen)
    return request.accept_languages.best_match(languages) or "en"


babel = Babel()
