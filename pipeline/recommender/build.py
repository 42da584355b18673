"""The recommender build: clean -> tune on validation -> score on test -> choose -> prune/quantize -> refit -> export.

1. The validation split (:func:`pipeline.recommender.split.validation_split`) tunes every
   candidate's grid (:mod:`pipeline.recommender.tuning`); the servable candidate with the best
   validation NDCG@k is the one served.
2. Each candidate's chosen setting is refitted on everything before the test cutoff (train +
   validation) and scored once on the test split, over ``evaluation_seeds`` where training is
   random, with a paired bootstrap against the BPR served until now
   (:mod:`pipeline.recommender.comparison`).
3. The served form (pruned and/or int8) is scored on test against its unquantized model
   (:mod:`pipeline.recommender.served_variants`); memory and in-process compute per request are
   measured for every candidate (:mod:`pipeline.recommender.candidate_costs`).
4. The chosen model is refitted with its setting and ``seed`` on ALL cleaned purchases, so that
   it knows every customer and the last four weeks (the Christmas season), and exported. Its
   quality is not re-measured (there is no later data to measure it on).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.data import CleanedData, load_clean_data
from pipeline.fingerprint import file_sha256
from pipeline.model_dir import BuildResult, arrays_build_id
from pipeline.recommender.candidate_costs import compute_us, fp32_scorer
from pipeline.recommender.candidates import BPR_REFERENCE, TrainingSet, candidates
from pipeline.recommender.comparison import TestResult, score_on_test, versus_reference
from pipeline.recommender.compute_probe import probe_users
from pipeline.recommender.config import RecommenderPipelineSettings
from pipeline.recommender.encoding import UserItemMatrix, Vocabulary
from pipeline.recommender.evaluate import HoldOut, RankingQuality, build_holdout
from pipeline.recommender.export import (
    RecommenderDir,
    ServingArtifacts,
    apply_record,
    read_manifest,
    reusable_version,
    sync_serving_sources,
    write_version,
)
from pipeline.recommender.fingerprint import recommender_fingerprint
from pipeline.recommender.history import PurchaseHistory
from pipeline.recommender.item_item import ItemItemModel
from pipeline.recommender.popularity import popularity_scores
from pipeline.recommender.served_variants import (
    ServedVariants,
    Variant,
    choose_prune_width,
    factor_variants,
    item_item_variants,
    overlap_with_reference,
)
from pipeline.recommender.serving_arrays import scorer_arrays
from pipeline.recommender.split import TimeSplit, time_split, validation_split
from pipeline.recommender.tuning import Tuned, chosen_for_serving, tune
from pipeline.recommender.version_comparison import gate_evaluation
from pipeline.settings import PipelineSettings
from pipeline.version_store import load_record, serving_dir

log = logging.getLogger(__name__)


def model_dir_of(
    settings: PipelineSettings | None = None, config: RecommenderPipelineSettings | None = None
) -> RecommenderDir:
    """The recommender's model directory (its ``version`` field is 1; see :func:`model_paths`)."""
    settings = settings or PipelineSettings()
    config = config or RecommenderPipelineSettings()
    return RecommenderDir(repository=Path(settings.model_repository), name=config.model_name)


def model_paths(
    settings: PipelineSettings | None = None, config: RecommenderPipelineSettings | None = None
) -> RecommenderDir:
    """The recommender at its serving version: what the demo, the reports and the Triton measurement read."""
    return serving_dir(model_dir_of(settings, config))


def current_fingerprint(
    settings: PipelineSettings | None = None, config: RecommenderPipelineSettings | None = None
) -> str:
    settings = settings or PipelineSettings()
    config = config or RecommenderPipelineSettings()
    return recommender_fingerprint(Path(settings.data_dir) / config.dataset_file, config)


def is_up_to_date(settings: PipelineSettings | None = None, config: RecommenderPipelineSettings | None = None) -> bool:
    """A kept version (serving or candidate) was built from the current inputs."""
    return reusable_version(model_dir_of(settings, config), current_fingerprint(settings, config)) is not None


