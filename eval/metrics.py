"""Retrieval metrics: gold recall@k and MRR, symbol recall@k at a fixed context budget, latency.

Symbol recall@k (ARCHITECTURE.md, "Evaluation data") is the share of the
library names a reference answer cites that occur in the top-k passages. It is
counted over the first `budget` characters of the ranked passages only — what a
model would be given — so a pipeline cannot win by returning bigger chunks.
A name occurs when it appears as a whole token: `-ksp_monitor` is not found
inside `-ksp_monitor_true_residual`, nor `KSPSolve` inside `KSPSolveTranspose`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

CONTEXT_BUDGET = 8000  # characters of ranked passages a model is given

_TOKEN_RE = re.compile(r"-?[A-Za-z_][A-Za-z0-9_]*")


def tokens(text: str) -> set[str]:
    """Whole identifier and option tokens of a text (how symbols are matched)."""
    return set(_TOKEN_RE.findall(text))


def first_hit(hits: Sequence[bool]) -> int | None:
    """1-based rank of the first relevant passage, or None."""
    return next((rank for rank, hit in enumerate(hits, start=1) if hit), None)


def recall_at(rank: int | None, k: int) -> float:
    """1 when the gold passage is within the top k (one gold section per question)."""
    return 1.0 if rank is not None and rank <= k else 0.0


def reciprocal_rank(rank: int | None) -> float:
    return 1.0 / rank if rank else 0.0


def budget_prefix(passages: Sequence[str], k: int, budget: int = CONTEXT_BUDGET) -> str:
    """The top-k passages joined, cut at `budget` characters."""
    return "\n".join(passages[:k])[:budget]


def symbol_recall(
    symbols: Iterable[str], passages: Sequence[str], k: int, budget: int = CONTEXT_BUDGET
) -> float | None:
    """Share of `symbols` found in the budgeted top-k passages; None without symbols."""
    wanted = set(symbols)
    if not wanted:
        return None
    found = tokens(budget_prefix(passages, k, budget))
    return len(wanted & found) / len(wanted)


def coverage(symbols: Iterable[str], corpus_tokens: set[str]) -> float | None:
    """Share of `symbols` that occur anywhere in the corpus: the ceiling of symbol recall."""
    wanted = set(symbols)
    return len(wanted & corpus_tokens) / len(wanted) if wanted else None


def mean(values: Iterable[float | None]) -> float | None:
    """Mean of the values that are not None (None when there are none)."""
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0–100) by linear interpolation between order statistics."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
