"""Fine-tune the embedder on the index's own (query, passage) pairs, on the CPU.

sentence-transformers' trainer with `MultipleNegativesRankingLoss`: each query is
pulled toward its passage and pushed from every other passage of the batch and from its
hard negative (`index/pairs.py`). The trainer brings the progress bar with its ETA,
checkpoints every `checkpoint_steps` and resumes from the last one after a kill; the seed
fixes the data order, dropout and the reranker head (`rerank/train.py`), so two runs with
the same pairs, settings and thread count give the same weights. Nothing is downloaded:
the base model is a local folder (the packaged all-MiniLM-L6-v2 by default).

The produced folder carries `sciknow_model.json` with a name made from a hash of its
weights: the embedder's name in the index and in the embedding cache, so vectors of two
tunings never mix even when their folders share a name.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from sciknow.errors import StoreError
from sciknow.index.embed import IDENTITY_FILE
from sciknow.index.pairs import Pair


@dataclass
class TrainSettings:
    """Hyperparameters of one training run (written to the model card)."""

    epochs: int = 1
    batch_size: int = 32
    learning_rate: float = 3e-5
    warmup_ratio: float = 0.1
    max_seq_length: int = 128
    seed: int = 0
    threads: int = 2
    bf16: bool = False  # autocast to bfloat16 (fast on CPUs with AMX; slightly noisier)
    checkpoint_steps: int = 50


def set_seed(seed: int, threads: int) -> None:
    """Seed Python, NumPy and torch, and fix torch's thread count (results depend on it)."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)


def fingerprint(pairs: list[Pair], settings: TrainSettings, extra: dict | None = None) -> str:
    """What a checkpoint was made from: resuming with other pairs or settings is refused."""
    digest = hashlib.sha256()
    for pair in pairs:
        digest.update(json.dumps(asdict(pair), sort_keys=True).encode())
    digest.update(json.dumps({**asdict(settings), **(extra or {})}, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def checkpoint_dir(folder: Path, stamp: str) -> Path | None:
    """`folder` ready for a run made from `stamp`; returns it when it holds a checkpoint
    to resume from, None when the run starts afresh."""
    stamp_file = folder / "run.json"
    if folder.is_dir() and any(folder.glob("checkpoint-*")):
        recorded = json.loads(stamp_file.read_text()).get("stamp") if stamp_file.is_file() else ""
        if recorded != stamp:
            raise StoreError(
                f"{folder} holds checkpoints of another run (other pairs, options or seed): "
                "run with the same options to resume, or delete that folder to start afresh"
            )
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    stamp_file.write_text(json.dumps({"stamp": stamp}))
    return None


def training_arguments(arguments_class: Any, folder: Path, settings: TrainSettings) -> Any:
    """The trainer's arguments shared by the embedder and the reranker."""
    return arguments_class(
        output_dir=str(folder),
        num_train_epochs=settings.epochs,
        per_device_train_batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        warmup_steps=settings.warmup_ratio,  # a float below 1: a share of the steps
        seed=settings.seed,
        data_seed=settings.seed,
        use_cpu=True,
        bf16=settings.bf16,
        save_strategy="steps",
        save_steps=settings.checkpoint_steps,
        save_total_limit=2,
        logging_steps=settings.checkpoint_steps,
        report_to="none",
        dataloader_num_workers=0,
        disable_tqdm=False,
    )


def with_negatives(pairs: list[Pair], seed: int) -> list[Pair]:
    """Every pair with a negative: a pair without a BM25 negative borrows another pair's
    passage (a random negative), so all rows have the same columns."""
    rng = random.Random(seed)
    out = []
    for n, pair in enumerate(pairs):
        negative = pair.negative
        while not negative and len(pairs) > 1:
            other = rng.randrange(len(pairs))
            negative = pairs[other].positive if other != n else ""
        out.append(replace(pair, negative=negative))
    return out


def weights_name(folder: Path, label: str) -> str:
    """`label` plus a short hash of the weights file: a name no other tuning shares."""
    digest = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()[:10]
    return f"{label}-{digest}"


def train_embedder(
    pairs: list[Pair], base: Path, out: Path, settings: TrainSettings, work: Path
) -> Path:
    """Fine-tune `base` on `pairs` into `out` (a sentence-transformers folder); checkpoints
    go to `work` and are removed once the model is saved."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    resume = checkpoint_dir(work, fingerprint(pairs, settings, {"base": str(base)}))
    set_seed(settings.seed, settings.threads)
    model = SentenceTransformer(str(base), device="cpu", local_files_only=True)
    inference_length, model.max_seq_length = model.max_seq_length, settings.max_seq_length
    rows = with_negatives(pairs, settings.seed)
    data = Dataset.from_dict(
        {
            "anchor": [p.query for p in rows],
            "positive": [p.positive for p in rows],
            "negative": [p.negative for p in rows],
        }
    )
    trainer = SentenceTransformerTrainer(
        model=model,
        args=training_arguments(SentenceTransformerTrainingArguments, work, settings),
        train_dataset=data,
        loss=MultipleNegativesRankingLoss(model),
    )
    trainer.train(resume_from_checkpoint=resume is not None)  # the last one in `work`
    model.max_seq_length = inference_length  # trained on shorter texts, reads as the base
    save_model(lambda tmp: model.save(str(tmp)), out, "embedder")
    shutil.rmtree(work, ignore_errors=True)
    return out


def save_model(save: Any, out: Path, label: str) -> None:
    """Write a model folder atomically (`save(tmp)`, identity file, rename over `out`)."""
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    save(tmp)
    name = weights_name(tmp, f"{out.parent.name or label}-{label}")
    (tmp / IDENTITY_FILE).write_text(json.dumps({"name": name}) + "\n")
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
