"""Hybrid retrieval: dense ∪ BM25 ∪ exact symbols → fusion → optional model reranker → diversity.

Dense vectors catch paraphrases, BM25 catches rare words, and the symbol table
catches the names users type (`MatZeroRowsColumns`, `-pc_factor_mat_ordering_type`)
and sends them to the page that defines them (see `fusion.py`). Weighted
reciprocal rank fusion merges the three; a cross-encoder or the LLM may then
reorder the fused top candidates, and the diversity stage spends the final `k`
slots on distinct passages. Which stages run, and their weights, come from
`RetrievalConfig`; the defaults are the best setup measured offline on 2 cores
(docs/measurements.md, "Retrieval quality").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from sciknow.config import Profile, RetrievalConfig
from sciknow.index.embed import Embedder
from sciknow.index.store import Filters, Store
from sciknow.ingest.symbols import find_symbols
from sciknow.records import Evidence
from sciknow.rerank.base import Reranker
from sciknow.rerank.diversity import Diversifier
from sciknow.rerank.fusion import (
    Ranking,
    SymbolFeedback,
    reciprocal_rank_fusion,
    symbol_ranking,
)
from sciknow.rerank.question import question_kind
from sciknow.rerank.target import target_page

__all__ = ["HybridRetriever", "reciprocal_rank_fusion"]

_IDENTIFIER_RE = re.compile(r"-?[A-Za-z_][A-Za-z0-9_]*")


def looks_like_identifier(word: str) -> bool:
    """An option, or a word with an underscore, a digit or a capital after its first letter
    (`-ksp_rtol`, `PETSC_DIR`, `DMDA`, `MatSetValues`); not `matrix` or `Error`."""
    return (
        word.startswith("-")
        or "_" in word
        or any(c.isdigit() for c in word)
        or any(c.isupper() for c in word[1:])
    )


@dataclass
class HybridRetriever:
    """Ranked evidence for a question: fusion, symbol feedback, model reranker, diversity.

    `reranker` overrides `settings.reranker`: the "llm" reranker needs a model
    backend, so whoever owns one passes it in (rerank/ does not import serve/).
    """

    store: Store
    embedder: Embedder
    settings: RetrievalConfig
    profile: Profile
    reranker: Reranker | None = None
    feedback: SymbolFeedback | None = field(init=False)
    diversifier: Diversifier = field(init=False)

    def __post_init__(self) -> None:
        settings = self.settings
        self.feedback = None
        if settings.feedback_weight:
            self.feedback = SymbolFeedback(
                tuple(self.profile.symbol_prefixes),
                settings.feedback_weight,
                settings.feedback_depth,
                settings.feedback_keep,
                settings.rrf_k,
                settings.feedback_repeat,
            )
        self.diversifier = Diversifier(
            settings.max_per_doc, settings.max_per_page, settings.max_similarity
        )
        if self.reranker is not None or self.settings.reranker == "none":
            return
        if self.settings.reranker == "llm":
            raise RuntimeError(
                "retrieval.reranker = 'llm' needs a model backend: build the retriever with "
                "reranker=LLMReranker(backend)"
            )
        if self.settings.reranker == "vllm":
            from sciknow.rerank.vllm_score import VLLMScoreReranker

            self.reranker = VLLMScoreReranker.from_settings(self.settings)
            return
        from sciknow.rerank.cross_encoder import CrossEncoderReranker

        self.reranker = CrossEncoderReranker(self.settings.cross_encoder)

    @property
    def weights(self) -> dict[str, float]:
        return {
            "dense": self.settings.dense_weight,
            "bm25": self.settings.bm25_weight,
            "symbol": self.settings.symbol_weight,
        }

    def query_symbols(self, question: str) -> list[str]:
        """Library names in the question: pattern matches plus identifier-shaped words the
        index knows.

        A bare prefix ("PETSc", "Vec") is not a name: the index knows `PETSC` from
        `PETSC_...` macros, and matching it would send every question to pages
        that happen to spell it. Nor is a plain word: a source tree defines `error`,
        `matrix` and `install` somewhere, and matching them sent FAQ questions to code
        (whole-repository dev set: gold recall@1 0.44 with plain words, 0.92 without).
        A word typed as an identifier (`DMDA`, `ksp_rtol`) counts when the index knows it;
        a plain word counts when the index spells it in mixed case, with an underscore or
        a digit (`kspsettolerances` typed for `KSPSetTolerances` does, `matrices` for a
        `MATRICES` macro does not).
        """
        named = find_symbols(question, self.profile.symbol_prefixes)
        bare = {p.lower() for p in self.profile.symbol_prefixes} | {self.profile.name.lower()}
        typed: dict[str, set[str]] = {}
        for word in _IDENTIFIER_RE.findall(question):
            if len(word) > 3 and word.lower() not in bare:
                typed.setdefault(word.lower(), set()).add(word)
        spelled = {n.lower() for n in named}
        known = self.store.known_symbols(typed)
        return named + [
            lower
            for lower, spellings in known.items()
            if lower not in spelled
            and (
                any(looks_like_identifier(w) for w in typed[lower])
                or any(looks_like_identifier(s) and not s.isupper() for s in spellings)
            )
        ]

    def rankings(
        self,
        question: str,
        vector: np.ndarray,
        n: int,
        allowed: np.ndarray | None,
        symbols: list[str] | None = None,
    ) -> dict[str, Ranking]:
        """Each retriever with a non-zero weight: its top `n` chunk row ids with scores.
        `symbols`: the question's names when the caller has them (`query_symbols`)."""
        out: dict[str, Ranking] = {}
        if self.settings.dense_weight:
            out["dense"] = self.store.search_dense(vector, n, allowed)
        if self.settings.bm25_weight:
            out["bm25"] = self.store.search_terms(question, n, allowed)
        if self.settings.symbol_weight:
            if symbols is None:
                symbols = self.query_symbols(question)
            out["symbol"] = symbol_ranking(self.store, symbols, vector, n, allowed)
        return out

    def search(
        self, question: str, k: int | None = None, filters: Filters | None = None
    ) -> list[Evidence]:
        k = k or self.settings.k
        n = max(self.settings.candidates, k)
        allowed = self.store.allowed_rowids(filters or Filters())
        vector = self.embedder.embed([question])[0]
        names = self.query_symbols(question)
        rankings = self.rankings(question, vector, n, allowed, names)
        fused = reciprocal_rank_fusion(rankings, self.weights, self.settings.rrf_k)[:n]
        kind = question_kind(question, names)
        # A question that names a library name keeps its man page at full weight.
        general = kind not in ("api", "option") and not names
        candidates = self._weigh_kinds(self._evidence(fused, rankings), kind, general)
        if self.feedback is not None:
            candidates = self.feedback.rerank(question, candidates, len(candidates))
        if self.reranker is not None:
            pool = max(self.settings.rerank_candidates, k)
            reranked = self.reranker.rerank(question, candidates[:pool], pool)
            candidates = reranked + candidates[pool:]
        if kind in ("api", "option") and self.settings.manpage_first:
            candidates = self._target_first(question, vector, names, candidates)
        return self.diversifier.rerank(question, candidates, k)

    def _target_first(
        self, question: str, vector: np.ndarray, names: list[str], candidates: list[Evidence]
    ) -> list[Evidence]:
        """A how-to question's man page (`target.py`) goes first when its score (cosine of
        its head plus its name's words in the question) clears `manpage_first`: its summary
        line describes exactly what the question asks for."""
        prefixes = self.profile.symbol_prefixes
        target = target_page(self.store, question, vector, names, candidates, prefixes)
        if target is None or target.score < self.settings.manpage_first or not target.overlap:
            return candidates
        first = target.evidence
        first.scores = {"dense": target.similarity, "target": target.score}
        first.score = (candidates[0].score if candidates else 0.0) + target.score
        first.reason = "the man page of what the question asks"
        return [first, *(e for e in candidates if e.chunk_id != first.chunk_id)]

    def _weigh_kinds(self, candidates: list[Evidence], kind: str, general: bool) -> list[Evidence]:
        """Scale fused scores by `kind_weights` and re-sort (ties keep the fused order).
        Release notes keep their full weight for a question about versions or changes;
        `other_question_weights` scale kinds further for a `general` question (no API
        how-to, no option, no library name typed; man pages: MiniLM puts any short PETSc
        page close to any PETSc question, and "What kind of license is PETSc released
        under?" drew them)."""
        weights = dict(self.settings.kind_weights)
        if kind == "version":
            weights.pop("changelog", None)
        if general:
            for name, factor in self.settings.other_question_weights.items():
                weights[name] = weights.get(name, 1.0) * factor
        if not weights:
            return candidates
        for evidence in candidates:
            evidence.score *= weights.get(evidence.kind, 1.0)
        return sorted(candidates, key=lambda evidence: -evidence.score)

    def _evidence(
        self, fused: list[tuple[int, float, dict[str, float]]], rankings: dict[str, Ranking]
    ) -> list[Evidence]:
        """Evidence records in fused order, with each retriever's rank and raw score."""
        records = self.store.evidence([item for item, _, _ in fused])
        raw = {name: dict(ranking) for name, ranking in rankings.items()}
        results = []
        for item, score, ranks in fused:
            evidence = records[item]
            evidence.score = score
            evidence.scores = {f"{name}_rank": rank for name, rank in ranks.items()}
            evidence.scores.update({name: raw[name][item] for name in ranks})
            evidence.reason = "matched by " + ", ".join(sorted(ranks))
            results.append(evidence)
        return results
