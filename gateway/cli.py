"""The ``tollgate`` command: run the gateway, call it, find a call's spans, manage keys, pull cost reports."""

from __future__ import annotations

import logging

import typer
import uvloop

from costing.cli import cost_app
from gateway.call_cli import call_app
from gateway.keys_cli import keys_app
from gateway.models_cli import models_app
from gateway.server import run_gateway
from gateway.settings import get_settings
from gateway.trace_cli import trace
from gateway.workers import run_workers

app = typer.Typer(help="Tollgate: a gRPC inference gateway that knows what every answer costs.", no_args_is_help=True)
app.add_typer(cost_app, name="cost", help="Cost reports from the ledger, for finance.")
app.add_typer(keys_app, name="keys", help="Create, list, rotate and revoke the gateway's API keys.")
app.add_typer(models_app, name="models", help="The life of a model: gate a candidate, shadow, canary, promote, roll back (operators).")
app.add_typer(call_app, name="call", help="Call Recommend or Search and print the items, cost and ids (no grpcurl needed).")


@app.command()
def serve(log_level: str = typer.Option("INFO", help="Python logging level.")) -> None:
    """Run the gateway in the foreground (configured by TOLLGATE_* environment variables);
    TOLLGATE_WORKERS > 1 runs that many worker processes on the same port."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    if settings.workers > 1:
        raise typer.Exit(run_workers(settings, log_level))
    # uvloop: grpc.aio's callbacks and the gateway's own tasks cost less CPU on libuv's loop.
    uvloop.run(run_gateway(settings))


app.command("trace")(trace)


if __name__ == "__main__":
    app()
