"""The model-backend protocol and the types it returns (`factory.make_backend` builds one).

Every backend (embedded llama.cpp, a vLLM server) offers the same five operations so that
the answer pipeline and the token-attribution code never know which one they talk to:

- `generate(messages, ...)` streams `GenToken`s: text, token id, log-probability under
  the model's own distribution (temperature 1, before any sampling transform, so it is
  comparable with `score`), entropy when the backend sees the full distribution, and the
  top alternatives when asked. `repetition_penalty` > 1 discourages tokens already
  generated (CTRL-style, applied to the choice only: log-probabilities stay raw).
- `score(sequences, top_k)` returns, for each given token sequence, log p(ids[i] | ids[:i])
  at every position. Position 0 has no prediction: its entries are `None` (logprob,
  entropy) or empty (top), so lists stay aligned with `ids`.
- `tokenize` / `detokenize` / `chat_tokens` expose the model's own tokenizer and chat
  template, so token counts and attribution positions are the model's.

`max_top_k` is the most alternatives `score` returns per position (the vocabulary for
in-process models, the server's logprob cap for vLLM). Backends that see the whole
distribution also set `vocab_size`, which the attribution code uses when present.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from sciknow.errors import BackendError as BackendError

Message = dict[str, str]


@dataclass
class GenToken:
    """One generated token.

    `logprob` and `top` come from the model's raw next-token distribution (the one
    `score` reports), whatever the sampling temperature. `entropy` (nats) is `None`
    when the backend only sees the top alternatives (vLLM).
    """

    text: str
    token_id: int | None
    logprob: float | None
    entropy: float | None = None
    top: list[tuple[str, float]] = field(default_factory=list)


@dataclass
class ScoredSequence:
    """Per-position log-probabilities of a given token sequence.

    Index i describes the prediction of `ids[i]` from `ids[:i]`; index 0 has none
    (`logprobs[0]` and `entropies[0]` are `None`, `top[0]` is empty). `top[i]` holds up to
    `top_k` `(token_id, logprob)` pairs, most likely first. `entropies[i]` is `None` when the
    backend does not see the full distribution.
    """

    ids: list[int]
    logprobs: list[float | None]
    top: list[list[tuple[int, float]]]
    entropies: list[float | None]

    @property
    def total(self) -> float:
        """log p(ids[1:] | ids[0]): the sum over all predicted positions."""
        return sum(lp for lp in self.logprobs if lp is not None)


@runtime_checkable
class Backend(Protocol):
    """What the pipeline and the attribution code need from a language model."""

    name: str
    context_window: int
    max_top_k: int

    def generate(
        self,
        messages: list[Message],
        stream: bool = True,
        max_tokens: int = 512,
        temperature: float = 0.0,
        logprobs: bool = True,
        top_logprobs: int = 0,
        repetition_penalty: float = 1.0,
    ) -> Iterator[GenToken]: ...

    def score(self, sequences: Sequence[Sequence[int]], top_k: int = 0) -> list[ScoredSequence]: ...

    def tokenize(self, text: str, special: bool = False) -> list[int]: ...

    def detokenize(self, ids: Sequence[int]) -> str: ...

    def chat_tokens(self, messages: list[Message]) -> list[int]: ...
