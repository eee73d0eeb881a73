"""The retriever and reranker protocols.

A retriever turns a question into ranked evidence: the hybrid retriever
(`rerank/hybrid.py`) and the evaluation's baselines it is measured against. A
reranker sees the question and an ordered candidate list and returns at most `k`
of them, best first. Stages compose by calling one after another, so each stays
small and testable on fixtures without an index.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from sciknow.index.store import Filters
from sciknow.records import Evidence


class Retriever(Protocol):
    """Question → at most `k` passages, best first (see ARCHITECTURE.md, "Data flow")."""

    def search(
        self, question: str, k: int | None = None, filters: Filters | None = None
    ) -> list[Evidence]: ...


@runtime_checkable
class Reranker(Protocol):
    """Reorders (and may drop) candidates; see ARCHITECTURE.md, "Interfaces"."""

    def rerank(self, question: str, candidates: list[Evidence], k: int) -> list[Evidence]: ...


def order_by_scores(
    candidates: list[Evidence], scores: list[float], name: str, k: int
) -> list[Evidence]:
    """Sort candidates by a model's scores (ties keep the incoming order) and record them.

    The score goes into `Evidence.scores[name]` and becomes `Evidence.score`, so a
    reader sees which stage decided the final order.
    """
    ranked = sorted(
        zip(candidates, scores, strict=True), key=lambda pair: -pair[1]
    )  # sorted() is stable
    out = []
    for evidence, score in ranked[:k]:
        evidence.scores[name] = float(score)
        evidence.score = float(score)
        evidence.reason = f"{evidence.reason}; reranked by {name}".lstrip("; ")
        out.append(evidence)
    return out
