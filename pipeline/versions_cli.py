"""``python -m pipeline versions [list|promote|drop-candidate]``: the recommender's kept versions, for local workflows.

Promoting here only rewrites the repository (``versions.json`` and the config's
``version_policy``); a running Triton picks it up when the model is loaded again. Run
``tollgate models gate`` before promoting.
"""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from pipeline.recommender.build import model_dir_of
from pipeline.recommender.config import RecommenderPipelineSettings
from pipeline.recommender.export import apply_record
from pipeline.recommender.version_comparison import GATE_EVALUATION_KEY
from pipeline.version_store import load_record

versions_app = typer.Typer(add_completion=False, help=__doc__, no_args_is_help=True)
console = Console()


@versions_app.command("list")
def list_versions() -> None:
    """The kept versions, their roles and build ids, and the gate evaluation each recorded."""
    paths = model_dir_of()
    record = load_record(paths)
    if not record.versions:
        raise typer.BadParameter(f"no version of {paths.name} in {paths.repository}: run `make models`")
    table = Table(title=f"{paths.name} versions in {paths.repository}")
    for column in ("version", "role", "build_id", "created", "gate recall@k", "gate NDCG@k"):
        table.add_column(column)
    for version in record.kept():
        evaluation_file = paths.at_version(version).eval_file
        gate = json.loads(evaluation_file.read_text()).get(GATE_EVALUATION_KEY, {}) if evaluation_file.is_file() else {}
        own = gate.get("versions", {}).get(str(version), {})
        k = gate.get("k", 10)
        role = record.role_of(version)
        table.add_row(
            str(version), role.value if role else "", record.build_id(version), record.versions[version].built_at,
            f"{own[f'recall_at_{k}']:.4f}" if own else "—", f"{own[f'ndcg_at_{k}']:.4f}" if own else "—",
        )
    console.print(table)


@versions_app.command()
def promote(
    keep_previous: bool = typer.Option(True, help="Keep the serving version on disk as previous (for a rollback)."),
) -> None:
    """The candidate becomes the serving version."""
    paths = model_dir_of()
    try:
        record, retired = load_record(paths).promoted(keep_previous)
    except LookupError as error:
        raise typer.BadParameter(str(error)) from None
    apply_record(paths, RecommenderPipelineSettings(), record, retired)
    console.print(f"{paths.name}: version {record.serving} serves (build {record.serving_build_id})")


@versions_app.command("drop-candidate")
def drop_candidate() -> None:
    """Deletes the candidate (e.g. one the gate refused)."""
    paths = model_dir_of()
    try:
        record, retired = load_record(paths).without_candidate()
    except LookupError as error:
        raise typer.BadParameter(str(error)) from None
    apply_record(paths, RecommenderPipelineSettings(), record, retired)
    console.print(f"{paths.name}: dropped version {retired[0]}; version {record.serving} serves")
