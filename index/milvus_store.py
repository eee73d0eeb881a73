"""The index's search engine on Milvus: vectors, BM25 terms, symbols and filter fields.

`MilvusStore` is a `Store` whose searchable parts live in one Milvus collection instead
of FAISS and BM25 files; everything else (records, source state, the symbol table the
name check reads, the embedding cache) stays in the data directory's SQLite, which
remains the source of truth. The same `pymilvus` client talks to Milvus Lite (a local
file, embedded) and to a Milvus server or cluster (`http://host:19530`).

Generations. The FAISS store writes each generation's files beside the last and names
the current one in SQLite. Milvus cannot copy a collection cheaply, so each row carries
the generation it appeared in (`added`) and the one that removed it (`removed`, 0 while
live), and every search asks for the rows live at the generation SQLite has committed.
A writer inserts changed chunks as rows of the next generation and marks rows of
deleted or changed chunks removed by it; neither is visible until SQLite commits the new
generation number, so an ingest that dies at any point leaves the previous generation
answering. The next writer deletes what the dead one left (rows added after the
committed generation, removal marks after it) and the rows committed removals retired.
One switch, one source of truth, as with the FAISS files: a collection alias would be a
second switch that a crash could leave disagreeing with SQLite.

BM25. Milvus computes BM25 itself from a text field (its BM25 function). The field
holds the chunk's identifier-aware terms (`terms.py`), the same the FAISS store's BM25
indexes, and queries are passed through `terms()` too, so `KSPSetTolerances` matches
whole and by its parts on either backend; k1 and b are bm25s's defaults. Each term is
written in hexadecimal, one word whatever the analyzer: Milvus's standard tokenizer
would split `-ksp_rtol` at its dash (and Milvus Lite's at `3.18`'s dot, the server's
not), so the two backends, and Milvus Lite and a server, would count other terms.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from sciknow.errors import StoreError
from sciknow.index.embed_policy import EmbedPolicy
from sciknow.index.store import Filters, Store
from sciknow.index.terms import terms
from sciknow.records import Chunk

LAYOUT = 2  # of the rows' fields and their encoding: bump it and old collections are rebuilt
GENERATION_BITS = 24  # a row's primary key is its chunk rowid and the generation it was added
BM25_PARAMS = {"bm25_k1": 1.5, "bm25_b": 0.75}  # bm25s's defaults, as the FAISS store uses
INSERT_BATCH = 1000
QUERY_BATCH = 4000
SYMBOL_ROWS = 16384
MAX_TEXT = 65535  # Milvus's VARCHAR limit, in bytes (hexadecimal terms are ASCII)
FIELDS = ("pk", "rowid", "terms", "vector", "has_vector", "vector_key", "symbols", "defines",
          "kind", "source", "official", "added", "removed")  # fmt: skip
TOKEN_ENV = "SCIKNOW_MILVUS_TOKEN"


def milvus_client(uri: str) -> Any:
    """A `pymilvus` client for `uri`: a Milvus Lite file, or a server URL whose token
    (if any) comes from `SCIKNOW_MILVUS_TOKEN`."""
    # gRPC prints an info line on stderr whenever this process forks (git, a sandbox)
    # while its threads are in gRPC; errors still show. Read when gRPC first loads.
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    try:
        from pymilvus import MilvusClient, MilvusException
    except ImportError as err:
        raise StoreError(
            "store.backend = 'milvus' needs pymilvus (and milvus-lite for a file uri): "
            "pip install pymilvus milvus-lite"
        ) from err
    if "://" not in uri:
        Path(uri).expanduser().parent.mkdir(parents=True, exist_ok=True)
        # Milvus Lite serves gRPC inside this process and lacks AllocTimestamp and the
        # iterators' session timestamps, which pymilvus tries (creating an index, paging
        # a query) and then does without, logging each try as an error or a warning.
        logging.getLogger("grpc._server").setLevel(logging.CRITICAL)
        logging.getLogger("pymilvus.client.iterator.query_iterator").setLevel(logging.ERROR)
    try:
        return MilvusClient(uri, token=os.environ.get(TOKEN_ENV, ""))
    except MilvusException as err:
        if "://" in uri:
            raise
        raise StoreError(
            f"cannot open the Milvus Lite file {uri} ({err.message}): Milvus Lite lets one "
            "process at a time use it, so stop the other (a `sciknow serve`?) or use a "
            "Milvus server (store.uri = 'http://host:19530')"
        ) from err


def _schema(client: Any, dimension: int) -> Any:
    """Chunk rows: the vector (zeros and `has_vector` false for chunks the embedding
    policy skips), BM25 over the terms, lowercased symbols (and those the chunk defines),
    the filter fields and the generation bounds."""
    from pymilvus import DataType, Function, FunctionType

    schema = client.create_schema(auto_id=False)
    schema.add_field("pk", DataType.INT64, is_primary=True)
    schema.add_field("rowid", DataType.INT64)
    schema.add_field(
        "terms", DataType.VARCHAR, max_length=MAX_TEXT, enable_analyzer=True,
        analyzer_params={"tokenizer": "standard"},
    )  # fmt: skip
    schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dimension)
    schema.add_field("has_vector", DataType.BOOL)
    schema.add_field("vector_key", DataType.VARCHAR, max_length=1024)
    for name in ("symbols", "defines"):
        schema.add_field(
            name, DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=4096,
            max_length=512,
        )  # fmt: skip
    for name in ("kind", "source"):
        schema.add_field(name, DataType.VARCHAR, max_length=512)
    schema.add_field("official", DataType.BOOL)
    schema.add_field("added", DataType.INT64)
    schema.add_field("removed", DataType.INT64)
    schema.add_function(
        Function(
            name="bm25", function_type=FunctionType.BM25, input_field_names=["terms"],
            output_field_names=["sparse"],
        )
    )  # fmt: skip
    return schema


def _index_params(client: Any) -> Any:
    """Exact inner product (FAISS's `IndexFlatIP`, so both backends rank alike) and
    Milvus's sparse BM25 index."""
    params = client.prepare_index_params()
    params.add_index("vector", index_type="FLAT", metric_type="IP")
    params.add_index(
        "sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25", params=BM25_PARAMS
    )
    return params


def _encoded(words: list[str]) -> str:
    """Terms as the BM25 field holds them: each one a single hexadecimal word."""
    return " ".join(word.encode().hex() for word in words)


def _bm25_text(chunk_terms: str) -> str:
    """A chunk's terms for the BM25 field, cut at a whole term within Milvus's limit."""
    text = _encoded(chunk_terms.split())
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT + 1].rpartition(" ")[0]


