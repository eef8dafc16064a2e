"""The Atom feed of a code's published versions."""

from __future__ import annotations

from feedgen.feed import FeedGenerator
from flask import url_for

from app.drafting.models import Code, Version


def atom_feed(code: Code, published: list[Version]) -> bytes:
    """Build an Atom document listing the published versions of a code, newest first."""
    feed = FeedGenerator()
    feed.id(url_for("drafting.code", slug=code.slug, _external=True))
    feed.title(code.title)
    feed.subtitle(code.summary or code.title)
    feed.language(code.language)
    feed.link(href=url_for("drafting.code", slug=code.slug, _external=True), rel="alternate")
    feed.link(href=url_for("drafting.feed", slug=code.slug, _external=True), rel="self")
    for version in sorted(published, key=lambda v: v.number):
        entry = feed.add_entry()
        link = url_for("drafting.version", slug=code.slug, number=version.number, _external=True)
        entry.id(link)
        entry.title(f"{version.name}: {version.label}")
        entry.link(href=link)
        entry.published(version.published_at)
        entry.updated(version.published_at)
        entry.summary(version.change_summary or version.label)
    return feed.atom_str(pretty=True)
