"""``python -m pipeline build [recommender|search] [--force] [--serving]``: build the models into ``model_repo/``.

Without a model name both are built, the recommender first. A build whose inputs (data, code,
config) are unchanged is reused; ``--force`` rebuilds. A recommender build with a new build_id
becomes the candidate version (``--serving``: it serves at once); ``python -m pipeline versions``
lists the versions, promotes the candidate or drops it (see pipeline/model_versions.py).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from enum import Enum

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from pipeline.model_dir import BuildResult
from pipeline.recommender import summary as recommender_summary
from pipeline.recommender.build import build_recommender
from pipeline.search import summary as search_summary
from pipeline.search.build import build_search
from pipeline.versions_cli import versions_app

app = typer.Typer(add_completion=False, help=__doc__)
app.add_typer(versions_app, name="versions", help="The recommender's versions: list, promote the candidate, drop it.")
# The build's tables are wide; a pipe or a log file gets the width they need, a terminal keeps its own.
TABLE_WIDTH = 150
console = Console() if Console().is_terminal else Console(width=TABLE_WIDTH)


class Model(str, Enum):
    recommender = "recommender"
    search = "search"


# Each model's build (force -> result whose paths name its eval.json) and the tables that summarise it.
BUILDS: dict[Model, tuple[Callable[..., BuildResult], Callable[[dict, bool], list[Table]]]] = {
    Model.recommender: (build_recommender, recommender_summary.summary_tables),
    Model.search: (build_search, search_summary.summary_tables),
}


@app.callback()
def main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=Console(stderr=True), show_path=False)],
    )


@app.command()
def build(
    model: Model | None = typer.Argument(None, help="The model to build; both when left out (recommender first)."),
    force: bool = typer.Option(False, "--force", help="Rebuild even if the inputs are unchanged."),
    serving: bool = typer.Option(
        False, "--serving", help="The recommender's new build serves at once instead of waiting as the candidate."
    ),
) -> None:
    """Build (or reuse) the recommender and/or the search models and print their evaluation."""
    for chosen in [model] if model is not None else list(Model):
        run_build, summary_tables = BUILDS[chosen]
        promote = {"serve": True} if serving and chosen is Model.recommender else {}  # search keeps one version
        result = run_build(force=force, **promote)
        evaluation = json.loads(result.paths.eval_file.read_text())
        for table in summary_tables(evaluation, result.reused):
            console.print(table)
        version = f"  version: {result.manifest['version']}" if "version" in result.manifest else ""
        console.print(f"{chosen.value}: {result.paths.eval_file}  build_id: {result.manifest['build_id']}{version}")


if __name__ == "__main__":
    app()
