"""The gaps report on a real index of docs pages, a mail archive and GitLab issues
(tests/support/docpatch_data.py), with the web chat's feedback store and a questions file."""

from __future__ import annotations

import copy
import json
import shutil

import pytest
from support.docpatch_data import make_repo

from sciknow.serve.answer import ABSTAIN_TEXT
from sciknow.serve.docpatch import sources
from sciknow.serve.docpatch.draft import make_draft
from sciknow.serve.docpatch.gaps import REPORT_FILE, gaps_report, load_gap
from sciknow.serve.docpatch.gitops import DocsRepo
from sciknow.serve.factory import build_retriever
from sciknow.serve.web.feedback import Feedback, FeedbackStore, Server


@pytest.fixture
def own_config(docpatch_config, tmp_path):
    """A copy of the index in a folder of its own (reports and feedback are written there)."""
    config = copy.deepcopy(docpatch_config)
    shutil.copytree(docpatch_config.data_path, tmp_path / "data")
    config.data_dir = str(tmp_path / "data")
    return config


def report_of(config, embedder, **options):
    return gaps_report(config, build_retriever(config).store, embedder, **options)


def test_gaps_cluster_the_weakly_answered_questions(own_config, embedder):
    report = report_of(own_config, embedder)
    assert report["questions"] == 6  # five mail threads and one issue
    gaps = report["gaps"]
    assert [g["id"] for g in gaps] == [1, 2, 3]
    mg, segfault, gpu = gaps
    assert mg["size"] == 3 and mg["kinds"] == {"mail": 2, "issue": 1}
    assert all("multigrid" in q for q in mg["questions"])
    assert [a["maintainer"] for a in mg["answers"]] == [True, True, True]
    assert mg["best_official"]["title"].endswith("Preconditioners > Multigrid")
    assert 0.45 <= mg["best_official"]["score"] < 0.7
    assert mg["target"]["page"] == "manual/ksp.md"
    assert mg["members"][0]["maintainer"] and len(mg["members"]) == 3
    assert segfault["questions"] == ["Segfault in my own code"] and segfault["answers"] == []
    assert segfault["target"]["page"] == "faq/index.md"
    assert gpu["answers"][0]["author"] == "Dan User" and not gpu["answers"][0]["maintainer"]
    # "How do I view a matrix?" is answered by the FAQ: no gap.
    assert not any("matrix" in q for g in gaps for q in g["questions"])
    assert mg["score"] > segfault["score"] > gpu["score"]
    saved = json.loads((own_config.data_path / REPORT_FILE).read_text())
    assert saved["gaps"] == gaps and load_gap(own_config, 2) == segfault


def test_feedback_and_a_questions_file_join_the_report(own_config, embedder, tmp_path):
    store = FeedbackStore.in_data_dir(own_config.data_path)
    server = Server("transformers", "SmolLM2", {})
    store.add(
        Feedback(
            "How do I choose a smoother tolerance per multigrid level?",
            "Use KSPSetTolerances.",
            "down",
        ),
        server,
    )
    store.add(
        Feedback(
            "How do I checkpoint a time-stepping run and restart it later?", ABSTAIN_TEXT, "up"
        ),
        server,
    )
    store.add(Feedback("How do I view a matrix?", "Call MatView().", "up"), server)
    questions = tmp_path / "questions.jsonl"
    questions.write_text(json.dumps({"question": "Why does my program segfault?"}) + "\n")
    gaps = report_of(own_config, embedder, questions=questions)["gaps"]
    by_kind = {kind: g for g in gaps for kind in g["kinds"]}
    multigrid = next(g for g in gaps if "issue" in g["kinds"])
    assert multigrid["kinds"] == {"mail": 2, "issue": 1, "feedback": 1}
    assert by_kind["abstained"]["questions"][0].startswith("How do I checkpoint")
    assert by_kind["abstained"]["target"]["page"] == "faq/index.md"
    assert "file" in by_kind
    assert not any("view a matrix" in q for g in gaps for q in g["questions"])


def test_since_keeps_later_threads_only(own_config, embedder):
    gaps = report_of(own_config, embedder, since="2024-02-01")["gaps"]
    assert [g["kinds"] for g in gaps] == [{"issue": 1}]


def test_a_gap_drafts_a_patch_from_its_maintainer_answer(own_config, embedder, tmp_path):
    report_of(own_config, embedder)
    retriever = build_retriever(own_config)
    knowledge = sources.from_gap(retriever.store, load_gap(own_config, 1))
    assert knowledge.origin.endswith("(gap 1 of the gaps report)") and knowledge.maintainer
    assert len({r.uri for r in knowledge.references}) == 3  # the answer and two more threads
    repo = DocsRepo(make_repo(tmp_path / "docs"))
    draft = make_draft(own_config, repo, knowledge, retriever)
    assert draft.edit.path == "manual/ksp.md" and "`-mg_levels_1_ksp_rtol`" in draft.edit.new_text
    with pytest.raises(sources.DraftError, match="no thread with a reply"):
        sources.from_gap(retriever.store, load_gap(own_config, 2))
    with pytest.raises(sources.DraftError, match="has no gap 9"):
        load_gap(own_config, 9)


def test_cli_gaps_text_and_json(own_config, capsys):
    from sciknow.ui.cli import main

    data = ["--data-dir", str(own_config.data_path)]
    assert main([*data, "gaps", "--top", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Gap 1 · 3 questions (mail 2, issue 1)")
    assert "answered by Barry Smith [maintainer]" in out and "Gap 2" not in out
    assert "suggested target: manual/ksp.md" in out
    assert main([*data, "gaps", "--json", "--since", "2024-02-01"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [g["size"] for g in report["gaps"]] == [1]
    with pytest.raises(SystemExit):
        main([*data, "gaps", "--since", "yesterday"])
    assert "not a date like 2024-01-31" in capsys.readouterr().err
