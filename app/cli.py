"""Command-line commands: `flask create-admin`, `flask drafts`, `flask demo`, `flask audit`, `flask serve`."""

from __future__ import annotations

import contextlib
import gc
import getpass
import os
import signal
import sys
import threading
from pathlib import Path

import click
from flask import Flask
from sqlalchemy import select

from app.accounts import service as accounts
from app.accounts.models import StakeholderCategory
from app.audit.service import verify_publication_log
from app.backup.cli import backup as backup_cli
from app.consensus.demo import seed_demo_consensus
from app.db import db, in_transaction
from app.demo import seed_demo_users
from app.drafting.folders import code_folders, export_code, load_codes, read_folder
from app.drafting.models import Code
from app.errors import DomainError


def register_cli(app: Flask) -> None:
    """Attach every command group to the app."""

    @app.cli.command("create-admin")
    @click.option("--email", prompt=True)
    @click.option("--name", "display_name", prompt="Display name")
    @click.option("--password", envvar="ACCORD_ADMIN_PASSWORD", default=None, help="Read from a prompt if not given.")
    def create_admin(email: str, display_name: str, password: str | None) -> None:
        """Create a site admin account (or make an existing account an admin)."""
        if password is None:
            password = getpass.getpass("Password: ")
        try:
            existing = accounts.find_user_by_email(db.session, email)
            if existing is not None:
                existing.is_admin = True
                db.session.commit()
                click.echo(f"{email} is now a site admin (the account's password is unchanged).")
                return
            in_transaction(
                lambda s: accounts.register_user(
                    s,
                    email=email,
                    password=password,
                    display_name=display_name,
                    category=StakeholderCategory.OTHER,
                    is_admin=True,
                )
            )
        except DomainError as error:
            raise click.ClickException(error.message) from error
        click.echo(f"Created site admin {email}.")

    drafts = click.Group("drafts", help="Import and export codes as folders of Markdown.")
    app.cli.add_command(drafts)

    @drafts.command("load")
    @click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path), default=Path("drafts"))
    def drafts_load(path: Path) -> None:
        """Load every code folder under PATH (or PATH itself); existing versions are left as they are."""
        try:
            folders = code_folders(path)
            specs = []
            with click.progressbar(folders, label="Reading code folders", file=sys.stderr) as bar:
                for folder in bar:
                    specs.append(read_folder(folder))
            total = sum(len(spec.versions) for spec in specs)
            with click.progressbar(length=max(total, 1), label="Loading versions", file=sys.stderr) as bar:
                report = in_transaction(lambda s: load_codes(s, specs, progress=bar.update))
        except DomainError as error:
            raise click.ClickException(error.message) from error
        click.echo(
            f"{len(specs)} code folder(s): {report.codes_created} code(s) and {report.versions_created} version(s) "
            f"created, {report.versions_published} published, {report.unchanged} already present."
        )

    @drafts.command("export")
    @click.argument("slug")
    @click.argument("path", type=click.Path(file_okay=False, path_type=Path))
    def drafts_export(slug: str, path: Path) -> None:
        """Write code SLUG into folder PATH in the format `drafts load` reads."""
        code = db.session.scalars(select(Code).where(Code.slug == slug)).first()
        if code is None:
            raise click.ClickException(f"No code with the short name '{slug}'.")
        for written in export_code(code, path):
            click.echo(f"wrote {written}")

    demo = click.Group("demo", help="Demo content for trying Accord out.")
    app.cli.add_command(demo)

    @demo.command("seed")
    def demo_seed() -> None:
        """Create demo accounts for every role (password: accord-demo), forums and rounds of positions."""
        created = in_transaction(seed_demo_users)
        click.echo(f"{created} demo account(s) created.")
        forums = in_transaction(seed_demo_consensus)
        click.echo(f"{forums} demo forum(s) created.")

    audit = click.Group("audit", help="Check the records.")
    app.cli.add_command(audit)

    @audit.command("verify")
    def audit_verify() -> None:
        """Recompute the publication log's hash chain and the published texts; exit 1 on any mismatch."""
        report = verify_publication_log(db.session)
        for problem in report.problems:
            click.echo(f"PROBLEM: {problem}", err=True)
        if not report.ok:
            raise SystemExit(1)
        click.echo(f"Publication log verified: {report.entries} entries, chain intact.")

    app.cli.add_command(backup_cli)

    search = click.Group("search", help="The search index.")
    app.cli.add_command(search)

    @search.command("reindex")
    def search_reindex() -> None:
        """Rebuild the whole search index from the database (safe to run at any time)."""
        from app.search.indexer import reindex_chunks, reindex_everything
        from app.search.service import backend_for

        backend = backend_for(app)
        chunks = reindex_chunks(db.session)
        with click.progressbar(chunks, label="Indexing", file=sys.stderr) as bar:
            count = reindex_everything(db.session, backend, bar)
        click.echo(f"Indexed {count} sources with the {backend.name} backend.")

    @search.command("worker")
    def search_worker() -> None:
        """Keep the search index up to date in this process, for servers started with SEARCH_INDEXER_THREAD=0."""
        from app.search.indexer import indexer

        if app.config["SEARCH_INDEXER_THREAD"]:
            click.echo(
                "Note: SEARCH_INDEXER_THREAD is on, so server processes index too; set it to 0 for them.", err=True
            )
        from app.ops.search_process import as_background_worker, parent_gone

        as_background_worker()
        # SIGTERM (systemd, the server that started it) stops it after the batch in hand, as Ctrl+C does; a
        # process started in the background by a shell ignores SIGINT, so Ctrl+C alone would not do.
        stopping = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stopping.set())
        click.echo("Indexing changes as they are queued (Ctrl+C to stop).")
        with contextlib.suppress(KeyboardInterrupt):
            indexer.work(app, stop=lambda: stopping.is_set() or parent_gone())

    @app.cli.command("serve")
    @click.option("--host", default=lambda: os.environ.get("HOST", "127.0.0.1"))
    @click.option("--port", default=lambda: int(os.environ.get("PORT", "5000")), type=int)
    def serve(host: str, port: int) -> None:
        """Serve the app with Socket.IO on the embedded server (development and single-process use)."""
        from werkzeug.serving import WSGIRequestHandler

        from app.extensions import socketio

        # Nagle's algorithm plus delayed ACKs adds ~40 ms to each small WebSocket frame.
        WSGIRequestHandler.disable_nagle_algorithm = True
        # Flask refuses app.run() from inside its CLI; this command is meant to serve, so allow it.
        os.environ.pop("FLASK_RUN_FROM_CLI", None)
        from app.search.indexer import indexer

        indexer.start_serving(app)
        # See wsgi.py: start-up objects stay out of the collector's full passes.
        gc.collect()
        gc.freeze()
        click.echo(f"Accord is serving on http://{host}:{port}")
        socketio.run(app, host=host, port=port, allow_unsafe_werkzeug=True, use_reloader=False, log_output=False)
