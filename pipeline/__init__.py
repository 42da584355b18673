"""Model pipeline: real data -> train / encode -> evaluate -> quantize -> Triton model repository.

``python -m pipeline build [recommender|search] [--force]`` (``make models``: both). Two models,
built alike, each in its own package:

- :mod:`pipeline.recommender`: candidates (popularity, item-kNN, ALS, EASE and its blend, BPR) tuned
  on a validation split, compared on the test split, the winner served -> ``model_repo/recommender``;
- :mod:`pipeline.search`: sentence-encoder product search -> ``model_repo/query_encoder``,
  ``product_index`` and the ensemble ``product_search``.

What both use sits here: :mod:`pipeline.settings` (paths, ``TOLLGATE_DATA_DIR`` /
``TOLLGATE_MODEL_REPOSITORY``), :mod:`pipeline.data` (loading and cleaning the transactions),
:mod:`pipeline.metrics`, :mod:`pipeline.seeding`, :mod:`pipeline.fingerprint` (reuse of an
unchanged build), :mod:`pipeline.model_dir` (staged, atomic model directories, manifest and
build ids) and :mod:`pipeline.model_sources` (the tracked serving code the builds run).
The pipeline is offline: it imports nothing of the gateway, the deployment or the benchmarks.
"""
