"""The terminal summary of a recommender build, from its ``eval.json``."""

from __future__ import annotations

from rich.table import Table


def summary_tables(evaluation: dict, reused: bool) -> list[Table]:
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
    return [table]
