"""The terminal summary of a search build, from its ``eval.json``: retrieval quality and encoder agreement."""

from __future__ import annotations

from rich.table import Table


def summary_tables(evaluation: dict, reused: bool) -> list[Table]:
    return [quality_table(evaluation, reused), agreement_table(evaluation)]


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
