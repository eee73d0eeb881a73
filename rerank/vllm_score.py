"""Cross-encoder reranking by a model server: vLLM's rerank API (`vllm serve MODEL
--runner pooling`; `--task score` on older vLLM).

The serving tier's reranker: the cross-encoder runs on the server that hosts it (a GPU,
batched with other replicas' requests) instead of in every API replica. One POST to
`/v1/rerank` scores all candidates (the Jina/Cohere request shape, which other rerank
servers also answer). The reranker is an improvement, never a dependency: when the server
is down, slow past `timeout_s`, or answers an error, the candidates keep their fusion
order, a warning is logged once per outage, and the server is left alone for `retry_s`
so that each question does not wait for the timeout again.
"""

from __future__ import annotations

import logging
import time

import httpx

from sciknow.config import RetrievalConfig
from sciknow.records import Evidence
from sciknow.rerank.base import order_by_scores

log = logging.getLogger(__name__)


class RerankUnavailable(Exception):
    """The rerank server gave no usable scores (internal: the caller falls back)."""


class VLLMScoreReranker:
    """Orders candidates by a served cross-encoder's relevance scores, or keeps them."""

    def __init__(
        self,
        url: str,
        model: str = "",
        timeout_s: float = 2.0,
        retry_s: float = 30.0,
        max_chars: int = 4000,
    ) -> None:
        self.url = url.rstrip("/").removesuffix("/v1")
        self.model = model  # empty: the server's only model
        self.retry_s = retry_s
        self.max_chars = max_chars  # the server truncates to the model's tokens as well
        self._client = httpx.Client(base_url=self.url, timeout=timeout_s)
        self._down_until: float | None = None  # set while falling back

    @classmethod
    def from_settings(cls, settings: RetrievalConfig) -> VLLMScoreReranker:
        return cls(settings.rerank_url, settings.rerank_model, settings.rerank_timeout_s)

    def close(self) -> None:
        self._client.close()

    def rerank(self, question: str, candidates: list[Evidence], k: int) -> list[Evidence]:
        if not candidates:
            return []
        if self._down_until is not None and time.monotonic() < self._down_until:
            return candidates[:k]
        try:
            scores = self.scores(question, [evidence.text for evidence in candidates])
        except RerankUnavailable as err:
            if self._down_until is None:
                log.warning("reranker at %s: %s; keeping the fusion order", self.url, err)
            self._down_until = time.monotonic() + self.retry_s
            return candidates[:k]
        if self._down_until is not None:
            log.info("reranker at %s answers again", self.url)
            self._down_until = None
        return order_by_scores(candidates, scores, "vllm_rerank", k)

    def scores(self, question: str, passages: list[str]) -> list[float]:
        """One relevance score per passage, in the passages' order."""
        payload: dict[str, object] = {
            "query": question,
            "documents": [passage[: self.max_chars] for passage in passages],
            "top_n": len(passages),
            "truncate_prompt_tokens": -1,  # cut each pair to the model's length, not refuse
        }
        if self.model:
            payload["model"] = self.model
        try:
            reply = self._client.post("/v1/rerank", json=payload)
        except httpx.TimeoutException:
            raise RerankUnavailable(f"no answer within {self._client.timeout.read} s") from None
        except httpx.TransportError as err:
            raise RerankUnavailable(f"cannot reach it ({err})") from None
        if reply.status_code != 200:
            raise RerankUnavailable(f"HTTP {reply.status_code}: {reply.text[:200]}")
        return _in_order(reply.json(), len(passages))


def _in_order(body: dict, n: int) -> list[float]:
    """The `relevance_score` of each result put back at its `index`."""
    scores: list[float | None] = [None] * n
    try:
        for result in body["results"]:
            scores[result["index"]] = float(result["relevance_score"])
    except (KeyError, IndexError, TypeError, ValueError) as err:
        raise RerankUnavailable(f"unexpected reply ({err!r})") from None
    if any(score is None for score in scores):
        raise RerankUnavailable(f"scored {n - scores.count(None)} of {n} passages")
    return [score for score in scores if score is not None]
