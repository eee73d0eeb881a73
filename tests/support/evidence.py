"""Retrieved passages written by the tests, for the extractive answer's unit tests."""

from __future__ import annotations

from sciknow.records import Evidence


def passage(n: int, text: str, title: str = "", kind: str = "doc") -> Evidence:
    """Passage `n` as retrieval returns it: official unless it is mail, dense cosine 0.5."""
    return Evidence(
        chunk_id=f"c{n}",
        doc_id=f"d{n}",
        text=text,
        title=title or f"Passage {n}",
        uri=f"https://example.org/{n}",
        kind=kind,
        source="test",
        official=kind != "mail",
        scores={"dense": 0.5},
    )
