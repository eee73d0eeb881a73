"""Build the index's parts (store, embedder, chunker) from a `Config`.

The chunker (LangChain's splitter) is imported only by `make_chunker`: the query path
never chunks, and a command-line search should not pay for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sciknow.config import Config
from sciknow.index.embed import Embedder, local_model_folder, make_embedder
from sciknow.index.embed_policy import EmbedPolicy
from sciknow.index.store import Store

if TYPE_CHECKING:
    from sciknow.index.chunking import Chunker


def open_store(config: Config, data_dir: Path | None = None) -> Store:
    """The configured store over `data_dir` (default: the config's): FAISS files there, or
    Milvus at `store.uri` (see `milvus_uri`)."""
    folder = data_dir or config.data_path
    if config.store.backend == "faiss":
        return Store(folder)
    from sciknow.index.milvus_store import MilvusStore

    return MilvusStore(folder, milvus_uri(config.store.uri, folder), config.store.collection)


def milvus_uri(uri: str, data_dir: Path) -> str:
    """`uri` as `pymilvus` takes it: a server URL as written, a file relative to the
    current folder, empty for `DATA_DIR/milvus.db` (Milvus Lite)."""
    if "://" in uri:
        return uri
    return str(Path(uri).expanduser().resolve() if uri else data_dir / "milvus.db")


def load_embedder(config: Config, store: Store | None = None) -> Embedder:
    """The configured embedder; with `store`, one that can query its index (see
    `Store.check_query_embedder`)."""
    models = config.models
    embedder = make_embedder(
        models.embedder,
        models.threads,
        models.embed_batch,
        models.embedder_backend,
        models.embedder_quantization,
    )
    if store is not None:
        store.check_query_embedder(embedder.name)
    return embedder


def _tokenizer_file(spec: str) -> Path | None:
    """The embedding model's tokenizer.json, so chunk budgets are in its own tokens."""
    folder = local_model_folder(spec)
    file = folder / "tokenizer.json" if folder else None
    return file if file and file.is_file() else None


def make_chunker(config: Config) -> Chunker:
    from sciknow.index.chunking import Chunker, approx_tokens, hf_token_counter

    file = _tokenizer_file(config.models.embedder)
    return Chunker(
        max_tokens=config.ingest.chunk_tokens,
        overlap=config.ingest.chunk_overlap,
        manpage_tokens=config.ingest.max_manpage_tokens,
        count_tokens=hf_token_counter(str(file)) if file else approx_tokens,
        symbol_prefixes=tuple(config.profile.symbol_prefixes),
    )


def embed_policy(config: Config) -> EmbedPolicy:
    """Which chunks the configured ingest embeds, and of what text."""
    ingest = config.ingest
    return EmbedPolicy.of(ingest.skip_embedding_kinds, ingest.embed_head_chars)
