"""Semantic product search: the build behind the Triton models ``query_encoder``, ``product_index``
and the ensemble ``product_search``.

Command line: ``python -m pipeline build search [--force]``. From Python::

    from pipeline.search.build import build_search, is_up_to_date
    result = build_search()        # model_repo/product_search/1/artifacts/eval.json is result.paths.eval_file
    result.manifest["build_ids"]   # one per model

The build is skipped when its input fingerprint (data file, sources, encoder, libraries,
config) matches the last one; ``force=True`` rebuilds. Hyper-parameters:
:class:`pipeline.search.config.SearchPipelineSettings` (``TOLLGATE_PIPELINE_SEARCH_*``).
"""
