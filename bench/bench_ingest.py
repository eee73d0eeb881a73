"""Ingest and search benchmarks, embedder runtimes side by side (run by hand;
docs/measurements.md, "Speed").

    python bench/bench_ingest.py --docs ../shared/corpus/petsc-doc [--backends torch,openvino]
        [--git /path/to/petsc] [--search-runs 7] [--keep DIR]
    python bench/bench_ingest.py --default --backends openvino   # the main job's ingest

In one run, so every figure saw the same machine (shared machines drift: compare
ratios within a run, not figures across runs):
1. raw model throughput per runtime: texts/s at 256 tokens, and on a sample of the
   docs' own chunks, rounds interleaved so the runtimes share the same load;
2. the docs snapshot from scratch per runtime, each in a fresh `sciknow` process:
   seconds, peak RSS, embedded chunks/s and its share of the raw rate on the same texts;
3. re-ingest after touching one file (and after editing one), end to end;
4. warm search latency p50/p95 over the FAQ dev questions (model already loaded);
5. whole-process `sciknow search` per runtime, alternating: min / median / max;
6. cosine between the first runtime's vectors and each other's over the docs chunks;
7. with --git: the whole repository per runtime, minutes, peak RSS, chunks/s.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from sciknow.config import Config, load_config
from sciknow.eval.metrics import percentile
from sciknow.index.embed import Embedder
from sciknow.index.factory import embed_policy, load_embedder, open_store
from sciknow.rerank.hybrid import HybridRetriever

SEARCH_QUESTION = "How do I set the tolerances of a KSP solver?"

# Runs the CLI, then reports its CPU seconds and peak RSS (KiB) on stderr's last lines.
WRAPPER = (
    "import resource, sys\n"
    "from sciknow.ui.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "use = resource.getrusage(resource.RUSAGE_SELF)\n"
    "print('cpu_s', round(use.ru_utime + use.ru_stime, 1), file=sys.stderr)\n"
    "print('peak_rss_kib', use.ru_maxrss, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def backend_env(backend: str) -> dict[str, str]:
    """Environment selecting a runtime spec: torch, onnx, onnx-int8 or openvino."""
    runtime, _, quantization = backend.partition("-")
    return {
        "SCIKNOW_MODELS__EMBEDDER_BACKEND": runtime,
        "SCIKNOW_MODELS__EMBEDDER_QUANTIZATION": quantization or "none",
    }


def config_for(data_dir: Path, backend: str) -> Config:
    return load_config(
        environ={**os.environ, "SCIKNOW_DATA_DIR": str(data_dir), **backend_env(backend)}
    )


def run_ingest(data_dir: Path, location: Path | None, backend: str) -> dict:
    """One `sciknow ingest` in its own process (of `location`, or of the config's sources):
    wall seconds, peak RSS, its summary line."""
    started = time.perf_counter()
    where = [str(location)] if location else []
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, "--data-dir", str(data_dir), "ingest", *where],
        capture_output=True,
        text=True,
        env={**os.environ, "TQDM_DISABLE": "1", **backend_env(backend)},
    )
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"ingest failed:\n{done.stderr[-3000:]}")
    lines = done.stderr.strip().splitlines()
    peak_kib = int(lines[-1].split()[-1])
    cpu_s = float(lines[-2].split()[-1])
    summary = done.stdout.splitlines()[0]
    embedded = int(summary.split(" embedded;")[0].rsplit(" ", 1)[-1])
    return {
        "seconds": round(seconds, 2),
        # CPU seconds of the process: on a shared machine, wall time / 2 cores is no bound,
        # but CPU time / 2 is what an idle 2-core machine needs at best.
        "cpu_seconds": cpu_s,
        "peak_rss_mib": round(peak_kib / 1024),
        "embedded": embedded,
        "embedded_per_s": round(embedded / seconds, 1),
        "summary": summary,
    }


def search_latency(data_dir: Path, questions: list[str], backend: str) -> dict:
    config = config_for(data_dir, backend)
    store = open_store(config)
    retriever = HybridRetriever(
        store, load_embedder(config, store), config.retrieval, config.profile
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


def texts_of_256_tokens(embedder_folder: Path, corpus: Path, count: int) -> list[str]:
    """`count` texts that the model's tokenizer cuts at exactly 256 tokens (docs prose)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(embedder_folder / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    words = " ".join(p.read_text(errors="ignore") for p in sorted(corpus.rglob("*.md"))).split()
    ring = words * (1 + 800 // len(words))  # 400-word windows from anywhere in the text
    texts = []
    for i in range(count):
        start = (i * 397) % len(words)
        piece = " ".join(ring[start : start + 400])
        end = tokenizer.encode(piece, add_special_tokens=False).offsets[253][1]
        texts.append(piece[:end])  # 254 tokens + [CLS] + [SEP]
    return texts


def raw_throughput(
    embedders: dict[str, Embedder], sets: dict[str, list[str]], rounds: int = 3
) -> dict:
    """texts/s of each embedder on each text set, rounds interleaved; best and median."""
    times: dict[str, dict[str, list[float]]] = {b: {n: [] for n in sets} for b in embedders}
    for embedder in embedders.values():
        embedder.embed(next(iter(sets.values()))[:64])  # load and warm up
    for _ in range(rounds):
        for backend, embedder in embedders.items():
            for name, texts in sets.items():
                started = time.perf_counter()
                embedder.embed(texts)
                times[backend][name].append(len(texts) / (time.perf_counter() - started))
    return {
        backend: {
            name: {"best": round(max(r), 1), "median": round(statistics.median(r), 1)}
            for name, r in by_set.items()
        }
        for backend, by_set in times.items()
    }


def chunk_sample(data_dir: Path, size: int = 512) -> list[str]:
    """A uniform sample of the embedded chunk texts (their lengths as in the corpus)."""
    store = open_store(config_for(data_dir, "torch"))
    texts = sorted(store.texts_by_hash(embed_policy(load_config())).values())
    return random.Random(0).sample(texts, min(size, len(texts)))


def cosines(first: Path, other: Path, first_backend: str, other_backend: str) -> dict:
    """Cosine between the vectors two runtimes gave the same chunks (from their caches)."""
    a, b = (
        open_store(config_for(first, first_backend)),
        open_store(config_for(other, other_backend)),
    )
    name_a, name_b = a.meta_value("embedder"), b.meta_value("embedder")
    hashes = sorted(set(a.texts_by_hash(embed_policy(load_config()))))
    dimension = int(a.meta_value("dimension") or 0)
    va = a.cache.get(hashes, name_a, dimension)
    vb = b.cache.get(hashes, name_b, dimension)
    cos = (va * vb).sum(axis=1)
    return {
        "chunks": len(hashes),
        "min": round(float(cos.min()), 5),
        "mean": round(float(cos.mean()), 5),
        "p01": round(float(np.percentile(cos, 1)), 5),
    }


def search_process(data_dirs: dict[str, Path], runs: int) -> dict:
    """Whole-process `sciknow search` per runtime, alternating, as a newcomer runs it."""
    script = Path(sys.executable).with_name("sciknow")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "sciknow.ui.cli"]
    times: dict[str, list[float]] = {b: [] for b in data_dirs}
    for _ in range(runs):
        for backend, data in data_dirs.items():
            started = time.perf_counter()
            subprocess.run(
                [*command, "--data-dir", str(data), "search", SEARCH_QUESTION],
                check=True,
                capture_output=True,
                env={**os.environ, **backend_env(backend)},
            )
            times[backend].append(time.perf_counter() - started)
    return {
        b: {
            "min_s": round(min(t), 2),
            "median_s": round(statistics.median(t), 2),
            "max_s": round(max(t), 2),
            "runs": len(t),
        }
        for b, t in times.items()
    }


def bench_docs(
    docs: Path, work: Path, questions: list[str], backends: list[str], runs: int
) -> dict:
    corpus = work / "corpus"
    shutil.copytree(docs, corpus)
    data = {b: work / f"docs-index-{b}" for b in backends}
    results: dict = {"load_average": os.getloadavg()}
    for backend in backends:
        results[backend] = {"scratch": run_ingest(data[backend], corpus, backend)}
    target = corpus / "manual" / "ksp.md"
    if not target.exists():
        target = next(corpus.rglob("*.md"))
    os.utime(target)
    for backend in backends:
        results[backend]["touch_one_file"] = run_ingest(data[backend], corpus, backend)
    with target.open("a") as handle:
        handle.write("\n\nAn added closing paragraph about KSPSetTolerances.\n")
    for backend in backends:
        results[backend]["edit_one_file"] = run_ingest(data[backend], corpus, backend)
        results[backend]["search"] = search_latency(data[backend], questions, backend)
    results["search_process"] = search_process(data, runs)
    embedders = {b: load_embedder(config_for(data[b], b)) for b in backends}
    folder = getattr(embedders[backends[0]], "folder", None)
    sets = {"chunks_sample": chunk_sample(data[backends[0]])}
    if folder is not None:
        sets["tokens_256"] = texts_of_256_tokens(folder, corpus, 256)
    results["raw_texts_per_s"] = raw_throughput(embedders, sets)
    for backend in backends:
        raw = results["raw_texts_per_s"][backend]["chunks_sample"]["best"]
        scratch = results[backend]["scratch"]
        scratch["share_of_raw"] = round(scratch["embedded_per_s"] / raw, 2)
    results["cosine_vs_" + backends[0]] = {
        b: cosines(data[backends[0]], data[b], backends[0], b) for b in backends[1:]
    }
    results["stats"] = open_store(config_for(data[backends[-1]], backends[-1])).stats()
    results["load_average_after"] = os.getloadavg()
    return results


def bench_default(work: Path, backend: str) -> dict:
    """The main job's ingest: the config's sources (docs and source snapshots) from scratch,
    then chunks by kind, vectors, and the embedded rate against the raw rate on a sample of
    the same texts (embedded heads included)."""
    data = work / f"default-index-{backend}"
    result = {"load_average": os.getloadavg(), "scratch": run_ingest(data, None, backend)}
    config = config_for(data, backend)
    stats = open_store(config).stats()
    result["chunks_by_kind"] = stats["chunks_by_kind"]
    result["chunks"], result["vectors"] = stats["chunks"], stats["vectors"]
    sample = random.Random(0).sample(
        sorted(open_store(config).texts_by_hash(embed_policy(config)).values()), 512
    )
    raw = raw_throughput({backend: load_embedder(config)}, {"embedded_sample": sample})
    result["raw_texts_per_s"] = raw[backend]["embedded_sample"]
    best = result["raw_texts_per_s"]["best"]
    result["share_of_raw"] = round(result["scratch"]["embedded_per_s"] / best, 2)
    result["load_average_after"] = os.getloadavg()
    return result


def bench_git(repo: Path, work: Path, backends: list[str]) -> dict:
    results: dict = {"load_average": os.getloadavg()}
    for backend in backends:
        data = work / f"git-index-{backend}"
        result = run_ingest(data, repo, backend)
        stats = open_store(config_for(data, backend)).stats()
        result["minutes"] = round(result["seconds"] / 60, 1)
        result["stats"] = stats
        result["chunks_per_s_overall"] = round(stats["chunks"] / result["seconds"], 1)
        result["search"] = search_latency(data, QUESTIONS_FOR_CODE, backend)
        results[backend] = result
    return results


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
    parser.add_argument(
        "--backends",
        default="torch,openvino",
        help="runtimes side by side, the reference first: torch, onnx, onnx-int8, openvino",
    )
    parser.add_argument("--search-runs", type=int, default=7, help="whole-process searches each")
    parser.add_argument("--git", type=Path, help="a PETSc work tree to ingest whole")
    parser.add_argument("--out", type=Path, default=Path("bench/results/ingest.json"))
    parser.add_argument("--keep", type=Path, help="build the indexes here and keep them")
    parser.add_argument("--count-only", action="store_true", help="--git: read and chunk only")
    parser.add_argument(
        "--default",
        action="store_true",
        help="only the main job's ingest (the config's sources) from scratch, first backend",
    )
    args = parser.parse_args()
    backends = args.backends.split(",")
    questions = [json.loads(line)["question"] for line in args.questions.open()]
    results = {}
    with tempfile.TemporaryDirectory(prefix="sciknow-bench-") as tmp:
        work = args.keep or Path(tmp)
        if args.default:
            results["default"] = bench_default(work, backends[0])
            print(json.dumps(results["default"], indent=2))
        elif args.docs.exists():
            results["docs"] = bench_docs(args.docs, work, questions, backends, args.search_runs)
            print(json.dumps(results["docs"], indent=2))
        if args.git and args.count_only:
            results["git_counts"] = count_only(args.git)
            print(json.dumps(results["git_counts"], indent=2))
        elif args.git:
            results["git"] = bench_git(args.git, work, backends)
            print(json.dumps(results["git"], indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
