"""Answer flags and the `sciknow attribute` verb, on a tiny random Llama with a character
tokenizer and a ChatML template (so prompts, passages and answers are real text)."""

from __future__ import annotations

import argparse
import json
import math

import pytest
import torch

from sciknow.records import Evidence
from sciknow.serve.attribution import special_positions
from sciknow.serve.backends.hf import TransformersBackend
from sciknow.serve.flags import FlagSettings, answer_flags, offset_map, without_passage
from sciknow.serve.prompt import build_messages, quote_passage
from sciknow.ui.attribute import add_attribute_parser, attribute_text, render, to_json

CHARS = list(
    " \nabcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,:;?!'\"<>=/[]()-_|"
)
SPECIAL = ["<|im_start|>", "<|im_end|>", "<unk>"]
TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def char_tokenizer():
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(SPECIAL + CHARS)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.add_special_tokens(SPECIAL)
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        eos_token="<|im_end|>",
        extra_special_tokens=["<|im_start|>"],
        chat_template=TEMPLATE,
    )


def char_backend(seed: int = 0) -> TransformersBackend:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(SPECIAL) + len(CHARS),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        eos_token_id=1,
    )
    model = LlamaForCausalLM(config).double()
    with torch.no_grad():
        model.lm_head.weight.mul_(6.0)
    return TransformersBackend(model, char_tokenizer())


def evidence(n: int, text: str) -> Evidence:
    return Evidence(f"c{n}", f"d{n}", text, f"Page {n}", f"https://x/{n}", "doc", "docs", True)


PASSAGES = ["Use KSPSetTolerances.", "Set -ksp_rtol 1e-8.", "Matrices are AIJ."]


@pytest.fixture(scope="module")
def backend() -> TransformersBackend:
    return char_backend()


@pytest.fixture(scope="module")
def messages() -> list[dict[str, str]]:
    quoted = [quote_passage(n, evidence(n, t)) for n, t in enumerate(PASSAGES, start=1)]
    return build_messages("How to set rtol?", quoted, "PETSc")


@pytest.fixture(scope="module")
def generated(backend, messages) -> list:
    return list(backend.generate(messages, max_tokens=24))


def test_without_passage_removes_that_fence_only(messages) -> None:
    reduced = without_passage(messages, 2)[-1]["content"]
    assert "-ksp_rtol" not in reduced and '<passage n="2"' not in reduced
    assert '<passage n="1"' in reduced and '<passage n="3"' in reduced
    assert messages[-1]["content"].count("<passage") == 3  # the input is left alone


def test_offset_map_follows_stripping_and_removed_citations() -> None:
    raw, text = "  Use KSP [9] now.", "Use KSP now."
    to_text = offset_map(raw, text)
    assert text[to_text(2) : to_text(9)] == "Use KSP"
    assert text[to_text(14) : to_text(18)] == "now."


def test_answer_flags_spans_and_support(backend, messages, generated) -> None:
    text = "".join(t.text for t in generated).strip()
    settings = FlagSettings(screen=1.0, flag_below=0.9)
    flags = answer_flags(backend, messages, generated, text, [1, 3], settings)
    spans = [f for f in flags if f["type"] == "uncertain_span"]
    support = [f for f in flags if f["type"] == "support"]
    assert spans, "a random model is unsure of something"
    for span in spans:
        assert text[span["start"] : span["end"]] == span["text"].strip()
        assert 0.1 < span["score"] <= 1.0 and "given both sides" in span["reason"]
    assert [s["start"] for s in spans] == sorted(s["start"] for s in spans)
    whole = {f["passage"]: f["log_ratio"] for f in support if f["sentence"] is None}
    assert set(whole) == {1, 3}
    for n, ratio in whole.items():
        per_sentence = [
            f["log_ratio"] for f in support if f["passage"] == n and f["sentence"] is not None
        ]
        assert sum(per_sentence) == pytest.approx(ratio, abs=1e-3)
        assert ratio == pytest.approx(_log_ratio(backend, messages, generated, n), abs=1e-3)


def _log_ratio(backend, messages, generated, n: int) -> float:
    response = [t.token_id for t in generated]

    def log_p(msgs) -> float:
        prompt = backend.chat_tokens(msgs)
        return sum(backend.score([prompt + response])[0].logprobs[len(prompt) :])

    return log_p(messages) - log_p(without_passage(messages, n))


