"""``tollgate keys``: create, list, rotate and revoke the gateway's API keys.

The key file is the one the gateways read (``TOLLGATE_API_KEYS_FILE``); they pick up a change
within ``TOLLGATE_API_KEYS_RELOAD_S`` without a restart. A token is printed once, at creation
or rotation, and never stored.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gateway.api_keys import KeyFile, KeyStoreError, Role

keys_app = typer.Typer(no_args_is_help=True)
console = Console()

FileOption = typer.Option(..., "--file", envvar="TOLLGATE_API_KEYS_FILE", help="The key file the gateways read.")


def _fail(error: KeyStoreError) -> None:
    typer.echo(f"Error: {error}", err=True)
    raise typer.Exit(2)


@keys_app.command()
def create(
    tenant: str = typer.Option(..., help="Tenant id the key bills (canonical, e.g. shop-uk); '*' for finance-global."),
    role: Role = typer.Option(Role.CALLER, help="caller: Recommend/Search/RecordOutcome; finance: CostReport of its tenant; finance-global: CostReport of all; operator (tenant *): model rollouts."),
    label: str = typer.Option("", help="Who holds the key (free text, for the list)."),
    file: Path = FileOption,
) -> None:
    """Create a key and print its token (shown only now)."""
    try:
        stored, token = KeyFile(file).create(tenant, role, label)
    except KeyStoreError as error:
        _fail(error)
    typer.echo(token)
    typer.echo(f"created key {stored.key_id} for tenant {stored.tenant} ({stored.role})", err=True)


@keys_app.command("list")
def list_keys(file: Path = FileOption) -> None:
    """List the keys (never their secrets)."""
    try:
        keys = KeyFile(file).read()
    except KeyStoreError as error:
        _fail(error)
    table = Table("key id", "tenant", "role", "label", "created", "expires", "revoked", "active")
    now = dt.datetime.now(dt.timezone.utc)
    for key in keys:
        table.add_row(
            key.key_id, key.tenant, key.role, escape(key.label), key.created_at,
            key.expires_at or "", key.revoked_at or "", "yes" if key.active_at(now) else "no",
        )
    console.print(table)


@keys_app.command()
def rotate(
    key_id: str = typer.Argument(..., help="The key to replace."),
    grace_hours: float = typer.Option(24.0, min=0, help="How long the old key keeps working."),
    file: Path = FileOption,
) -> None:
    """Issue a new key for the same tenant and role; the old one expires after the grace period."""
    try:
        stored, token = KeyFile(file).rotate(key_id, dt.timedelta(hours=grace_hours))
    except KeyStoreError as error:
        _fail(error)
    typer.echo(token)
    typer.echo(f"key {stored.key_id} replaces {key_id}, which expires in {grace_hours:g} h", err=True)


@keys_app.command()
def revoke(key_id: str = typer.Argument(..., help="The key to revoke."), file: Path = FileOption) -> None:
    """Revoke a key at once (gateways refuse it within their reload interval)."""
    try:
        KeyFile(file).revoke(key_id)
    except KeyStoreError as error:
        _fail(error)
    typer.echo(f"revoked key {key_id}", err=True)
