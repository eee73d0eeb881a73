"""`sciknow eval retrieval`: pipelines side by side on one question set and one corpus.

Every pipeline answers the same questions over the same corpus with the same
embedding model; only chunking, retrieval and reranking differ. Indexes are
built with sciknow's own ingest into `<cache>/<index>-<mode>` and reused (the
embedding cache is seeded from sibling indexes, so a second mode embeds almost
nothing). Two modes (`../shared/eval/README.md`):

- gold page indexed: recall@k and MRR against the gold section, matched on the
  document's `meta["path"]` and its anchor (MyST label or slug);
- gold page excluded (`--exclude-path faq/`): symbol recall@k — the reference
  answer's library names found in the first 8,000 characters of the ranked
  passages — against the ceiling, the share of those names anywhere in the index.

With `--repo` the sciknow index also holds the library's repository (man pages,
examples, code) through the git source, minus its `doc/` folder: the docs come
from the corpus, with the same exclusions, so both modes stay meaningful. The
baseline keeps indexing the Markdown docs only, which is what the published
pipeline indexes.

Latency is per question, embedding + search + rerank, after one warm-up query
(model loading excluded).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from sciknow.config import Config, SourceConfig
from sciknow.errors import ConfigError, SourceError
from sciknow.eval.baseline import BaselineRetriever, MarkdownChunkSource, whole_chunker
from sciknow.eval.metrics import (
    CONTEXT_BUDGET,
    coverage,
    first_hit,
    mean,
    percentile,
    recall_at,
    reciprocal_rank,
    symbol_recall,
    tokens,
)
from sciknow.index.embed import Embedder
from sciknow.index.factory import make_chunker, open_store
from sciknow.index.pipeline import ingest
from sciknow.index.store import Store
from sciknow.ingest.base import Source
from sciknow.ingest.registry import make_sources
from sciknow.ingest.symbols import find_symbols
from sciknow.records import Evidence
from sciknow.rerank.base import Reranker, Retriever
from sciknow.rerank.hybrid import HybridRetriever

DOCS_SOURCE = "petsc-doc"  # the sciknow index's source name: ids `petsc-doc:faq/index.md#anchor`
REPO_SOURCE = "petsc-git"  # the repository's source name with `--repo`


@dataclass
class Question:
    """One evaluation record (the format of `../shared/eval/faq_dev.jsonl`)."""

    id: str
    question: str
    answer: str
    source_path: str = ""
    anchor: str = ""
    symbols: list[str] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)  # `answer_facts`: the reference, as claims

    @property
    def gold_path(self) -> str:
        """The gold page relative to the docs root (`doc/faq/index.md` → `faq/index.md`)."""
        return self.source_path.removeprefix("doc/")


def reference_answer(record: dict[str, Any]) -> str:
    """The record's reference answer. A feedback export (`vote` present) holds the answers
    people voted on: an upvoted one is a reference, any other is a question without one. A
    record without `answer` (an off-topic question, which should be declined) has none."""
    if "vote" in record:
        return str(record.get("answer", "")) if record["vote"] == "up" else ""
    return str(record.get("answer") or "")


def load_questions(path: str | Path, prefixes: list[str]) -> list[Question]:
    """Read a JSONL question set (or a feedback export); reference symbols come from
    `symbols` or the reference answer."""
    questions = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            answer = reference_answer(record)
            symbols = record.get("symbols") or find_symbols(answer, prefixes)
            questions.append(
                Question(
                    id=str(record.get("id", n)),
                    question=record["question"],
                    answer=answer,
                    source_path=record.get("source_path", ""),
                    anchor=record.get("anchor", ""),
                    symbols=list(symbols),
                    facts=[str(f) for f in record.get("answer_facts") or []],
                )
            )
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise SourceError(f"{path}:{n}: not a question record ({err})") from None
    return questions


@dataclass
class PipelineOptions:
    """What optional pipelines need: a cross-encoder folder, an LLM backend name."""

    cross_encoder: str = ""
    backend: str | None = None


Builder = Callable[[Store, Embedder, Config, PipelineOptions], Retriever]


@dataclass
class Pipeline:
    name: str
    index: str  # "baseline" or "sciknow": which index it searches
    description: str
    build: Builder


def _hybrid(**overrides: Any) -> Builder:
    """A HybridRetriever with `[retrieval]` settings changed by `overrides`."""

    def build(store: Store, embedder: Embedder, config: Config, _: PipelineOptions) -> Retriever:
        settings = dataclasses.replace(config.retrieval, **overrides)
        return HybridRetriever(store, embedder, settings, config.profile)

    return build


def _with_reranker(
    make: Callable[[Config, PipelineOptions], Reranker],
) -> Builder:
    """The configured HybridRetriever with a model reranker over its fused candidates."""

    def build(store: Store, embedder: Embedder, config: Config, opts: PipelineOptions) -> Retriever:
        return HybridRetriever(
            store, embedder, config.retrieval, config.profile, make(config, opts)
        )

    return build


def _cross_encoder(_: Config, opts: PipelineOptions) -> Reranker:
    from sciknow.rerank.cross_encoder import CrossEncoderReranker

    if not opts.cross_encoder:
        raise ConfigError("this pipeline needs --cross-encoder MODEL_DIR")
    return CrossEncoderReranker(opts.cross_encoder)


def _llm(config: Config, opts: PipelineOptions) -> Reranker:
    from sciknow.rerank.llm import LLMReranker
    from sciknow.serve.factory import build_backend

    return LLMReranker(build_backend(config, opts.backend), config.profile.display_name)


def _baseline(with_reranker: bool) -> Builder:
    def build(store: Store, embedder: Embedder, config: Config, opts: PipelineOptions) -> Retriever:
        reranker = _cross_encoder(config, opts) if with_reranker else None
        return BaselineRetriever(store, embedder, reranker)

    return build


PIPELINES = {
    p.name: p
    for p in [
        Pipeline(
            "baseline", "baseline", "PETSc team's: LangChain 1000/200 chunks, dense top-k",
            _baseline(False),
        ),
        Pipeline(
            "baseline-ce", "baseline", "baseline + cross-encoder over 2k+4 candidates",
            _baseline(True),
        ),
        Pipeline(
            "dense", "sciknow", "sciknow sections, dense only",
            _hybrid(bm25_weight=0.0, symbol_weight=0.0, feedback_weight=0.0, max_per_doc=0,
                    max_per_page=0, max_similarity=1.0, kind_weights={}),
        ),
        Pipeline(
            "fusion", "sciknow", "sciknow RRF dense 1 + BM25 1 + symbols 2 (before this change)",
            _hybrid(dense_weight=1.0, bm25_weight=1.0, symbol_weight=2.0, feedback_weight=0.0,
                    max_per_doc=0, max_per_page=0, max_similarity=1.0, kind_weights={}),
        ),
        Pipeline("default", "sciknow", "sciknow as configured ([retrieval])", _hybrid()),
        Pipeline(
            "ce", "sciknow", "default + cross-encoder reranker", _with_reranker(_cross_encoder)
        ),
        Pipeline("llm", "sciknow", "default + LLM yes/no reranker", _with_reranker(_llm)),
    ]
}  # fmt: skip


def mode_name(exclude: list[str]) -> str:
    """`all`, or `excl-faq` for `--exclude-path faq/`: names the index folder."""
    if not exclude:
        return "all"
    return "excl-" + "-".join(p.strip("/").replace("/", "_") for p in sorted(exclude))


def seed_embeddings(store: Store, siblings: list[Path]) -> None:
    """Copy cached vectors from other eval indexes into a new one (same model, same texts)."""
    conn = store.cache.conn
    for folder in siblings:
        file = folder / "embeddings.sqlite"
        if folder == store.root or not file.is_file():
            continue
        conn.execute("ATTACH DATABASE ? AS seed", (str(file),))
        try:
            with conn:
                conn.execute("INSERT OR IGNORE INTO embeddings SELECT * FROM seed.embeddings")
        finally:
            conn.execute("DETACH DATABASE seed")


def index_folder(index: str, exclude: list[str], repo: str) -> str:
    """`baseline-all`, `sciknow-excl-faq`, `sciknow-repo-all`: one folder per index and mode."""
    with_repo = "-repo" if repo and index == "sciknow" else ""
    return f"{index}{with_repo}-{mode_name(exclude)}"


def repo_sources(repo: str, config: Config, exclude: list[str]) -> list[Source]:
    """The repository's source without its `doc/` tree (the corpus supplies the docs);
    `exclude` (`--exclude-path`) holds for it as for the docs."""
    spec = SourceConfig(name=REPO_SOURCE, kind="git", path=repo, exclude=["doc/", *exclude])
    return [source for source in make_sources(spec, config) if source.name == REPO_SOURCE]


def build_index(
    index: str,
    corpus: Path,
    exclude: list[str],
    cache: Path,
    config: Config,
    embedder: Embedder,
    repo: str = "",
) -> Store:
    """Create or update the `index` ("baseline" or "sciknow") of `corpus` minus `exclude`.

    A new index is seeded with the embeddings of its siblings (`sciknow-*` for
    `sciknow-repo-all`) and of the configured index, so switching modes or adding the
    repository embeds only new text.
    """
    store = open_store(config, cache / index_folder(index, exclude, repo))
    if store.generation() == 0:
        seed_embeddings(store, [*sorted(cache.glob(f"{index}-*")), config.data_path])
    if index == "baseline":
        sources: list[Source] = [MarkdownChunkSource("baseline", corpus, config.profile, exclude)]
        chunker, skip = whole_chunker(), []
    else:
        spec = SourceConfig(name=DOCS_SOURCE, kind="docs", path=str(corpus), exclude=exclude)
        sources = make_sources(spec, config) + (repo_sources(repo, config, exclude) if repo else [])
        chunker, skip = make_chunker(config), config.ingest.skip_embedding_kinds
    heads = {} if index == "baseline" else config.ingest.embed_head_chars
    ingest(store, sources, embedder, chunker, skip_embedding_kinds=skip, embed_head_chars=heads)
    return store


def document_meta(store: Store, doc_ids: list[str]) -> dict[str, dict[str, Any]]:
    """`documents.meta` of the given documents."""
    if not doc_ids:
        return {}
    rows = store.conn.execute(
        f"SELECT id, meta FROM documents WHERE id IN ({','.join('?' * len(doc_ids))})", doc_ids
    )
    return {doc_id: json.loads(meta) for doc_id, meta in rows}


def is_gold(meta: dict[str, Any], question: Question) -> bool:
    """A passage hits when its page is the gold page and it stands in the gold section."""
    anchors = {meta.get("anchor"), meta.get("slug"), *meta.get("labels", [])}
    anchors.update(meta.get("anchors", []))
    return meta.get("path") == question.gold_path and question.anchor in anchors


def corpus_tokens(store: Store) -> set[str]:
    """Every identifier/option token of the indexed chunks (for the symbol ceiling)."""
    found: set[str] = set()
    for (text,) in store.conn.execute("SELECT text FROM chunks"):
        found |= tokens(text)
    return found


@dataclass
class PipelineResult:
    name: str
    description: str
    questions: int
    gold_questions: int  # questions whose gold page is indexed
    symbol_questions: int  # questions whose reference names at least one symbol
    recall: dict[int, float | None]
    mrr: float | None
    symbol_recall: dict[int, float | None]
    ceiling: float | None
    latency_ms: dict[str, float]
    per_question: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def ask_all(
    name: str, retriever: Retriever, questions: list[Question], depth: int, repeat: int = 1
) -> list[tuple[list[Evidence], float]]:
    """Each question's ranked passages and milliseconds, after one untimed warm-up.

    With `repeat` > 1 each question is timed that many times and the fastest run
    counts: on a shared machine that filters out time stolen by other processes.
    """
    retriever.search(questions[0].question, depth)
    out = []
    for question in tqdm(questions, desc=name, unit="q", disable=None):
        timings = []
        for _ in range(max(1, repeat)):
            started = time.perf_counter()
            results = retriever.search(question.question, depth)
            timings.append((time.perf_counter() - started) * 1000)
        out.append((results, min(timings)))
    return out


def score_pipeline(
    pipeline: Pipeline,
    store: Store,
    questions: list[Question],
    answers: list[tuple[list[Evidence], float]],
    depth: int,
    exclude: list[str],
) -> PipelineResult:
    """Metrics at every k from 1 to `depth` from each question's ranked passages."""
    vocabulary = corpus_tokens(store)
    rows = []
    for question, (results, ms) in zip(questions, answers, strict=True):
        meta = document_meta(store, list({e.doc_id for e in results}))
        indexed = bool(question.gold_path) and not question.gold_path.startswith(tuple(exclude))
        rank = first_hit([is_gold(meta.get(e.doc_id, {}), question) for e in results])
        texts = [e.text for e in results]
        rows.append(
            {
                "id": question.id,
                "gold_indexed": indexed,
                "gold_rank": rank if indexed else None,
                "symbols": question.symbols,
                "symbol_recall": {k: symbol_recall(question.symbols, texts, k)
                                  for k in range(1, depth + 1)},
                "ceiling": coverage(question.symbols, vocabulary),
                "latency_ms": ms,
                "passages": [e.chunk_id for e in results],
            }
        )  # fmt: skip
    gold = [r for r in rows if r["gold_indexed"]]
    with_symbols = [r for r in rows if r["symbols"]]
    latencies = [r["latency_ms"] for r in rows]
    return PipelineResult(
        name=pipeline.name,
        description=pipeline.description,
        questions=len(rows),
        gold_questions=len(gold),
        symbol_questions=len(with_symbols),
        recall={k: mean(recall_at(r["gold_rank"], k) for r in gold) for k in range(1, depth + 1)},
        mrr=mean(reciprocal_rank(r["gold_rank"]) for r in gold),
        symbol_recall={
            k: mean(r["symbol_recall"][k] for r in with_symbols) for k in range(1, depth + 1)
        },
        ceiling=mean(r["ceiling"] for r in with_symbols),
        latency_ms={"p50": percentile(latencies, 50), "p95": percentile(latencies, 95)},
        per_question=rows,
    )


