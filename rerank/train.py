"""Train a cross-encoder reranker from the index's own pairs (`index/pairs.py`), on the CPU.

The model starts from the embedder's transformer (all-MiniLM-L6-v2, or the tuned
embedder), cut to its first `layers` layers: a cross-encoder reads question and passage
together once per candidate, so its depth is its latency (20 candidates must score within
the reranking budget on 2 cores). A fresh one-logit head is trained with binary
cross-entropy: each query's passage is a positive, its BM25 hard negative and another
query's passage are negatives. Checkpoints, resume and seeding as for the embedder
(`index/finetune.py`).
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

from sciknow.index.finetune import (
    TrainSettings,
    checkpoint_dir,
    fingerprint,
    save_model,
    set_seed,
    training_arguments,
    with_negatives,
)
from sciknow.index.pairs import Pair


def labelled_rows(pairs: list[Pair], seed: int) -> dict[str, list]:
    """(query, passage, label) rows: the positive, the hard negative, a random passage."""
    rng = random.Random(seed)
    rows: dict[str, list] = {"query": [], "passage": [], "label": []}
    for n, pair in enumerate(with_negatives(pairs, seed)):
        other = (
            pairs[(n + 1 + rng.randrange(len(pairs) - 1)) % len(pairs)] if len(pairs) > 1 else pair
        )
        for passage, label in ((pair.positive, 1.0), (pair.negative, 0.0), (other.positive, 0.0)):
            if passage and (label or passage != pair.positive):
                rows["query"].append(pair.query)
                rows["passage"].append(passage)
                rows["label"].append(label)
    return rows


def train_reranker(
    pairs: list[Pair], base: Path, out: Path, settings: TrainSettings, work: Path, layers: int
) -> Path:
    """Train a cross-encoder from `base`'s first `layers` layers into `out`."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    from datasets import Dataset
    from sentence_transformers.cross_encoder import (
        CrossEncoder,
        CrossEncoderTrainer,
        CrossEncoderTrainingArguments,
    )
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

    stamp = fingerprint(pairs, settings, {"base": str(base), "layers": layers})
    resume = checkpoint_dir(work, stamp)
    set_seed(settings.seed, settings.threads)
    model = CrossEncoder(
        str(base),
        device="cpu",
        num_labels=1,
        max_length=settings.max_seq_length,
        local_files_only=True,
        config_kwargs={"num_hidden_layers": layers},
    )
    trainer = CrossEncoderTrainer(
        model=model,
        args=training_arguments(CrossEncoderTrainingArguments, work, settings),
        train_dataset=Dataset.from_dict(labelled_rows(pairs, settings.seed)),
        loss=BinaryCrossEntropyLoss(model),
    )
    trainer.train(resume_from_checkpoint=resume is not None)  # the last one in `work`
    save_model(lambda tmp: model.save_pretrained(str(tmp)), out, "reranker")
    shutil.rmtree(work, ignore_errors=True)
    return out
