"""The terminal summary of a recommender build, from its ``eval.json``: the candidate table and the chosen settings."""

from __future__ import annotations

from rich.table import Table


def _signed(value: float) -> str:
    return f"{value:+.3f}".replace("0.", ".", 1)


def _interval(row: dict, metric: str) -> str:
    interval = row["vs_reference"][metric]
    mark = "*" if interval["excludes_zero"] else " "
    return f"{_signed(interval['difference'])} [{_signed(interval['low'])},{_signed(interval['high'])}]{mark}"


def _quality(row: dict, metric: str) -> str:
    test = row["test"]
    if len(test.get("seeds", [])) > 1:
        return f"{test[metric]:.4f}±{test[f'{metric}_sd']:.4f}"
    return f"{test[metric]:.4f}"


def _bytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.0f} kB"


def _compute(row: dict) -> str:
    """Through Triton (COMPUTE_NS median, †) where measured, else in-process."""
    triton = row.get("triton_compute_ns")
    if triton:
        return f"{triton['median'] / 1e3:.0f} µs†"
    return f"{row['compute_us']['median_us']:.0f} µs"


def _params(params: dict) -> str:
    return ", ".join(f"{name} {value:g}" for name, value in params.items()) or "—"


def candidate_table(evaluation: dict, title: str) -> Table:
    k = evaluation["k"]
    table = Table(title=title)
    for column in (
        "model", f"recall@{k}", f"NDCG@{k}", "Δrecall vs BPR [95% CI]", "ΔNDCG vs BPR [95% CI]", "train",
        "memory", "compute/req",
    ):
        table.add_column(column, justify="left" if column == "model" else "right")
    for row in evaluation["candidates"]:
        table.add_row(
            row["label"] + (" (served)" if row.get("served") else ""),
            _quality(row, f"recall_at_{k}"),
            _quality(row, f"ndcg_at_{k}"),
            _interval(row, f"recall_at_{k}"),
            _interval(row, f"ndcg_at_{k}"),
            f"{row['training_seconds']:.1f} s",
            _bytes(row["serving_bytes"]),
            _compute(row),
        )
    return table


def settings_table(evaluation: dict) -> Table:
    k = evaluation["k"]
    table = Table(title="settings chosen on the validation split")
    for column in ("model", "setting", f"validation recall@{k}", f"validation NDCG@{k}", "settings tried"):
        table.add_column(column, justify="left" if column in ("model", "setting") else "right")
    for row in evaluation["candidates"]:
        if "validation" not in row:
            continue
        table.add_row(
            row["label"], _params(row["params"]), f"{row['validation'][f'recall_at_{k}']:.4f}",
            f"{row['validation'][f'ndcg_at_{k}']:.4f}", str(len(evaluation["tuning"][row["name"]])),
        )
    return table


def summary_tables(evaluation: dict, reused: bool) -> list[Table]:
    k = evaluation["k"]
    served = evaluation["served"]
    table = candidate_table(
        evaluation, f"recommender build {evaluation['build_id']}" + (" (reused)" if reused else "")
    )
    loss = served["relative_loss_vs_fp32_unpruned"]
    table.caption = (
        f"test: {evaluation['n_test_users']} users after {evaluation['cutoff_date']}; mean±sd over seeds where "
        f"training is random; Δ = paired bootstrap vs BPR (today), * = interval excludes 0; † = COMPUTE_NS "
        f"through Triton, others in-process. Served: {served['label']} ({served['variant']}), which loses "
        f"{loss['recall']:.1%} of recall@{k} and {loss['ndcg']:.1%} of NDCG@{k} against its fp32 unpruned model"
    )
    return [table, settings_table(evaluation)]
