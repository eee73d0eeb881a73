"""Pointwise LLM reranking from the log-probability of a Yes/No relevance judgement.

For each candidate the model reads the question and the passage and is asked
whether the passage helps answer it. Instead of generating, we score the two
possible replies: relevance = log P(Yes) − log(P(Yes) + P(No)), the model's
probability of "Yes" given that it says one of the two. All candidates go to
the backend in one `score` call, which batches them: the embedded llama.cpp
backend reuses the KV cache of the shared prompt prefix (question first, so
candidates differ only after it), and vLLM batches and prefix-caches on the
server.

The backend is passed in (rerank/ must not import serve/): anything with the
`score`/`chat_tokens`/`tokenize` methods of `sciknow.serve.backends.base.Backend`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from sciknow.records import Evidence
from sciknow.rerank.base import order_by_scores

SYSTEM = (
    "You judge search results for {library} users. Given a question and a passage from "
    "the documentation, reply Yes if the passage helps answer the question, else No."
)
USER = "Question: {question}\n\nPassage:\n{passage}\n\nDoes the passage help answer the question?"


class Scored(Protocol):
    logprobs: list[float | None]


class ScoringBackend(Protocol):
    """The part of the model-backend protocol a reranker needs."""

    def score(self, sequences: Sequence[Sequence[int]], top_k: int = 0) -> Sequence[Scored]: ...

    def tokenize(self, text: str, special: bool = False) -> list[int]: ...

    def chat_tokens(self, messages: list[dict[str, str]]) -> list[int]: ...


class LLMReranker:
    """Orders candidates by the backend's probability that each one is relevant."""

    def __init__(
        self, backend: ScoringBackend, library: str = "PETSc", max_passage_chars: int = 1200
    ) -> None:
        self.backend = backend
        self.library = library
        self.max_passage_chars = max_passage_chars
        self._yes = backend.tokenize("Yes")[0]
        self._no = backend.tokenize("No")[0]

    def prompt(self, question: str, passage: str) -> list[int]:
        """Chat-template token ids up to the assistant's first reply token."""
        messages = [
            {"role": "system", "content": SYSTEM.format(library=self.library)},
            {
                "role": "user",
                "content": USER.format(
                    question=question, passage=passage[: self.max_passage_chars]
                ),
            },
        ]
        return self.backend.chat_tokens(messages)

    def relevance(self, question: str, passages: list[str]) -> list[float]:
        """log P(Yes | Yes or No) for each passage, from one batched `score` call."""
        sequences = []
        for passage in passages:
            prompt = self.prompt(question, passage)
            sequences += [[*prompt, self._yes], [*prompt, self._no]]
        scored = self.backend.score(sequences)
        last = [s.logprobs[-1] for s in scored]
        if any(lp is None for lp in last):
            raise RuntimeError("the backend returned no log-probability for the reply token")
        yes = np.array(last[0::2], dtype=np.float64)
        no = np.array(last[1::2], dtype=np.float64)
        return (yes - np.logaddexp(yes, no)).tolist()

    def rerank(self, question: str, candidates: list[Evidence], k: int) -> list[Evidence]:
        if not candidates:
            return []
        scores = self.relevance(question, [e.text for e in candidates])
        return order_by_scores(candidates, scores, "llm", k)
