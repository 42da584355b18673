"""``python -m pipeline.search build [--force]``: build the search models; ``bench-serving``: time them in Triton."""

from __future__ import annotations

import json
import logging

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

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
    """Embed the catalogue, export + quantise the query encoder, evaluate, write the three models (reused when unchanged)."""
    from pipeline.search.build import run_search_build

    result = run_search_build(force=force)
    evaluation = json.loads(result.paths.eval_file.read_text())
    console.print(quality_table(evaluation, reused=result.reused))
    console.print(agreement_table(evaluation))
    console.print(f"eval: {result.paths.eval_file}  build_id: {result.manifest['build_id']}")


@app.command("bench-serving")
def bench_serving(
    queries: int = typer.Option(200, min=1, help="Sequential timed queries per path."),
    warmup: int = typer.Option(20, min=0, help="Untimed queries per path first."),
    k: int = typer.Option(10, min=1, help="Products asked for."),
) -> None:
    """Start Triton on the built search models; time the ensemble vs the client-composed two calls."""
    from pipeline.search.serving_bench import run_serving_bench

    report, path = run_serving_bench(n_queries=queries, warmup=warmup, k=k)
    table = Table(title=f"search through Triton: {report['queries']} sequential queries, k={k}")
    for column in ("path", "p50 ms", "p99 ms", "mean ms", "encoder COMPUTE_NS sum", "index COMPUTE_NS sum"):
        table.add_column(column, justify="right" if column != "path" else "left")
    for name in ("ensemble", "composed"):
        entry = report[name]
        table.add_row(
            name,
            f"{entry['p50_ms']:.2f}",
            f"{entry['p99_ms']:.2f}",
            f"{entry['mean_ms']:.2f}",
            f"{entry['encoder_compute_ns_sum']:,}",
            f"{entry['index_compute_ns_sum']:,}",
        )
    console.print(table)
    console.print(f"written to {path}")


def quality_table(evaluation: dict, reused: bool) -> Table:
    k = evaluation["k"]
    judged = evaluation["judged_set"]
    table = Table(title=f"search build {evaluation['build_id']}" + (" (reused)" if reused else ""))
    table.add_column("ranker")
    for column in (f"recall@{k}", f"NDCG@{k}", "hit@1"):
        table.add_column(column, justify="right")
    for name, figures in evaluation["quality"].items():
        table.add_row(
            name,
            f"{figures[f'recall_at_{k}']:.4f}",
            f"{figures[f'ndcg_at_{k}']:.4f}",
            f"{figures['hit_rate_at_1']:.4f}",
        )
    table.caption = f"{judged['queries']} judged queries over {evaluation['catalogue']['items']} products"
    return table


def agreement_table(evaluation: dict) -> Table:
    k = evaluation["k"]
    table = Table(title="query encoder agreement")
    for column in ("comparison", "n", "mean cosine", f"top-{k} overlap", "same top-1"):
        table.add_column(column, justify="right" if column != "comparison" else "left")
    rows = [(f"int8 vs fp32, {name}", figures) for name, figures in evaluation["int8_vs_fp32"].items()]
    rows += [
        (f"{name} alone vs batched", figures)
        for name, figures in evaluation["batch_dependence"].items()
        if isinstance(figures, dict)
    ]
    for name, figures in rows:
        table.add_row(
            name,
            str(figures["queries"]),
            f"{figures['mean_cosine']:.4f}",
            f"{figures[f'top{k}_overlap']:.4f}",
            f"{figures['top1_agreement']:.4f}",
        )
    latency = evaluation["encode_latency"]
    rows = [key for key in latency if key.startswith("threads_")]
    table.caption = "; ".join(
        f"{key}: " + ", ".join(f"{name} {value['median_ms']:.2f} ms" for name, value in latency[key].items()) for key in rows
    )
    return table


if __name__ == "__main__":
    app()
