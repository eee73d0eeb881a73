"""The docs-tree source: MyST, reST and HTML pages, a crawled site, increments, bad inputs."""

from __future__ import annotations

import functools
import json
import os
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from sciknow.config import Profile
from sciknow.ingest.base import State
from sciknow.ingest.docs import DocsSource, local_page_path
from sciknow.ingest.rest import Labels, Section, make_id
from sciknow.records import Document

BASE = "https://docs.example.org/release/"
SHARED = Path("/work/shared")
CORPUS = SHARED / "corpus" / "petsc-doc"
FENCE = "```"

KSP_MD = f"""---
orphan: true
---

(ch_ksp)=

# KSP: Linear System Solvers

The `KSP` object solves linear systems. See {{doc}}`../faq/index`.

{FENCE}{{toctree}}
:maxdepth: 1

ksp_hidden_child
{FENCE}

(sec_ksp_tolerances)=

## Convergence Tests

Use `KSPSetTolerances()` or the option `-ksp_rtol <rtol>`; `MATAIJ` matrices
work best. See {{ref}}`the FAQ answer
<faq_slow>` for help.

{FENCE}c
# include <petscksp.h>
# not a heading
{FENCE}

:::{{note}}
:class: dropdown
Default tolerances are relative: {{math}}`10^{{-5}}`, see {{cite}}`saad2003`.
:::

````{{code-block}} python
:linenos:
# a comment, not a heading
ksp.setTolerances(rtol=1e-8)
````

<!-- a hidden comment
# not a heading either -->

### Monitoring

Call {{any}}`KSPMonitorSet`, read [the site](https://petsc.org) or [the FAQ](../faq/index.md).

- A list item with a fence:

  {FENCE}console
  # still not a heading
  {FENCE}

## 2D Examples

Text after a title that starts with a digit.
"""

FAQ_MD = f"""(doc_faq)=

# FAQ

{FENCE}{{contents}} Table Of Contents
:backlinks: top
:local: true
{FENCE}

## General

### Any useful books?

See {{ref}}`sec_ksp_tolerances`, {{ref}}`ch_ksp` and {{ref}}`unknown_label`; also [](ch_ksp).

(faq_slow)=

### Why is the linear solver (KSP) not converging, or converges slowly?

Run with `-ksp_monitor_true_residual` and see {{numref}}`Table %s <tab_x>`.
"""

INDEX_MD = """Text before any heading mentions `PetscInitialize()`.

# Sample Documentation

Start here.
"""

CHANGES_MD = f"""# Changes: 3.18

{FENCE}{{rubric}} KSP:
{FENCE}

- Changed the default of `KSPSetTolerances()`.

{FENCE}{{rubric}} Mat:
{FENCE}
"""

NOTES_RST = """.. _rst_top:

=============
Using Options
=============

Read :ref:`ksp tolerances <sec_ksp_tolerances>` and :ref:`faq_slow`.

.. toctree::
   :maxdepth: 2

   hidden_rst_child

.. _rst_section:

Command Line
------------

.. note::
   Options such as ``-pc_type`` are read by :c:func:`PCSetFromOptions`.

Example::

    ./ex1 -ksp_type gmres

.. a comment that is dropped

Sub Topic
~~~~~~~~~

See `PETSc <https://petsc.org>`_ and :doc:`manual/ksp`.

Another Top Section
-------------------

Closing words.
"""


