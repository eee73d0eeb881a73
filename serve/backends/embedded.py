"""The embedded backend: a GGUF model run in-process with llama-cpp-python (offline default).

Log-probabilities come from one mechanism everywhere: the model is created with
`logits_all=True`, token ids go through `Llama.eval`, and row i of `Llama.scores` holds
the logits that predict token i+1, which we log-softmax ourselves. So generation and
`score` see the full next-token distribution (exact entropies), and the same numbers.
We never use `Llama.__call__(..., echo=True, logprobs=n)`: it is ~20x slower and, for
models whose GGUF sets `add_bos_token=false` (SmolLM2), misaligned by one position.

Exactness needs batch invariance, which llama.cpp gives only in part (measured on
SmolLM2, 300 tokens): without flash attention every `eval` of two or more tokens yields
bit-identical logits however the sequence is split, but a one-token `eval` takes other
kernels (up to 0.39 nats away); with flash attention, batches under and over 64 tokens
disagree as well. So flash attention stays off and no `eval` holds a single token:
decoding re-evaluates the previous token together with the new one (~10% slower), and
long suffixes are split so that no piece has one token.

The KV cache is reused across calls: `Llama.eval` appends at `n_tokens`, so before each
evaluation we cut `n_tokens` back to the prefix shared with what the model already holds
and evaluate only the rest. `score` sorts its sequences so that neighbours share the
longest prefixes (candidate sequences of the attribution module differ late). Thanks to
the invariance above, reused and cold computations give identical numbers.

One instance is shared by all threads; a lock serializes model calls. Generation is
`LocalBackend`'s loop (`decoding.py`, shared with the transformers backend) over the
logits rows described above.
"""

from __future__ import annotations

import codecs
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sciknow.serve.backends.base import BackendError, Message, ScoredSequence
from sciknow.serve.backends.decoding import LocalBackend, entropy, log_softmax, top_k
from sciknow.serve.backends.models import find_smollm2_gguf

# libgomp reads this once, when llama_cpp loads it: set here, before any llama_cpp import.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

LLAMA_INSTALL = "pip install llama-cpp-python"
SCORE_ROWS = 256  # rows log-softmaxed at once in `score`: bounds temporaries (~100 MB)
_LOAD_LOCK = threading.Lock()  # `load_llama` swaps a llama_cpp function while it loads


