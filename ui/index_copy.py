"""`sciknow index copy --to URI`: the index's search parts on another backend.

The records (SQLite) and the embedding cache stay where they are and are the source;
the target's vectors, BM25 terms and symbols are written from them for the committed
generation, so nothing is embedded and the index answers as before. The target is
`faiss` (this data directory's FAISS and BM25 files) or a Milvus URI (a Milvus Lite
file, or `http://host:19530`); then point `[store]` at it.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from sciknow.config import Config
from sciknow.errors import ConfigError, StoreError


def add_index_parser(verbs: Any) -> None:
    """Register `sciknow index copy` on the verb parser."""
    index = verbs.add_parser("index", help="manage the index's backends")
    actions = index.add_subparsers(dest="index_action", required=True, metavar="ACTION")
    copy = actions.add_parser(
        "copy", help="write the index to another backend (FAISS or Milvus) without embedding"
    )
    copy.add_argument(
        "--to", required=True, metavar="URI",
        help="faiss, a Milvus Lite file (index.db) or a Milvus server (http://host:19530)",
    )  # fmt: skip
    copy.add_argument("--collection", help="Milvus collection (default: store.collection)")
    copy.set_defaults(run=run_copy)


def run_copy(args: argparse.Namespace, config: Config) -> int:
    from sciknow.index.factory import embed_policy, milvus_uri
    from sciknow.index.store import Store

    source = Store(config.data_path)
    if source.generation() == 0:
        raise StoreError(f"no index in {config.data_path} to copy: run `sciknow ingest`")
    policy = embed_policy(config)
    _check_vectors(source, policy)
    if args.to == "faiss":
        target, where = source, f"the FAISS files in {config.data_path}"
    else:
        from sciknow.index.milvus_store import MilvusStore

        uri = milvus_uri(args.to, config.data_path)
        collection = args.collection or config.store.collection
        target, where = MilvusStore(config.data_path, uri, collection), f"{uri} ({collection})"
    start = time.perf_counter()
    target.build_current(policy)
    stats = target.stats()
    print(
        f"copied generation {stats['generation']}: {stats['chunks']} chunks, "
        f"{stats['vectors']} vectors to {where} in {time.perf_counter() - start:.1f} s, "
        "nothing embedded"
    )
    return 0


def _check_vectors(store: Any, policy: Any) -> None:
    """Every vector the committed generation holds must be in the embedding cache."""
    if store.embed_policy_differs(policy):
        raise ConfigError(
            "the index was embedded under another [ingest] embedding policy than the "
            "configured one: run `sciknow ingest` first, or restore the policy"
        )
    embedder = store.meta_value("embedder") or ""
    missing = store.cache.missing(store.texts_by_hash(policy), embedder)
    if missing:
        raise StoreError(
            f"{len(missing)} of the index's vectors are not in {store.root}/embeddings.sqlite: "
            "run `sciknow ingest` to embed them again"
        )
