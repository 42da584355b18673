"""Renders the three ``config.pbtxt`` of search: the Triton contract the gateway relies on.

``query_encoder``: QUERY [1] string -> EMBEDDING [384] fp32 (unit norm), COMPUTE_NS [1] int64.
``product_index``: EMBEDDING [384] fp32, K [1] int32 -> ITEM_IDS [-1] string, ITEM_TITLES [-1] string,
SCORES [-1] fp32, COMPUTE_NS [1] int64.
``product_search`` (ensemble of the two): QUERY, K -> ITEM_IDS, ITEM_TITLES, SCORES,
ENCODER_COMPUTE_NS, INDEX_COMPUTE_NS.
The batch dimension is implicit (``max_batch_size`` > 0): a client sends QUERY as shape [rows, 1],
one query per row, each row with its own K; the ensemble's ``padded_rows`` parameter declares
that outputs are [rows, width], a row with fewer items than the widest padded at its end with
empty ids and titles and 0.0 scores, each row with its own COMPUTE_NS (the gateway coalesces
concurrent calls into one request only for a model that declares it).
"""

from __future__ import annotations

from pipeline.model_dir import BUILD_ID_PARAMETER, rendered_header
from pipeline.search.config import SearchPipelineSettings

EMBEDDING_DIM = 384
PADDED_ROWS_PARAMETER = "padded_rows"
_HEADER = rendered_header("search")


def _tensor(name: str, data_type: str, dims: str) -> str:
    return f'  {{\n    name: "{name}"\n    data_type: {data_type}\n    dims: [ {dims} ]\n  }}'


def _tensors(kind: str, tensors: list[tuple[str, str, str]]) -> str:
    return f"{kind} [\n" + ",\n".join(_tensor(*tensor) for tensor in tensors) + "\n]\n"


def _parameters(values: dict[str, str]) -> str:
    entries = [f'  {{\n    key: "{key}"\n    value {{ string_value: "{value}" }}\n  }}' for key, value in values.items()]
    return "parameters [\n" + ",\n".join(entries) + "\n]\n"


def _python_model(name: str, config: SearchPipelineSettings) -> str:
    return (
        f'{_HEADER}name: "{name}"\nbackend: "python"\nmax_batch_size: {config.max_batch_size}\n'
        f"dynamic_batching {{\n  max_queue_delay_microseconds: {config.max_queue_delay_us}\n}}\n"
        "instance_group [\n  {\n    kind: KIND_CPU\n    count: 1\n  }\n]\n"
    )


def render_encoder_config(config: SearchPipelineSettings, build_id: str, artifacts_dir: str, onnx_file: str) -> str:
    return (
        _python_model(config.encoder_model_name, config)
        + _tensors("input", [("QUERY", "TYPE_STRING", "1")])
        + _tensors("output", [("EMBEDDING", "TYPE_FP32", str(EMBEDDING_DIM)), ("COMPUTE_NS", "TYPE_INT64", "1")])
        + _parameters(
            {
                BUILD_ID_PARAMETER: build_id,
                "artifacts_dir": artifacts_dir,
                "onnx_file": onnx_file,
                "max_length": str(config.max_length),
                "intra_op_threads": str(config.encoder_threads),
                "gpu_dtype": config.gpu_dtype,
            }
        )
    )


def render_index_config(config: SearchPipelineSettings, build_id: str, artifacts_dir: str, index_file: str) -> str:
    return (
        _python_model(config.index_model_name, config)
        + _tensors("input", [("EMBEDDING", "TYPE_FP32", str(EMBEDDING_DIM)), ("K", "TYPE_INT32", "1")])
        + _tensors(
            "output",
            [
                ("ITEM_IDS", "TYPE_STRING", "-1"),
                ("ITEM_TITLES", "TYPE_STRING", "-1"),
                ("SCORES", "TYPE_FP32", "-1"),
                ("COMPUTE_NS", "TYPE_INT64", "1"),
            ],
        )
        + _parameters(
            {
                BUILD_ID_PARAMETER: build_id,
                "artifacts_dir": artifacts_dir,
                "index_file": index_file,
                "blas_threads": str(config.index_blas_threads),
            }
        )
    )


def _step(model: str, inputs: dict[str, str], outputs: dict[str, str]) -> str:
    def maps(kind: str, mapping: dict[str, str]) -> str:
        return "".join(f'      {kind} {{ key: "{key}" value: "{value}" }}\n' for key, value in mapping.items())

    return (
        f'    {{\n      model_name: "{model}"\n      model_version: -1\n'
        + maps("input_map", inputs)
        + maps("output_map", outputs)
        + "    }"
    )


def render_ensemble_config(config: SearchPipelineSettings, build_id: str) -> str:
    """Model-level keys are the composing model's tensor names, values the ensemble's."""
    steps = [
        _step(
            config.encoder_model_name,
            {"QUERY": "QUERY"},
            {"EMBEDDING": "query_embedding", "COMPUTE_NS": "ENCODER_COMPUTE_NS"},
        ),
        _step(
            config.index_model_name,
            {"EMBEDDING": "query_embedding", "K": "K"},
            {
                "ITEM_IDS": "ITEM_IDS",
                "ITEM_TITLES": "ITEM_TITLES",
                "SCORES": "SCORES",
                "COMPUTE_NS": "INDEX_COMPUTE_NS",
            },
        ),
    ]
    return (
        f'{_HEADER}name: "{config.ensemble_model_name}"\nplatform: "ensemble"\nmax_batch_size: {config.max_batch_size}\n'
        + _tensors("input", [("QUERY", "TYPE_STRING", "1"), ("K", "TYPE_INT32", "1")])
        + _tensors(
            "output",
            [
                ("ITEM_IDS", "TYPE_STRING", "-1"),
                ("ITEM_TITLES", "TYPE_STRING", "-1"),
                ("SCORES", "TYPE_FP32", "-1"),
                ("ENCODER_COMPUTE_NS", "TYPE_INT64", "1"),
                ("INDEX_COMPUTE_NS", "TYPE_INT64", "1"),
            ],
        )
        + "ensemble_scheduling {\n  step [\n" + ",\n".join(steps) + "\n  ]\n}\n"
        + _parameters({BUILD_ID_PARAMETER: build_id, PADDED_ROWS_PARAMETER: "true"})
    )
