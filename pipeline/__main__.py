"""``python -m pipeline build [--force]``: build the recommender's Triton model directory."""

from __future__ import annotations

import json
import logging

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from pipeline.build import build as run_build

app = typer.Typer(add_completion=False, help=__doc__)
console = Console()


@app.callback()
def main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=Console(stderr=True), show_path=False)],
    )


@app.command()
def build(force: bool = typer.Option(False, "--force", help="Rebuild even if the inputs are unchanged.")) -> None:
    """Clean the data, train, evaluate, quantize and write model_repo/recommender (reused when unchanged)."""
    result = run_build(force=force)
    evaluation = json.loads(result.paths.eval_file.read_text())
    console.print(summary_table(evaluation, reused=result.reused))
    console.print(f"model directory: {result.paths.model_dir}  build_id: {result.manifest['build_id']}")


def summary_table(evaluation: dict, reused: bool) -> Table:
    k = evaluation["k"]
    table = Table(title=f"recommender build {evaluation['build_id']}" + (" (reused)" if reused else ""))
    table.add_column("ranker")
    table.add_column(f"recall@{k}", justify="right")
    table.add_column(f"NDCG@{k}", justify="right")
    for name in ("model_fp32", "model_int8", "popularity"):
        table.add_row(name, f"{evaluation[name][f'recall_at_{k}']:.4f}", f"{evaluation[name][f'ndcg_at_{k}']:.4f}")
    table.caption = (
        f"{evaluation['n_test_users']} test users after {evaluation['cutoff_date']}; "
        f"int8 vs fp32 top-{k} overlap {evaluation[f'top{k}_overlap_int8_vs_fp32']:.3f}"
    )
    return table


if __name__ == "__main__":
    app()
