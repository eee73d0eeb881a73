"""The answer pipeline: question → retrieval → packed prompt → streamed, cited answer.

Design decisions:
- Abstention happens before generation: when no retrieved passage is close
  enough (`relevance.py`: a dense cosine floor, the question's words in the passages,
  an exact symbol match),
  the assistant says it does not know and returns the closest passages, rather
  than letting a small model improvise.
- Follow-ups ("and for SNES?") are made standalone before retrieval by joining
  them to the previous user question. A 135M model rewrites questions worse
  than this rule; with a vLLM-served model an LLM rewrite could replace it.
- Citations are checked after generation: a marker pointing at a passage that
  was not given is removed (see `citations.py`).
- Two answer modes (`answer.mode`, resolved by `resolve_mode`): extractive answers quote
  the passages (`extractive.py`) and need no model; generated answers are guarded
  (`guard.py`): repetition penalty, a stop on loops and end markers, and a check after
  generation. A generated answer that loops, cites nothing or uses unknown names is
  replaced by the extractive one: a `reset` event tells streaming clients to drop the
  text so far, and the replacement starts with a one-line note saying why.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sciknow.config import AnswerConfig
from sciknow.index.store import Filters, Store
from sciknow.records import Answer, Citation, Document, Evidence, Flag, TokenInfo
from sciknow.rerank.hybrid import HybridRetriever
from sciknow.serve.backends.base import Backend, GenToken, Message
from sciknow.serve.citations import check_citations, citation_records, passage_record
from sciknow.serve.compile_flags import CompileCheck
from sciknow.serve.extractive import Extractor
from sciknow.serve.flags import answer_flags
from sciknow.serve.guard import END_MARKERS, LoopDetector, cut_at_end_marker, problems
from sciknow.serve.names import NameCheck
from sciknow.serve.prompt import pack
from sciknow.serve.relevance import is_relevant

ABSTAIN_TEXT = (
    "I don't know: the indexed documentation has nothing close enough to this question. "
    "The closest passages are listed below."
)
NO_LOGPROB_FLAGS = (
    "extractive answer: quoted passages have no generated tokens, so the flags that need "
    "log-probabilities (uncertain spans, passage support) do not apply"
)
SUMMARY_LABEL = "*Generated summary (a small model wrote this line; check it against the quotes):* "
SUMMARY_REASON = "written by the model, not quoted from a source"
SUMMARY_TOKENS = 64
SUMMARY_PASSAGES = 3
_SENTENCE_DONE_RE = re.compile(r"\S{2,}[.!?](?:\s*\[\d+\])*\s")
_WORD_RE = re.compile(r"\S+\s*|\s+")
_FOLLOW_UP_RE = re.compile(
    r"^(and|also|what about|how about|same for|then|but|or)\b|\b(it|that|this|those|them)\b",
    re.IGNORECASE,
)


@dataclass
class Event:
    """A streamed piece of an answer: a token, then the final `Answer`."""

    kind: str  # "token" | "reset" | "answer"
    token: GenToken | None = None
    answer: Answer | None = None
    reason: str = ""  # why a "reset" dropped the text streamed so far


def resolve_mode(mode: str, model_size: str, backend_name: str) -> str:
    """ "extractive" or "generative" for `answer.mode` "auto": extractive when the model is
    small (the in-process SmolLM2 backends unless `models.size` says otherwise)."""
    if mode != "auto":
        return mode
    size = model_size
    if size == "auto":
        size = "capable" if backend_name.startswith("vllm") else "small"
    return "extractive" if size == "small" else "generative"


def text_pieces(text: str) -> list[str]:
    """An extractive answer cut into words (with their trailing space) to stream like tokens."""
    return [match.group(0) for match in _WORD_RE.finditer(text)]


def standalone_question(question: str, history: Sequence[Message]) -> str:
    """Join a short or referring follow-up to the previous user question for retrieval."""
    previous = [m["content"] for m in history if m.get("role") == "user"]
    if not previous:
        return question
    if len(question.split()) <= 6 or _FOLLOW_UP_RE.search(question):
        return f"{previous[-1]} {question}"
    return question


class Assistant:
    """Answers questions from the index with one shared backend.

    `mode` is "extractive" or "generative" (see `resolve_mode`); `name_check`, when
    given, returns the library names of a text that exist nowhere in the index, as flags;
    `compile_check`, when given, the compile verdict of each C block of a text, as flags.
    Front ends ask it what the index holds (`stats`, `document`, `generation`) rather than
    reaching into the retriever; `store` is there for the agent tools' exact lookups.
    """

    def __init__(
        self,
        retriever: HybridRetriever,
        backend: Backend,
        settings: AnswerConfig,
        library: str = "PETSc",
        mode: str = "generative",
        name_check: NameCheck | None = None,
        compile_check: CompileCheck | None = None,
    ) -> None:
        self.retriever = retriever
        self.backend = backend
        self.settings = settings
        self.library = library
        self.mode = mode
        self.name_check = name_check
        self.compile_check = compile_check
        self.store: Store = retriever.store
        self.extractor = Extractor(
            retriever.embedder,
            self.store,
            retriever.profile.symbol_prefixes,
            settings.max_chars,
        )

    def count_tokens(self, messages: list[Message]) -> int:
        return len(self.backend.chat_tokens(messages))

    def stats(self) -> dict[str, Any]:
        """What the index holds: documents, chunks, chunks by kind (`Store.stats`)."""
        return self.store.stats()

    def document(self, doc_id: str) -> Document | None:
        """The whole stored document `doc_id`, or None when the index has none."""
        return self.store.document(doc_id)

    def generation(self) -> int:
        """The committed index generation answers read; 0 before the first ingest."""
        return self.store.generation()

    @property
    def data_dir(self) -> Path:
        """The index's directory (where a server keeps its votes by default)."""
        return self.store.root

    def check_index(self) -> None:
        """Refuse (`StoreError`) a read-only data directory or a damaged index (`Store.check`)."""
        self.store.check()

    def stream(
        self,
        question: str,
        history: Sequence[Message] = (),
        k: int | None = None,
        filters: Filters | None = None,
        flags: bool = False,
    ) -> Iterator[Event]:
        """Yield token events as the answer forms, then one final answer event.

        `flags` adds uncertain spans and per-passage support (`serve/flags.py`) to a
        generated answer; they cost extra scoring passes, so they are computed on request.
        Unknown-name and compile flags are added to every answer when their checks are
        configured.
        """
        started = time.perf_counter()
        query = standalone_question(question, history)
        evidence = self.retriever.search(query, k or self.settings.k, filters)
        timings = {"retrieval_ms": (time.perf_counter() - started) * 1000}
        if not is_relevant(query, evidence, self.settings):
            yield Event("answer", answer=self._abstain(evidence, timings))
            return
        if self.mode == "extractive":
            yield from self._extractive(query, evidence, started, timings, flags)
            return
        yield from self._generative(question, query, history, evidence, started, timings, flags)

    def answer(self, question: str, **options: Any) -> Answer:
        """The final answer of `stream` (same options), for callers that do not stream."""
        final = None
        for event in self.stream(question, **options):
            final = event.answer or final
        assert final is not None
        return final

    def _extractive(
        self,
        query: str,
        evidence: list[Evidence],
        started: float,
        timings: dict[str, float],
        flags: bool,
        note: str = "",
    ) -> Iterator[Event]:
        summary: list[GenToken] = []
        if self.settings.summary and not note:
            summary_prompt = self._summary_prompt(query, evidence)
            generated = self._guarded(summary_prompt, LoopDetector(), SUMMARY_TOKENS)
            for token in generated:
                if not summary:
                    timings["ttft_ms"] = (time.perf_counter() - started) * 1000
                    yield Event("token", token=GenToken(SUMMARY_LABEL, None, None))
                summary.append(token)
                yield Event("token", token=token)
                if _SENTENCE_DONE_RE.search("".join(t.text for t in summary)):
                    break
            generated.close()
        extract_started = time.perf_counter()
        extract = self.extractor.answer(query, evidence, self.retriever.query_symbols(query))
        timings["extract_ms"] = (time.perf_counter() - extract_started) * 1000
        timings.setdefault("ttft_ms", (time.perf_counter() - started) * 1000)
        if not extract.text.strip() and not summary and not note:  # nothing quotable
            yield Event("answer", answer=self._abstain(evidence, timings))
            return
        head = note or (SUMMARY_LABEL + "".join(t.text for t in summary).strip() if summary else "")
        text = f"{head}\n\n{extract.text}" if head else extract.text
        body = text_pieces(text[len(head) :]) if summary else text_pieces(text)
        for piece in body:
            yield Event("token", token=GenToken(piece, None, None))
        tokens = [TokenInfo(t.text, t.logprob, t.entropy) for t in summary]
        answer = self._finish(text, tokens + [TokenInfo(p, None) for p in body], extract.evidence)
        answer.timings = timings
        if summary:
            answer.flags += self._summary_flags(summary, summary_prompt, answer.text, flags)
        elif flags:
            answer.flags.append(Flag(type="skipped", reason=NO_LOGPROB_FLAGS))
        # The fallback note quotes the bad names of the generated answer: not checked again.
        skip = len(note) if note and answer.text.startswith(note) else 0
        answer.flags += self._name_flags(answer.text, skip, answer.citations)
        answer.flags += self._compile_flags(answer.text, timings)
        yield Event("answer", answer=answer)

    def _summary_prompt(self, query: str, evidence: list[Evidence]) -> list[Message]:
        """The packed prompt for a one-sentence summary of the top passages."""
        packed = pack(
            query,
            evidence[:SUMMARY_PASSAGES],
            self.count_tokens,
            self.backend.context_window,
            reserve=SUMMARY_TOKENS,
            library=self.library,
        )
        messages = [dict(m) for m in packed.messages]
        messages[-1]["content"] += " (one sentence)"
        return messages

    def _summary_flags(
        self, tokens: list[GenToken], messages: list[Message], text: str, scored: bool
    ) -> list[Flag]:
        """The generated sentence is always marked; with `scored`, its uncertain spans too
        (offsets shifted past the label)."""
        start = len(SUMMARY_LABEL)
        end = start + len("".join(t.text for t in tokens).rstrip())
        marked = [Flag(type="generated", start=start, end=end, reason=SUMMARY_REASON)]
        if not scored:
            return marked
        spans = answer_flags(self.backend, messages, tokens, text[start:end], [])
        for span in spans:
            span.update(start=span["start"] + start, end=span["end"] + start)
        return marked + spans

    def _generative(
        self,
        question: str,
        query: str,
        history: Sequence[Message],
        evidence: list[Evidence],
        started: float,
        timings: dict[str, float],
        flags: bool,
    ) -> Iterator[Event]:
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
        loop = LoopDetector()
        for token in self._guarded(packed.messages, loop):
            if not tokens:
                timings["ttft_ms"] = (time.perf_counter() - started) * 1000
            tokens.append(token)
            yield Event("token", token=token)
        # Decode speed after the first token (prompt evaluation is in ttft_ms).
        seconds = time.perf_counter() - started - timings.get("ttft_ms", 0.0) / 1000
        timings["tokens_per_s"] = (len(tokens) - 1) / seconds if len(tokens) > 1 else 0.0
        timings["prompt_tokens"] = packed.prompt_tokens
        text, _ = cut_at_end_marker("".join(t.text for t in tokens))
        answer = self._finish(
            text, [TokenInfo(t.text, t.logprob, t.entropy) for t in tokens], packed.evidence
        )
        answer.timings = timings
        name_flags = self._name_flags(answer.text)
        found = problems(loop.looping, len(answer.citations), [f["text"] for f in name_flags])
        if found and self.settings.fallback:
            reason = "; ".join(found)
            yield Event("reset", reason=reason)
            note = f"*The generated answer was replaced by quoted passages: {reason}.*"
            yield from self._extractive(query, evidence, started, timings, flags, note)
            return
        answer.flags = [Flag(type="guard", reason=p) for p in found] + name_flags
        answer.flags += self._compile_flags(answer.text, timings)
        if flags:
            flags_started = time.perf_counter()
            answer.flags += answer_flags(
                self.backend,
                packed.messages,
                tokens,
                answer.text,
                [c["n"] for c in answer.citations],
            )
            timings["flags_ms"] = (time.perf_counter() - flags_started) * 1000
        yield Event("answer", answer=answer)

    def _guarded(
        self, messages: list[Message], loop: LoopDetector, max_tokens: int | None = None
    ) -> Iterator[GenToken]:
        """The backend's tokens until a loop or an end marker; tokens that could begin an
        end marker are held back until the marker is ruled out."""
        held: list[GenToken] = []
        stream = self.backend.generate(
            messages,
            stream=True,
            max_tokens=max_tokens or self.settings.max_tokens,
            temperature=self.settings.temperature,
            logprobs=True,
            repetition_penalty=self.settings.repetition_penalty,
        )
        try:
            for token in stream:
                held.append(token)
                pending = "".join(t.text for t in held)
                if cut_at_end_marker(loop.text + pending)[1]:
                    return
                if any(_ends_with_prefix(pending, m) for m in END_MARKERS):
                    continue
                for ready in held:
                    loop.feed(ready.text)
                    yield ready
                held = []
                if loop.looping:
                    return
            yield from held
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()

    def _name_flags(
        self, text: str, skip: int = 0, citations: Sequence[Citation] = ()
    ) -> list[Flag]:
        """Unknown- and removed-name flags of `text[skip:]`, offsets into `text`. With the
        `citations` of a quoted answer, names quoted from release notes are history, not
        advice (a generated sentence that cites a release note still uses the name)."""
        if self.name_check is None:
            return []
        shifted: list[Citation] = [
            {**c, "spans": [(a - skip, b - skip) for a, b in c.get("spans", ()) if a >= skip]}
            for c in citations
        ]
        flags = self.name_check(text[skip:], shifted)
        for flag in flags:
            if "start" in flag:
                flag["start"] += skip
            if "end" in flag:
                flag["end"] += skip
        return flags

    def _compile_flags(self, text: str, timings: dict[str, float]) -> list[Flag]:
        """A compile flag per C block of `text`; the time goes into `compile_ms`."""
        if self.compile_check is None:
            return []
        started = time.perf_counter()
        flags = self.compile_check(text)
        timings["compile_ms"] = (time.perf_counter() - started) * 1000
        return flags

    def _abstain(self, evidence: list[Evidence], timings: dict[str, float]) -> Answer:
        closest = [passage_record(n, e) for n, e in enumerate(evidence[:3], start=1)]
        return Answer(text=ABSTAIN_TEXT, citations=closest, abstained=True, timings=timings)

    @staticmethod
    def _finish(text: str, tokens: list[TokenInfo], evidence: list[Evidence]) -> Answer:
        checked = check_citations(text.strip(), len(evidence))
        return Answer(
            text=checked.text,
            citations=citation_records(checked, evidence),
            tokens=tokens,
            abstained=False,
        )


def _ends_with_prefix(text: str, marker: str) -> bool:
    """Whether `text` ends with the start of `marker` (so the marker may be forming)."""
    return any(text.endswith(marker[:i]) for i in range(1, len(marker)))
