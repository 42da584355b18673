"""fp32 ONNX export of all-MiniLM-L6-v2 (pooling and L2 norm inside the graph) and its int8 quantisation.

The graph maps ``input_ids`` and ``attention_mask`` (int64 ``[batch, tokens]``, both axes
dynamic) to ``embedding`` (float32 ``[batch, 384]``, unit rows); token type ids are all zero
for single texts and are fed inside the graph. Export uses the TorchScript exporter
(``dynamo=False``) with eager attention, which traces to plain MatMul/Softmax nodes that ONNX
Runtime's dynamic quantiser understands. Quantisation is ONNX Runtime's dynamic int8: weights
of MatMul/Gemm stored as QInt8 with one scale per output channel (``per_channel``), activations
quantised at run time.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch

from pipeline.search.serving_sources import encoding_module

log = logging.getLogger(__name__)

INPUT_NAMES = ["input_ids", "attention_mask"]
OUTPUT_NAME = "embedding"


class PooledEncoder(torch.nn.Module):
    """BertModel + masked mean pooling + L2 normalisation, as one traceable module."""

    def __init__(self, bert: torch.nn.Module) -> None:
        super().__init__()
        self.bert = bert

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=torch.zeros_like(input_ids)
        ).last_hidden_state
        return encoding_module().mean_pool_l2(hidden, attention_mask)


def load_bert(model_dir: Path) -> torch.nn.Module:
    from transformers import BertModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    return BertModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()


def export_fp32(model_dir: Path, tokenizer, target: Path, opset: int) -> Path:
    example = encoding_module().tokenize(tokenizer, ["red retrospot lunch bag", "set of 3 cake tins"])
    module = PooledEncoder(load_bert(model_dir))
    inputs = tuple(torch.from_numpy(example[name]) for name in INPUT_NAMES)
    axes = {name: {0: "batch", 1: "tokens"} for name in INPUT_NAMES} | {OUTPUT_NAME: {0: "batch"}}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer and deprecation warnings of the TorchScript exporter
        torch.onnx.export(
            module,
            inputs,
            str(target),
            dynamo=False,
            opset_version=opset,
            input_names=INPUT_NAMES,
            output_names=[OUTPUT_NAME],
            dynamic_axes=axes,
        )
    log.info("exported fp32 ONNX encoder (%.1f MB)", target.stat().st_size / 1e6)
    return target


def quantize_int8(source: Path, target: Path, per_channel: bool) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))  # the quantiser logs every skipped node through the root logger
    try:
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=per_channel)
    finally:
        root.setLevel(level)
    log.info("quantized int8 encoder (per_channel=%s, %.1f MB)", per_channel, target.stat().st_size / 1e6)
    return target