def test_flag_thresholds(backend, messages, generated) -> None:
    text = "".join(t.text for t in generated).strip()
    none = answer_flags(backend, messages, generated, text, [], FlagSettings(flag_below=0.0))
    assert none == []
    every = FlagSettings(screen=1.01, flag_below=1.01, max_checked=100)
    spans = answer_flags(backend, messages, generated, text, [], every)
    assert len(spans) == len([w for w in text.split("\n") if w.strip()])  # phrases = lines


def test_flags_are_deterministic(messages, generated) -> None:
    text = "".join(t.text for t in generated).strip()
    runs = [answer_flags(char_backend(), messages, generated, text, [1, 2, 3]) for _ in range(2)]
    assert runs[0] == runs[1]


def test_no_ids_no_flags(backend, messages, generated) -> None:
    generated = [type(t)(t.text, None, t.logprob) for t in generated]
    assert answer_flags(backend, messages, generated, "x", [1]) == []


# -- `sciknow attribute` -------------------------------------------------------------------------


def test_special_positions_are_the_template_markers(backend) -> None:
    ids = backend.chat_tokens([{"role": "user", "content": "hi"}])
    assert {ids[i] for i in special_positions(backend, ids)} == {0, 1}  # <|im_start|>, <|im_end|>


def test_attribute_scores_the_user_text_only(backend) -> None:
    result = attribute_text(backend, "What is KSP?", " A solver.")
    content = backend.tokenize("What is KSP?")
    scored = [result.prompt[s.position] for s in result.positions]
    assert scored == content
    assert all(s.width < 0.05 for s in result.positions)  # the default tolerance
    data = to_json(backend, result)
    assert len(data["tokens"]) == len(result.prompt)
    assert set(data) == {"tokens", "log_p_response", "evaluations", "seconds"}
    keys = {"token", "loga", "loga_low", "loga_high", "h_i", "h"}
    assert all(keys <= set(entry) for entry in data["tokens"])
    unscored = [e for e in data["tokens"] if e["loga"] is None]
    assert len(unscored) == len(result.prompt) - len(content)
    for entry in data["tokens"]:
        if entry["loga"] is not None:
            assert entry["loga_low"] <= entry["loga"] <= entry["loga_high"]
    assert math.isfinite(data["log_p_response"]) and data["evaluations"] > 0


def test_attribute_raw_and_rendering(backend) -> None:
    result = attribute_text(backend, "ksp rtol", "yes", raw=True, max_candidates=4, width=math.inf)
    assert [s.position for s in result.positions] == list(range(1, 8))
    assert all(s.candidates <= 5 for s in result.positions)
    text = render(backend, result, color=False)
    assert text.splitlines()[0].split()[:3] == ["pos", "token", "LogA"]
    assert "token evaluations" in text and "\x1b[" not in text
    assert "\x1b[" in render(backend, result, color=True)


def test_attribute_verb_prints_json_and_asks_for_float32(backend, monkeypatch, capsys) -> None:
    from sciknow.config import load_config
    from sciknow.serve import factory

    asked = []
    monkeypatch.setattr(
        factory, "build_backend", lambda config, name: asked.append(config.models.dtype) or backend
    )
    parser = argparse.ArgumentParser()
    add_attribute_parser(parser.add_subparsers(dest="verb"))
    args = parser.parse_args(["attribute", "--prompt", "KSP?", "--response", " yes", "--json"])
    assert args.run(args, load_config(environ={})) == 0
    printed = json.loads(capsys.readouterr().out)
    assert asked == ["float32"]  # "auto" would pick bfloat16, too coarse for attribution
    assert {"tokens", "log_p_response", "evaluations", "seconds"} == set(printed)
    args.run(args, load_config(environ={"SCIKNOW_MODELS__DTYPE": "bfloat16"}))
    assert asked == ["float32", "bfloat16"]  # an explicit choice is kept


def test_attribute_verb_registration() -> None:
    parser = argparse.ArgumentParser()
    add_attribute_parser(parser.add_subparsers(dest="verb"))
    args = parser.parse_args(["attribute", "--prompt", "p", "--response", "r", "--json"])
    assert args.json and args.prompt == "p" and callable(args.run)
    assert args.epsilon == 1e-3 and args.width == 0.05
