"""``tollgate models``: the life of a model. Each command group lives in its own module and
only registers here: the gate of a candidate in gateway/gate_cli.py, the rollout (status,
shadow, canary, promote, rollback) in gateway/rollout_cli.py."""

from __future__ import annotations

import typer

from gateway.gate_cli import gate
from gateway.rollout_cli import register_rollout_commands

models_app = typer.Typer(no_args_is_help=True)
models_app.command("gate")(gate)
register_rollout_commands(models_app)
