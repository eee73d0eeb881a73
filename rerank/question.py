"""The kind of a question, which decides what ranks first and what its answer leads with
(ARCHITECTURE.md, "The answer").

- `option`: it names a command-line option and asks what it does;
- `version`: it asks about releases, changes or removed names (release notes may lead);
- `troubleshoot`: an error, a crash, a hang, slow or failing convergence;
- `api`: "how do I …", "can I …", "which function …": a function's man page answers;
- `concept`: anything else ("why …", "what is …"): the manual's opening sentences.

Plain patterns, not a model: the kinds only choose a plan, and every plan falls back on
the passages retrieval ranked first.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# "change" alone is a verb of how-to questions ("How do I change the line search?").
VERSION_RE = re.compile(
    r"\b(versions?|releases?|release notes|changes in|changed in|what changed|removed|"
    r"deprecated|renamed|upgrad\w*|broke)\b",
    re.IGNORECASE,
)
TROUBLE_RE = re.compile(
    r"\b(errors?|crash\w*|fail\w*|hang\w*|not converg\w*|converges? slowly|slow\w*|"
    r"segmentation|SEGV|signal|corrupt\w*|cannot|can't|wrong|problem|fix|debug\w*|"
    r"message|mean\??$)",
    re.IGNORECASE,
)
HOWTO_RE = re.compile(
    r"^\s*(how (do|can|should|would) (i|we|one|you)|how to|can (i|one|we)|is there a way|"
    r"which (function|routine|option)|what (function|routine)|i want to)\b",
    re.IGNORECASE,
)
OPTION_ASK_RE = re.compile(
    r"\b(what|which)\b.*\b(does|do|is|mean|means|set|sets|control)\b", re.IGNORECASE
)


def question_kind(question: str, names: Sequence[str]) -> str:
    """One of `option`, `version`, `troubleshoot`, `api`, `concept` (see the module)."""
    options = [n for n in names if n.startswith("-")]
    if options and (OPTION_ASK_RE.search(question) or question.strip() in options):
        return "option"
    if VERSION_RE.search(question):
        return "version"
    if TROUBLE_RE.search(question):
        return "troubleshoot"
    if HOWTO_RE.search(question):
        return "api"
    return "concept"