def write(root: Path, rel: str, content: str | bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def line_of(text: str, needle: str) -> int:
    """1-based line of the first line of `text` that contains `needle`."""
    return next(n for n, line in enumerate(text.split("\n"), 1) if needle in line)


def by_id(docs: list[Document]) -> dict[str, Document]:
    ids = [d.id for d in docs]
    assert len(ids) == len(set(ids)), "document ids must be unique"
    return {d.id: d for d in docs}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    write(root, "index.md", INDEX_MD)
    write(root, "manual/ksp.md", KSP_MD)
    write(root, "faq/index.md", FAQ_MD)
    write(root, "changes/318.md", CHANGES_MD)
    write(root, "notes.rst", NOTES_RST)
    write(root, "_static/theme.md", "# Theme\n\nnot a page\n")
    write(root, "petsc.bib", "@book{saad2003}\n")
    return root


def ingest(root: Path | str, **kwargs: Any) -> tuple[DocsSource, list[Document]]:
    source = DocsSource("docs", str(root), Profile(), base_url=BASE, **kwargs)
    return source, list(source.iter_documents(None))


# --- slugs and paths ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "slug"),
    [
        (
            "What kind of parallel computers or clusters are needed to use PETSc? "
            "Or why do I get little speedup?",
            "what-kind-of-parallel-computers-or-clusters-are-needed-to-use-petsc-or-why-do-i-get"
            "-little-speedup",
        ),
        (
            "Does all the PETSc error checking and logging reduce PETSc's efficiency?",
            "does-all-the-petsc-error-checking-and-logging-reduce-petsc-s-efficiency",
        ),
        (
            "Why is PETSc written in C, instead of Fortran or C++?",
            "why-is-petsc-written-in-c-instead-of-fortran-or-c",
        ),
        ("2D Examples", "d-examples"),
        ("Änderungen für Straße", "anderungen-fur-strasze"),
        ("???", ""),
    ],
)
def test_make_id_follows_docutils(title: str, slug: str) -> None:
    assert make_id(title) == slug


@pytest.mark.parametrize(
    ("rel", "path"),
    [
        ("index.md", ""),
        ("faq/index.md", "faq/"),
        ("manual/ksp.md", "manual/ksp/"),
        ("notes.rst", "notes/"),
        ("index.html", ""),
        ("manual/index.html", "manual/"),
        ("manual/ksp.html", "manual/ksp.html"),
    ],
)
def test_local_page_path(rel: str, path: str) -> None:
    assert local_page_path(rel) == path


# --- MyST -------------------------------------------------------------------------------


def test_myst_sections_field_by_field(tree: Path) -> None:
    source, docs = ingest(tree)
    docs_by_id = by_id(docs)
    assert source.skipped == []
    doc = docs_by_id["docs:manual/ksp.md#sec_ksp_tolerances"]
    assert doc.source == "docs"
    assert doc.kind == "doc"
    assert doc.official is True
    assert doc.origin == "manual/ksp.md"
    assert doc.title == "Convergence Tests"
    assert doc.section == "KSP: Linear System Solvers > Convergence Tests"
    assert doc.uri == BASE + "manual/ksp/#convergence-tests"
    assert doc.meta == {
        "anchor": "sec_ksp_tolerances",
        "slug": "convergence-tests",
        "labels": ["sec_ksp_tolerances"],
        "path": "manual/ksp.md",
        "level": 2,
    }
    assert doc.start_line == line_of(KSP_MD, "## Convergence Tests")
    assert doc.end_line == line_of(KSP_MD, "ksp.setTolerances(rtol=1e-8)") + 1
    assert doc.text.startswith("KSP: Linear System Solvers > Convergence Tests\n\nUse `KSPSet")
    assert doc.symbols == ["KSPSetTolerances", "MATAIJ", "-ksp_rtol"]
    assert "See the FAQ answer for help." in doc.text  # {ref} with text, across a line break
    assert "```c\n# include <petscksp.h>\n# not a heading\n```" in doc.text  # code kept
    assert "Default tolerances are relative: 10^{-5}, see [saad2003]." in doc.text
    assert "```python\n# a comment, not a heading\nksp.setTolerances" in doc.text
    for gone in (":class:", ":linenos:", "{note}", ":::", "hidden comment", "not a heading either"):
        assert gone not in doc.text


def test_myst_headings_ignore_fences_and_comments(tree: Path) -> None:
    _, docs = ingest(tree)
    titles = [d.title for d in docs if d.origin == "manual/ksp.md"]
    assert titles == [
        "KSP: Linear System Solvers",
        "Convergence Tests",
        "Monitoring",
        "2D Examples",
    ]
    monitoring = by_id(docs)["docs:manual/ksp.md#monitoring"]
    assert monitoring.meta["level"] == 3
    assert monitoring.section == "KSP: Linear System Solvers > Convergence Tests > Monitoring"
    assert "Call KSPMonitorSet, read the site (https://petsc.org) or the FAQ." in monitoring.text
    assert "# still not a heading" in monitoring.text
    assert by_id(docs)["docs:manual/ksp.md#d-examples"].uri == BASE + "manual/ksp/#d-examples"


