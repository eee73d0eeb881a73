"""ragas metrics with a judge served over an OpenAI-compatible API (`--judge URL#MODEL`).

The judge is any chat model behind `/v1/chat/completions` (a vLLM server, say); ragas
0.4's metric collections drive it through `instructor` in JSON mode, so the server must
accept `response_format: {"type": "json_object"}` (vLLM does). Embeddings for answer
relevancy and answer correctness come from a sciknow embedder (the local MiniLM by
default, or `openai:<url>#<model>`), wrapped as a ragas embedding.

Every judged value is checked: a finite number within 0..1 (answer relevancy, a mean
cosine, is floored at 0) or it is missing. A judge that times out, answers garbage or
fails the request leaves that metric missing for that question, and the run goes on.
`correct` (PaperQA2's accuracy and precision) is answer accuracy at or above
`CORRECT_AT`: ragas' two-judge rating of the answer against the reference (0, 0.5 or 1
per judge, averaged), so correct means at least a partial match from both judges or an
exact one from one.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sciknow.index.embed import Embedder

log = logging.getLogger(__name__)

REFERENCE_FREE = ("faithfulness", "answer_relevancy")
WITH_REFERENCE = ("context_precision", "context_recall", "answer_correctness", "answer_accuracy")
JUDGED = REFERENCE_FREE + WITH_REFERENCE
ANSWER_METRICS = ("faithfulness", "answer_relevancy", "answer_correctness", "answer_accuracy")
CORRECT_AT = 0.5


@dataclass
class JudgeSpec:
    """`http://host:port/v1#model`: the OpenAI-compatible base URL and the model name."""

    url: str
    model: str

    @classmethod
    def parse(cls, text: str) -> JudgeSpec:
        url, _, model = text.partition("#")
        if not url.startswith(("http://", "https://")) or not model:
            raise ValueError(f"--judge wants http://host:port/v1#model, not {text!r}")
        return cls(url.rstrip("/"), model)

    @property
    def name(self) -> str:
        return f"{self.model} at {self.url}"


@dataclass
class Sample:
    """What the judge sees of one answered question."""

    question: str
    answer: str
    contexts: list[str]
    reference: str = ""
    abstained: bool = False

    def wanted(self) -> list[str]:
        """The metrics that apply: none of the answer's for an abstention, none needing a
        reference without one, none needing passages without them."""
        out = []
        for metric in JUDGED:
            if metric in ANSWER_METRICS and (self.abstained or not self.answer.strip()):
                continue
            if metric in WITH_REFERENCE and not self.reference.strip():
                continue
            if metric in ("faithfulness", "context_precision", "context_recall") and not any(
                c.strip() for c in self.contexts
            ):
                continue
            out.append(metric)
        return out


def checked(metric: str, value: Any) -> float | None:
    """The value when it is a number within 0..1 (answer relevancy floored at 0), else None."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if metric == "answer_relevancy" and -1.0 <= number < 0.0:
        number = 0.0
    if not math.isfinite(number) or not 0.0 <= number <= 1.0:
        return None
    return number


def _ragas() -> Any:
    """Import ragas without its usage telemetry (this runs offline)."""
    os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")
    import ragas.metrics.collections as collections

    return collections


def ragas_embeddings(embedder: Embedder) -> Any:
    """A sciknow embedder as a ragas (modern) embedding."""
    _ragas()
    from ragas.embeddings.base import BaseRagasEmbedding

    class SciknowEmbeddings(BaseRagasEmbedding):
        def embed_text(self, text: str, **_: Any) -> list[float]:
            return self.embed_texts([text])[0]

        def embed_texts(self, texts: list[str], **_: Any) -> list[list[float]]:
            return embedder.embed(list(texts)).tolist()

        async def aembed_text(self, text: str, **_: Any) -> list[float]:
            return (await self.aembed_texts([text]))[0]

        async def aembed_texts(self, texts: list[str], **_: Any) -> list[list[float]]:
            return await asyncio.to_thread(self.embed_texts, texts)

    return SciknowEmbeddings()


