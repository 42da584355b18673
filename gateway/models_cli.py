"""``tollgate models ...``: the life of a model version at run time. Each command lives in its own module;
this file only registers them."""

from __future__ import annotations

import typer

from gateway.gate_cli import gate

models_app = typer.Typer(no_args_is_help=True)
models_app.command("gate")(gate)
