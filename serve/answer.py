"""The answer pipeline: question → retrieval → packed prompt → streamed, cited answer.

Design decisions:
- Abstention happens before generation: when no retrieved passage is close
  enough (best dense cosine below `min_relevance` and no exact symbol match),
  the assistant says it does not know and returns the closest passages, rather
  than letting a small model improvise.
- Follow-ups ("and for SNES?") are made standalone before retrieval by joining
  them to the previous user question. A 135M model rewrites questions worse
  than this rule; with a vLLM-served model an LLM rewrite could replace it.
- Citations are checked after generation: a marker pointing at a passage that
  was not given is removed (see `citations.py`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sciknow.config import AnswerConfig
from sciknow.index.store import Filters
from sciknow.records import Answer, Evidence, TokenInfo
from sciknow.rerank.hybrid import HybridRetriever
from sciknow.serve.backend import Backend, GenToken, Message
from sciknow.serve.citations import check_citations, citation_records
from sciknow.serve.flags import answer_flags
from sciknow.serve.prompt import pack

ABSTAIN_TEXT = (
    "I don't know: the indexed documentation has nothing close enough to this question. "
    "The closest passages are listed below."
)
_FOLLOW_UP_RE = re.compile(
    r"^(and|also|what about|how about|same for|then|but|or)\b|\b(it|that|this|those|them)\b",
    re.IGNORECASE,
)


@dataclass
class Event:
    """A streamed piece of an answer: a token, then the final `Answer`."""

    kind: str  # "token" | "answer"
    token: GenToken | None = None
    answer: Answer | None = None


def standalone_question(question: str, history: Sequence[Message]) -> str:
    """Join a short or referring follow-up to the previous user question for retrieval."""
    previous = [m["content"] for m in history if m.get("role") == "user"]
    if not previous:
        return question
    if len(question.split()) <= 6 or _FOLLOW_UP_RE.search(question):
        return f"{previous[-1]} {question}"
    return question


def is_relevant(evidence: Sequence[Evidence], min_relevance: float) -> bool:
    """Some passage is semantically close, or names a symbol from the question."""
    return any(
        e.scores.get("dense", 0.0) >= min_relevance or "symbol" in e.scores for e in evidence
    )


class Assistant:
    """Answers questions from the index with one shared backend."""

    def __init__(
        self,
        retriever: HybridRetriever,
        backend: Backend,
        settings: AnswerConfig,
        library: str = "PETSc",
    ) -> None:
        self.retriever = retriever
        self.backend = backend
        self.settings = settings
        self.library = library

    def count_tokens(self, messages: list[Message]) -> int:
        return len(self.backend.chat_tokens(messages))

    def stream(
        self,
        question: str,
        history: Sequence[Message] = (),
        k: int | None = None,
        filters: Filters | None = None,
        flags: bool = False,
    ) -> Iterator[Event]:
        """Yield token events as they are generated, then one final answer event.

        `flags` adds uncertain spans and per-passage support (`serve/flags.py`) after
        the text; they cost extra scoring passes, so they are computed on request.
        """
        started = time.perf_counter()
        query = standalone_question(question, history)
        evidence = self.retriever.search(query, k or self.settings.k, filters)
        timings = {"retrieval_ms": (time.perf_counter() - started) * 1000}
        if not is_relevant(evidence, self.settings.min_relevance):
            yield Event("answer", answer=self._abstain(evidence, timings))
            return
        packed = pack(
            question,
            evidence,
            self.count_tokens,
            self.backend.context_window,
            reserve=self.settings.max_tokens,
            library=self.library,
            history=history,
        )
        tokens: list[GenToken] = []
        first_token_at = 0.0
        for token in self.backend.generate(
            packed.messages,
            stream=True,
            max_tokens=self.settings.max_tokens,
            temperature=self.settings.temperature,
            logprobs=True,
        ):
            if not tokens:
                first_token_at = time.perf_counter()
                timings["ttft_ms"] = (first_token_at - started) * 1000
            tokens.append(token)
            yield Event("token", token=token)
        # Decode speed after the first token (prompt evaluation is in ttft_ms).
        seconds = time.perf_counter() - first_token_at
        timings["tokens_per_s"] = (len(tokens) - 1) / seconds if len(tokens) > 1 else 0.0
        timings["prompt_tokens"] = packed.prompt_tokens
        answer = self._finish(tokens, packed.evidence, timings)
        if flags:
            flags_started = time.perf_counter()
            answer.flags = answer_flags(
                self.backend,
                packed.messages,
                tokens,
                answer.text,
                [c["n"] for c in answer.citations],
            )
            timings["flags_ms"] = (time.perf_counter() - flags_started) * 1000
        yield Event("answer", answer=answer)

    def answer(self, question: str, **options: Any) -> Answer:
        """The final answer of `stream` (same options), for callers that do not stream."""
        final = None
        for event in self.stream(question, **options):
            final = event.answer or final
        assert final is not None
        return final

    def _abstain(self, evidence: list[Evidence], timings: dict[str, float]) -> Answer:
        closest = [
            {"n": n, "chunk_id": e.chunk_id, "title": e.title, "uri": e.uri, "spans": []}
            for n, e in enumerate(evidence[:3], start=1)
        ]
        return Answer(text=ABSTAIN_TEXT, citations=closest, abstained=True, timings=timings)

    def _finish(
        self, tokens: list[GenToken], evidence: list[Evidence], timings: dict[str, float]
    ) -> Answer:
        raw = "".join(t.text for t in tokens)
        checked = check_citations(raw.strip(), len(evidence))
        return Answer(
            text=checked.text,
            citations=citation_records(checked, evidence),
            tokens=[TokenInfo(t.text, t.logprob, t.entropy) for t in tokens],
            abstained=False,
            timings=timings,
        )
