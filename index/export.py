"""Export a sentence-transformers folder once into runtime formats, kept in the model cache.

The ONNX Runtime and OpenVINO embedders (`index/embed.py`) run the model without torch;
this module makes what they load, offline, from the packaged weights: `model.onnx` (the
transformer with mean pooling and L2 normalization inside the graph, so its output is
exactly the sentence-transformers embedding), `model.int8.onnx` (dynamic int8 weights,
per channel), `openvino/model.xml` (OpenVINO IR, converted from the ONNX file) and the
model's `tokenizer.json` with `embedder.json` (sequence length, dimension).

optimum's exporters pin transformers below 4.58, older than the one installed, so the
graph is traced with `torch.onnx.export` (the TorchScript exporter optimum uses for
BERT models); torch is imported here only, once per model. Each file is written under a
temporary name and renamed into place, so a crash never leaves a half-written model and
two processes exporting at once both end with a whole one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from sciknow.errors import ConfigError

SEQUENCE_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
ONNX_OPSET = 17


def model_cache() -> Path:
    """Where converted models are kept: `$SCIKNOW_MODEL_CACHE`, else `~/.cache/sciknow`."""
    configured = os.environ.get("SCIKNOW_MODEL_CACHE")
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(configured) if configured else Path(base) / "sciknow"


def export_folder(model: Path, cache: Path | None = None) -> Path:
    """The cache folder of `model`'s exports, keyed by its weights' size and mtime."""
    weights = model / "model.safetensors"
    if not weights.is_file():
        raise ConfigError(f"{model} has no model.safetensors to export")
    stat = weights.stat()
    name = model.parent.name if model.name == "model" else model.name
    return (cache or model_cache()) / f"embedder-{name}-{stat.st_size}-{int(stat.st_mtime)}"


def _write_once(target: Path, write: Callable[[Path], None]) -> Path:
    """Make `target` with `write(tmp)` unless it exists; atomic by rename."""
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    try:
        write(tmp / target.name)
        os.replace(tmp / target.name, target)
    except OSError:
        if not target.exists():  # not another process's copy, renamed in first
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _pipeline_config(model: Path) -> dict:
    """Sequence length and dimension, after checking the pipeline is transformer → mean
    pooling → normalize (all-MiniLM-L6-v2's modules.json): the one the graph reproduces.
    Reads both sentence-transformers' older files (the packaged model) and version 6's
    (a model saved by `sciknow tune`: `pooling_mode`, the length in the tokenizer config)."""
    modules = json.loads((model / "modules.json").read_text())
    kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
    pooling = json.loads((model / "1_Pooling" / "config.json").read_text())
    modes = {key for key, value in pooling.items() if key.startswith("pooling_mode_") and value}
    mean_only = modes == {"pooling_mode_mean_tokens"} or pooling.get("pooling_mode") == "mean"
    if kinds != ["Transformer", "Pooling", "Normalize"] or not mean_only:
        raise ConfigError(
            f"{model}: the onnx and openvino embedders support transformer + mean pooling + "
            f"normalize models, not {kinds} ({pooling}); set models.embedder_backend = 'torch'"
        )
    settings = json.loads((model / "sentence_bert_config.json").read_text())
    if "max_seq_length" not in settings:
        settings = json.loads((model / "tokenizer_config.json").read_text())
    length = settings.get("max_seq_length") or settings["model_max_length"]
    dimension = pooling.get("word_embedding_dimension") or pooling["embedding_dimension"]
    return {"max_seq_length": int(length), "dimension": int(dimension)}


def _export_onnx(model: Path, path: Path) -> None:
    import torch
    from transformers import AutoModel

    class Embedding(torch.nn.Module):
        """Transformer, mean pooling over the attention mask, L2 normalization."""

        def __init__(self, encoder: torch.nn.Module) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids, attention_mask, token_type_ids):  # type: ignore[no-untyped-def]
            hidden = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2, dim=1)

    encoder = AutoModel.from_pretrained(str(model), local_files_only=True).eval()
    example = tuple(torch.ones(2, 8, dtype=torch.long) for _ in SEQUENCE_INPUTS)
    axes = {name: {0: "batch", 1: "sequence"} for name in SEQUENCE_INPUTS}
    with torch.no_grad():
        torch.onnx.export(
            Embedding(encoder).eval(), example, str(path), input_names=list(SEQUENCE_INPUTS),
            output_names=["sentence_embedding"], opset_version=ONNX_OPSET, dynamo=False,
            dynamic_axes={**axes, "sentence_embedding": {0: "batch"}},
        )  # fmt: skip


def _quantize_int8(source: Path, path: Path) -> None:
    """Dynamic int8 weights per output channel (per-tensor scales cost 0.06 in cosine)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        source, path, per_channel=True, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"]
    )


def _convert_openvino(source: Path, folder: Path) -> None:
    """OpenVINO IR (model.xml and model.bin side by side, so the folder is the unit)."""
    import openvino as ov

    folder.mkdir()
    ov.save_model(ov.convert_model(str(source)), str(folder / "model.xml"), compress_to_fp16=False)


MODEL_FILES = {
    "onnx": "model.onnx",
    "onnx-int8": "model.int8.onnx",
    "openvino": "openvino/model.xml",
}


def exported(model: Path, kind: str, cache: Path | None = None) -> Path:
    """The export folder of `model`, holding `tokenizer.json`, `embedder.json` and the model
    file of `kind` (`MODEL_FILES`), each made on first use."""
    folder = export_folder(model, cache)
    _write_once(folder / "tokenizer.json", lambda p: shutil.copyfile(model / "tokenizer.json", p))
    _write_once(
        folder / "embedder.json", lambda p: p.write_text(json.dumps(_pipeline_config(model)))
    )
    onnx = _write_once(folder / "model.onnx", lambda p: _export_onnx(model, p))
    if kind == "onnx-int8":
        _write_once(folder / "model.int8.onnx", lambda p: _quantize_int8(onnx, p))
    elif kind == "openvino":
        _write_once(folder / "openvino", lambda p: _convert_openvino(onnx, p))
    elif kind != "onnx":
        raise ValueError(f"unknown export kind {kind!r}")
    return folder