def test_myst_page_top_drops_front_matter_and_toctree(tree: Path) -> None:
    _, docs = ingest(tree)
    top = by_id(docs)["docs:manual/ksp.md#ch_ksp"]
    assert top.meta["level"] == 1 and top.meta["labels"] == ["ch_ksp"]
    assert top.uri == BASE + "manual/ksp/#ksp-linear-system-solvers"
    assert top.start_line == line_of(KSP_MD, "# KSP: Linear")
    assert top.text.endswith("\n\nThe `KSP` object solves linear systems. See FAQ.")
    assert all("orphan" not in d.text and "ksp_hidden_child" not in d.text for d in docs)


def test_myst_refs_resolve_across_pages(tree: Path) -> None:
    _, docs = ingest(tree)
    docs_by_id = by_id(docs)
    books = docs_by_id["docs:faq/index.md#any-useful-books"]
    assert books.section == "FAQ > General > Any useful books?"
    assert books.uri == BASE + "faq/#any-useful-books"
    assert (
        "See Convergence Tests, KSP: Linear System Solvers and unknown_label; "
        "also KSP: Linear System Solvers." in books.text
    )
    slow = docs_by_id["docs:faq/index.md#faq_slow"]
    assert slow.uri == BASE + "faq/#why-is-the-linear-solver-ksp-not-converging-or-converges-slowly"
    assert slow.meta["anchor"] == "faq_slow" and slow.meta["labels"] == ["faq_slow"]
    assert "see Table tab_x." in slow.text
    assert slow.symbols == ["-ksp_monitor_true_residual"]
    faq = docs_by_id["docs:faq/index.md#doc_faq"]
    assert faq.text == "FAQ"  # the {contents} block is dropped with its options


def test_text_before_first_heading_is_its_own_section(tree: Path) -> None:
    _, docs = ingest(tree)
    docs_by_id = by_id(docs)
    intro = docs_by_id["docs:index.md#"]
    assert intro.title == "Sample Documentation"
    assert intro.uri == BASE
    assert intro.meta["level"] == 0 and intro.meta["anchor"] == ""
    assert intro.start_line == intro.end_line == 1
    assert intro.symbols == ["PetscInitialize"]
    assert docs_by_id["docs:index.md#sample-documentation"].uri == BASE + "#sample-documentation"


def test_changes_pages_are_changelogs_split_at_rubrics(tree: Path) -> None:
    _, docs = ingest(tree)
    changes = [d for d in docs if d.origin == "changes/318.md"]
    assert [d.kind for d in changes] == ["changelog", "changelog"]  # the empty "Mat:" is dropped
    ksp = by_id(changes)["docs:changes/318.md#changes-3-18-ksp"]
    assert ksp.title == "KSP"
    assert ksp.section == "Changes: 3.18 > KSP"
    assert ksp.uri == BASE + "changes/318/#changes-3-18"  # a rubric has no anchor of its own
    assert ksp.symbols == ["KSPSetTolerances"]
    assert {d.kind for d in docs if d.origin != "changes/318.md"} == {"doc"}


# --- reStructuredText -------------------------------------------------------------------


def test_rst_sections_field_by_field(tree: Path) -> None:
    _, docs = ingest(tree)
    rst = [d for d in docs if d.origin == "notes.rst"]
    assert [(d.title, d.meta["level"]) for d in rst] == [
        ("Using Options", 1),
        ("Command Line", 2),
        ("Sub Topic", 3),
        ("Another Top Section", 2),
    ]
    top, command, sub, _ = rst
    assert top.id == "docs:notes.rst#rst_top"
    assert top.uri == BASE + "notes/#using-options"
    assert top.start_line == line_of(NOTES_RST, "Using Options")
    assert top.text == (
        "Using Options\n\nRead ksp tolerances and "
        "Why is the linear solver (KSP) not converging, or converges slowly?."
    )
    assert command.meta["labels"] == ["rst_section"]
    assert command.section == "Using Options > Command Line"
    assert "Options such as `-pc_type` are read by PCSetFromOptions." in command.text
    assert "Example:\n\n    ./ex1 -ksp_type gmres" in command.text
    assert command.symbols == ["PCSetFromOptions", "-pc_type", "-ksp_type"]
    assert "comment" not in command.text and ".. note" not in command.text
    assert command.end_line == line_of(NOTES_RST, ".. a comment")  # comments are lines too
    assert sub.section == "Using Options > Command Line > Sub Topic"
    assert sub.text.endswith("See PETSc (https://petsc.org) and KSP: Linear System Solvers.")
    assert all("hidden_rst_child" not in d.text and "maxdepth" not in d.text for d in rst)