def _common_prefix(a: np.ndarray, b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    differ = np.flatnonzero(a[:n] != np.asarray(b[:n]))
    return int(differ[0]) if differ.size else n


def _pieces(n: int, size: int) -> list[int]:
    """Split n tokens into evals of at most `size` tokens, none of one token when n > 1."""
    sizes = [size] * (n // size) + ([n % size] if n % size else [])
    if len(sizes) > 1 and sizes[-1] == 1:
        sizes[-2:] = [size - 1, 2]
    return sizes


def load_llama(path: Path, n_ctx: int, n_threads: int) -> Any:
    """A `llama_cpp.Llama` set up as `EmbeddedBackend` needs it (see its docstring)."""
    try:
        import llama_cpp
    except ImportError:
        raise BackendError(
            f"the embedded backend needs llama-cpp-python; install it with `{LLAMA_INSTALL}`"
        ) from None
    default_params = llama_cpp.llama_cpp.llama_model_default_params

    def without_extra_buffers() -> Any:
        params = default_params()
        params.use_extra_bufts = False
        return params

    with _LOAD_LOCK:
        llama_cpp.llama_cpp.llama_model_default_params = without_extra_buffers
        try:
            return llama_cpp.Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_threads=n_threads,
                n_threads_batch=n_threads,
                logits_all=True,
                flash_attn=False,
                verbose=False,
            )
        finally:
            llama_cpp.llama_cpp.llama_model_default_params = default_params


class EmbeddedBackend(LocalBackend):
    """SmolLM2-135M-Instruct (or any chat GGUF) in this process; see the module docstring.

    `logits_all=True` keeps an n_ctx x vocabulary float32 matrix (768 MiB for SmolLM2
    at the default n_ctx of 4096), the price of exact scores over the whole context.
    `seed` fixes sampling when temperature > 0; greedy decoding needs none.

    Two more settings come from measurements on the 2-core target machine:
    - llama.cpp's extra CPU buffer types are off: on AMX-capable hosts (here a Firecracker
      VM) a -march=native build routes Q4_1 matmuls to AMX kernels that crash (SIGSEGV)
      as soon as a batch holds more than one token. Without them decoding is ~35% slower
      on this CPU, but batched `eval` (prompts, `score`) works.
    - `OMP_WAIT_POLICY=PASSIVE` unless set: with spinning OpenMP workers, two threads on
      two busy cores decoded ~10x slower (2.5 vs 29 tokens/s). It is set when this module
      is imported and only works if `llama_cpp` was not imported before.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        n_ctx: int = 4096,
        n_threads: int = 2,
        seed: int | None = None,
    ) -> None:
        path = Path(model_path) if model_path else find_smollm2_gguf()
        self._llm = load_llama(path, n_ctx, n_threads)
        from llama_cpp import llama_vocab_is_eog
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self._lock = threading.Lock()
        self._rng = np.random.default_rng(seed)
        self._last_scored: tuple[int, ScoredSequence] | None = None  # (top_k, result)
        self._is_eog = lambda tok: bool(llama_vocab_is_eog(self._llm._model.vocab, tok))
        template = self._llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise BackendError(f"{path.name} has no chat template; use an instruction-tuned GGUF")
        bos, eos = self._llm.token_bos(), self._llm.token_eos()
        self._chat = Jinja2ChatFormatter(
            template,
            eos_token=self._token_text(eos),
            bos_token=self._token_text(bos) if bos >= 0 else "",
        )
        self.name = f"embedded:{path.stem}"
        self.context_window: int = self._llm.n_ctx()
        self.vocab_size: int = self._llm.n_vocab()
        self.max_top_k: int = self.vocab_size

    def tokenize(self, text: str, special: bool = False) -> list[int]:
        """Token ids of `text`, never with a BOS. `special=False` keeps text such as
        "<|im_end|>" literal (safe for retrieved documents); True maps it to special ids.

        The tokenizer is read-only in llama.cpp, so this does not wait for the model lock.
        """
        return self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=special)

    def detokenize(self, ids: Sequence[int]) -> str:
        """Text of `ids`, special tokens rendered (so chat prompts read as the model saw them)."""
        return self._llm.detokenize(list(ids), special=True).decode("utf-8", errors="replace")

    def chat_tokens(self, messages: list[Message]) -> list[int]:
        """Prompt ids for `messages`: the GGUF's chat template, with the assistant header."""
        prompt = self._chat(messages=messages).prompt
        return self.tokenize(prompt, special=True)

    def score(self, sequences: Sequence[Sequence[int]], top_k: int = 0) -> list[ScoredSequence]:
        """Exact per-position log-probabilities (see `ScoredSequence`), full-vocabulary
        entropies, and the `top_k` alternatives; computed in prefix-sharing order."""
        seqs = [list(s) for s in sequences]
        if any(not s for s in seqs):
            raise ValueError("cannot score an empty sequence")
        order = sorted(range(len(seqs)), key=seqs.__getitem__)
        results: dict[int, ScoredSequence] = {}
        with self._lock:
            for i in order:
                results[i] = self._score_one(seqs[i], top_k)
        return [results[i] for i in range(len(seqs))]

    def _token_text(self, token: int) -> str:
        return self._llm.detokenize([token], special=True).decode("utf-8", errors="replace")

    def _advance(self, ids: Sequence[int]) -> None:
        """Make the model hold exactly `ids`, evaluating only what it lacks (at least two
        tokens: see the module docstring).

        Rows [0, n_tokens) of `scores` stay valid when `n_tokens` is cut back, and the next
        `eval` drops the KV cache beyond `n_tokens` before appending.
        """
        if len(ids) > self.context_window:
            raise BackendError(
                f"{len(ids)} tokens do not fit the context window of {self.context_window}"
            )
        llm = self._llm
        shared = _common_prefix(llm.input_ids[: llm.n_tokens], ids)
        if shared < len(ids):
            shared = max(0, min(shared, len(ids) - 2))
        llm.n_tokens = shared
        for size in _pieces(len(ids) - shared, llm.n_batch):
            llm.eval(ids[llm.n_tokens : llm.n_tokens + size])

    def _next_logits(self, ids: list[int]) -> np.ndarray:
        self._advance(ids)
        return self._llm.scores[len(ids) - 1]

    def _is_stop(self, token: int) -> bool:
        return self._is_eog(token)

    def _text_stream(self) -> Callable[[int], str]:
        """Token bytes through an incremental UTF-8 decoder: a character split across
        tokens appears with its last byte."""
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        return lambda token: decoder.decode(self._llm.detokenize([token]))

    def _score_one(self, ids: list[int], k: int) -> ScoredSequence:
        """Score `ids`, reusing the entries of the previous result that share its prefix:
        entry i depends only on ids[: i + 1] and k, so they are the same numbers."""
        if len(ids) > 1:  # a lone token has nothing to score (and would take the 1-token path)
            self._advance(ids)
        last = self._last_scored
        keep = 1
        if last is not None and last[0] == k:
            keep = max(1, _common_prefix(np.asarray(last[1].ids), ids))
        result = ScoredSequence(ids=ids, logprobs=[None], top=[[]], entropies=[None])
        if keep > 1:
            result.logprobs = last[1].logprobs[:keep]
            result.top = last[1].top[:keep]
            result.entropies = last[1].entropies[:keep]
        for start in range(keep - 1, len(ids) - 1, SCORE_ROWS):
            self._add_rows(result, start, min(start + SCORE_ROWS, len(ids) - 1), k)
        self._last_scored = (k, result)
        return result

    def _add_rows(self, result: ScoredSequence, start: int, stop: int, k: int) -> None:
        """Append the entries that logits rows [start, stop) give (row i predicts ids[i+1])."""
        logp = log_softmax(self._llm.scores[start:stop])
        targets = np.asarray(result.ids[start + 1 : stop + 1])
        result.logprobs = result.logprobs + logp[np.arange(len(targets)), targets].tolist()
        result.entropies = result.entropies + entropy(logp).tolist()
        result.top = result.top + [top_k(row, k) for row in logp]
