"""Query encoding shared by ``model.py`` and the search build (which measures this very code).

all-MiniLM-L6-v2 embeds a text as the attention-masked mean of its last hidden states,
L2-normalised. Two encoders, same input and output:

- :class:`OnnxQueryEncoder`: ONNX Runtime on CPU; the graph (exported by the build) already
  contains the pooling and the normalisation, so it maps token ids to unit vectors.
- :class:`TorchQueryEncoder`: the Hugging Face BertModel in any dtype/device (fp16 on CUDA in
  Triton GPU instances, fp32 on CPU in the build); pooling and normalisation run in fp32.

This file imports neither torch nor onnxruntime at module level: each encoder imports what it
needs, so a CPU instance never loads torch and a GPU one never needs onnxruntime.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

PAD_TOKEN = "[PAD]"
EMBEDDING_DIM = 384


def load_tokenizer(path: Path | str, max_length: int) -> Tokenizer:
    """The model's fast tokenizer, truncating at ``max_length`` and padding to the batch's longest.

    The shipped ``tokenizer.json`` pads every text to a fixed 128 tokens, which would make a
    3-word query cost as much as a 128-token one; padding to the longest keeps the batch small.
    """
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.enable_truncation(max_length=max_length)
    tokenizer.enable_padding(pad_id=tokenizer.token_to_id(PAD_TOKEN), pad_token=PAD_TOKEN)
    return tokenizer


def tokenize(tokenizer: Tokenizer, texts: Sequence[str]) -> dict[str, np.ndarray]:
    """``input_ids`` and ``attention_mask``, int64 ``[len(texts), longest]``."""
    encodings = tokenizer.encode_batch(list(texts))
    return {
        "input_ids": np.asarray([encoding.ids for encoding in encodings], dtype=np.int64),
        "attention_mask": np.asarray([encoding.attention_mask for encoding in encodings], dtype=np.int64),
    }


def mean_pool_l2(hidden, attention_mask):
    """Masked mean over tokens, then L2 normalisation (torch tensors; also traced into the ONNX graph)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
    return pooled / pooled.norm(p=2, dim=1, keepdim=True).clamp(min=1e-12)


class OnnxQueryEncoder:
    """An ONNX Runtime CPU session over the exported graph (token ids -> unit vectors)."""

    def __init__(self, model_path: Path | str, tokenizer: Tokenizer, intra_op_threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        self.tokenizer = tokenizer

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """float32 ``[len(texts), 384]``, unit rows."""
        if not texts:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        (embeddings,) = self.session.run(None, tokenize(self.tokenizer, texts))
        return embeddings.astype(np.float32, copy=False)


class TorchQueryEncoder:
    """The Hugging Face weights in torch: fp16/bf16 on CUDA for GPU instances, fp32 on CPU for the build."""

    def __init__(self, model_dir: Path | str, tokenizer: Tokenizer, device: str = "cpu", dtype: str = "float32") -> None:
        import torch
        from transformers import BertModel
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        self.torch = torch
        self.device = torch.device(device)
        self.model = BertModel.from_pretrained(str(model_dir), dtype=getattr(torch, dtype)).to(self.device).eval()
        self.tokenizer = tokenizer

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """float32 ``[len(texts), 384]``, unit rows; waits for the device before returning."""
        if not texts:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        torch = self.torch
        tokens = tokenize(self.tokenizer, texts)
        input_ids = torch.from_numpy(tokens["input_ids"]).to(self.device)
        attention_mask = torch.from_numpy(tokens["attention_mask"]).to(self.device)
        with torch.inference_mode():
            hidden = self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=torch.zeros_like(input_ids)
            ).last_hidden_state
            embeddings = mean_pool_l2(hidden.float(), attention_mask)
        return embeddings.cpu().numpy()
