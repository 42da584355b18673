"""Renders ``config.pbtxt`` of the recommender: the Triton contract the gateway relies on.

Inputs (batch dimension implicit; a client sends shape [rows, n], one user per row):
  USER_ID [1] string, K [1] int32, EXCLUDE_ITEM_IDS [-1] string (optional, ragged across a batch),
  RECENT_ITEM_IDS [-1] string (optional, ragged: purchases the build does not know yet).
Outputs (shape [rows, width]):
  ITEM_IDS, ITEM_TITLES [-1] string, SCORES [-1] fp32, COMPUTE_NS [1] int64, PERSONALIZED [1] bool.
The parameter ``padded_rows`` declares the several-rows contract of model.py: string inputs of
a row shorter than the request's width are padded with empty strings (ignored), and rows with
fewer items than the widest are padded at their end with empty ids and titles and 0.0 scores
(the gateway coalesces concurrent calls into one request only for a model that declares it).
Versions: ``version_policy`` lists the kept versions (serving, candidate, previous; see
:mod:`pipeline.model_versions`); the parameters name the serving version (``serving_version``),
its build_id (``build_id``, what a client that calls no particular version reads) and every
kept version's build_id (``build_id.<N>``, which each version's model.py checks its artifacts against).
"""

from __future__ import annotations

from pipeline.model_dir import BUILD_ID_PARAMETER, rendered_header, version_build_id_parameter
from pipeline.model_versions import VersionRecord
from pipeline.recommender.config import RecommenderPipelineSettings

NUM_THREADS_PARAMETER = "num_threads"
ARTIFACTS_DIR_PARAMETER = "artifacts_dir"
INT8_KERNEL_PARAMETER = "cpu_int8_kernel"
SERVING_VERSION_PARAMETER = "serving_version"
PADDED_ROWS_PARAMETER = "padded_rows"

_TEMPLATE = """\
name: "{model_name}"
backend: "python"
version_policy: {{ specific: {{ versions: [ {versions} ] }} }}
max_batch_size: {max_batch_size}
dynamic_batching {{
  max_queue_delay_microseconds: {max_queue_delay_us}
}}
instance_group [
  {{
    kind: KIND_CPU
    count: {instance_count}
  }}
]
input [
  {{
    name: "USER_ID"
    data_type: TYPE_STRING
    dims: [ 1 ]
  }},
  {{
    name: "K"
    data_type: TYPE_INT32
    dims: [ 1 ]
  }},
  {{
    name: "EXCLUDE_ITEM_IDS"
    data_type: TYPE_STRING
    dims: [ -1 ]
    optional: true
    allow_ragged_batch: true
  }},
  {{
    name: "RECENT_ITEM_IDS"
    data_type: TYPE_STRING
    dims: [ -1 ]
    optional: true
    allow_ragged_batch: true
  }}
]
output [
  {{
    name: "ITEM_IDS"
    data_type: TYPE_STRING
    dims: [ -1 ]
  }},
  {{
    name: "ITEM_TITLES"
    data_type: TYPE_STRING
    dims: [ -1 ]
  }},
  {{
    name: "SCORES"
    data_type: TYPE_FP32
    dims: [ -1 ]
  }},
  {{
    name: "COMPUTE_NS"
    data_type: TYPE_INT64
    dims: [ 1 ]
  }},
  {{
    name: "PERSONALIZED"
    data_type: TYPE_BOOL
    dims: [ 1 ]
  }}
]
parameters [
  {{
    key: "{build_id_key}"
    value {{ string_value: "{build_id}" }}
  }},
  {{
    key: "{serving_version_key}"
    value {{ string_value: "{serving_version}" }}
  }},
{version_build_ids}  {{
    key: "{threads_key}"
    value {{ string_value: "{num_threads}" }}
  }},
  {{
    key: "{artifacts_key}"
    value {{ string_value: "{artifacts_dir}" }}
  }},
  {{
    key: "{int8_kernel_key}"
    value {{ string_value: "{int8_kernel}" }}
  }},
  {{
    key: "{padded_rows_key}"
    value {{ string_value: "true" }}
  }}
]
"""


_VERSION_BUILD_ID = """\
  {{
    key: "{key}"
    value {{ string_value: "{build_id}" }}
  }},
"""


def render_config(config: RecommenderPipelineSettings, record: VersionRecord, artifacts_dir: str) -> str:
    """The config of the versions ``record`` keeps (it must have a serving version)."""
    version_build_ids = "".join(
        _VERSION_BUILD_ID.format(key=version_build_id_parameter(version), build_id=record.build_id(version))
        for version in record.kept()
    )
    return rendered_header("recommender") + _TEMPLATE.format(
        model_name=config.model_name,
        versions=", ".join(str(version) for version in record.kept()),
        serving_version_key=SERVING_VERSION_PARAMETER,
        serving_version=record.serving,
        version_build_ids=version_build_ids,
        max_batch_size=config.max_batch_size,
        max_queue_delay_us=config.max_queue_delay_us,
        instance_count=config.instance_count,
        build_id_key=BUILD_ID_PARAMETER,
        build_id=record.serving_build_id,
        threads_key=NUM_THREADS_PARAMETER,
        num_threads=config.serving_threads,
        artifacts_key=ARTIFACTS_DIR_PARAMETER,
        artifacts_dir=artifacts_dir,
        int8_kernel_key=INT8_KERNEL_PARAMETER,
        int8_kernel=config.cpu_int8_kernel,
        padded_rows_key=PADDED_ROWS_PARAMETER,
    )
