"""Ingest and search benchmarks (run by hand; results go in the closing notes).

    python bench/bench_ingest.py --docs ../shared/corpus/petsc-doc [--git /path/to/petsc]

Measures, each ingest in a fresh `sciknow` process so peak memory is its own:
1. docs snapshot from scratch: seconds and peak RSS;
2. re-ingest after touching one file (and after editing one), end to end;
3. warm search latency p50/p95 over the FAQ dev questions (model already loaded);
4. with --git: the whole repository, documents and chunks by kind, minutes, peak
   RSS, and embedding chunks/s against the model's raw throughput in this run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sciknow.config import load_config
from sciknow.eval.metrics import percentile
from sciknow.index.factory import load_embedder, open_store
from sciknow.rerank.hybrid import HybridRetriever

# Runs the CLI, then reports this process's own peak RSS (KiB) on stderr's last line.
WRAPPER = (
    "import resource, sys\n"
    "from sciknow.ui.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "print('peak_rss_kib', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def run_ingest(data_dir: Path, location: Path) -> dict:
    """One `sciknow ingest` in its own process: wall seconds, peak RSS, its summary line."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, "--data-dir", str(data_dir), "ingest", str(location)],
        capture_output=True,
        text=True,
        env={**os.environ, "TQDM_DISABLE": "1"},
    )
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"ingest failed:\n{done.stderr[-3000:]}")
    peak_kib = int(done.stderr.strip().splitlines()[-1].split()[-1])
    return {
        "seconds": round(seconds, 2),
        "peak_rss_mib": round(peak_kib / 1024),
        "summary": done.stdout.splitlines()[0],
    }


def search_latency(data_dir: Path, questions: list[str]) -> dict:
    config = load_config(environ={**os.environ, "SCIKNOW_DATA_DIR": str(data_dir)})
    retriever = HybridRetriever(
        open_store(config), load_embedder(config), config.retrieval, config.profile
    )
    retriever.search("warm up")
    times = []
    for question in questions:
        started = time.perf_counter()
        retriever.search(question)
        times.append((time.perf_counter() - started) * 1000)
    return {
        "queries": len(times),
        "p50_ms": round(percentile(times, 50), 1),
        "p95_ms": round(percentile(times, 95), 1),
    }


def embedding_throughput(data_dir: Path, sample: int = 512) -> dict:
    """Raw model chunks/s on real chunk texts, measured now for comparison."""
    config = load_config(environ={**os.environ, "SCIKNOW_DATA_DIR": str(data_dir)})
    store = open_store(config)
    texts = [r[0] for r in store.conn.execute("SELECT text FROM chunks LIMIT ?", (sample,))]
    embedder = load_embedder(config)
    embedder.embed(texts[:8])
    started = time.perf_counter()
    embedder.embed(texts)
    return {"raw_chunks_per_s": round(len(texts) / (time.perf_counter() - started), 1)}


def bench_docs(docs: Path, work: Path, questions: list[str]) -> dict:
    corpus = work / "corpus"
    shutil.copytree(docs, corpus)
    data = work / "docs-index"
    results = {"scratch": run_ingest(data, corpus)}
    target = corpus / "manual" / "ksp.md"
    if not target.exists():
        target = next(corpus.rglob("*.md"))
    os.utime(target)
    results["touch_one_file"] = run_ingest(data, corpus)
    with target.open("a") as handle:
        handle.write("\n\nAn added closing paragraph about KSPSetTolerances.\n")
    results["edit_one_file"] = run_ingest(data, corpus)
    results["search"] = search_latency(data, questions)
    results["stats"] = open_store(
        load_config(environ={**os.environ, "SCIKNOW_DATA_DIR": str(data)})
    ).stats()
    return results


def bench_git(repo: Path, work: Path) -> dict:
    data = work / "git-index"
    result = run_ingest(data, repo)
    stats = open_store(load_config(environ={**os.environ, "SCIKNOW_DATA_DIR": str(data)})).stats()
    result["minutes"] = round(result["seconds"] / 60, 1)
    result["stats"] = stats
    result["chunks_per_s_overall"] = round(stats["chunks"] / result["seconds"], 1)
    result.update(embedding_throughput(data))
    result["search"] = search_latency(data, QUESTIONS_FOR_CODE)
    return result


def count_only(location: Path) -> dict:
    """Read and chunk a tree without embedding: documents and chunks by kind, time, memory."""
    import resource
    from collections import Counter

    from sciknow.index.factory import make_chunker
    from sciknow.ingest.registry import make_sources, source_for_location

    config = load_config(environ={**os.environ, "SCIKNOW_DATA_DIR": tempfile.mkdtemp()})
    chunker = make_chunker(config)
    docs, chunks = Counter(), Counter()
    started = time.perf_counter()
    for source in make_sources(source_for_location(str(location), config), config):
        for doc in source.iter_documents(None):
            docs[doc.kind] += 1
            chunks[doc.kind] += len(chunker.chunk(doc))
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "documents_by_kind": dict(docs),
        "chunks_by_kind": dict(chunks),
        "chunks": sum(chunks.values()),
    }


QUESTIONS_FOR_CODE = [
    "How do I set the tolerances of a KSP solver?",
    "What does MatZeroRowsColumns do?",
    "-pc_factor_mat_ordering_type",
    "How do I create a DMDA for a 2d structured grid?",
    "Which options control the SNES line search?",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=Path, default=Path("../shared/corpus/petsc-doc"))
    parser.add_argument("--questions", type=Path, default=Path("../shared/eval/faq_dev.jsonl"))
    parser.add_argument("--git", type=Path, help="a PETSc work tree to ingest whole")
    parser.add_argument("--out", type=Path, default=Path("bench/results/ingest.json"))
    parser.add_argument("--keep", type=Path, help="build the indexes here and keep them")
    parser.add_argument("--count-only", action="store_true", help="--git: read and chunk only")
    args = parser.parse_args()
    questions = [json.loads(line)["question"] for line in args.questions.open()]
    results = {}
    with tempfile.TemporaryDirectory(prefix="sciknow-bench-") as tmp:
        work = args.keep or Path(tmp)
        if args.docs.exists():
            results["docs"] = bench_docs(args.docs, work, questions)
            print(json.dumps(results["docs"], indent=2))
        if args.git and args.count_only:
            results["git_counts"] = count_only(args.git)
            print(json.dumps(results["git_counts"], indent=2))
        elif args.git:
            results["git"] = bench_git(args.git, work)
            print(json.dumps(results["git"], indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
