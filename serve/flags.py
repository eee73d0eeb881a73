"""Answer flags: the spans a reader should doubt, and which passage each sentence leans on.

`answer_flags` fills `Answer.flags` from the generated tokens (ids, left-only log-probability
and entropy, all free from generation) and the packed prompt:

- Uncertain spans. A token whose left-only probability is below `screen` is checked both
  ways: `attribution.two_sided` estimates P(r_i | x, r_<i, r_i+1..i+w) (top-K candidates
  exactly, w tokens of right context, `samples` tokens drawn from the rest of the
  vocabulary) and bounds it from above for certain. A token is flagged when the estimate is
  below `flag_below` (with `samples=0`, when the certified upper bound is: doubtful whatever
  the excluded candidates hold, but the bound misses tokens whose probability the excluded
  tail dilutes). A token that only looked unlikely from the left (the first piece of a
  name the rest of the word forces) is cleared. Flagged tokens grow to whole words
  (whitespace-delimited), adjacent flagged words merge into one phrase; the span's score is
  1 − the smallest estimate in it.
- Support. For each given passage number n, the prompt without passage n is scored with the
  same answer; `log_ratio` = log P(sentence | prompt) − log P(sentence | prompt without n),
  per sentence and for the whole answer (`sentence: None`). Positive: the passage makes the
  sentence likelier (Bayes: the sentence is evidence for having read it).

Offsets are characters of the final answer text. Numbers are rounded to 4 decimals so
that flags are stable across runs whose scores differ in the last float bits.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sciknow.records import Flag
from sciknow.serve.attribution import two_sided
from sciknow.serve.backends.base import Backend, GenToken, Message, ScoredSequence

_SENTENCE_RE = re.compile(r"[^\n]*?(?:[.!?](?=\s|$)|\n|$)")
_WORD_RE = re.compile(r"\S+")


@dataclass
class FlagSettings:
    """Thresholds and budgets of `answer_flags` (costs measured in bench/bench_attribution.py)."""

    screen: float = 0.5  # check tokens whose left-only probability is below this
    flag_below: float = 0.5  # flag when P(token | both sides) is certainly below this
    right_context: int = 4  # tokens of right context in the two-sided probability
    max_candidates: int = 4  # candidate tokens per checked position
    max_checked: int = 16  # at most this many tokens checked (the least likely first)
    samples: int = 16  # tail tokens drawn per checked token for the estimate (0: bound only)
    prior_list: int = 256  # prior listed per position: the tail is stratified this far


def without_passage(messages: Sequence[Message], n: int) -> list[Message]:
    """`messages` with the fenced passage n removed from the last user message (markers
    inside passages are neutralized by `prompt.quote_passage`, so the fence is unambiguous)."""
    fence = re.compile(rf'<passage n="{n}"[^>]*>.*?</passage>\s*', re.DOTALL)
    out = [dict(m) for m in messages]
    last = max(i for i, m in enumerate(out) if m.get("role") == "user")
    out[last]["content"] = fence.sub("", out[last]["content"], count=1)
    return out


def answer_flags(
    backend: Backend,
    messages: Sequence[Message],
    tokens: Sequence[GenToken],
    text: str,
    passages: Sequence[int],
    settings: FlagSettings | None = None,
) -> list[Flag]:
    """Uncertain spans and per-passage support (see the module docstring) for one answer.

    `messages` is the prompt the answer was generated from, `tokens` the generated tokens,
    `text` the final answer text (offsets refer to it), `passages` the numbers to test.
    """
    settings = settings or FlagSettings()
    if not tokens or any(t.token_id is None for t in tokens):
        return []
    prompt = backend.chat_tokens(list(messages))
    response = [int(t.token_id) for t in tokens if t.token_id is not None]
    raw = "".join(t.text for t in tokens)
    to_text = offset_map(raw, text)
    starts = _token_starts(tokens)
    listed = max(settings.max_candidates, settings.prior_list if settings.samples else 0)
    base = backend.score([prompt + response], top_k=listed)[0]
    spans = _uncertain_spans(backend, base, len(prompt), tokens, starts, raw, settings)
    flags = [_span_flag(raw, to_text, span) for span in spans]
    full = [lp or 0.0 for lp in base.logprobs[len(prompt) :]]
    support = _Support(backend, messages, prompt, response, full)
    return flags + support.flags(passages, raw, starts, to_text)


def _token_starts(tokens: Sequence[GenToken]) -> list[int]:
    starts, at = [], 0
    for token in tokens:
        starts.append(at)
        at += len(token.text)
    return starts


def offset_map(raw: str, text: str) -> Callable[[int], int]:
    """Map offsets of the raw generated text to the final text (stripped, citations checked)."""
    blocks = difflib.SequenceMatcher(None, raw, text, autojunk=False).get_matching_blocks()

    def to_text(offset: int) -> int:
        for a, b, size in blocks:
            if offset < a + size:
                return b + max(0, offset - a)
        return len(text)

    return to_text


@dataclass
class _Span:
    start: int
    end: int
    score: float
    reason: str


def _uncertain_spans(
    backend: Backend,
    base: ScoredSequence,
    n: int,
    tokens: Sequence[GenToken],
    starts: list[int],
    raw: str,
    settings: FlagSettings,
) -> list[_Span]:
    """Flagged tokens grown to words, adjacent words merged (raw-text offsets); `base` is
    prompt + answer scored with top_k ≥ max_candidates, `n` the prompt length."""
    doubtful = [
        i
        for i, t in enumerate(tokens)
        if t.text.strip() and t.logprob is not None and math.exp(t.logprob) < settings.screen
    ]
    doubtful = sorted(doubtful, key=lambda i: tokens[i].logprob or 0.0)[: settings.max_checked]
    checked, _ = two_sided(
        backend,
        base.ids,
        [n + i for i in sorted(doubtful)],
        right_context=settings.right_context,
        max_candidates=settings.max_candidates,
        base=base,
        samples=settings.samples,
    )
    words: dict[tuple[int, int], _Span] = {}
    for score in checked:
        i = score.position - n
        p, upper = math.exp(score.log_p_token), math.exp(score.log_p_token_bounds[1])
        if p >= settings.flag_below:
            continue
        start, end = _word_around(raw, starts[i], starts[i] + len(tokens[i].text))
        reason = _reason(tokens[i], p, upper)
        if (start, end) not in words or 1 - p > words[(start, end)].score:
            words[(start, end)] = _Span(start, end, 1 - p, reason)
    return _merge(raw, sorted(words.values(), key=lambda s: s.start))


def _reason(token: GenToken, p: float, upper: float) -> str:
    entropy = f", entropy {token.entropy:.2f} nats" if token.entropy is not None else ""
    left = math.exp(token.logprob or 0.0)
    value = f"p ≈ {p:.2f} (≤ {upper:.2f})" if upper - p > 0.005 else f"p ≤ {upper:.2f}"
    return f"{token.text.strip()!r}: {value} given both sides (left only {left:.2f}{entropy})"


def _word_around(raw: str, start: int, end: int) -> tuple[int, int]:
    for match in _WORD_RE.finditer(raw):
        if match.start() < max(end, start + 1) and start < match.end():
            return match.start(), max(match.end(), end)
    return start, end


def _merge(raw: str, spans: list[_Span]) -> list[_Span]:
    """Join spans separated by whitespace only into phrases (highest score, reasons joined)."""
    merged: list[_Span] = []
    for span in spans:
        last = merged[-1] if merged else None
        if last and not raw[last.end : span.start].strip():
            reason = f"{last.reason}; {span.reason}"
            merged[-1] = _Span(last.start, span.end, max(last.score, span.score), reason)
        else:
            merged.append(span)
    return merged


def _span_flag(raw: str, to_text: Callable[[int], int], span: _Span) -> Flag:
    return Flag(
        type="uncertain_span",
        start=to_text(span.start),
        end=to_text(span.end),
        text=raw[span.start : span.end],
        score=round(span.score, 4),
        reason=span.reason,
    )


def _sentences(raw: str) -> list[tuple[int, int]]:
    return [m.span() for m in _SENTENCE_RE.finditer(raw) if raw[m.start() : m.end()].strip()]


@dataclass
class _Support:
    """The answer scored with and without each passage."""

    backend: Backend
    messages: Sequence[Message]
    prompt: list[int]
    response: list[int]
    full: list[float]  # log p of each answer token given the whole prompt

    def flags(
        self, passages: Sequence[int], raw: str, starts: list[int], to_text: Callable[[int], int]
    ) -> list[Flag]:
        """Per passage, for the whole answer then per sentence: log P(with) − log P(without)."""
        sentences = _sentences(raw)
        members = [[i for i, at in enumerate(starts) if a <= at < b] for a, b in sentences]
        flags: list[Flag] = []
        for n in sorted(set(passages), reverse=True):  # later passages share a longer prefix
            diff = self.differences(n)
            if diff is None:
                continue
            flags.append(_support_flag(n, None, 0, len(raw), sum(diff), to_text))
            for s, ((a, b), idx) in enumerate(zip(sentences, members, strict=True)):
                flags.append(_support_flag(n, s, a, b, sum(diff[i] for i in idx), to_text))
        return flags

    def differences(self, n: int) -> list[float] | None:
        """Per answer token, log p with passage n − log p without it (None: no passage n)."""
        reduced = self.backend.chat_tokens(without_passage(self.messages, n))
        if reduced == self.prompt:
            return None
        scored = self.backend.score([reduced + self.response])[0]
        without = [lp or 0.0 for lp in scored.logprobs[len(reduced) :]]
        return [f - w for f, w in zip(self.full, without, strict=True)]


def _support_flag(
    n: int, sentence: int | None, start: int, end: int, ratio: float, to_text: Callable[[int], int]
) -> Flag:
    return Flag(
        type="support",
        passage=n,
        sentence=sentence,
        start=to_text(start),
        end=to_text(end),
        log_ratio=round(ratio, 4),
    )
