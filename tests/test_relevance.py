"""The abstention gate: a cosine floor, and the question's words in the passages."""

from __future__ import annotations

import dataclasses

import pytest

from sciknow.config import AnswerConfig
from sciknow.serve.relevance import is_relevant, lexical_support
from tests.support.evidence import passage

SETTINGS = AnswerConfig(min_relevance=0.33, unsupported_relevance=0.42, min_support=0.2)
ABSTRACTS = "Abstracts of the meeting: flow of soft flexible paddles, fast multigrid on GPUs."
TOLERANCES = "KSPSetTolerances sets the relative, absolute and divergence tolerances of a solver."


def scored(text: str, dense: float, **scores: float) -> list:
    return [dataclasses.replace(passage(1, text), scores={"dense": dense, **scores})]


def test_support_is_the_share_of_the_question_terms_the_passages_use() -> None:
    evidence = [passage(1, "relative tolerances"), passage(2, "the solvers")]  # plural too
    question = "Which tolerances does the solver use?"  # terms: tolerances, solver, use
    assert lexical_support(question, evidence) == pytest.approx(2 / 3)
    assert lexical_support("How do I?", evidence) == 1.0  # nothing to check


def test_somewhat_close_passages_without_the_question_words_abstain() -> None:
    question = "What is the airspeed of an unladen swallow?"
    assert not is_relevant(question, scored(ABSTRACTS, 0.376), SETTINGS)


def test_somewhat_close_passages_with_the_question_words_answer() -> None:
    question = "How do I set the tolerances of a solver?"
    assert is_relevant(question, scored(TOLERANCES, 0.38), SETTINGS)


def test_close_passages_answer_whatever_their_words() -> None:
    question = "What is the airspeed of an unladen swallow?"
    assert is_relevant(question, scored(ABSTRACTS, 0.5), SETTINGS)


def test_below_the_floor_abstains_even_with_the_words() -> None:
    question = "How do I set the tolerances of a solver?"
    assert not is_relevant(question, scored(TOLERANCES, 0.3), SETTINGS)


def test_a_typed_library_name_is_always_relevant() -> None:
    question = "What does KSPSetTolerances do?"
    assert is_relevant(question, scored(ABSTRACTS, 0.1, symbol=2.0), SETTINGS)


def test_no_passage_abstains() -> None:
    assert not is_relevant("How do I set the tolerances?", [], SETTINGS)


def test_a_paraphrase_sharing_one_word_in_four_still_answers() -> None:
    question = "How do I make matrix assembly fast?"
    passages = scored("Preallocate for speed, then make the matrices.", 0.4)
    assert is_relevant(question, passages, SETTINGS)