def build_recommender(
    force: bool = False,
    settings: PipelineSettings | None = None,
    config: RecommenderPipelineSettings | None = None,
    serve: bool = False,
) -> BuildResult[RecommenderDir]:
    """Builds the recommender into ``settings.model_repository`` as a version (see :mod:`pipeline.model_versions`).

    A kept version built from the same inputs is reused; a new build_id becomes the candidate
    (version 1 serves on an empty repository). ``serve``: the build serves at once.
    """
    settings = settings or PipelineSettings()
    config = config or RecommenderPipelineSettings()
    paths = model_dir_of(settings, config)
    data_file = Path(settings.data_dir) / config.dataset_file
    fingerprint = recommender_fingerprint(data_file, config)
    reusable = None if force else reusable_version(paths, fingerprint)
    if reusable is not None:
        record = load_record(paths)
        if serve and record.candidate == reusable.version:
            apply_record(paths, config, *record.promoted())
        for version in record.kept():
            sync_serving_sources(paths.at_version(version))
        manifest = read_manifest(reusable) or {}
        log.info("reusing build %s, version %d of %s (inputs unchanged)", manifest.get("build_id"), reusable.version,
                 paths.path)
        return BuildResult(paths=reusable, manifest=manifest, reused=True)

    started = time.perf_counter()
    data = load_clean_data(data_file)
    evaluation, serving = _train_and_evaluate(data, config)
    evaluation["build_seconds"] = round(time.perf_counter() - started, 1)
    arrays = serving.arrays()
    written = write_version(
        paths, config, arrays, evaluation, fingerprint, trained_on=trained_on(data, data_file, settings),
        score_versions=lambda versions: gate_evaluation(data, config, versions, arrays),
        serve=serve,
    )
    return BuildResult(paths=written.paths, manifest=written.manifest, reused=not written.is_new)


def trained_on(data: CleanedData, data_file: Path, settings: PipelineSettings) -> dict[str, object]:
    """The data a version was trained on: the file (relative to the data directory), its sha256 and date range."""
    stats = data.stats
    return {
        "dataset": data_file.relative_to(settings.data_dir).as_posix() if data_file.is_relative_to(settings.data_dir)
        else str(data_file),
        "sha256": file_sha256(data_file),
        "first_purchase": stats.first_purchase,
        "last_purchase": stats.last_purchase,
        "rows": stats.rows,
    }


@dataclass(frozen=True)
class Encoded:
    """The whole catalogue and customer base, and the split-independent encodings of purchase lines."""

    users: Vocabulary
    items: Vocabulary

    def history(self, lines: pd.DataFrame, reference_time: pd.Timestamp) -> PurchaseHistory:
        return PurchaseHistory.from_lines(lines, self.users, self.items, reference_time)

    def holdout(self, split: TimeSplit) -> tuple[HoldOut, UserItemMatrix]:
        test = UserItemMatrix.from_pairs(
            self.users.lookup(split.test["user_id"]), self.items.lookup(split.test["item_id"]),
            len(self.users), len(self.items),
        )
        return build_holdout(test), test


def end_of_data(interactions: pd.DataFrame) -> pd.Timestamp:
    """The served model's reference time: the midnight after the last purchase (as a cutoff is a midnight)."""
    return interactions["timestamp"].max().normalize() + pd.Timedelta(days=1)


