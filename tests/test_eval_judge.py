"""The ragas wiring against a scripted OpenAI-compatible judge on a real 127.0.0.1 socket:
values parsed and bounded; garbage and timeouts leave only those metrics missing."""

from __future__ import annotations

import time

import pytest
from support.openai_judge import JudgeState, judge_app

from sciknow.eval.judge import JUDGED, Judge, JudgeSpec, Sample, ragas_embeddings
from sciknow.index.embed import make_embedder

pytest.importorskip("ragas")

SAMPLE = Sample(
    question="How do I set the relative tolerance of a KSP solver?",
    answer="Call KSPSetTolerances with rtol, or pass -ksp_rtol [1].",
    contexts=[
        "KSPSetTolerances sets the relative, absolute and divergence tolerances.",
        "Installation needs a C compiler and MPI.",
    ],
    reference="Use KSPSetTolerances(ksp, rtol, abstol, dtol, maxits) or -ksp_rtol.",
)


def _judge(serve_app, state: JudgeState, timeout: float = 30.0) -> Judge:
    url = serve_app(judge_app(state))
    embedder = make_embedder(f"openai:{url}#hashed-words")
    return Judge(JudgeSpec.parse(f"{url}/v1#judge-model"), embedder, timeout=timeout)


def test_every_metric_is_parsed_and_bounded(serve_app):
    state = JudgeState()
    judge = _judge(serve_app, state)
    try:
        values = judge.score(SAMPLE)
        again = judge.score(SAMPLE, skip={"faithfulness"})  # same loop, same client
    finally:
        judge.close()
    assert set(values) == set(JUDGED)
    assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in values.values()), values
    # The scripted judge supports every statement and rates the answer 4 of 4:
    assert values["faithfulness"] == 1.0
    assert values["context_recall"] == 1.0
    assert values["context_precision"] == pytest.approx(1.0)
    assert values["answer_accuracy"] == 1.0
    assert 0.0 < values["answer_relevancy"] <= 1.0  # cosine of hashed words, question vs question
    assert 0.0 < values["answer_correctness"] < 1.0  # one TP, one FP, one FN, plus similarity
    assert set(again) == set(JUDGED) - {"faithfulness"}
    titles = {title for title, _ in state.requests}
    assert {"StatementGeneratorOutput", "NLIStatementOutput", "AnswerAccuracyOutput"} <= titles
    assert any(SAMPLE.question in user for _, user in state.requests)


def test_garbage_and_timeouts_leave_those_metrics_missing(serve_app):
    state = JudgeState(garbage={"NLIStatementOutput"}, slow={"ContextRecallOutput"}, delay=5.0)
    judge = _judge(serve_app, state, timeout=1.0)
    started = time.monotonic()
    try:
        values = judge.score(SAMPLE)
    finally:
        judge.close()
    assert time.monotonic() - started < 4.5  # the slow metric was abandoned at the timeout
    assert values["faithfulness"] is None  # its verdicts came back as prose
    assert values["context_recall"] is None  # timed out
    for metric in ("answer_relevancy", "context_precision", "answer_correctness"):
        assert values[metric] is not None and 0.0 <= values[metric] <= 1.0


def test_an_unreachable_judge_leaves_everything_missing(embedder):
    judge = Judge(JudgeSpec.parse("http://127.0.0.1:9/v1#nobody"), embedder, timeout=2.0)
    try:
        values = judge.score(SAMPLE)
    finally:
        judge.close()
    assert values == dict.fromkeys(JUDGED)


def test_the_local_embedder_serves_as_ragas_embeddings(embedder):
    embeddings = ragas_embeddings(embedder)
    one = embeddings.embed_text("KSP tolerances")
    two = embeddings.embed_texts(["KSP tolerances", "installing MPI"])
    assert len(one) == embedder.dimension and one == pytest.approx(two[0], abs=1e-5)
