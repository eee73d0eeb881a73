"""`sciknow gaps` reads the votes where the server keeps them: with `[serve] database_url`,
a real PostgreSQL started by the test (tests/support/postgres.py), not the SQLite file."""

from __future__ import annotations

import copy
import shutil

import pytest
from support.feedback import SERVER, vote
from support.postgres import postgres_server

from sciknow.serve.docpatch.gaps import gaps_report
from sciknow.serve.factory import build_retriever
from sciknow.serve.web.feedback import FILE_NAME
from sciknow.serve.web.feedback_stores import open_feedback

QUESTION = "How do I choose a smoother tolerance per multigrid level?"


@pytest.fixture(scope="module")
def database_url():
    with postgres_server() as url:
        yield url


def test_down_votes_in_postgresql_join_the_gaps_report(
    docpatch_config, database_url, embedder, tmp_path
):
    config = copy.deepcopy(docpatch_config)
    shutil.copytree(docpatch_config.data_path, tmp_path / "data")
    config.data_dir = str(tmp_path / "data")
    config.serve.database_url = database_url
    config.check.gaps_blocks = 0  # no docs code check: this test is about votes
    votes = open_feedback(database_url, config.data_path)
    votes.add(vote(QUESTION, "down"), SERVER)
    votes.add(vote("How do I view a matrix?", "up"), SERVER)
    gaps = gaps_report(config, build_retriever(config).store, embedder)["gaps"]
    voted = [g for g in gaps if "feedback" in g["kinds"]]
    assert len(voted) == 1 and voted[0]["kinds"]["feedback"] == 1  # the up vote is not a gap
    assert not (config.data_path / FILE_NAME).exists()  # nothing read from, or made in, SQLite
