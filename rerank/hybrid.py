"""Hybrid retrieval: dense ∪ BM25 ∪ exact symbol lookup, fused by weighted reciprocal rank.

Dense vectors catch paraphrases, BM25 catches rare words, and the symbol table
catches the names users type (`MatZeroRowsColumns`, `-pc_factor_mat_ordering_type`)
and sends them to the page that defines them. Reciprocal rank fusion needs no
score calibration between the three, which is why it is the starting point.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

from sciknow.config import Profile, RetrievalConfig
from sciknow.index.embed import Embedder
from sciknow.index.store import Filters, Store
from sciknow.ingest.symbols import find_symbols
from sciknow.records import Evidence

_IDENTIFIER_RE = re.compile(r"-?[A-Za-z_][A-Za-z0-9_]*")


def reciprocal_rank_fusion(
    rankings: dict[str, list[tuple[int, float]]], weights: dict[str, float], k: int = 60
) -> list[tuple[int, float, dict[str, float]]]:
    """Fuse ranked lists: score(d) = Σ_r w_r / (k + rank_r(d)), ranks from 1.

    Returns (id, fused score, {retriever: rank}) sorted by fused score, ties by id.
    """
    fused: dict[int, float] = defaultdict(float)
    ranks: dict[int, dict[str, float]] = defaultdict(dict)
    for name, ranking in rankings.items():
        weight = weights.get(name, 1.0)
        for rank, (item, _score) in enumerate(ranking, start=1):
            fused[item] += weight / (k + rank)
            ranks[item][name] = rank
    order = sorted(fused, key=lambda item: (-fused[item], item))
    return [(item, fused[item], ranks[item]) for item in order]


@dataclass
class HybridRetriever:
    store: Store
    embedder: Embedder
    settings: RetrievalConfig
    profile: Profile

    def query_symbols(self, question: str) -> list[str]:
        """Library names in the question: pattern matches plus any word the index knows."""
        named = find_symbols(question, self.profile.symbol_prefixes)
        words = [w for w in _IDENTIFIER_RE.findall(question) if len(w) > 3]
        return list(dict.fromkeys(named + self.store.known_symbols(words)))

    def search(
        self, question: str, k: int | None = None, filters: Filters | None = None
    ) -> list[Evidence]:
        k = k or self.settings.k
        n = max(self.settings.candidates, k)
        allowed = self.store.allowed_rowids(filters or Filters())
        vector = self.embedder.embed([question])[0]
        rankings = {
            "dense": self.store.search_dense(vector, n, allowed),
            "bm25": self.store.search_terms(question, n, allowed),
            "symbol": self.store.lookup_symbols(self.query_symbols(question), n, allowed),
        }
        weights = {
            "dense": self.settings.dense_weight,
            "bm25": self.settings.bm25_weight,
            "symbol": self.settings.symbol_weight,
        }
        fused = reciprocal_rank_fusion(rankings, weights, self.settings.rrf_k)[:k]
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
