"""The recommender: real purchases -> candidates tuned on validation -> scored on test -> the winner,
pruned and int8 -> ``model_repo/recommender``.

Candidates: popularity, item-kNN, implicit ALS, EASE, EASE blended with recency and trending
items, and BPR (see :mod:`pipeline.recommender.candidates` and :mod:`pipeline.recommender.build`).

Command line: ``python -m pipeline build recommender [--force]``. From Python::

    from pipeline.recommender.build import build_recommender, is_up_to_date
    result = build_recommender()   # reuses the last build when data, code and config are unchanged
    result.paths.path              # <model_repository>/recommender
    result.manifest["build_id"]

    from pipeline.recommender.artifact_reader import load_exported
    exported = load_exported(result.paths.repository)   # titles, seen items, popularity, eval figures

Hyper-parameters: :class:`pipeline.recommender.config.RecommenderPipelineSettings` (``TOLLGATE_PIPELINE_*``).
"""
