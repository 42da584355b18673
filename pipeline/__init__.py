"""Model pipeline: real data -> train -> evaluate -> quantize -> Triton model repository.

Command line: ``python -m pipeline build [--force]``. From Python::

    from pipeline.build import build, is_up_to_date
    result = build()              # reuses the last build when data, code and config are unchanged
    result.paths.model_dir        # <model_repository>/recommender
    result.manifest["build_id"]

    from pipeline.artifacts import load_exported
    exported = load_exported(result.paths.repository)   # titles, seen items, popularity, eval figures

Hyper-parameters: :class:`pipeline.config.PipelineSettings` (``TOLLGATE_PIPELINE_*``).
"""
