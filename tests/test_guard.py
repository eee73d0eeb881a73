"""Generation guards and answer modes: loops, missing citations and unknown names send a
generated answer to the extractive fallback; `auto` picks the mode by backend.

The backend here is scripted (it replays given text as tokens) because the point is the
pipeline's reaction to bad generations, which a real small model produces only by chance;
retrieval, the embedder and the index are real.
"""

from __future__ import annotations

import pytest
from support.backends import scripted_assistant

from sciknow.serve.answer import Assistant, resolve_mode
from sciknow.serve.guard import LoopDetector, cut_at_end_marker, problems, repeated_tail


def test_repeated_tail_and_line_loops():
    assert repeated_tail(("The answer to your question is: " * 4).split())
    assert repeated_tail(("0 " * 12).split())
    assert not repeated_tail("Use -ksp_rtol 1e-8 and -ksp_atol 1e-50 to set them [1].".split())
    assert not repeated_tail("very very very good".split())  # too short to be a loop
    detector = LoopDetector()
    for line in ["Set the tolerance.\n", "Set the tolerance.\n", "Set the tolerance.\n"]:
        detector.feed(line)
    assert detector.looping


def test_end_markers_cut_the_answer():
    assert cut_at_end_marker("Use KSPSolve [1].<|im_end|>junk") == ("Use KSPSolve [1].", True)
    assert cut_at_end_marker("Plain [1].") == ("Plain [1].", False)


def test_problems_name_each_reason():
    assert problems(False, 2, []) == []
    assert problems(True, 0, ["KSPSetTolerence"]) == [
        "it repeated itself",
        "it cited none of the passages",
        "it used names that exist nowhere in the index: KSPSetTolerence",
    ]


@pytest.mark.parametrize(
    ("mode", "size", "backend", "expected"),
    [
        ("auto", "auto", "transformers", "extractive"),
        ("auto", "auto", "embedded", "extractive"),
        ("auto", "auto", "vllm", "generative"),
        ("auto", "small", "vllm", "extractive"),
        ("auto", "capable", "transformers", "generative"),
        ("generative", "auto", "transformers", "generative"),
        ("extractive", "auto", "vllm", "extractive"),
    ],
)
def test_auto_picks_the_mode_by_backend(mode, size, backend, expected):
    assert resolve_mode(mode, size, backend) == expected


def test_default_config_answers_extractively_without_loading_a_model(docs_config):
    from sciknow.serve.factory import build_assistant

    assistant = build_assistant(docs_config)
    assert assistant.mode == "extractive"
    answer = assistant.answer("How do I set the relative tolerance for KSP?")
    assert not assistant.backend.loaded  # the lazy backend was never built
    assert not answer.abstained and answer.citations
    assert "-ksp_rtol" in answer.text
    assert all(token.logprob is None for token in answer.tokens)


def run(assistant: Assistant, question: str = "How do I set the relative tolerance for KSP?"):
    return list(assistant.stream(question))


def test_a_loop_stops_generation_and_falls_back(docs_config):
    assistant = scripted_assistant(docs_config, "The answer to your question is: " * 40)
    events = run(assistant)
    assert assistant.backend.closed_early.is_set()  # the stream was closed early
    assert assistant.backend.calls[0]["repetition_penalty"] > 1.0
    kinds = [e.kind for e in events]
    reset = kinds.index("reset")
    assert events[reset].reason.startswith("it repeated itself")
    streamed_before = sum(1 for k in kinds[:reset] if k == "token")
    assert streamed_before < 40 * 6  # stopped well before the scripted end
    answer = events[-1].answer
    assert answer.text.startswith("*The generated answer was replaced by quoted passages: it ")
    assert answer.citations and "-ksp_rtol" in answer.text


def test_a_citation_less_answer_falls_back(docs_config):
    events = run(scripted_assistant(docs_config, "Use the relative tolerance option."))
    reset = next(e for e in events if e.kind == "reset")
    assert reset.reason == "it cited none of the passages"
    assert events[-1].answer.citations


def test_an_unknown_name_falls_back(docs_config):
    assistant = scripted_assistant(docs_config, "Call KSPSetTolerence() to set it [1].")
    assistant.name_check = lambda text, citations=(): [
        {"type": "unknown_name", "text": "KSPSetTolerence", "reason": "unknown-name"}
    ] if "KSPSetTolerence" in text else []  # fmt: skip
    events = run(assistant)
    reset = next(e for e in events if e.kind == "reset")
    assert "KSPSetTolerence" in reset.reason
    assert "KSPSetTolerence" not in events[-1].answer.text.split("\n", 1)[1]


def test_without_fallback_the_problems_become_flags(docs_config):
    events = run(scripted_assistant(docs_config, "Use the option.", fallback=False))
    assert "reset" not in [e.kind for e in events]
    answer = events[-1].answer
    assert answer.text == "Use the option."
    assert {"type": "guard", "reason": "it cited none of the passages"} in answer.flags


def test_a_good_generated_answer_passes(docs_config):
    events = run(scripted_assistant(docs_config, "Use -ksp_rtol or KSPSetTolerances() [1]."))
    assert "reset" not in [e.kind for e in events]
    answer = events[-1].answer
    assert answer.text == "Use -ksp_rtol or KSPSetTolerances() [1]." and answer.citations


def test_summary_is_one_generated_sentence_marked_above_the_quotes(docs_config):
    assistant = scripted_assistant(
        docs_config, "Set -ksp_rtol for the relative tolerance [1]. And then more", summary=True
    )
    assistant.mode = "extractive"
    events = run(assistant)
    answer = events[-1].answer
    label = "*Generated summary (a small model wrote this line; check it against the quotes):* "
    assert answer.text.startswith(label + "Set -ksp_rtol for the relative tolerance [1].\n\n")
    assert "And then more" not in answer.text
    generated = next(f for f in answer.flags if f["type"] == "generated")
    assert answer.text[generated["start"] : generated["end"]].startswith("Set -ksp_rtol")
    assert answer.tokens[0].logprob == -0.1 and answer.tokens[-1].logprob is None
    streamed = "".join(e.token.text for e in events if e.kind == "token")
    assert streamed.split() == answer.text.split()  # the same words, spacing aside
