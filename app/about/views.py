"""The accessibility statement the Web Accessibility Directive asks public-sector sites to publish."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template

bp = Blueprint("about", __name__)

DEFAULT_CONTACT = "accessibility@accord.example"


@bp.get("/accessibility")
def accessibility() -> str:
    contact = current_app.config.get("ACCESSIBILITY_CONTACT") or DEFAULT_CONTACT
    return render_template("about/accessibility.html", contact=contact)
