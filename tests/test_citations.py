"""Citation parsing and validation, including hostile cases."""

from __future__ import annotations

from sciknow.records import Evidence
from sciknow.serve.citations import check_citations, citation_records, parse_numbers


def evidence(n: int) -> list[Evidence]:
    return [
        Evidence(
            chunk_id=f"c{i}",
            doc_id=f"d{i}",
            text="t",
            title=f"T{i}",
            uri=f"https://x/{i}",
            kind="doc",
            source="s",
            official=True,
        )
        for i in range(1, n + 1)
    ]


def test_parse_numbers_lists_and_ranges():
    assert parse_numbers("1") == [1]
    assert parse_numbers("1, 3") == [1, 3]
    assert parse_numbers("2-4") == [2, 3, 4]
    assert parse_numbers("2 – 3, 5") == [2, 3, 5]
    assert len(parse_numbers("1-999")) == 20  # ranges are capped


def test_valid_citations_are_kept_with_spans():
    text = "Use KSPSetTolerances [1] or the option -ksp_rtol [2][1]."
    result = check_citations(text, given=2)
    assert result.text == text
    assert result.cited == [1, 2]
    assert [result.text[a:b] for a, b in result.spans[1]] == ["[1]", "[1]"]
    assert not result.removed


def test_citation_to_a_passage_not_given_is_removed_and_logged(caplog):
    result = check_citations("It converges [99]. See also [1, 7].", given=3)
    assert result.text == "It converges. See also [1]."
    assert result.removed == [99, 7]
    assert result.cited == [1]
    assert "removed citation" in caplog.text


def test_brackets_in_code_are_not_citations():
    text = "Index with `x[1]` or\n```c\nv[2] = 0; // [7]\n```\nas in [2]."
    result = check_citations(text, given=2)
    assert result.text == text
    assert result.cited == [2]


def test_unterminated_code_fence_swallows_the_rest():
    result = check_citations("Answer [1].\n```c\na[3] = 1;", given=1)
    assert result.cited == [1] and not result.removed


def test_zero_and_out_of_range_and_ranges():
    result = check_citations("A [0]. B [1-3]. C [2].", given=2)
    assert result.cited == [1, 2]
    assert result.removed == [0, 3]
    assert result.text == "A. B [1][2]. C [2]."


def test_citation_records_carry_links():
    result = check_citations("x [2] y [1]", given=2)
    records = citation_records(result, evidence(2))
    assert [r["n"] for r in records] == [2, 1]
    assert records[0]["uri"] == "https://x/2" and records[0]["chunk_id"] == "c2"
    assert records[0]["spans"] == [(2, 5)]
