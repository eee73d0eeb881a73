"""The decoding loop of the in-process backends, and the arithmetic on a next-token
distribution that they and the attribution module share.

`LocalBackend.generate` is the one loop of the embedded (llama.cpp) and transformers
backends: each supplies only the model's raw next-token logits, its stop tokens and how
token ids become text; the sampling, the repetition penalty and what a `GenToken`
reports are defined here, so the two cannot drift apart.

One convention throughout: `log_softmax` turns raw logits into log-probabilities (rows
in float64, so sums over long sequences stay exact), and `entropy` and `top_k` take
log-probabilities.

The repetition penalty is CTRL's (Keskar et al., 2019) on the raw logits, as transformers'
`RepetitionPenaltyLogitsProcessor` and vLLM apply it: the logit of each token already
generated is divided by the penalty when positive and multiplied by it when negative.
So `answer.repetition_penalty` means the same on all three backends. It only steers the
choice: reported log-probabilities and entropies are those of the raw distribution, the
one `score` reports.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from sciknow.serve.backends.base import BackendError, GenToken, Message


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax in float64, so sums over long sequences stay exact."""
    x = np.asarray(logits, dtype=np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def entropy(logp: np.ndarray) -> np.ndarray:
    """Entropy (nats) of each row of log-probabilities."""
    return -(np.exp(logp) * logp).sum(axis=-1)


def top_k(logp: np.ndarray, k: int) -> list[tuple[int, float]]:
    """The k most likely token ids of one row of log-probabilities, best first."""
    if k <= 0:
        return []
    ids = np.argpartition(-logp, k - 1)[:k] if k < logp.shape[-1] else np.arange(logp.shape[-1])
    ids = ids[np.argsort(-logp[ids], kind="stable")]
    return [(int(i), float(logp[i])) for i in ids]


def penalized(logits: np.ndarray, generated: Sequence[int], penalty: float) -> np.ndarray:
    """CTRL's repetition penalty on raw logits (see the module docstring): the logits of
    the tokens already generated are divided (when positive) or multiplied (when negative)
    by `penalty`."""
    if penalty == 1.0 or not generated:
        return logits
    out = np.array(logits, dtype=np.float64, copy=True)
    seen = np.fromiter(set(generated), dtype=np.int64)
    out[seen] = np.where(out[seen] > 0, out[seen] / penalty, out[seen] * penalty)
    return out


def pick(logits: np.ndarray, temperature: float, rng: np.random.Generator) -> int:
    """Greedy at temperature 0, else a sample from softmax(logits / temperature)."""
    if temperature <= 0:
        return int(np.argmax(logits))
    p = np.exp(log_softmax(np.asarray(logits, dtype=np.float64) / temperature))
    return int(rng.choice(len(p), p=p / p.sum()))


@dataclass
class Sampling:
    """How one generation picks and reports its tokens (the `generate` arguments)."""

    temperature: float = 0.0
    logprobs: bool = True
    top_logprobs: int = 0
    repetition_penalty: float = 1.0


class LocalBackend:
    """A backend whose model runs in this process. Subclasses set `context_window`,
    `_lock` (model calls are serialized) and `_rng`, and implement `chat_tokens` and the
    four methods below; `generate` is the same for all of them.

    A streamed generation holds the lock from its first token until it is exhausted or
    closed, so concurrent requests queue instead of thrashing the model's cache."""

    context_window: int
    _lock: threading.Lock
    _rng: np.random.Generator

    def chat_tokens(self, messages: list[Message]) -> list[int]:
        raise NotImplementedError

    def _next_logits(self, ids: list[int]) -> np.ndarray:
        """The raw logits that predict the token after `ids` (runs under the lock)."""
        raise NotImplementedError

    def _is_stop(self, token: int) -> bool:
        """Whether `token` ends the generation (not yielded)."""
        raise NotImplementedError

    def _text_stream(self) -> Callable[[int], str]:
        """A fresh function from each next generated token to the text it adds (which may
        be "" while a character's bytes are incomplete)."""
        raise NotImplementedError

    def _token_text(self, token: int) -> str:
        """The text of one token, for the top alternatives."""
        raise NotImplementedError

    def generate(
        self,
        messages: list[Message],
        stream: bool = True,
        max_tokens: int = 512,
        temperature: float = 0.0,
        logprobs: bool = True,
        top_logprobs: int = 0,
        repetition_penalty: float = 1.0,
    ) -> Iterator[GenToken]:
        """Generate a reply; greedy at temperature 0. Stops at a stop token (not yielded),
        `max_tokens`, or the end of the context window.

        A stream holds the model until it is exhausted or closed: consume or `close()` it.
        """
        prompt = self.chat_tokens(messages)
        if len(prompt) >= self.context_window:
            raise BackendError(
                f"the prompt has {len(prompt)} tokens; the context window is {self.context_window}"
            )
        limit = min(max_tokens, self.context_window - len(prompt))
        sampling = Sampling(temperature, logprobs, top_logprobs, repetition_penalty)
        tokens = self._locked(self._decode(prompt, limit, sampling))
        return tokens if stream else iter(list(tokens))

    def _locked(self, tokens: Iterator[GenToken]) -> Iterator[GenToken]:
        with self._lock:
            yield from tokens

    def _decode(self, prompt: list[int], limit: int, sampling: Sampling) -> Iterator[GenToken]:
        """The decoding loop (runs under the lock): pick from the penalized logits, report
        the raw distribution."""
        ids = list(prompt)
        text_of = self._text_stream()
        for _ in range(limit):
            logits = self._next_logits(ids)
            generated = ids[len(prompt) :]
            chosen = penalized(logits, generated, sampling.repetition_penalty)
            token = pick(chosen, sampling.temperature, self._rng)
            if self._is_stop(token):
                return
            ids.append(token)
            yield self._gen_token(text_of(token), token, logits, sampling)

    def _gen_token(self, text: str, token: int, logits: np.ndarray, sampling: Sampling) -> GenToken:
        if not sampling.logprobs:
            return GenToken(text=text, token_id=token, logprob=None)
        logp = log_softmax(logits)
        alternatives = top_k(logp, sampling.top_logprobs)
        return GenToken(
            text=text,
            token_id=token,
            logprob=float(logp[token]),
            entropy=float(entropy(logp)),
            top=[(self._token_text(t), lp) for t, lp in alternatives],
        )
