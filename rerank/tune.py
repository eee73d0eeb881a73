"""`sciknow tune`: a library-adapted embedder and reranker, trained from the index itself.

Pairs come from the index (`index/pairs.py`); a seeded share is kept aside for
validation, never trained on. The embedder is fine-tuned (`index/finetune.py`), then a
cross-encoder is trained from it (`rerank/train.py`). The output folder holds
`embedder/` (for `[models] embedder`), `reranker/` (for `retrieval.cross_encoder`),
`pairs.jsonl` and a card (`card.json`, `README.md`): pairs by kind, exclusions,
hyperparameters, seed, minutes, peak memory, and the validation before and after.

A killed run resumes: a finished stage is kept (`progress.json` records it with the
run's fingerprint), an unfinished one restarts from its last checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import resource
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sciknow.config import Config
from sciknow.index.embed import local_model_folder
from sciknow.index.finetune import TrainSettings, fingerprint, train_embedder
from sciknow.index.pairs import Pair, PairSet, extract_pairs, holdout_shingles
from sciknow.index.store import Store
from sciknow.rerank.train import train_reranker

VALIDATION_SHARE = 0.05
VALIDATION_MAX = 200
RERANK_DEPTH = 10  # validation: the reranker reorders the embedder's top 10
MIN_PAIRS = 4  # one to validate, the rest to train


@dataclass
class TuneRequest:
    out: Path
    max_pairs: int = 4000
    exclude: list[str] = field(default_factory=list)
    holdout: list[Path] = field(default_factory=list)  # evaluation sets never trained on
    settings: TrainSettings = field(default_factory=TrainSettings)
    reranker: bool = True
    reranker_layers: int = 6


def base_model(config: Config) -> Path:
    """The configured embedder's local folder: what tuning starts from."""
    folder = local_model_folder(config.models.embedder)
    if folder is None:
        raise RuntimeError("sciknow tune trains a local model; models.embedder is a remote API")
    return folder


def split(pairs: list[Pair]) -> tuple[list[Pair], list[Pair]]:
    """(training, validation): the first 5 % (at most 200) of the seeded order validate."""
    size = min(VALIDATION_MAX, max(1, round(len(pairs) * VALIDATION_SHARE)))
    return pairs[size:], pairs[:size]


def _ranks(scores: np.ndarray, gold: list[int]) -> list[int]:
    return [int((row > row[g]).sum()) + 1 for row, g in zip(scores, gold, strict=True)]


def _summary(ranks: list[int]) -> dict[str, float]:
    return {
        "recall@1": float(np.mean([r <= 1 for r in ranks])),
        "recall@5": float(np.mean([r <= 5 for r in ranks])),
        "mrr": float(np.mean([1 / r for r in ranks])),
    }


def _pool(validation: list[Pair]) -> tuple[list[str], list[int]]:
    """Every validation passage and hard negative; each query's gold index in it."""
    pool = list(
        dict.fromkeys(
            [p.positive for p in validation] + [p.negative for p in validation if p.negative]
        )
    )
    index = {text: n for n, text in enumerate(pool)}
    return pool, [index[p.positive] for p in validation]


def embedder_scores(model_dir: Path, validation: list[Pair], threads: int) -> np.ndarray:
    """Cosine of each validation query with every pooled passage (torch, as trained)."""
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    pool, _ = _pool(validation)
    queries = model.encode([p.query for p in validation], normalize_embeddings=True)
    passages = model.encode(pool, normalize_embeddings=True, batch_size=32)
    return queries @ passages.T


def validate_embedder(model_dir: Path, validation: list[Pair], threads: int) -> dict[str, float]:
    scores = embedder_scores(model_dir, validation, threads)
    return _summary(_ranks(scores, _pool(validation)[1]))


def validate_reranker(
    reranker_dir: Path, embedder_dir: Path, validation: list[Pair], threads: int
) -> dict[str, Any]:
    """The embedder's top 10 per query reordered by the reranker; a gold passage outside
    the top 10 keeps the embedder's rank. Also the reranker's milliseconds per candidate."""
    from sciknow.rerank.cross_encoder import load_cross_encoder

    scores = embedder_scores(embedder_dir, validation, threads)
    pool, gold = _pool(validation)
    model = load_cross_encoder(str(reranker_dir), threads, max_length=None)
    ranks, seconds, scored = _ranks(scores, gold), 0.0, 0
    for n, (pair, row, g) in enumerate(zip(validation, scores, gold, strict=True)):
        top = list(np.argsort(-row)[:RERANK_DEPTH])
        started = time.perf_counter()
        logits = model.predict([(pair.query, pool[i]) for i in top])
        seconds, scored = seconds + time.perf_counter() - started, scored + len(top)
        order = [top[i] for i in np.argsort(-np.asarray(logits), kind="stable")]
        if g in order:
            ranks[n] = order.index(g) + 1
    return {**_summary(ranks), "ms_per_candidate": round(1000 * seconds / max(1, scored), 1)}


class Progress:
    """Stages done, kept in `progress.json` under the run's fingerprint."""

    def __init__(self, out: Path, stamp: str) -> None:
        self.path = out / "progress.json"
        recorded = json.loads(self.path.read_text()) if self.path.is_file() else {}
        self.done: dict[str, Any] = (
            recorded.get("done", {}) if recorded.get("stamp") == stamp else {}
        )
        self.stamp = stamp

    def record(self, stage: str, value: Any) -> None:
        self.done[stage] = value
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"stamp": self.stamp, "done": self.done}, indent=2))
        tmp.replace(self.path)


