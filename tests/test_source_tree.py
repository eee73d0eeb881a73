"""A source tree without git (a release tarball's layout) as a first-class source.

The tree is written here: a header with an enum man page and its own SUBMANSEC, a
folder whose makefile declares the manual section, a tutorial with a help string,
plus a binary file, a non-UTF-8 file and an excluded folder. It is ingested into a
real index (SQLite, FAISS, BM25) with the real embedder.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sciknow.config import load_config
from sciknow.index.factory import make_chunker, open_store
from sciknow.index.pipeline import ingest
from sciknow.ingest.registry import infer_kind, make_sources, source_for_location

REV = "0123456789abcdef0123456789abcdef01234567"

HEADER = """\
#pragma once
/* MANSEC = Gadget */
/* SUBMANSEC = GadgetMode */

/*E
   GadgetMode - How a gadget spins

   Values:
+  `GADGET_MODE_SLOW` - carefully
-  `GADGET_MODE_FAST` - quickly

   Level: intermediate

.seealso: `GadgetSpin()`
E*/
typedef enum { GADGET_MODE_SLOW, GADGET_MODE_FAST } GadgetMode;
"""

INTERFACE = """\
#include <petscgadget.h>

/*@
  GadgetSpin - Spins the gadget at the given rate

  Collective

  Input Parameters:
+ gadget - the gadget context
- rate   - turns per second

  Options Database Key:
. -gadget_rate <rate> - sets the rate

  Level: beginner

.seealso: `GadgetMode`
@*/
PetscErrorCode GadgetSpin(Gadget gadget, PetscReal rate)
{
  PetscFunctionBegin;
  gadget->rate = rate;
  PetscFunctionReturn(PETSC_SUCCESS);
}
"""

TUTORIAL = """\
static char help[] = "Spins a gadget with GadgetSpin().\\n\\n";

#include <petscgadget.h>

int main(int argc, char **argv)
{
  Gadget gadget;

  PetscCall(PetscInitialize(&argc, &argv, NULL, help));
  PetscCall(GadgetSpin(gadget, 2.0));
  PetscCall(PetscFinalize());
  return 0;
}

/*TEST

   test:
      args: -gadget_rate 3

TEST*/
"""


def write_tree(root: Path) -> Path:
    files = {
        "include/petscgadget.h": HEADER,
        "src/gadget/interface/makefile": "MANSEC = Gadget\n",
        "src/gadget/interface/spin.c": INTERFACE,
        "src/gadget/tutorials/ex1.c": TUTORIAL,
        "src/gadget/tutorials/makefile": "-include ../../../petscdir.mk\n",
        "src/gadget/private/secret.c": INTERFACE.replace("GadgetSpin", "GadgetHidden"),
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (root / "src/gadget/interface/blob.c").write_bytes(b"\x7fELF\x00\x00binary")
    (root / "src/gadget/interface/latin1.c").write_bytes("/* caf\xe9 */\n".encode("latin-1"))
    return root


@pytest.fixture()
def tree_index(tmp_path, embedder):
    """The tree, a config naming it as `kind = "source"`, and a function that ingests."""
    tree = write_tree(tmp_path / "petsc-src")
    config_file = tmp_path / "sciknow.toml"
    config_file.write_text(
        f'data_dir = "data"\n[[sources]]\nname = "src"\nkind = "source"\npath = "{tree}"\n'
        f'rev = "{REV}"\nexclude = ["src/gadget/private/"]\n'
    )
    config = load_config(config_file)
    store = open_store(config)

    def run():
        sources = [s for spec in config.sources for s in make_sources(spec, config)]
        heads, skip = config.ingest.embed_head_chars, config.ingest.skip_embedding_kinds
        return ingest(
            store,
            sources,
            embedder,
            make_chunker(config),
            skip_embedding_kinds=skip,
            embed_head_chars=heads,
        )

    return tree, store, run


def documents(store) -> dict[str, tuple[str, str, dict]]:
    import json

    rows = store.conn.execute("SELECT id, kind, uri, meta FROM documents")
    return {doc_id: (kind, uri, json.loads(meta)) for doc_id, kind, uri, meta in rows}


def test_a_folder_with_include_and_src_is_a_source_tree(tmp_path):
    tree = write_tree(tmp_path / "tree")
    assert infer_kind(str(tree)) == "source"
    assert infer_kind(str(write_tree(tmp_path / "docs-only") / "include")) == "docs"
    spec = source_for_location(str(tree), load_config(environ={}))
    assert spec.kind == "source"


def test_man_pages_tutorials_and_links(tree_index):
    _, store, run = tree_index
    report = run()
    docs = documents(store)
    kind, uri, meta = docs["src:src/gadget/interface/spin.c#GadgetSpin"]
    assert kind == "manpage"
    assert uri == "https://petsc.org/release/manualpages/Gadget/GadgetSpin/"
    assert meta["options"] == {"-gadget_rate <rate>": "sets the rate"}
    assert [name for name, _ in meta["input_parameters"]] == ["gadget", "rate"]
    assert meta["source_uri"].endswith(f"/{REV}/src/gadget/interface/spin.c#L3-19")
    # A header's own SUBMANSEC wins over its MANSEC.
    _, uri, _ = docs["src:include/petscgadget.h#GadgetMode"]
    assert uri == "https://petsc.org/release/manualpages/GadgetMode/GadgetMode/"
    kind, uri, meta = docs["src:src/gadget/tutorials/ex1.c"]
    assert kind == "example" and uri.endswith(f"/{REV}/src/gadget/tutorials/ex1.c#L1-20")
    assert meta["test_args"] == ["-gadget_rate 3"]
    code = [d for d, (k, _, _) in docs.items() if k == "code"]
    assert "src:src/gadget/interface/spin.c#GadgetSpin-L19" in code
    assert not any("private" in doc_id for doc_id in docs)
    reasons = {skip.where: skip.reason for skip in report.skipped}
    assert reasons["src/gadget/interface/blob.c"].startswith("binary file")
    assert reasons["src/gadget/interface/latin1.c"].startswith("not valid UTF-8")


def test_man_pages_and_tutorials_embed_their_heads_only(tree_index, embedder):
    _, store, run = tree_index
    run()
    stats = store.stats()
    # Two man pages and the tutorial's first chunk; function bodies and the rest of the
    # tutorial are found by terms and symbols.
    assert stats["vectors"] == 3
    assert stats["unembedded_kinds"] == "code;example:600,manpage:600"
    text = store.conn.execute("SELECT text FROM chunks WHERE id LIKE '%#GadgetSpin::0'").fetchone()
    [hit] = store.search_dense(embedder.embed([text[0][:600]])[0], 1)
    assert hit[1] > 0.999


def test_an_edit_re_ingests_only_that_file_and_a_deletion_leaves(tree_index):
    tree, store, run = tree_index
    run()
    spin = tree / "src/gadget/interface/spin.c"
    spin.write_text(INTERFACE.replace("turns per second", "revolutions per second"))
    report = run()
    # Only spin.c was read again: its man page changed, its function body did not.
    assert (report.documents, report.unchanged_documents) == (1, 1)
    assert report.by_kind == {"manpage": 1} and report.deleted_documents == 0
    (tree / "src/gadget/tutorials/ex1.c").unlink()
    report = run()
    assert report.documents == 0 and report.deleted_documents == 1
    assert "src:src/gadget/tutorials/ex1.c" not in documents(store)