def _live(generation: int) -> str:
    """Rows a reader of `generation` sees."""
    return f"added <= {generation} and (removed == 0 or removed > {generation})"


class FilteredRowids(np.ndarray):
    """The rowids a `Filters` allows, as `Store.allowed_rowids` returns them, carrying
    the filter as an expression over the collection's own fields: a search then filters
    inside Milvus instead of sending every allowed rowid (3,600 of them doubled a dense
    search's time on the docs index). Arrays derived from it are plain rowids again."""

    expression: str


def _filter_expression(filters: Filters) -> str:
    clauses = [
        f"{field} in {json.dumps(list(values))}"
        for field, values in (("kind", filters.kinds), ("source", filters.sources))
        if values
    ]
    if filters.official is not None:
        clauses.append(f"official == {str(filters.official).lower()}")
    return " and ".join(clauses)


def _within(expression: str, allowed: np.ndarray | None) -> str:
    if allowed is None:
        return expression
    if isinstance(allowed, FilteredRowids):
        return f"{expression} and {allowed.expression}"
    return f"{expression} and rowid in [{','.join(map(str, allowed.tolist()))}]"


class MilvusStore(Store):
    """A `Store` that searches in Milvus (see the module docstring)."""

    def __init__(self, data_dir: str | Path, uri: str, collection: str) -> None:
        super().__init__(data_dir)
        self.uri = uri
        self.client = milvus_client(uri)
        self.collection = collection
        # SQLite's meta row naming the generation this collection holds, written in the
        # transaction that commits it: a generation the FAISS store (or another collection)
        # committed since is never served from stale rows, nor rows of another layout.
        self._marker = f"milvus:v{LAYOUT}:{uri}#{collection}"
        if self._has_collection():  # a new process finds it released (Milvus Lite)
            self.client.load_collection(collection)

    def _has_collection(self) -> bool:
        return bool(self.client.has_collection(self.collection))

    def needs_generation(self) -> bool:
        """Also when the collection does not hold the committed generation (a data
        directory the FAISS store built, a new server): the next ingest brings it there."""
        generation = self.generation()
        synced = self.meta_value(self._marker) == str(generation) and self._has_collection()
        return generation == 0 or not synced

    def _committed(self) -> int:
        """The generation readers see; refused when the collection does not hold it."""
        generation = self.generation()
        if generation and self.meta_value(self._marker) != str(generation):
            raise StoreError(
                f"the Milvus collection {self.collection!r} at {self.uri} does not hold the "
                f"index in {self.root} (generation {generation}): run `sciknow ingest` or "
                f"`sciknow index copy --to {self.uri}`"
            )
        return generation

    # ----- reading -----------------------------------------------------------------

    def allowed_rowids(self, filters: Filters) -> np.ndarray | None:
        rowids = super().allowed_rowids(filters)
        if rowids is None:
            return None
        allowed = rowids.view(FilteredRowids)
        allowed.expression = _filter_expression(filters)
        return allowed

    def _search(
        self, data: list[Any], field: str, k: int, expression: str
    ) -> list[list[tuple[int, float]]]:
        if not self._has_collection():
            return [[] for _ in data]
        results = self.client.search(
            self.collection, data=data, anns_field=field, limit=k, filter=expression,
            output_fields=["rowid"],
        )  # fmt: skip
        return [
            [(int(hit["entity"]["rowid"]), float(hit["distance"])) for hit in row]
            for row in results
        ]

    def search_dense_many(
        self, vectors: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> list[list[tuple[int, float]]]:
        """Top-k chunk rowids by inner product for each row of `vectors`, in one call."""
        if len(vectors) == 0 or (allowed is not None and len(allowed) == 0):
            return [[] for _ in range(len(vectors))]
        queries = np.asarray(vectors, dtype=np.float32).tolist()
        expression = _within(f"has_vector and {_live(self._committed())}", allowed)
        return self._search(queries, "vector", k, expression)

    def search_terms(
        self, query: str, k: int, allowed: np.ndarray | None = None
    ) -> list[tuple[int, float]]:
        """Top-k chunk rowids by Milvus's BM25 over identifier-aware terms."""
        words = _encoded(terms(query))
        if not words or (allowed is not None and len(allowed) == 0):
            return []
        hits = self._search([words], "sparse", k, _within(_live(self._committed()), allowed))
        return [(rowid, abs(score)) for rowid, score in hits[0] if score]  # Lite negates it

    def lookup_symbols(
        self, names: Iterable[str], k: int, allowed: np.ndarray | None = None
    ) -> list[tuple[int, float]]:
        """Chunks that define or mention the named symbols, scored as the SQLite store
        scores them: 2 per query symbol defined, 1 per symbol mentioned.

        One query of at most `SYMBOL_ROWS` rows (Milvus's limit for one query; paging
        through more cost 0.9 s a question on Milvus Lite); past that, the chunks that
        define a name are fetched too, so a name every code chunk mentions still finds
        its man page first."""
        lowered = sorted({n.lower() for n in names})
        if not lowered or not self._has_collection():
            return []
        live = _within(_live(self._committed()), allowed)
        rows = self._symbol_rows("symbols", lowered, live)
        if len(rows) == SYMBOL_ROWS:
            rows += self._symbol_rows("defines", lowered, live)
        wanted = set(lowered)
        scores = {
            int(row["rowid"]): float(sum(s in wanted for s in row["symbols"] + row["defines"]))
            for row in rows
        }
        return sorted(scores.items(), key=lambda hit: (-hit[1], hit[0]))[:k]

    def _symbol_rows(self, field: str, names: list[str], live: str) -> list[dict[str, Any]]:
        return self.client.query(
            self.collection, filter=f"array_contains_any({field}, {json.dumps(names)}) and {live}",
            output_fields=["rowid", "symbols", "defines"], limit=SYMBOL_ROWS,
        )  # fmt: skip

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "store": f"milvus {self.uri} ({self.collection})"}

    def _vector_count(self) -> int:
        if not self._has_collection():
            return 0
        expression = f"has_vector and {_live(self._committed())}"
        rows = self.client.query(self.collection, filter=expression, output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def _rows(self, expression: str, fields: list[str]) -> Iterator[dict[str, Any]]:
        """Every row matching `expression` (a query's own limit is 16,384)."""
        iterator = self.client.query_iterator(
            self.collection, batch_size=QUERY_BATCH, filter=expression, output_fields=fields
        )
        try:
            while batch := iterator.next():
                yield from batch
        finally:
            iterator.close()

    # ----- writing -----------------------------------------------------------------

    def _build_generation(
        self, generation: int, embedder_name: str, dimension: int, policy: EmbedPolicy
    ) -> None:
        """Bring the collection from the committed generation's rows to SQLite's rows as
        they stand in this transaction: insert what is new or re-embedded, mark what is
        gone; readers see neither until SQLite commits `generation`."""
        if self._has_collection() and self.meta_value(self._marker) is None:
            self.client.drop_collection(self.collection)  # another layout's, or index's
        if not self._has_collection():
            schema = _schema(self.client, dimension)
            self.client.create_collection(
                self.collection, schema=schema, index_params=_index_params(self.client),
                consistency_level="Strong",
            )  # fmt: skip
        want = self._wanted_rows(embedder_name, policy)
        have = {
            (int(row["rowid"]), row["vector_key"]): int(row["pk"])
            for row in self._rows(_live(self.generation()), ["pk", "rowid", "vector_key"])
        }
        wanted_keys = {(row["rowid"], row["vector_key"]) for row in want}
        gone = [pk for key, pk in have.items() if key not in wanted_keys]
        self._mark_removed(gone, generation)
        new = [row for row in want if (row["rowid"], row["vector_key"]) not in have]
        self._insert(new, generation, embedder_name, dimension)
        self.client.flush(self.collection)
        self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (self._marker, generation))

    def _wanted_rows(self, embedder_name: str, policy: EmbedPolicy) -> list[dict[str, Any]]:
        """One row per chunk in SQLite, without its vector: `vector_key` names the cached
        vector (embedder and text hash; "" for none)."""
        symbols: dict[int, tuple[list[str], list[str]]] = {}
        for rowid, lower, defines in self.conn.execute(
            "SELECT chunk_rowid, lower, defines FROM symbols"
        ):
            mentioned, defined = symbols.setdefault(rowid, ([], []))
            mentioned.append(lower)
            if defines:
                defined.append(lower)
        rows = self.conn.execute(
            "SELECT c.rowid, c.id, c.content_hash, c.text, c.terms, d.kind, d.source, "
            "d.official FROM chunks c JOIN documents d ON d.id = c.doc_id ORDER BY c.rowid"
        )
        out = []
        for rowid, chunk_id, chash, text, chunk_terms, kind, source, official in rows:
            keys = list(policy.texts(kind, [Chunk(chunk_id, "", text, content_hash=chash)]))
            mentioned, defined = symbols.get(rowid, ([], []))
            out.append(
                {
                    "rowid": rowid,
                    "terms": _bm25_text(chunk_terms),
                    "vector_key": f"{embedder_name}#{keys[0]}" if keys else "",
                    "symbols": mentioned,
                    "defines": defined,
                    "kind": kind,
                    "source": source,
                    "official": bool(official),
                }
            )
        return out

    def _insert(
        self, rows: list[dict[str, Any]], generation: int, embedder_name: str, dimension: int
    ) -> None:
        """Insert `rows` as added by `generation`, their vectors from the embedding cache."""
        for start in range(0, len(rows), INSERT_BATCH):
            batch = rows[start : start + INSERT_BATCH]
            hashes = [row["vector_key"].rpartition("#")[2] for row in batch if row["vector_key"]]
            vectors = iter(self.cache.get(hashes, embedder_name, dimension))
            zero = [0.0] * dimension
            self.client.insert(
                self.collection,
                [
                    {
                        **row,
                        "pk": (row["rowid"] << GENERATION_BITS) | generation,
                        "vector": next(vectors).tolist() if row["vector_key"] else zero,
                        "has_vector": bool(row["vector_key"]),
                        "added": generation,
                        "removed": 0,
                    }
                    for row in batch
                ],
            )

    def _mark_removed(self, pks: list[int], generation: int) -> None:
        """Rewrite the rows `pks` as removed by `generation` (0: live again)."""
        for start in range(0, len(pks), QUERY_BATCH):
            batch = pks[start : start + QUERY_BATCH]
            rows = self.client.query(
                self.collection, filter=f"pk in [{','.join(map(str, batch))}]",
                output_fields=list(FIELDS),
            )  # fmt: skip
            self.client.upsert(self.collection, [{**row, "removed": generation} for row in rows])

    def _remove_stray_generations(self) -> None:
        """Drop what a dead writer left (rows added after the committed generation, and
        its removal marks) and the rows that committed removals retired."""
        if not self._has_collection():
            return
        committed = self.generation()
        self.client.delete(
            self.collection,
            filter=f"added > {committed} or (removed > 0 and removed <= {committed})",
        )
        marked = [int(row["pk"]) for row in self._rows(f"removed > {committed}", ["pk"])]
        self._mark_removed(marked, 0)
        self.client.flush(self.collection)

    def build_current(self, policy: EmbedPolicy) -> None:
        """A fresh collection of the committed generation's chunks (see `Store`)."""
        if self._has_collection():
            self.client.drop_collection(self.collection)
        super().build_current(policy)