@dataclass
class Judge:
    """The ragas metrics of `JUDGED` with one judge model; `score` is synchronous.

    `timeout` bounds each request and each metric (seconds); requests are not retried.
    All metrics of a question run concurrently on one event loop kept for the judge's
    lifetime (the HTTP client's connections belong to it).
    """

    spec: JudgeSpec
    embedder: Embedder
    timeout: float = 120.0
    api_key: str = field(default_factory=lambda: os.environ.get("SCIKNOW_JUDGE_API_KEY", "EMPTY"))
    _metrics: dict[str, Any] = field(default_factory=dict, init=False, repr=False)
    _runner: asyncio.Runner | None = field(default=None, init=False, repr=False)

    @property
    def name(self) -> str:
        return self.spec.name

    def score(
        self, sample: Sample, skip: set[str] | frozenset[str] = frozenset()
    ) -> dict[str, float | None]:
        """Each applicable metric not in `skip`: its value, or None when the judge failed."""
        wanted = [m for m in sample.wanted() if m not in skip]
        if not wanted:
            return {}
        if self._runner is None:
            self._runner = asyncio.Runner()
        return self._runner.run(self._score(sample, wanted))

    def close(self) -> None:
        if self._runner is not None:
            self._runner.close()
            self._runner = None

    async def _score(self, sample: Sample, wanted: list[str]) -> dict[str, float | None]:
        if not self._metrics:
            self._metrics = self._build()
        calls = {m: self._call(m, sample) for m in wanted}
        values = await asyncio.gather(*(self._bounded(m, c) for m, c in calls.items()))
        return dict(zip(calls, values, strict=True))

    async def _bounded(self, metric: str, call: Callable[[], Awaitable[Any]]) -> float | None:
        try:
            result = await asyncio.wait_for(call(), self.timeout)
        except Exception as err:  # a judge failure of any kind leaves the metric missing
            log.warning("judge: %s failed: %s", metric, _short(err))
            return None
        value = checked(metric, getattr(result, "value", None))
        if value is None:
            log.warning("judge: %s gave %r, not a number within 0..1", metric, result)
        return value

    def _call(self, metric: str, s: Sample) -> Callable[[], Awaitable[Any]]:
        m = self._metrics[metric]
        arguments = {
            "faithfulness": {"response": s.answer, "retrieved_contexts": s.contexts},
            "answer_relevancy": {"response": s.answer},
            "context_precision": {"reference": s.reference, "retrieved_contexts": s.contexts},
            "context_recall": {"reference": s.reference, "retrieved_contexts": s.contexts},
            "answer_correctness": {"response": s.answer, "reference": s.reference},
            "answer_accuracy": {"response": s.answer, "reference": s.reference},
        }[metric]
        return lambda: m.ascore(user_input=s.question, **arguments)

    def _build(self) -> dict[str, Any]:
        collections = _ragas()
        from openai import AsyncOpenAI
        from ragas.llms import llm_factory

        client = AsyncOpenAI(
            base_url=self.spec.url, api_key=self.api_key, timeout=self.timeout, max_retries=0
        )
        llm = llm_factory(self.spec.model, client=client)
        embeddings = ragas_embeddings(self.embedder)
        return {
            "faithfulness": collections.Faithfulness(llm=llm),
            "answer_relevancy": collections.AnswerRelevancy(llm=llm, embeddings=embeddings),
            "context_precision": collections.ContextPrecision(llm=llm),
            "context_recall": collections.ContextRecall(llm=llm),
            "answer_correctness": collections.AnswerCorrectness(llm=llm, embeddings=embeddings),
            "answer_accuracy": collections.AnswerAccuracy(llm=llm),
        }


def _short(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}".replace("\n", " ")
    return text[:200] + ("…" if len(text) > 200 else "")
