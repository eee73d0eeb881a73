"""A real extractive answer, from a small index written here, as each front end shows it:
code stays a code block with its marker in the paragraph above it, no marker stands
alone on a line, tables become clean items, MyST residue is gone, markers are numbered
in reading order and every marker's source is listed (CLI, web chat, Discord, JSON)."""

from __future__ import annotations

import json
import re

import pytest

PAGES = {
    "manual/monitor.md": """# Monitoring convergence

## Residual norms

Monitor the residual norm of each iteration with `KSPMonitorSet()` or the option
-ksp_monitor. The true residual norm is printed by -ksp_monitor_true_residual, which
costs an extra matrix-vector product:math:`^*` per iteration.

```c
PetscCall(KSPMonitorSet(ksp, KSPMonitorResidual, NULL, NULL));
PetscCall(KSPSolve(ksp, b, x));
```

As discussed in the preceding section, monitors can be combined.
""",
    "manual/options.md": """# Convergence options

| option | what it prints |
|---|---|
| -ksp_monitor | the preconditioned residual norm |
| -ksp_monitor_true_residual | the true residual norm |

Use -ksp_converged_reason to see why the solver stopped.
""",
}
QUESTION = "How do I monitor the residual norm of each KSP iteration?"


@pytest.fixture(scope="module")
def answered(tmp_path_factory, embedder):
    """The config of an index of PAGES and its extractive answer to QUESTION."""
    from sciknow.config import load_config
    from sciknow.index.factory import make_chunker, open_store
    from sciknow.index.pipeline import ingest
    from sciknow.ingest.registry import make_sources, source_for_location
    from sciknow.serve.factory import build_assistant

    root = tmp_path_factory.mktemp("render")
    for rel, text in PAGES.items():
        (root / "docs" / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / "docs" / rel).write_text(text)
    config = load_config(environ={"SCIKNOW_DATA_DIR": str(root / "data")})
    config.answer.mode = "extractive"
    sources = make_sources(source_for_location(str(root / "docs"), config), config)
    ingest(open_store(config), sources, embedder, make_chunker(config))
    answer = build_assistant(config).answer(QUESTION)
    return config, answer.to_dict()


def markers(text: str) -> list[int]:
    return [
        int(n) for n in re.findall(r"(?<!\\)\[(\d+)\]", re.sub(r"```.*?```", "", text, flags=re.S))
    ]


def test_the_answer_text_is_faithful(answered):
    _, answer = answered
    text = answer["text"]
    assert not answer["abstained"]
    found = markers(text)
    assert found and found[0] == 1
    first_use = list(dict.fromkeys(found))
    assert first_use == sorted(first_use)  # numbered in reading order
    assert {c["n"] for c in answer["citations"]} == set(found)  # every marker listed
    assert ":math:" not in text and "^*" not in text
    assert "As discussed" not in text
    assert not re.search(r"^\s*\[\d+\]\s*$", text, re.M)  # no marker alone on a line
    for block in re.findall(r"```.*?```", text, re.S):
        before = text[: text.index(block)].rstrip("\n").rsplit("\n", 1)[-1]
        assert re.search(r"\[\d+\]:?$", before)  # its marker in the paragraph above
    assert "| option |" not in text and "---|" not in text


def test_discord_lists_every_cited_source(answered):
    from sciknow.ui.discordbot.text import render_answer

    _, answer = answered
    message = render_answer(answer, flags=False)
    body, _, sources = message.partition("**Sources**")
    for n in set(markers(body)):
        assert re.search(rf"^\[{n}\] ", sources, re.M)
    assert body.count("```") % 2 == 0


def test_web_chat_shows_code_as_code_and_every_source(answered):
    from sciknow.ui.webchat.render import answer_html

    _, answer = answered
    html = answer_html(answer, turn=1, show_flags=False, mode="extractive")
    assert "<pre" in html and "KSPMonitorSet" in html
    assert html.count('class="sk-source') >= len({c["n"] for c in answer["citations"]})


def test_the_cli_prints_the_answer_then_its_sources(answered, capsys):
    from sciknow.ui.cli import main

    config, answer = answered
    assert main(["--data-dir", str(config.data_path), "ask", QUESTION, "--mode", "extractive"]) == 0
    printed = capsys.readouterr().out
    for n in set(markers(answer["text"])):
        assert re.search(rf"^  \[{n}\] ", printed, re.M)
    assert main(["--data-dir", str(config.data_path), "ask", QUESTION, "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["text"] == answer["text"]