def _train_and_evaluate(data: CleanedData, config: RecommenderPipelineSettings) -> tuple[dict, ServingArtifacts]:
    k = config.top_k
    interactions = data.interactions
    encoded = Encoded(Vocabulary.from_values(interactions["user_id"]), Vocabulary.from_values(interactions["item_id"]))
    pool = candidates(config)

    # --- 1. tune on validation -------------------------------------------------------------------
    started = time.perf_counter()
    validation = validation_split(interactions, config.cutoff_date, config.validation_days)
    validation_training = TrainingSet(encoded.history(validation.train, validation.cutoff), config.train_threads)
    validation_holdout, _ = encoded.holdout(validation)
    tuned = tune(pool, validation_training, validation_holdout, k, config.seed)
    served_candidate = chosen_for_serving(pool, tuned)
    served_params = tuned[served_candidate.name].best.params
    tuning_seconds = time.perf_counter() - started

    # --- 2. score every chosen setting once on test ----------------------------------------------
    started = time.perf_counter()
    split = time_split(interactions, config.cutoff_date)
    training = TrainingSet(encoded.history(split.train, split.cutoff), config.train_threads)
    holdout, test = encoded.holdout(split)
    results = {c.name: score_on_test(c, tuned[c.name].best.params, training, holdout, config) for c in pool}
    reference = results[BPR_REFERENCE].quality
    testing_seconds = time.perf_counter() - started

    # --- 3. the served form, memory and compute ---------------------------------------------------
    started = time.perf_counter()
    served_model = results[served_candidate.name].model
    if isinstance(served_model, ItemItemModel):
        validation_model = served_candidate.fit(validation_training, served_params, config.seed).model
        top_n, sweep = choose_prune_width(
            validation_model, validation_holdout, validation_training.history.matrix, config
        )
        variants = item_item_variants(served_model, holdout, training.history.matrix, top_n, sweep, config)
    else:
        variants = factor_variants(served_model, holdout, training.history.matrix, config)
    popularity = popularity_scores(training.history.matrix)
    users = probe_users(training.history.matrix, config)
    rows = []
    for candidate in pool:
        result = results[candidate.name]
        scorer, nbytes = fp32_scorer(result.model)
        costs = {"bytes": nbytes, "compute": compute_us(scorer, popularity, training.history.matrix, users, config)}
        rows.append(_candidate_row(result, tuned[candidate.name], reference, costs, config))
    for variant in variants.variants:
        rows.append(_variant_row(results[served_candidate.name], variant, variants, reference, popularity,
                                 training.history.matrix, users, config))
    measuring_seconds = time.perf_counter() - started

    # --- 4. refit the chosen model on everything and export ---------------------------------------
    started = time.perf_counter()
    everything = TrainingSet(encoded.history(interactions, end_of_data(interactions)), config.train_threads)
    serving_fit = served_candidate.fit(everything, served_params, config.seed)
    kind, arrays = scorer_arrays(serving_fit.model, variants.prune_top_n)
    refit_seconds = time.perf_counter() - started

    served_row = rows[-1]
    evaluation = {
        "k": k,
        "cutoff_date": config.cutoff_date.isoformat(),
        "validation_cutoff_date": validation.cutoff.date().isoformat(),
        "n_test_users": len(holdout.users),
        "n_test_pairs": int(test.nnz),
        "n_validation_users": len(validation_holdout.users),
        "protocol": (
            f"every candidate's grid is tuned on the validation split (purchases before "
            f"{validation.cutoff.date()} train, the new items of known users in the {config.validation_days} days "
            f"to {config.cutoff_date} are held out; best NDCG@{k}, one seed); the chosen setting is refitted on all "
            f"purchases before {config.cutoff_date} (train + validation) and scored once on the test split, over "
            f"{len(config.evaluation_seeds)} seeds where training is random (mean, sd); intervals: paired bootstrap "
            f"over test users ({config.bootstrap_resamples} resamples, {config.bootstrap_confidence:.0%}) of the "
            f"difference to the BPR served until now (per-user figures averaged over seeds)"
        ),
        "served": {
            "candidate": served_candidate.name,
            "label": served_candidate.label,
            "params": served_params,
            "scorer_kind": kind,
            "variant": variants.served.name,
            "prune_top_n": variants.prune_top_n,
            "relative_loss_vs_fp32_unpruned": variants.relative_loss(variants.served),
            "pruning_validation_sweep": variants.validation_sweep,
            "pruning_test_sweep": variants.test_sweep,
            "memory_bytes": {"fp32_unpruned": variants.reference.nbytes, "served": variants.served.nbytes},
        },
        "candidates": rows,
        "tuning": {name: [trial.as_dict() for trial in result.trials] for name, result in tuned.items()},
        # What the demo report and the benchmarks read: the served model unquantized and as served.
        "model_fp32": variants.reference.quality.as_dict(k),
        "model_int8": {**variants.served.quality.as_dict(k), "kernel": variants.served.scorer.kernel},
        "popularity": results["popularity"].quality.as_dict(k),
        f"top{k}_overlap_int8_vs_fp32": round(overlap_with_reference(variants, k), 6),
        "metric_definitions": (
            f"recall@{k} = hits / all held-out new items of the user; NDCG@{k} binary gains, ideal = "
            f"min(k, relevant) hits first; means over test users; items bought before the cutoff excluded "
            "from every ranking; popularity = share of training customers who bought the item"
        ),
        "dataset": data.stats.as_dict(),
        "split": split.summary(),
        "validation_split": validation.summary(),
        "timing_seconds": {
            "tuning_on_validation": round(tuning_seconds, 1),
            "scoring_on_test": round(testing_seconds, 1),
            "served_variants_memory_compute": round(measuring_seconds, 1),
            "refit_on_all_data": round(refit_seconds, 1),
        },
        "training": {
            "served_refit_seconds": round(serving_fit.seconds, 2),
            "all_data_pairs": everything.history.matrix.nnz,
        },
        "serving_model": "refitted on all cleaned purchases with the chosen setting; quality figures above are of "
        "the model fitted on the purchases before the test cutoff",
        "served_compute_in_process_us": served_row["compute_us"],
        "config": config.model_dump(mode="json"),
    }
    serving = ServingArtifacts(
        scorer_kind=kind,
        item_ids=list(encoded.items.ids),
        item_titles=[data.titles[item] for item in encoded.items.ids],
        user_ids=list(encoded.users.ids),
        popularity_scores=popularity_scores(everything.history.matrix),
        seen=everything.history.matrix,
        scorer_arrays=arrays,
    )
    return evaluation, serving


