"""Feedback in a real PostgreSQL (`[serve] database_url`), started by the test: the same rows
as the SQLite file, two `sciknow serve` replicas on one index and one database, and the
export that reads every replica's votes."""

from __future__ import annotations

import json
import shutil
import socket
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from support.feedback import SERVER, vote
from support.postgres import postgres_server

from sciknow.errors import ConfigError
from sciknow.index.store import StorageError
from sciknow.serve.web.feedback import FILE_NAME as FEEDBACK_FILE
from sciknow.serve.web.feedback import FeedbackStore
from sciknow.serve.web.feedback_stores import DRIVER_MISSING, open_feedback
from sciknow.ui.cli import main

ASK = {"question": "How do I set the relative tolerance of a KSP solver?", "stream": False}


@pytest.fixture(scope="module")
def database_url():
    with postgres_server() as url:
        yield url


@pytest.fixture
def empty_database(database_url):
    """The shared database with no feedback table: each test starts from nothing."""
    import psycopg

    with psycopg.connect(database_url) as conn:
        conn.execute("DROP TABLE IF EXISTS feedback")
    return database_url


def comparable(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "created"} for row in rows]


def test_postgres_keeps_the_rows_sqlite_keeps(empty_database, tmp_path):
    """The same calls on both stores read back the same rows (ids, JSON, filters), and a
    NaN from an in-process vote is stored as null in both (strict JSON)."""
    stores = [FeedbackStore(tmp_path / "f.sqlite"), open_feedback(empty_database, tmp_path)]
    assert not (tmp_path / "feedback.sqlite").exists()  # the URL's store writes no file
    for store in stores:
        first = store.add(vote("How do I set the tolerance?", "up"), SERVER)
        nan = vote("and for SNES?", "down", comment="see SNESSetTolerances")
        nan.flags = [{"type": "uncertain", "score": float("nan"), "span": [0, 3]}]
        second = store.add(nan, SERVER)
        assert store.update(first, vote="down", comment="wrong")
        assert not store.update(second + 100, comment="x")
        assert store.delete(store.add(vote("withdrawn", "up"), SERVER))
        assert not store.delete(second + 100)
        assert store.get(second)["flags"] == [{"type": "uncertain", "score": None, "span": [0, 3]}]
        assert [r["id"] for r in store.rows(vote="down")] == [first, second]
        assert store.rows(since=datetime.now(UTC) + timedelta(seconds=5)) == []
    sqlite_rows, postgres_rows = (store.rows() for store in stores)
    assert comparable(postgres_rows) == comparable(sqlite_rows)
    assert postgres_rows[0]["history"][0]["content"] == "How do I solve Ax=b?"


def test_replicas_starting_together_create_the_table_once(empty_database, tmp_path):
    barrier = threading.Barrier(4)

    def start(_: int) -> int:
        barrier.wait()
        return open_feedback(empty_database, tmp_path).add(vote("q", "up"), SERVER)

    with ThreadPoolExecutor(4) as pool:
        assert sorted(pool.map(start, range(4))) == [1, 2, 3, 4]


def test_a_malformed_url_or_an_unreachable_database_is_one_line(tmp_path, monkeypatch, capsys):
    with pytest.raises(ConfigError, match=r"serve\.database_url is not a valid URL"):
        open_feedback("postgresql://db/sciknow?colour=blue", tmp_path)
    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        down = f"postgresql://sciknow@127.0.0.1:{closed.getsockname()[1]}/sciknow"
        with pytest.raises(StorageError, match=r"feedback database \(serve.database_url\)"):
            open_feedback(down, tmp_path)
        monkeypatch.setenv("SCIKNOW_SERVE__DATABASE_URL", down)
        assert main(["--data-dir", str(tmp_path), "feedback", "export"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("sciknow: error: the feedback database") and "\n" not in error


def test_a_missing_driver_says_what_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # `import psycopg` fails
    monkeypatch.delitem(sys.modules, "sciknow.serve.web.feedback_postgres", raising=False)
    monkeypatch.setenv("SCIKNOW_SERVE__DATABASE_URL", "postgresql://sciknow@127.0.0.1/sciknow")
    assert main(["--data-dir", str(tmp_path), "feedback", "export"]) == 2
    assert capsys.readouterr().err.strip() == f"sciknow: error: {DRIVER_MISSING}"


def test_two_replicas_share_one_database(
    empty_database, docs_config, serve_processes, tmp_path, monkeypatch
):
    """Two `sciknow serve` processes on one index and one database: the same answer from
    each, a vote through each (limits are per replica: the second vote a client sends to
    one is refused, the other still takes it), and one export reads both votes."""
    data = tmp_path / "data"
    shutil.copytree(docs_config.data_path, data)
    before = {p.relative_to(data) for p in data.rglob("*")}
    env = {
        "SCIKNOW_SERVE__DATABASE_URL": empty_database,
        "SCIKNOW_ANSWER__MODE": "extractive",
        "SCIKNOW_SERVE__FEEDBACK_PER_MINUTE": "1",
    }
    with ThreadPoolExecutor(2) as pool:
        replicas = list(pool.map(lambda _: serve_processes.start(data, env), range(2)))
    try:
        answers = [httpx.post(f"{url}/ask", json=ASK, timeout=120).json() for url in replicas]
        assert answers[0]["text"] and answers[0]["citations"]
        assert [(a["text"], a["citations"]) for a in answers[1:]] == [
            (answers[0]["text"], answers[0]["citations"])
        ]
        body = {"question": ASK["question"], "answer": answers[0]["text"], "vote": "up"}
        first = httpx.post(f"{replicas[0]}/feedback", json=body, timeout=30)
        again = httpx.post(f"{replicas[0]}/feedback", json=body, timeout=30)
        down = {**body, "vote": "down", "comment": "KSPSetTolerances sets rtol"}
        second = httpx.post(f"{replicas[1]}/feedback", json=down, timeout=30)
    finally:
        for url in replicas:
            serve_processes.stop(url)
    assert (first.status_code, again.status_code, second.status_code) == (201, 429, 201)
    assert first.json()["id"] != second.json()["id"]
    after = {p.relative_to(data) for p in data.rglob("*")}
    # The replicas may leave the index's own files (the name cache, SQLite's -shm/-wal
    # beside index.sqlite); no vote went to the data directory.
    assert not [p for p in after - before if p.name.startswith(FEEDBACK_FILE)]
    out = tmp_path / "votes.jsonl"
    monkeypatch.setenv("SCIKNOW_SERVE__DATABASE_URL", empty_database)
    assert main(["--data-dir", str(data), "feedback", "export", "--out", str(out)]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["vote"], r["case"]) for r in records] == [
        ("up", "confirmed"),
        ("down", "regression"),
    ]
    assert records[1]["symbols"] == ["KSPSetTolerances"]
    assert {r["pipeline"]["mode"] for r in records} == {"extractive"}
