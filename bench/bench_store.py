"""Vector-store search at scale on synthetic chunks (run by hand; docs/operations.md,
"The index on Milvus").

    python bench/bench_store.py [--n 1000000] [--milvus-n N] [--dim 384] [--queries 200]
        [--k 60] [--threads 1] [--build-threads 2]
        [--backends faiss-flat,faiss-hnsw,bm25s,milvus-lite] [--out FILE.json]

Each backend runs in its own process (so its memory is its own): it builds an index of
`n` random unit vectors, each with a chunk of 150-250 words drawn from a Zipf law over a
20,000-word vocabulary (the length of a 256-token chunk), then times `queries` top-k
searches one at a time: dense for FAISS and Milvus, BM25 over the texts for Milvus and
for `bm25s` (the FAISS store's term index, held in memory beside the FAISS one: the
FAISS store's memory is the two added). It reports build seconds, search p50/p95 in
milliseconds, the process's peak RSS, the load average when it ended, and for HNSW its
recall of the exact top k and how often it finds a planted target (`near_queries`).
Milvus Lite uses the schema and index parameters of `index/milvus_store.py` and its own
size (`--milvus-n`): it holds 13-15 KB a row in memory and inserts under 1,000 rows a
second here, so 1 M rows may not fit a machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from sciknow.eval.metrics import percentile

VOCABULARY = 20_000
BATCH = 5_000


def vectors(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    out = rng.standard_normal((n, dim), dtype=np.float32)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def word_ids(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    """`n` chunks as word numbers 1..VOCABULARY: 150-250 words each, Zipf-distributed."""
    lengths = rng.integers(150, 250, n)
    words = np.minimum(rng.zipf(1.2, int(lengths.sum())), VOCABULARY).astype(np.int32)
    return np.split(words, np.cumsum(lengths)[:-1])


def texts(rng: np.random.Generator, n: int) -> list[str]:
    return [" ".join(f"w{w}" for w in chunk) for chunk in word_ids(rng, n)]


def term_queries(rng: np.random.Generator, n: int) -> list[str]:
    """Three mid-frequency words per query (ranks 1-2000 of the Zipf law)."""
    return [f"w{a} w{b} w{c}" for a, b, c in rng.integers(1, 2000, (n, 3))]


def timed(search, queries: list) -> dict[str, float]:
    times = []
    for query in queries:
        start = time.perf_counter()
        search(query)
        times.append((time.perf_counter() - start) * 1000)
    return {"p50_ms": percentile(times, 50), "p95_ms": percentile(times, 95)}


def run_faiss(args: argparse.Namespace, hnsw: bool) -> dict[str, object]:
    import faiss

    faiss.omp_set_num_threads(args.build_threads)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    if hnsw:
        index = faiss.IndexHNSWFlat(args.dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 40
    else:
        index = faiss.IndexFlatIP(args.dim)
    for first in range(0, args.n, BATCH):
        index.add(vectors(rng, min(BATCH, args.n - first), args.dim))
    build = time.perf_counter() - start
    faiss.omp_set_num_threads(args.threads)
    queries = [q.reshape(1, -1) for q in vectors(rng, args.queries, args.dim)]
    if not hnsw:
        return {"build_s": build, "dense": timed(lambda q: index.search(q, args.k), queries)}
    targets, near_vectors = near_queries(rng, index, args.queries)
    near = [q.reshape(1, -1) for q in near_vectors]
    result: dict[str, object] = {"build_s": build}
    for scale, name in ((1, "dense"), (4, "dense_ef_x4")):  # sciknow's setting, and wider
        index.hnsw.efSearch = scale * max(64, args.k)
        result[name] = {
            **timed(lambda q: index.search(q, args.k), queries),
            "ef_search": index.hnsw.efSearch,
            "recall_at_k": hnsw_recall(index, np.vstack(queries[:50]), args.k),
            "near": {
                **timed(lambda q: index.search(q, args.k), near),
                "target_found": target_found(index, near_vectors, targets, args.k),
            },
        }
    return result


def near_queries(
    rng: np.random.Generator, index, n: int, cosine: float = 0.7
) -> tuple[np.ndarray, np.ndarray]:
    """Stored vectors and queries at `cosine` from them, as a question is to the chunk that
    answers it (all-MiniLM-L6-v2: 0.5-0.8, against about 0.1 for unrelated text). A random
    query has no such neighbour: on random vectors all its top k are about as far, so the
    recall of that top k says little about finding the passage that answers."""
    import faiss

    storage = faiss.downcast_index(index.storage)
    targets = rng.integers(0, index.ntotal, n)
    picked = storage.reconstruct_batch(targets)
    noise = vectors(rng, n, picked.shape[1])
    noise -= (noise * picked).sum(axis=1, keepdims=True) * picked  # orthogonal to the target
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    return targets, (cosine * picked + np.sqrt(1 - cosine**2) * noise).astype(np.float32)


def target_found(index, queries: np.ndarray, targets: np.ndarray, k: int) -> float:
    """The fraction of queries whose planted target is in the top k."""
    _, found = index.search(queries, k)
    return float(np.mean([t in row for t, row in zip(targets, found, strict=True)]))


def hnsw_recall(index, queries: np.ndarray, k: int) -> float:
    """The fraction of the exact top k (a flat scan of the HNSW index's own vectors) that
    HNSW returns; random vectors, with no clusters to follow, are its hard case."""
    import faiss

    _, exact = faiss.downcast_index(index.storage).search(queries, k)
    _, found = index.search(queries, k)
    hits = [len(set(a) & set(b)) for a, b in zip(exact.tolist(), found.tolist(), strict=True)]
    return sum(hits) / (k * len(queries))


def run_bm25s(args: argparse.Namespace) -> dict[str, object]:
    """The FAISS store's BM25 (`index/store.py`): bm25s over the chunks' words, searched as
    `Store.search_terms` does (scores for every chunk, then the top k)."""
    import bm25s

    rng = np.random.default_rng(0)
    start = time.perf_counter()
    vocabulary = {f"w{w}": w - 1 for w in range(1, VOCABULARY + 1)}
    corpus = [chunk - 1 for chunk in word_ids(rng, args.n)]
    model = bm25s.BM25()
    model.index((corpus, vocabulary), show_progress=False)
    del corpus
    build = time.perf_counter() - start

    def search(query: str) -> None:
        scores = model.get_scores(query.split())
        np.argsort(-scores, kind="stable")[: args.k]

    return {"build_s": build, "bm25": timed(search, term_queries(rng, args.queries))}


def run_milvus(args: argparse.Namespace) -> dict[str, object]:
    from sciknow.index.milvus_store import _index_params, _schema, milvus_client

    rng = np.random.default_rng(0)
    folder = Path(tempfile.mkdtemp(prefix="bench-milvus-"))
    client = milvus_client(str(folder / "bench.db"))
    client.create_collection(
        "bench", schema=_schema(client, args.dim), index_params=_index_params(client),
        consistency_level="Strong",
    )  # fmt: skip
    start = time.perf_counter()
    for first in range(0, args.n, BATCH):
        if first and first % 50_000 == 0:
            elapsed = time.perf_counter() - start
            print(f"milvus-lite: {first} rows in {elapsed:.0f} s", file=sys.stderr, flush=True)
        count = min(BATCH, args.n - first)
        rows = zip(vectors(rng, count, args.dim), texts(rng, count), strict=True)
        client.insert(
            "bench",
            [
                {"pk": first + i, "rowid": first + i, "terms": text, "vector": vector.tolist(),
                 "has_vector": True, "vector_key": "", "symbols": [], "defines": [],
                 "kind": "doc", "source": "bench", "official": True, "added": 1, "removed": 0}
                for i, (vector, text) in enumerate(rows)
            ],
        )  # fmt: skip
    client.flush("bench")
    build = time.perf_counter() - start
    live = "added <= 1 and (removed == 0 or removed > 1)"  # what MilvusStore asks for

    def search(data: list, field: str) -> None:
        client.search("bench", data=data, anns_field=field, limit=args.k, filter=live)

    dense = [[q.tolist()] for q in vectors(rng, args.queries, args.dim)]
    words = [[query] for query in term_queries(rng, args.queries)]
    disk = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    return {
        "build_s": build,
        "dense": timed(lambda q: search(q, "vector"), dense),
        "bm25": timed(lambda q: search(q, "sparse"), words),
        "disk_mb": disk / 2**20,
    }


def one(args: argparse.Namespace) -> None:
    backend = args.one
    if backend == "milvus-lite":
        result = run_milvus(args)
    elif backend == "bm25s":
        result = run_bm25s(args)
    else:
        result = run_faiss(args, hnsw=backend == "faiss-hnsw")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    load = [round(x, 2) for x in os.getloadavg()]
    summary = {"backend": backend, "n": args.n, "peak_rss_mb": peak, "load": load}
    print(json.dumps({**summary, **result}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--milvus-n", type=int, help="rows for Milvus Lite (default: --n)")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=60, help="candidates per retriever")
    parser.add_argument(
        "--threads", type=int, default=1, help="FAISS threads (one query at a time: 1)"
    )
    parser.add_argument("--build-threads", type=int, default=2, help="FAISS threads to build")
    parser.add_argument("--backends", default="faiss-flat,faiss-hnsw,bm25s,milvus-lite")
    parser.add_argument("--out", help="also write the results here (JSON)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a child process: one backend
    args = parser.parse_args()
    if args.one:
        one(args)
        return
    results = []
    for backend in args.backends.split(","):
        n = args.milvus_n if backend == "milvus-lite" and args.milvus_n else args.n
        common = ["--n", str(n), "--dim", str(args.dim), "--queries", str(args.queries),
                  "--k", str(args.k), "--threads", str(args.threads),
                  "--build-threads", str(args.build_threads)]  # fmt: skip
        child = [sys.executable, __file__, *common, "--one", backend]
        line = subprocess.run(child, check=True, stdout=subprocess.PIPE, text=True).stdout
        results.append(json.loads(line.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