@dataclass
class EvalRequest:
    dataset: Path
    corpus: Path
    pipelines: list[str]
    ks: list[int]
    exclude: list[str] = field(default_factory=list)
    repo: str = ""  # a git repository (folder or URL) added to the sciknow index
    cache: Path = Path(".sciknow/eval")
    limit: int = 0
    repeat: int = 1
    options: PipelineOptions = field(default_factory=PipelineOptions)


def run(request: EvalRequest, config: Config, embedder: Embedder) -> dict[str, Any]:
    """Evaluate every requested pipeline; the report as a JSON-ready dict."""
    unknown = [p for p in request.pipelines if p not in PIPELINES]
    if unknown:
        raise ConfigError(f"unknown pipeline {unknown[0]!r}; known: {', '.join(PIPELINES)}")
    questions = load_questions(request.dataset, config.profile.symbol_prefixes)
    questions = questions[: request.limit] if request.limit else questions
    if not questions:
        raise SourceError(f"{request.dataset} holds no questions")
    depth = max(request.ks)
    stores: dict[str, Store] = {}
    results = []
    for name in request.pipelines:
        pipeline = PIPELINES[name]
        if pipeline.index not in stores:
            stores[pipeline.index] = build_index(
                pipeline.index, request.corpus, request.exclude, request.cache, config, embedder,
                request.repo,
            )  # fmt: skip
        store = stores[pipeline.index]
        retriever = pipeline.build(store, embedder, config, request.options)
        answers = ask_all(name, retriever, questions, depth, request.repeat)
        results.append(score_pipeline(pipeline, store, questions, answers, depth, request.exclude))
    return {
        "dataset": str(request.dataset),
        "corpus": str(request.corpus),
        "exclude": request.exclude,
        "repo": request.repo,
        "mode": ("repo-" if request.repo else "") + mode_name(request.exclude),
        "questions": len(questions),
        "ks": request.ks,
        "context_budget_chars": CONTEXT_BUDGET,
        "latency_repeat": request.repeat,
        "embedder": embedder.name,
        "pipelines": [r.to_dict() for r in results],
    }