def _stage(progress: Progress, name: str, work: Any) -> Any:
    """Run `work()` unless a finished run of this stage is recorded; time it."""
    if name not in progress.done:
        started = time.monotonic()
        result = work()
        progress.record(
            name, {"result": result, "minutes": round((time.monotonic() - started) / 60, 2)}
        )
    return progress.done[name]


def run_tune(store: Store, config: Config, request: TuneRequest) -> dict[str, Any]:
    """Pairs, training and validation; writes the output folder and returns the card."""
    started = time.monotonic()
    settings, out = request.settings, request.out
    found = extract_pairs(
        store,
        max_pairs=request.max_pairs,
        exclude=request.exclude,
        holdout=holdout_shingles(request.holdout),
        seed=settings.seed,
    )
    if len(found.pairs) < MIN_PAIRS:
        raise RuntimeError(
            f"the index gives {len(found.pairs)} training pairs (man pages, docs sections, "
            "examples, answered mail): ingest more before tuning"
        )
    out.mkdir(parents=True, exist_ok=True)  # only once there is something to train on
    found.write_jsonl(out / "pairs.jsonl")
    train, validation = split(found.pairs)
    base = base_model(config)
    stamp = fingerprint(
        found.pairs, settings, {"base": str(base), "layers": request.reranker_layers}
    )
    progress = Progress(out, stamp)
    embedder, reranker = out / "embedder", out / "reranker"
    stages = {
        "validation_base": lambda: validate_embedder(base, validation, settings.threads),
        "train_embedder": lambda: str(
            train_embedder(train, base, embedder, settings, out / "checkpoints" / "embedder")
        ),
        "validation_embedder": lambda: validate_embedder(embedder, validation, settings.threads),
    }
    if request.reranker:
        stages["train_reranker"] = lambda: str(
            train_reranker(
                train,
                embedder,
                reranker,
                settings,
                out / "checkpoints" / "reranker",
                request.reranker_layers,
            )
        )
        stages["validation_reranker"] = lambda: validate_reranker(
            reranker, embedder, validation, settings.threads
        )
    results = {name: _stage(progress, name, work) for name, work in stages.items()}
    with contextlib.suppress(OSError):  # the stages' checkpoint folders are gone once done
        (out / "checkpoints").rmdir()
    card = _card(request, found, train, validation, base, results, time.monotonic() - started)
    (out / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    (out / "README.md").write_text(card_markdown(card))
    return card


def _card(
    request: TuneRequest,
    found: PairSet,
    train: list[Pair],
    validation: list[Pair],
    base: Path,
    results: dict[str, Any],
    seconds: float,
) -> dict[str, Any]:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "base_model": str(base),
        "embedder": str(request.out / "embedder"),
        "reranker": str(request.out / "reranker") if request.reranker else None,
        "pairs": {
            "found_by_kind": found.found,
            "used_by_kind": found.by_kind(),
            "training": len(train),
            "validation": len(validation),
            "excluded_documents": found.excluded,
            "excluded_paths": request.exclude,
            "dropped_as_holdout_text": found.leaked,
            "holdout_sets": [str(p) for p in request.holdout],
            "random_negatives": found.without_negative,
        },
        "settings": {**asdict(request.settings), "reranker_layers": request.reranker_layers},
        "stages": results,
        "minutes": round(seconds / 60, 2),
        "peak_rss_mib": round(peak),
    }


def card_markdown(card: dict[str, Any]) -> str:
    """The card as a short Markdown page beside the models."""
    stages = card["stages"]
    rows = [
        ("base", stages["validation_base"]["result"]),
        ("tuned embedder", stages["validation_embedder"]["result"]),
    ]
    if "validation_reranker" in stages:
        rows.append(("tuned embedder + reranker (top 10)", stages["validation_reranker"]["result"]))
    table = "\n".join(
        f"| {name} | {r['recall@1']:.3f} | {r['recall@5']:.3f} | {r['mrr']:.3f} |"
        for name, r in rows
    )
    pairs = card["pairs"]
    use = f'[models]\nembedder = "{card["embedder"]}"'
    if card["reranker"]:
        use += f'\n\n[retrieval]\nreranker = "cross-encoder"\ncross_encoder = "{card["reranker"]}"'
    return f"""# sciknow tune

Base model: `{card["base_model"]}`. Pairs by kind (found → used): {pairs["found_by_kind"]} →
{pairs["used_by_kind"]}; {pairs["training"]} trained on, {pairs["validation"]} kept for
validation. Excluded paths {pairs["excluded_paths"]} ({pairs["excluded_documents"]} documents);
{pairs["dropped_as_holdout_text"]} pairs dropped for sharing text with {pairs["holdout_sets"]};
{pairs["random_negatives"]} pairs had no BM25 negative (a random passage stands in).

Settings: {json.dumps(card["settings"])}. Time {card["minutes"]} min, peak RSS
{card["peak_rss_mib"]} MiB.

Validation (each held-out query against all held-out passages and hard negatives):

| model | recall@1 | recall@5 | MRR |
|---|---|---|---|
{table}

Use it:

```toml
{use}
```
"""