# --- HTML -------------------------------------------------------------------------------

KSP_HTML = """<!DOCTYPE html>
<html><head><title>KSP — Sample</title>
<script>var bogus = "KSPScriptOnly";</script><style>h1 { color: red }</style></head>
<body>
<header class="bd-header"><nav><a href="../index.html">Home KSPNavOnly</a></nav></header>
<div class="bd-sidebar-primary"><a href="../index.html">KSPSidebarOnly</a></div>
<main id="main-content">
<article class="bd-article" role="main">
<span id="ch-ksp"></span><section id="ksp-linear-system-solvers">
<h1>KSP: Linear System Solvers<a class="headerlink" href="#ksp-linear-system-solvers">¶</a></h1>
<p>The <code>KSP</code>
   object.</p>
<section id="convergence-tests">
<span id="sec-ksp-tolerances"></span><h2>Convergence Tests<a class="headerlink" href="#x">#</a></h2>
<p>Use <code>KSPSetTolerances()</code> or <code>-ksp_rtol</code>.</p>
<pre>KSPSetTolerances(ksp, 1e-8, PETSC_DEFAULT, PETSC_DEFAULT, 100);
    indented line</pre>
<table><tr><td>MATAIJ</td><td>default</td></tr></table>
</section>
<section id="monitoring"><h3 id="monitor-heading">Monitoring</h3><p>Watch it.</p></section>
</section>
</article>
<div class="bd-sidebar-secondary">On this page</div>
</main>
<footer>KSPFooterOnly</footer>
</body></html>
"""

INDEX_HTML = """<html><body><div role="main">
<section id="sample-site"><h1>Sample Site</h1>
<p>See <a href="manual/ksp.html">KSP</a> and <a href="faq/">the FAQ</a>.</p></section>
</div></body></html>
"""

FAQ_HTML = """<html><body><div role="main">
<section id="faq"><h1>FAQ</h1><section id="general"><h2>General</h2>
<p>Back to <a href="../index.html">the start</a>.</p></section></section>
</div></body></html>
"""


def test_html_local_site(tmp_path: Path) -> None:
    site = tmp_path / "html"
    write(site, "index.html", INDEX_HTML)
    write(site, "manual/ksp.html", KSP_HTML)
    write(site, "faq/index.html", FAQ_HTML)
    write(site, "_static/chrome.html", "<h1>Theme</h1>")
    source, docs = ingest(site)
    assert source.skipped == []
    assert sorted(source.state().origins) == ["faq/index.html", "index.html", "manual/ksp.html"]
    docs_by_id = by_id(docs)
    top = docs_by_id["docs:manual/ksp.html#ksp-linear-system-solvers"]
    assert top.title == "KSP: Linear System Solvers"
    assert top.uri == BASE + "manual/ksp.html#ksp-linear-system-solvers"
    assert top.meta["labels"] == ["ch-ksp"]
    assert top.text == "KSP: Linear System Solvers\n\nThe KSP object."
    tol = docs_by_id["docs:manual/ksp.html#convergence-tests"]
    assert tol.section == "KSP: Linear System Solvers > Convergence Tests"
    assert tol.meta == {
        "anchor": "convergence-tests",
        "slug": "convergence-tests",
        "labels": ["sec-ksp-tolerances"],
        "path": "manual/ksp.html",
        "level": 2,
    }
    assert tol.start_line == line_of(KSP_HTML, "<h2>Convergence Tests")
    assert tol.end_line == line_of(KSP_HTML, "monitor-heading") - 1
    code = "KSPSetTolerances(ksp, 1e-8, PETSC_DEFAULT, PETSC_DEFAULT, 100);\n    indented line"
    assert f"```\n{code}\n```" in tol.text
    assert "MATAIJ default" in tol.text
    assert tol.symbols[:3] == ["KSPSetTolerances", "PETSC_DEFAULT", "MATAIJ"]
    assert "-ksp_rtol" in tol.symbols
    monitoring = docs_by_id["docs:manual/ksp.html#monitor-heading"]  # the heading's own id wins
    assert monitoring.uri == BASE + "manual/ksp.html#monitor-heading"
    every_text = "\n".join(d.text for d in docs)
    chrome = ["KSPScriptOnly", "KSPNavOnly", "KSPSidebarOnly", "KSPFooterOnly", "On this page"]
    for text in [*chrome, "¶", "color"]:
        assert text not in every_text
    assert docs_by_id["docs:faq/index.html#general"].uri == BASE + "faq/#general"
    assert docs_by_id["docs:index.html#sample-site"].uri == BASE + "#sample-site"