def _quality_row(quality: RankingQuality, reference: RankingQuality, config: RecommenderPipelineSettings) -> dict:
    return {name: interval.as_dict() for name, interval in versus_reference(quality, reference, config).items()}


def _candidate_row(
    result: TestResult, tuned: Tuned, reference: RankingQuality, costs: dict, config: RecommenderPipelineSettings
) -> dict:
    k = config.top_k
    best = tuned.best
    return {
        "name": result.candidate.name,
        "label": result.candidate.label,
        "params": result.params,
        "validation": {f"recall_at_{k}": round(best.recall, 6), f"ndcg_at_{k}": round(best.ndcg, 6)},
        "test": result.figures(k),
        "vs_reference": _quality_row(result.quality, reference, config),
        "training_seconds": round(float(np.mean(result.seconds)), 2),
        "serving_bytes": costs["bytes"],
        "compute_us": costs["compute"],
        "servable": result.candidate.servable,
    }


def _variant_row(
    result: TestResult,
    variant: Variant,
    variants: ServedVariants,
    reference: RankingQuality,
    popularity: np.ndarray,
    seen: UserItemMatrix,
    users: np.ndarray,
    config: RecommenderPipelineSettings,
) -> dict:
    k = config.top_k
    return {
        "name": f"{result.candidate.name}:{variant.name}",
        "label": f"{result.candidate.label} {variant.name}",
        "params": result.params,
        "test": {**variant.quality.as_dict(k), "seeds": result.seeds[:1]},
        "relative_loss_vs_fp32_unpruned": variants.relative_loss(variant),
        "vs_reference": _quality_row(variant.quality, reference, config),
        "training_seconds": round(float(np.mean(result.seconds)), 2),
        "serving_bytes": variant.nbytes,
        "compute_us": compute_us(variant.scorer, popularity, seen, users, config),
        "served": variant is variants.served,
    }


def write_assembled(
    arrays: dict[str, np.ndarray],
    blend: dict[str, float],
    note: str,
    settings: PipelineSettings | None = None,
    config: RecommenderPipelineSettings | None = None,
    serve: bool = False,
) -> BuildResult[RecommenderDir]:
    """Writes arrays made outside a training run (e.g. a served model's weights, altered) as a version.

    It is versioned and scored exactly like a build's export (the gate evaluation against the
    serving version, on the data's split); its eval.json holds that and ``note``, not a
    candidate table. ``blend``: the blend settings to score it with (``served.params``).
    """
    settings = settings or PipelineSettings()
    config = config or RecommenderPipelineSettings()
    data = load_clean_data(Path(settings.data_dir) / config.dataset_file)
    evaluation = {"k": config.top_k, "assembled": note, "served": {"params": blend}}
    fingerprint = f"assembled:{arrays_build_id(arrays)}"
    written = write_version(
        model_dir_of(settings, config), config, arrays, evaluation, fingerprint,
        trained_on=trained_on(data, Path(settings.data_dir) / config.dataset_file, settings),
        score_versions=lambda versions: gate_evaluation(data, config, versions, arrays),
        serve=serve,
    )
    return BuildResult(paths=written.paths, manifest=written.manifest, reused=not written.is_new)
