"""`flask privacy export EMAIL` and `flask privacy delete EMAIL`: for requests that reach the operators by
letter or mail. Both are audited like the same actions on the site."""

from __future__ import annotations

import json
from pathlib import Path

import click

from app.accounts.models import User
from app.accounts.service import find_user_by_email
from app.db import db, in_transaction
from app.errors import DomainError
from app.privacy import service

privacy = click.Group("privacy", help="Data protection requests: a person's data, deleting an account.")


@privacy.command("export")
@click.argument("email")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here instead of stdout.")
def export(email: str, output: Path | None) -> None:
    """Write everything kept about the account with address EMAIL as JSON."""
    user = find_user_by_email(db.session, email)
    if user is None or user.is_deleted:
        raise click.ClickException(f"No account uses the address {email}.")
    data = in_transaction(lambda s: service.export_user_data(s, None, user))
    text = json.dumps(data, indent=2, ensure_ascii=False)
    if output is None:
        click.echo(text)
    else:
        output.write_text(text + "\n", encoding="utf-8")
        click.echo(f"Wrote {output}")


@privacy.command("delete")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def delete(email: str, yes: bool) -> None:
    """Delete the account with address EMAIL: erase its personal data, keep its contributions anonymous."""
    user = find_user_by_email(db.session, email)
    if user is None or user.is_deleted:
        raise click.ClickException(f"No account uses the address {email}.")
    if not yes:
        click.confirm(f"Erase the personal data of {email} (account {user.id})?", abort=True)
    user_id = user.id
    try:
        in_transaction(lambda s: service.delete_account(s, None, s.get(User, user_id)))  # type: ignore[arg-type]
    except DomainError as error:
        raise click.ClickException(error.message) from error
    click.echo(f"Account {user_id} deleted; its contributions stay as 'withdrawn participant'.")