# --- a published site over HTTP ----------------------------------------------------------


class _Server(ThreadingHTTPServer):
    """Serves a folder on a free local port, counting requests; `failing` paths answer 500."""

    def __init__(self, folder: Path) -> None:
        super().__init__(("127.0.0.1", 0), functools.partial(_Handler, directory=str(folder)))
        self.hits: Counter[str] = Counter()
        self.agents: set[str | None] = set()
        self.failing = {"/docs/broken.html"}


class _Handler(SimpleHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self.server.hits[self.path] += 1
        self.server.agents.add(self.headers.get("User-Agent"))
        if self.path in self.server.failing:
            self.send_error(500, "boom")
            return
        super().do_GET()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[str, _Server, Path]]:
    www = tmp_path / "www"
    links = '<a href="a.html">A</a> <a href="b.html#part">B</a> <a href="faq/">FAQ</a>'
    others = (
        '<a href="broken.html">broken</a> <a href="a.html?print=1">query</a> '
        '<a href="http://other.invalid/x.html">elsewhere</a> <a href="style.css">css</a> '
        '<a href="../outside.html">outside</a> <a href="missing.html">missing</a>'
    )
    write(www, "docs/index.html", f"<h1 id='home'>Home</h1><p>{links} {others}</p>")
    write(www, "docs/a.html", "<h1 id='page-a'>Page A</h1><p>KSPSolve <a href='b.html'>B</a></p>")
    write(www, "docs/b.html", "<h1 id='page-b'>Page B</h1><p>Back to <a href='a.html'>A</a></p>")
    write(www, "docs/faq/index.html", "<h1 id='faq'>FAQ</h1><h2 id='q1'>Q1?</h2><p>Answer.</p>")
    write(www, "docs/broken.html", "<h1>never served</h1>")
    write(www, "docs/style.css", "h1 {}")
    write(www, "outside.html", "<h1>Outside</h1>")
    server = _Server(www)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/docs/", server, www
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def crawl(url: str, since: State | None = None, **kwargs: Any) -> tuple[DocsSource, list[Document]]:
    options = {"delay": 0.0, "retries": 2, "backoff": 0.01, "timeout": 5.0, **kwargs}
    source = DocsSource("web", url, Profile(), **options)
    return source, list(source.iter_documents(since))


def test_http_crawl_follows_site_links_once(site: tuple[str, _Server, Path]) -> None:
    url, server, _ = site
    source, docs = crawl(url)
    state = source.state()
    assert sorted(state.origins) == ["a.html", "b.html", "faq/index.html", "index.html"]
    assert state.complete is True
    hits = server.hits
    assert hits["/docs/broken.html"] == 3  # retried twice, then skipped
    assert all(hits[f"/docs/{page}"] == 1 for page in ("a.html", "b.html", "faq/", ""))
    assert "/outside.html" not in hits and "/docs/style.css" not in hits
    assert not any("print=1" in path for path in hits)
    assert server.agents == {"sciknow/0.1"}
    reasons = {skip.where: skip.reason for skip in source.skipped}
    assert set(reasons) == {"broken.html", "missing.html"}
    assert "HTTP 500" in reasons["broken.html"] and "3 attempts" in reasons["broken.html"]
    assert "404" in reasons["missing.html"]
    docs_by_id = by_id(docs)
    page_a = docs_by_id["web:a.html#page-a"]
    assert page_a.uri == f"{url}a.html#page-a"
    assert page_a.symbols == ["KSPSolve"]
    assert page_a.origin == "a.html"
    assert docs_by_id["web:faq/index.html#q1"].uri == f"{url}faq/#q1"
    assert docs_by_id["web:faq/index.html#q1"].section == "FAQ > Q1?"


