"""Whether the retrieved passages can answer a question at all (else the assistant abstains).

Two signals, both cheap (the passages are retrieved already):
- meaning: the best dense cosine of a passage to the question (`answer.min_relevance`);
- words: the share of the question's own terms (identifier-aware, `index.terms`, no
  stopwords, three letters or more, a plural's "s" dropped) that the passages use.

MiniLM puts any short question within a cosine of 0.3–0.38 of *some* PETSc passage:
"What is the airspeed of an unladen swallow?" reaches 0.376 (a workshop's list of
abstracts), above fair questions the corpus does answer (0.381). The words tell them
apart: none of "airspeed", "unladen", "swallow" occurs in those passages. So in the band
between `min_relevance` and `answer.unsupported_relevance`, closeness alone is not
enough: the passages must also use `answer.min_support` of the question's terms. The
share is kept low (0.2) because a fair question paraphrases: "How do I make matrix
assembly fast?" over a page that says "Preallocate ... for speed" shares one word in
four, while the dev questions in the band share half or more. A passage that matches a
library name the question types is always relevant.

Measured (docs/measurements.md, "Answers that lead with the answer (this round)"): on
`eval/offtopic.jsonl` (32 questions the corpus does not cover) the floor alone abstained
on 27, with the words on 29; no dev question abstains either way.
"""

from __future__ import annotations

from collections.abc import Sequence

from sciknow.config import AnswerConfig
from sciknow.index.terms import terms
from sciknow.records import Evidence

MIN_TERM_CHARS = 3


def is_relevant(question: str, evidence: Sequence[Evidence], settings: AnswerConfig) -> bool:
    """Some passage names a library name the question types, or is close in meaning (and,
    when only somewhat close, shares the question's words)."""
    if any("symbol" in e.scores for e in evidence):
        return True
    best = max((e.scores.get("dense", 0.0) for e in evidence), default=0.0)
    if best < settings.min_relevance:
        return False
    if best >= settings.unsupported_relevance:
        return True
    return lexical_support(question, evidence) >= settings.min_support


def lexical_support(question: str, evidence: Sequence[Evidence]) -> float:
    """The share of the question's distinct terms that some passage uses (1 when the
    question has no term to check)."""
    wanted = {_singular(t) for t in terms(question) if len(t) >= MIN_TERM_CHARS}
    if not wanted:
        return 1.0
    used: set[str] = set()
    for item in evidence:
        used.update(_singular(t) for t in terms(item.text))
    return len(wanted & used) / len(wanted)


def _singular(term: str) -> str:
    """`solvers` and `stops` count as `solver` and `stop` (`class` stays)."""
    return term[:-1] if len(term) > 3 and term.endswith("s") and not term.endswith("ss") else term
