"""Feedback: the SQLite store, `POST /feedback` over a real socket, and the export verb."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from support.feedback import SERVER, vote

from sciknow.serve.web.feedback import FeedbackStore


def test_store_keeps_every_field_and_no_identity(tmp_path):
    store = FeedbackStore.in_data_dir(tmp_path)
    row_id = store.add(vote("How do I set the tolerance?", "up"), SERVER)
    row = store.get(row_id)
    assert row is not None
    assert row["question"] == "How do I set the tolerance?" and row["vote"] == "up"
    assert row["history"][0]["content"] == "How do I solve Ax=b?"
    assert row["citations"][0]["chunk_id"] == "docs:ksp::0"
    assert row["flags"] == [{"type": "skipped", "reason": "extractive"}]
    assert (row["backend"], row["model"], row["pipeline"]) == ("transformers", "SmolLM2", {
        "mode": "extractive"
    })  # fmt: skip
    assert row["settings"] == {"k": 4} and row["client"] == "web"
    assert datetime.fromisoformat(row["created"]) <= datetime.now(UTC)
    columns = set(row)
    assert not columns & {"ip", "user", "user_id", "address", "host"}


def test_update_vote_and_comment(tmp_path):
    store = FeedbackStore(tmp_path / "f.sqlite")
    row_id = store.add(vote("q", "up"), SERVER)
    assert store.update(row_id, vote="down", comment="wrong function")
    row = store.get(row_id)
    assert row is not None and (row["vote"], row["comment"]) == ("down", "wrong function")
    assert not store.update(row_id + 100, comment="x")
    with pytest.raises(ValueError, match="vote"):
        store.update(row_id, vote="meh")
    with pytest.raises(ValueError, match="vote"):
        vote("q", "sideways")


def test_rows_since_and_by_vote(tmp_path):
    store = FeedbackStore(tmp_path / "f.sqlite")
    first = store.add(vote("first", "up"), SERVER)
    second = store.add(vote("second", "down"), SERVER)
    assert [r["id"] for r in store.rows()] == [first, second]
    assert [r["id"] for r in store.rows(vote="down")] == [second]
    assert store.rows(since=datetime.now(UTC) + timedelta(seconds=5)) == []
    assert len(store.rows(since=datetime.now(UTC) - timedelta(days=1))) == 2


@pytest.fixture(scope="module")
def api(extractive_config, serve_app, tmp_path_factory):
    from sciknow.serve.factory import build_assistant
    from sciknow.serve.web.api import create_app

    store = FeedbackStore(tmp_path_factory.mktemp("votes") / "feedback.sqlite")
    return serve_app(create_app(build_assistant(extractive_config), feedback=store)), store


def test_post_feedback_stores_the_row(api):
    url, store = api
    body = {
        "question": "How do I set the relative tolerance?",
        "history": [{"role": "user", "content": "Which solver?"}],
        "answer": "Call KSPSetTolerances() [1].",
        "citations": [{"n": 1, "chunk_id": "c", "title": "t", "uri": "https://x"}],
        "flags": [],
        "vote": "down",
        "comment": "it should mention -ksp_rtol",
        "client": "discord:thread",
        "settings": {"k": 6},
    }
    reply = httpx.post(f"{url}/feedback", json=body)
    assert reply.status_code == 201, reply.text
    row = store.get(reply.json()["id"])
    assert row is not None
    assert row["client"] == "discord:thread" and row["comment"] == body["comment"]
    assert row["backend"] == "transformers"  # the server fills backend and settings
    assert row["pipeline"]["mode"] == "extractive" and row["pipeline"]["answer"]["k"] == 6


@pytest.mark.parametrize(
    ("change", "field"),
    [({"vote": "meh"}, "vote"), ({"question": ""}, "question"), ({"client": ""}, "client")],
)
def test_post_feedback_rejects_bad_fields(api, change, field):
    url, _ = api
    body = {"question": "q", "answer": "a", "vote": "up", **change}
    reply = httpx.post(f"{url}/feedback", json=body)
    assert reply.status_code == 422 and field in reply.text


def test_export_jsonl_is_a_question_set_eval_retrieval_runs(tmp_path, docs_config):
    from sciknow.config import Profile
    from sciknow.eval.retrieval import load_questions
    from sciknow.ui.cli import main

    store = FeedbackStore.in_data_dir(tmp_path)
    store.add(vote("How do I set the tolerance?", "up"), SERVER)
    store.add(vote("and for SNES?", "down", comment="SNESSetTolerances() sets them"), SERVER)
    out = tmp_path / "votes.jsonl"
    assert main(["--data-dir", str(tmp_path), "feedback", "export", "--out", str(out)]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["case"] for r in records] == ["confirmed", "regression"]
    assert records[1]["question"] == "How do I solve Ax=b? and for SNES?"  # standalone
    assert records[1]["asked"] == "and for SNES?"
    assert records[1]["symbols"] == ["SNESSetTolerances"]  # from the voter's correction
    assert records[1]["answer"] == "Use KSPSetTolerances() [1]." == records[0]["answer"]
    questions = load_questions(out, Profile().symbol_prefixes)
    assert [q.symbols for q in questions] == [["KSPSetTolerances"], ["SNESSetTolerances"]]
    assert [q.answer for q in questions] == ["Use KSPSetTolerances() [1].", ""]
    corpus = docs_config.data_path.parent / "docs"
    report = tmp_path / "report"
    argv = ["--data-dir", str(tmp_path / "eval"), "eval", "retrieval", "--dataset", str(out)]
    argv += ["--corpus", str(corpus), "--pipeline", "default", "-k", "1,4", "--out", str(report)]
    assert main(argv) == 0
    result = json.loads((report / "retrieval-all.json").read_text())
    rows = result["pipelines"][0]["per_question"]
    assert [r["id"] for r in rows] == ["feedback-1", "feedback-2"]
    assert rows[0]["symbol_recall"]["4"] == 1.0  # KSPSetTolerances is in the docs


def test_export_csv_since_and_vote(tmp_path, capsys):
    from sciknow.ui.cli import main

    store = FeedbackStore.in_data_dir(tmp_path)
    store.add(vote("first", "up"), SERVER)
    store.add(vote("second", "down", comment="wrong, see [2]"), SERVER)
    assert main(["--data-dir", str(tmp_path), "feedback", "export", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["question"] for r in rows] == ["first", "second"]
    assert json.loads(rows[0]["citations"])[0]["chunk_id"] == "docs:ksp::0"
    assert rows[1]["comment"] == "wrong, see [2]" and rows[1]["backend"] == "transformers"
    argv = ["--data-dir", str(tmp_path), "feedback", "export", "--vote", "down"]
    assert main(argv) == 0
    assert [json.loads(x)["asked"] for x in capsys.readouterr().out.splitlines()] == ["second"]
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    assert main([*argv[:4], "--since", tomorrow]) == 0
    assert capsys.readouterr().out == ""
    assert main(["--data-dir", str(tmp_path / "none"), "feedback", "export"]) == 2
    assert "no feedback yet" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*argv[:4], "--since", "last week"])