def test_http_crawl_is_incremental(site: tuple[str, _Server, Path]) -> None:
    url, server, www = site
    first, _ = crawl(url)
    state = first.state()
    again, docs = crawl(url, state)
    assert docs == [] and again.state().origins == state.origins
    write(www, "docs/b.html", "<h1 id='page-b'>Page B</h1><p>Edited. <a href='a.html'>A</a></p>")
    edited, docs = crawl(url, state)
    assert {d.origin for d in docs} == {"b.html"}
    assert "Edited." in docs[0].text
    server.failing.add("/docs/faq/")
    flaky, docs = crawl(url, edited.state())
    assert docs == []
    assert flaky.state().origins["faq/index.html"] == state.origins["faq/index.html"]


def test_http_crawl_stops_at_max_pages(site: tuple[str, _Server, Path]) -> None:
    url, _, _ = site
    source, docs = crawl(url, max_pages=2)
    assert len(source.state().origins) == 2
    assert source.state().complete is False
    assert any("max_pages=2" in skip.reason for skip in source.skipped)
    assert {d.origin for d in docs} == set(source.state().origins)


# --- incremental runs -------------------------------------------------------------------


def test_second_run_yields_only_changed_pages(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    write(root, "one.md", "(target)=\n\n# Target Title\n\nText.\n")
    write(root, "two.md", "# Two\n\nSee {ref}`target`.\n")
    write(root, "three.md", "# Three\n\nText.\n")
    write(root, "four.html", "<h1 id='four'>Four</h1><p>Static.</p>")
    source, docs = ingest(root)
    assert {d.origin for d in docs} == {"one.md", "two.md", "three.md", "four.html"}
    state = source.state()
    assert set(state.origins) == {"one.md", "two.md", "three.md", "four.html"}

    edited = write(root, "two.md", "# Two\n\nNow see {ref}`target` again.\n")
    stat = edited.stat()
    os.utime(edited, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    write(root, "five.md", "# Five\n\nNew page.\n")
    (root / "three.md").unlink()

    again = DocsSource("docs", str(root), Profile(), base_url=BASE)
    docs = list(again.iter_documents(state))
    assert {d.origin for d in docs} == {"two.md", "five.md"}
    two = next(d for d in docs if d.origin == "two.md")
    assert "Now see Target Title again." in two.text  # label from a page that did not change
    assert set(again.state().origins) == {"one.md", "two.md", "four.html", "five.md"}
    assert again.state().origins["one.md"] == state.origins["one.md"]
    assert list(again.iter_documents(again.state())) == []


# --- bad inputs and exclusions ------------------------------------------------------------


def test_bad_inputs_are_logged_skips(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    write(root, "good.md", "# Good\n\nFine `VecCreate()`.\n")
    write(root, "binary.md", b"\x00\x01\x02 PNG-ish \x00")
    write(root, "latin1.md", "# Caf\xe9\n".encode("latin-1"))
    write(root, "empty.md", "")
    write(root, "blank.rst", "  \n\n")
    write(root, "huge.md", "# Huge\n\n" + "word " * 400)
    write(root, "rejected.html", "<h1>Title</h1><![unknown marked section")
    write(root, "nothing.html", "<html><head></head><body>  </body></html>")
    write(root, "broken.html", "<h1 id='b'>Broken<p>unclosed <b>bold <div><h2>Still Here</h2>text")
    source, docs = ingest(root, max_file_bytes=1000)
    reasons = {skip.where: skip.reason for skip in source.skipped}
    bad = ["binary.md", "latin1.md", "empty.md", "blank.rst", "huge.md", "rejected.html"]
    assert set(reasons) == {*bad, "nothing.html"}
    assert "binary" in reasons["binary.md"]
    assert "UTF-8" in reasons["latin1.md"]
    assert "empty" in reasons["empty.md"] and "empty" in reasons["blank.rst"]
    assert "max_file_bytes" in reasons["huge.md"]
    assert "rejected" in reasons["rejected.html"]
    assert "no readable text" in reasons["nothing.html"]
    assert set(source.state().origins) == {"good.md", "broken.html"}
    assert [(d.origin, d.title) for d in docs] == [
        ("broken.html", "Broken"),
        ("broken.html", "Still Here"),
        ("good.md", "Good"),
    ]


def test_deeply_nested_html_does_not_exhaust_the_stack(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    write(root, "deep.html", "<h1>Deep</h1>" + "<div><span>" * 5000 + "bottom")
    source, docs = ingest(root)
    assert source.skipped == []
    assert [(d.title, d.text) for d in docs] == [("Deep", "Deep\n\nbottom")]


def test_a_parser_crash_is_a_skip(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sciknow.ingest.docs as docs_module

    real = docs_module.parse_markdown

    def fragile(text: str, relpath: str, labels: Labels) -> list[Section]:
        if relpath == "faq/index.md":
            raise RuntimeError("boom")
        return real(text, relpath, labels)

    monkeypatch.setattr(docs_module, "parse_markdown", fragile)
    source, docs = ingest(tree)
    assert [(s.where, s.reason) for s in source.skipped] == [
        ("faq/index.md", "could not parse: RuntimeError: boom")
    ]
    assert "faq/index.md" not in source.state().origins
    assert {d.origin for d in docs} == {"index.md", "manual/ksp.md", "changes/318.md", "notes.rst"}


def test_exclude_prefixes_and_unofficial(tree: Path) -> None:
    source, docs = ingest(tree, exclude=["faq/", "changes/"], official=False)
    assert {d.origin for d in docs} == {"index.md", "manual/ksp.md", "notes.rst"}
    assert set(source.state().origins) == {"index.md", "manual/ksp.md", "notes.rst"}
    assert all(d.official is False for d in docs)
    # labels of excluded pages are unknown, so the reference reads as the label itself
    notes = next(d for d in docs if d.id == "docs:notes.rst#rst_top")
    assert "and faq_slow." in notes.text


def test_missing_root_is_a_skip(tmp_path: Path) -> None:
    source, docs = ingest(tmp_path / "nowhere")
    assert docs == [] and len(source.skipped) == 1
    assert "not a folder" in source.skipped[0].reason


# --- the shared PETSc corpus ---------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not CORPUS.is_dir(), reason="shared PETSc docs corpus not present")
def test_petsc_corpus_parses() -> None:
    source = DocsSource("petsc-doc", str(CORPUS), Profile())
    docs = list(source.iter_documents(None))
    assert len(docs) > 1000
    assert not [s for s in source.skipped if s.where.endswith(".md")]
    assert len({d.id for d in docs}) == len(docs)
    assert len(source.state().origins) == sum(1 for _ in CORPUS.rglob("*.md"))
    changelogs = [d for d in docs if d.kind == "changelog"]
    assert changelogs and all(d.origin.startswith("changes/") for d in changelogs)
    assert all(d.uri.startswith("https://petsc.org/release/") for d in docs)


@pytest.mark.slow
@pytest.mark.skipif(
    not (SHARED / "eval" / "faq_dev.jsonl").is_file() or not CORPUS.is_dir(),
    reason="shared FAQ evaluation set not present",
)
def test_faq_anchors_match_petsc_org() -> None:
    source = DocsSource("petsc-doc", str(CORPUS), Profile())
    docs = {d.uri: d for d in source.iter_documents(None) if d.origin == "faq/index.md"}
    rows = [json.loads(line) for line in (SHARED / "eval" / "faq_dev.jsonl").open()]
    assert rows
    for row in rows:
        assert row["url"] in docs, row["url"]
        doc = docs[row["url"]]
        assert doc.meta["anchor"] == row["anchor"]
        assert doc.start_line == row["line"]
        assert doc.title == row["question"].replace("`", "")
