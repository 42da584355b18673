"""The ``tollgate`` command: run the gateway, call it, find a call's spans, manage keys, pull cost reports."""

from __future__ import annotations

import asyncio
import logging

import typer

from costing.cli import cost_app
from gateway.call_cli import call_app
from gateway.keys_cli import keys_app
from gateway.server import run_gateway
from gateway.settings import get_settings
from gateway.trace_cli import trace

app = typer.Typer(help="Tollgate: a gRPC inference gateway that knows what every answer costs.", no_args_is_help=True)
app.add_typer(cost_app, name="cost", help="Cost reports from the ledger, for finance.")
app.add_typer(keys_app, name="keys", help="Create, list, rotate and revoke the gateway's API keys.")
app.add_typer(call_app, name="call", help="Call Recommend or Search and print the items, cost and ids (no grpcurl needed).")


@app.command()
def serve(log_level: str = typer.Option("INFO", help="Python logging level.")) -> None:
    """Run the gateway in the foreground (configured by TOLLGATE_* environment variables)."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(run_gateway(get_settings()))


app.command("trace")(trace)


if __name__ == "__main__":
    app()
