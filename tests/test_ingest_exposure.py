"""What ingest exposes of the server: sources given by path have ids and links without
the server's folders, a folder only the command line names is unofficial with no invented
links, and an input that holds nothing is logged as skipped."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from support.pages import write_docs

from sciknow.config import load_config
from sciknow.ingest.registry import make_sources, source_for_location

MAIL = """From alice@example.org Mon Jan  6 10:00:00 2025
From: Alice <alice@example.org>
Subject: KSP does not converge
Date: Mon, 6 Jan 2025 10:00:00 +0000
Message-ID: <q1@example.org>

My KSPSolve stalls after 50 iterations.
"""


MANPAGE_C = """\
/*@
  WidgetTurn - Turns the widget by an angle

  Input Parameter:
. angle - the angle in degrees

  Level: beginner
@*/
int WidgetTurn(double angle)
{
  return angle > 0;
}
"""


def documents(location: str, tmp_path, config_file: Path | None = None) -> list:
    config = load_config(config_file, environ={"SCIKNOW_DATA_DIR": str(tmp_path / "data")})
    sources = make_sources(source_for_location(location, config), config)
    return [doc for source in sources for doc in source.iter_documents(None)]


def test_mail_given_by_path_shows_no_server_path(tmp_path):
    lists = tmp_path / "srv" / "lists"
    lists.mkdir(parents=True)
    (lists / "petsc-users.mbox").write_text(MAIL)
    (doc,) = documents(str(lists / "petsc-users.mbox"), tmp_path)
    assert str(tmp_path) not in doc.id and str(tmp_path) not in doc.uri
    assert "file:" not in doc.uri and doc.uri.startswith("petsc-users.mbox#")
    assert doc.id.startswith("mbox:petsc-users.mbox-")
    assert all(str(tmp_path) not in post["url"] for post in doc.meta["messages"])


def test_docs_given_by_path_have_relative_ids(tmp_path):
    docs = write_docs(tmp_path / "srv" / "docs")
    found = documents(str(docs), tmp_path)
    assert found and all(str(tmp_path) not in doc.id for doc in found)
    assert any(doc.id.endswith(":manual/ksp.md#convergence-tests") for doc in found)


def test_two_folders_of_one_name_are_two_sources(tmp_path):
    config = load_config(environ={"SCIKNOW_DATA_DIR": str(tmp_path / "data")})
    first = write_docs(tmp_path / "a" / "docs")
    second = write_docs(tmp_path / "b" / "docs")
    names = {source_for_location(str(p), config).name for p in (first, second)}
    assert len(names) == 2


def test_a_random_bytes_mbox_is_logged_as_skipped(tmp_path, caplog):
    junk = tmp_path / "junk.mbox"
    junk.write_bytes(os.urandom(20_000).replace(b"From ", b"xxxxx"))
    config = load_config(environ={"SCIKNOW_DATA_DIR": str(tmp_path / "data")})
    (source,) = make_sources(source_for_location(str(junk), config), config)
    with caplog.at_level(logging.WARNING, logger="sciknow"):
        assert list(source.iter_documents(None)) == []
    assert [skip.reason for skip in source.skipped] == ["no mail message in it (not an mbox file?)"]
    assert "junk.mbox" in caplog.text and "no mail message" in caplog.text


def test_a_folder_named_on_the_command_line_is_unofficial_and_unlinked(tmp_path):
    docs = documents(str(write_docs(tmp_path / "srv" / "docs")), tmp_path)
    tree = tmp_path / "srv" / "tree"
    (tree / "include").mkdir(parents=True)
    (tree / "include" / "widget.h").write_text("int WidgetTurn(double angle);\n")
    (tree / "src").mkdir()
    (tree / "src" / "turn.c").write_text(MANPAGE_C)
    code = documents(str(tree), tmp_path)
    assert {doc.kind for doc in code} >= {"manpage", "code"}
    for doc in docs + code:
        assert doc.official is False and doc.uri == "", (doc.id, doc.uri)
    assert all(doc.meta.get("source_uri", "") == "" for doc in code)


def test_a_declared_folder_keeps_its_flag_and_links_from_its_base_url(tmp_path):
    docs = write_docs(tmp_path / "srv" / "docs")
    declared = tmp_path / "sciknow.toml"
    declared.write_text(
        '[[sources]]\nname = "guide"\nkind = "docs"\npath = "srv/docs"\n'
        'base_url = "https://guide.example.org/v2/"\n'
    )
    found = documents(str(docs), tmp_path, declared)
    assert found and all(doc.official for doc in found)
    ksp = next(doc for doc in found if doc.id == "guide:manual/ksp.md#convergence-tests")
    assert ksp.uri == "https://guide.example.org/v2/manual/ksp/#convergence-tests"
    declared.write_text(declared.read_text() + "official = false\n")
    found = documents(str(docs), tmp_path, declared)
    assert all(
        not doc.official and doc.uri.startswith("https://guide.example.org/v2/") for doc in found
    )


def test_a_declared_folder_without_base_url_links_to_the_profile_site(tmp_path):
    docs = write_docs(tmp_path / "srv" / "docs")
    declared = tmp_path / "sciknow.toml"
    declared.write_text('[[sources]]\nname = "docs"\nkind = "docs"\npath = "srv/docs"\n')
    found = documents(str(docs), tmp_path, declared)
    assert all(doc.official and doc.uri.startswith("https://petsc.org/release/") for doc in found)
