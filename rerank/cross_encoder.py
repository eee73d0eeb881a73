"""Cross-encoder reranking with sentence-transformers' `CrossEncoder` (optional).

A cross-encoder reads question and passage together, which ranks better than
comparing two separate embeddings but costs one transformer pass per candidate.
No PyPI package ships cross-encoder weights, so this stage needs a local model
folder (e.g. a copy of cross-encoder/ms-marco-MiniLM-L6-v2) or, where a hub is
allowed, a model name; it is off by default and nothing is fetched unless the
caller lifts HF_HUB_OFFLINE itself.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Protocol

from sciknow.records import Evidence
from sciknow.rerank.base import order_by_scores


class PairScorer(Protocol):
    """What we use of `CrossEncoder`: one relevance score per (question, passage) pair."""

    def predict(self, inputs: Sequence[tuple[str, str]], batch_size: int = 32) -> Any: ...


def load_cross_encoder(model: str, threads: int = 2, max_length: int | None = None) -> PairScorer:
    """Load a CrossEncoder on the CPU from a local folder (or a cached hub name); texts are
    cut at `max_length` tokens, by default the model's own (a `sciknow tune` reranker's
    training length, 512 for the ms-marco models)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from sentence_transformers import CrossEncoder

    torch.set_num_threads(threads)
    try:
        return CrossEncoder(model, device="cpu", max_length=max_length, local_files_only=True)
    except OSError as err:
        raise RuntimeError(
            f"cross-encoder {model!r} is not a local model folder ({err}); no PyPI package "
            "ships one: copy e.g. cross-encoder/ms-marco-MiniLM-L6-v2 to a folder and set "
            "retrieval.cross_encoder to it"
        ) from None


class CrossEncoderReranker:
    """Scores each candidate with a cross-encoder and keeps the best `k`.

    `model` is a loaded scorer (tests pass a fake); otherwise `model_path` is loaded
    on first use, so building a retriever stays cheap.
    """

    def __init__(
        self,
        model_path: str = "",
        model: PairScorer | None = None,
        batch_size: int = 32,
        threads: int = 2,
    ) -> None:
        if model is None and not model_path:
            raise ValueError("CrossEncoderReranker needs a model or a model path")
        self.model_path = model_path
        self.batch_size = batch_size
        self.threads = threads
        self._model = model

    @property
    def model(self) -> PairScorer:
        if self._model is None:
            self._model = load_cross_encoder(self.model_path, self.threads)
        return self._model

    def rerank(self, question: str, candidates: list[Evidence], k: int) -> list[Evidence]:
        if not candidates:
            return []
        pairs = [(question, evidence.text) for evidence in candidates]
        scores = self.model.predict(pairs, batch_size=self.batch_size)
        return order_by_scores(candidates, [float(s) for s in scores], "cross_encoder", k)
