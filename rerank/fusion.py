"""Fusion of the index's retrievers: weighted reciprocal rank fusion and exact-symbol ranking.

Reciprocal rank fusion needs no score calibration between dense cosine, BM25 and
symbol counts, so each retriever only contributes its order, scaled by a weight
tuned on the dev set (docs/measurements.md, "Retrieval quality").

The symbol ranking is what makes a question naming `MatZeroRowsColumns` or
`-pc_factor_mat_ordering_type` surface the page that defines it: chunks are
ordered by how many of the named symbols they define or mention, and, among
equals, by dense similarity to the question. The store's own tie order (row id)
would otherwise pick an arbitrary one of the hundred pages that mention
`-log_view`.

`SymbolFeedback` then reorders the fused list by pseudo-relevance feedback on
library names (see its docstring): on the dev set it lifted symbol recall@8 of
held-out questions from 0.31 to 0.45 while the exact matches stay first, and
choosing greedily so that repeated names count half took it to 0.49.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from sciknow.index.store import Store
from sciknow.ingest.symbols import find_symbols
from sciknow.records import Evidence
from sciknow.rerank.base import order_by_scores

Ranking = list[tuple[int, float]]

# How many symbol hits are ordered by similarity: enough for a common option's pages.
SYMBOL_POOL = 400


def reciprocal_rank_fusion(
    rankings: dict[str, Ranking], weights: dict[str, float], k: int = 60
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
class SymbolFeedback:
    """Pseudo-relevance feedback on library names: promote passages that use the API
    the top candidates agree on, without spending every slot on the same names.

    Each name in the top `depth` candidates gets a vote of 1/(c + rank) per passage it
    appears in; a passage's support is the sum of the votes of its names. Its score is
    its fused-rank prior, (c + 1)/(c + rank), plus `weight` × support / the best
    support. A question about reading remote vector values retrieves a few passages
    naming `VecScatterCreate`, `VecScatterBegin`...; the worked example that names them
    all moves up, ahead of prose that only shares words with the question.

    Passages are chosen one at a time, best score first, and once a chosen passage
    names something, that name's vote counts only `repeat` (0 to 1) times in the passages
    still waiting: the next slot goes to a passage that adds names, not to a fourth one that
    repeats the first's (0.5 lifted held-out symbol recall@8 by 2 points on the docs
    and 4.5 on the whole repository, docs/measurements.md, "Retrieval quality"; 1 is plain
    support ordering).

    The first `keep` candidates stay where fusion put them: when the question matches
    a section almost word for word (its FAQ entry, its man page), that section must
    stay first even if it names no API; feedback only chooses what follows.
    """

    prefixes: tuple[str, ...]
    weight: float = 1.0
    depth: int = 30
    keep: int = 2
    c: int = 60
    repeat: float = 0.5

    def rerank(self, question: str, candidates: list[Evidence], k: int) -> list[Evidence]:
        names = [{s.lower() for s in find_symbols(e.text, self.prefixes)} for e in candidates]
        votes: dict[str, float] = defaultdict(float)
        for rank, found in enumerate(names[: self.depth], start=1):
            for name in found:
                votes[name] += 1.0 / (self.c + rank)
        support = [sum(votes[name] for name in found) for found in names]
        scale = self.weight / (max(support, default=0.0) or 1.0)
        scores = [(self.c + 1) / (self.c + rank) + scale * s for rank, s in enumerate(support, 1)]
        votes = {name: scale * vote for name, vote in votes.items()}
        chosen = self._choose(names, votes, scores)
        return order_by_scores(
            [candidates[i] for i, _ in chosen], [s for _, s in chosen], "feedback", k
        )

    def _choose(
        self, names: list[set[str]], votes: dict[str, float], scores: list[float]
    ) -> list[tuple[int, float]]:
        """(candidate index, score when chosen) in greedy order, best first.

        The kept head first, scored above the rest; then the best score each time, a
        chosen passage's names losing `1 - repeat` of their vote in the others. Scores
        only fall, so the scores when chosen fall too and match the order. `votes` is
        consumed: a name's vote is removed once it is discounted.
        """
        holders: dict[str, list[int]] = defaultdict(list)
        for index, found in enumerate(names):
            for name in found & votes.keys():
                holders[name].append(index)
        head = min(self.keep, len(names))
        top = max(scores, default=0.0) + head
        chosen = [(index, top - index) for index in range(head)]
        waiting = set(range(head, len(names)))
        for index, _ in chosen:
            self._discount(names[index], holders, votes, scores)
        while waiting:
            best = max(waiting, key=lambda index: (scores[index], -index))
            waiting.remove(best)
            chosen.append((best, scores[best]))
            self._discount(names[best], holders, votes, scores)
        return chosen

    def _discount(
        self,
        found: set[str],
        holders: dict[str, list[int]],
        votes: dict[str, float],
        scores: list[float],
    ) -> None:
        """Discount a chosen passage's names, once each, in every passage that holds them."""
        for name in found & votes.keys():
            cut = (1.0 - self.repeat) * votes.pop(name)
            for holder in holders[name]:
                scores[holder] -= cut


def symbol_ranking(
    store: Store,
    symbols: list[str],
    vector: np.ndarray,
    k: int,
    allowed: np.ndarray | None = None,
) -> Ranking:
    """Chunks naming the symbols: most symbols defined/mentioned first, then most similar.

    Scores stay the store's symbol score (2 per symbol defined, 1 per mention).
    """
    hits = store.lookup_symbols(symbols, SYMBOL_POOL, allowed)
    if len(hits) <= 1:
        return hits[:k]
    ids = np.array([rowid for rowid, _ in hits], dtype=np.int64)
    similarity = dict(store.search_dense(vector, len(ids), ids))
    hits.sort(key=lambda hit: (-hit[1], -similarity.get(hit[0], -1.0)))
    return hits[:k]
