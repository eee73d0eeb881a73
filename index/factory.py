"""Build the index's parts (store, embedder, chunker) from a `Config`."""

from __future__ import annotations

from pathlib import Path

from sciknow.config import Config
from sciknow.index.chunking import Chunker, approx_tokens, hf_token_counter
from sciknow.index.embed import Embedder, make_embedder, package_model_dir
from sciknow.index.store import Store


def open_store(config: Config) -> Store:
    return Store(config.data_path)


def load_embedder(config: Config) -> Embedder:
    models = config.models
    return make_embedder(models.embedder, models.threads, models.embed_batch)


def _tokenizer_file(spec: str) -> Path | None:
    """The embedding model's tokenizer.json, so chunk budgets are in its own tokens."""
    if spec.startswith("openai:"):
        return None
    folder = (
        package_model_dir(spec.removeprefix("package:"))
        if spec.startswith("package:")
        else (Path(spec).expanduser())
    )
    file = folder / "tokenizer.json"
    return file if file.is_file() else None


def make_chunker(config: Config) -> Chunker:
    file = _tokenizer_file(config.models.embedder)
    return Chunker(
        max_tokens=config.ingest.chunk_tokens,
        overlap=config.ingest.chunk_overlap,
        manpage_tokens=config.ingest.max_manpage_tokens,
        count_tokens=hf_token_counter(str(file)) if file else approx_tokens,
        symbol_prefixes=tuple(config.profile.symbol_prefixes),
    )
