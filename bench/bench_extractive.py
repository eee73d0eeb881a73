"""Extractive answers on the dev questions: time after retrieval, and what they carry.

    python bench/bench_extractive.py [--dataset ../shared/eval/faq_dev.jsonl]
        [--exclude-path faq/] [--cache DIR] [--limit N] [-k 6] [--show N]

For each question (FAQ held out by default): retrieval with the default pipeline, then the
extractive answer, timed after retrieval (models loaded and warmed first). Prints p50/p95
of the extraction time, the mean symbol recall of the answer text against the reference
answer's PETSc names (and of the passages it was built from, its ceiling), the share of
answers with at least one citation, and the share that abstained.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from pathlib import Path

from sciknow.config import load_config
from sciknow.eval.metrics import percentile, tokens
from sciknow.eval.retrieval import build_index, load_questions
from sciknow.index.factory import load_embedder
from sciknow.rerank.hybrid import HybridRetriever
from sciknow.serve.citations import check_citations
from sciknow.serve.extractive import Extractor
from sciknow.serve.relevance import is_relevant


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="../shared/eval/faq_dev.jsonl")
    parser.add_argument("--exclude-path", action="append", default=None)
    parser.add_argument("--cache", default=".sciknow/bench-extractive")
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("-k", type=int, default=6)
    parser.add_argument("--show", type=int, default=0, help="print the first N answers")
    args = parser.parse_args()
    exclude = ["faq/"] if args.exclude_path is None else args.exclude_path

    config = load_config()
    embedder = load_embedder(config)
    corpus = Path(next(s.path for s in config.sources if s.kind == "docs"))
    cache = Path(args.cache)
    _seed_embeddings(config.data_path, cache, exclude)
    store = build_index("sciknow", corpus, exclude, cache, config, embedder)
    retriever = HybridRetriever(store, embedder, config.retrieval, config.profile)
    extractor = Extractor(embedder, store, config.profile.symbol_prefixes, config.answer.max_chars)
    questions = load_questions(args.dataset, config.profile.symbol_prefixes)
    questions = questions[: args.limit] if args.limit else questions

    warm = retriever.search(questions[0].question, args.k)
    extractor.answer(questions[0].question, warm, retriever.query_symbols(questions[0].question))
    times, recall, ceiling, cited, abstained = [], [], [], 0, 0
    for n, question in enumerate(questions):
        evidence = retriever.search(question.question, args.k)
        if not is_relevant(question.question, evidence, config.answer):
            abstained += 1
            continue
        started = time.perf_counter()
        result = extractor.answer(
            question.question, evidence, retriever.query_symbols(question.question)
        )
        times.append((time.perf_counter() - started) * 1000)
        cited += bool(check_citations(result.text, len(result.evidence)).cited)
        if question.symbols:
            wanted = set(question.symbols)
            recall.append(len(wanted & tokens(result.text)) / len(wanted))
            passages = "\n".join(e.text for e in result.evidence)
            ceiling.append(len(wanted & tokens(passages)) / len(wanted))
        if n < args.show:
            print(f"\n### {question.question}\n{result.text}\n")
    answered = len(questions) - abstained
    print(f"questions {len(questions)}, answered {answered}, abstained {abstained}")
    print(f"extraction ms: p50 {percentile(times, 50):.1f}, p95 {percentile(times, 95):.1f}")
    print(f"answers with a citation: {cited}/{answered}")
    print(
        f"symbol recall of the answer: {statistics.mean(recall):.3f} "
        f"(passages it drew on: {statistics.mean(ceiling):.3f}; {len(recall)} questions)"
    )


def _seed_embeddings(data: Path, cache: Path, exclude: list[str]) -> None:
    """Start from the main index's embedding cache so building the bench index embeds
    nothing already embedded (same embedder, same chunking of the same pages)."""
    from sciknow.eval.retrieval import index_folder

    target = cache / index_folder("sciknow", exclude, "") / "embeddings.sqlite"
    source = data / "embeddings.sqlite"
    if source.is_file() and not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)


if __name__ == "__main__":
    main()
