"""Every hyper-parameter of the recommender build, in one typed object read from ``TOLLGATE_PIPELINE_*``.

Paths (data directory, model repository) are not here: they are :class:`pipeline.settings.PipelineSettings`.
Everything in this object feeds the build fingerprint, so changing any value (e.g.
``TOLLGATE_PIPELINE_EPOCHS=5``) makes the next ``python -m pipeline build recommender`` retrain.

The ``*_grid`` fields are the candidates' hyper-parameter grids, searched on the validation split
only (see :mod:`pipeline.recommender.tuning`); the BPR fields outside the grids are the settings of
the BPR served until now, the reference every candidate is compared against.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class RecommenderPipelineSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOLLGATE_PIPELINE_", env_file=None, extra="ignore")

    # --- data ------------------------------------------------------------------------------
    dataset_file: str = Field(
        "online-retail/online_retail.csv.gz", description="Transactions file, relative to PipelineSettings.data_dir."
    )
    cutoff_date: date = Field(
        date(2011, 11, 11),
        description="Purchases before this day train the model; the rest (4 weeks, to 2011-12-09) is held out.",
    )
    validation_days: int = Field(
        28,
        ge=1,
        description="The validation split: the last this many days before cutoff_date, split from the earlier "
        "purchases exactly as the test split is from all of them (default: as long as the test window).",
    )

    # --- BPR matrix factorisation: the settings served until now (the reference) ----------------
    # They were chosen by a sweep scored on the test hold-out itself; the build now keeps them only
    # as the reference and tunes BPR's candidate on the validation split (bpr_*_grid).
    embedding_dim: int = Field(64, ge=1, description="Width of user and item vectors.")
    epochs: int = Field(10, ge=1, description="Passes over the distinct (user, item) pairs; lower it for quick runs.")
    batch_size: int = Field(4096, ge=1, description="Positive pairs per optimizer step.")
    learning_rate: float = Field(0.005, gt=0, description="Adam learning rate.")
    l2_reg: float = Field(1e-4, ge=0, description="L2 penalty on the embeddings touched by a batch.")
    negatives_per_positive: int = Field(8, ge=1, description="Uniformly sampled negative items per positive pair.")
    init_std: float = Field(0.01, gt=0, description="Std of the normal initialisation of the embeddings.")
    seed: int = Field(20111209, description="Seeds python, numpy and torch; the seed of the served model.")
    evaluation_seeds: tuple[int, ...] = Field(
        (20111209, 20111210, 20111211),
        min_length=1,
        description="Seeds of the test runs of randomly trained candidates (BPR, ALS): the table reports their mean.",
    )
    train_threads: int = Field(
        1, ge=1, description="torch intra-op threads while training (2 was no faster here, and spins under contention)."
    )

    # --- candidates' grids, searched on the validation split -------------------------------------
    bpr_epochs_grid: tuple[int, ...] = Field(
        (10,), min_length=1, description="BPR epochs tried (one value: BPR dominates the build's time)."
    )
    bpr_l2_grid: tuple[float, ...] = Field((1e-4, 1e-3), min_length=1, description="BPR L2 penalties tried.")
    als_factors_grid: tuple[int, ...] = Field((32, 64, 128), min_length=1, description="ALS factors tried.")
    als_regularization_grid: tuple[float, ...] = Field(
        (0.01, 0.1, 1.0), min_length=1, description="ALS L2 regularisation tried."
    )
    als_alpha_grid: tuple[float, ...] = Field(
        (1.0, 10.0), min_length=1, description="ALS confidence of a purchase tried (implicit's alpha; unobserved pairs weigh 1)."
    )
    als_iterations: int = Field(15, ge=1, description="ALS sweeps (fixed; the grid varies the rest).")
    knn_neighbours_grid: tuple[int, ...] = Field(
        (50, 200, 0), min_length=1, description="Item-kNN neighbours kept per item (0: all)."
    )
    ease_l2_grid: tuple[float, ...] = Field(
        (100.0, 250.0, 500.0, 1000.0, 2000.0), min_length=1, description="EASE L2 penalties (lambda) tried."
    )
    blend_recency_days_grid: tuple[float, ...] = Field(
        (0.0, 30.0, 90.0),
        min_length=1,
        description="EASE blend: e-folding time in days of a past purchase's weight in the history (0: no decay).",
    )
    blend_trend_days_grid: tuple[int, ...] = Field(
        (14, 28), min_length=1, description="EASE blend: window in days of the trending-items prior."
    )
    blend_trend_weight_grid: tuple[float, ...] = Field(
        (0.0, 0.25, 0.5, 1.0),
        min_length=1,
        description="EASE blend: weight of the trending prior against the user's max-normalised EASE scores.",
    )
    prune_top_n_grid: tuple[int, ...] = Field(
        (25, 50, 100, 200),
        min_length=1,
        description="Item-item weights kept per item (largest magnitude) when serving an item-item model, tuned "
        "on validation: the value whose int8 form has the best validation NDCG@k is served.",
    )

    # --- evaluation and measurement ------------------------------------------------------------
    top_k: int = Field(10, ge=1, description="Cut-off of recall@k, NDCG@k and the top-k overlap.")
    bootstrap_resamples: int = Field(
        2000, ge=100, description="Paired bootstrap resamples of the test users (interval vs the reference BPR)."
    )
    bootstrap_confidence: float = Field(0.95, gt=0, lt=1, description="Coverage of the bootstrap interval.")
    bench_warmup: int = Field(5, ge=0, description="Untimed single-user requests before each candidate's timing.")
    bench_repeats: int = Field(
        200, ge=1, description="Timed single-user requests per candidate (in-process compute); the median is reported."
    )

    gate_probe_users: int = Field(
        200,
        ge=1,
        description="Known customers a new version's eval.json lists for `tollgate models gate` to send its compute "
        "probes for (drawn with the seed).",
    )

    # --- serving (rendered into config.pbtxt) -----------------------------------------------------
    model_name: str = Field("recommender", description="Triton model name the gateway calls.")
    max_batch_size: int = Field(64, ge=1, description="Largest dynamic batch Triton forms.")
    max_queue_delay_us: int = Field(500, ge=0, description="How long Triton waits to grow a dynamic batch.")
    instance_count: int = Field(1, ge=1, description="CPU model instances (one stub process each).")
    cpu_int8_kernel: Literal["int8-gemm", "int8-dequantize"] = Field(
        "int8-dequantize",
        description="How a CPU instance scores with the int8 table (see recommender_scoring.py); eval.json "
        "reports the quality of this kernel and the speed of both. At 3.7k items the FBGEMM int8 GEMM "
        "was ~15 % faster at batch 64 but slower at batch 1 (more small ops; inside Triton, batch-1 "
        "COMPUTE_NS p50 ~380-480 us vs ~340 us), and relies on torch's deprecated quantized tensors, "
        "so the plain kernel is the default.",
    )
    serving_threads: int = Field(
        1, ge=1, description="torch.set_num_threads inside each model instance (and in the speed measurement)."
    )
