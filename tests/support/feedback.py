"""A feedback record and the server settings it was given under."""

from __future__ import annotations

from sciknow.serve.web.feedback import Feedback, Server

SERVER = Server(backend="transformers", model="SmolLM2", pipeline={"mode": "extractive"})


def vote(question: str, vote: str, comment: str = "") -> Feedback:
    """A vote from the web chat on a one-citation answer."""
    return Feedback(
        question=question,
        answer="Use KSPSetTolerances() [1].",
        vote=vote,
        history=[{"role": "user", "content": "How do I solve Ax=b?"}],
        citations=[{"n": 1, "chunk_id": "docs:ksp::0", "title": "KSP", "uri": "https://x/#ksp"}],
        flags=[{"type": "skipped", "reason": "extractive"}],
        comment=comment,
        client="web",
        settings={"k": 4},
    )
