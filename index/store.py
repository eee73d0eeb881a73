"""The on-disk index: SQLite for records and state, FAISS for vectors, BM25 for terms.

Atomicity. SQLite is the source of truth; the FAISS and BM25 files are derived
from it and written per *generation* (`vectors/gen-N.faiss`, `bm25/gen-N/`).
A write (`Store.writer()`) runs in one SQLite transaction; on success it builds
the next generation's files under temporary names, renames them into place,
then records the new generation number in the same transaction and commits.
A crash before the commit rolls SQLite back and leaves the previous generation
(files and rows) untouched and readable; stray files of an unfinished
generation are removed by the next writer. Readers load the generation named
in SQLite, so they never see half an index.

Embeddings live in a separate cache database keyed by (text hash, embedder name:
model and runtime, so vectors of two runtimes never mix), which the ingest commits
in large transactions as it goes: a crashed ingest loses little embedding work, and
re-ingest embeds only chunks whose text changed.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import sqlite3
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from sciknow.errors import StoreError
from sciknow.index.chunking import defined_symbol
from sciknow.index.embed_policy import EmbedPolicy
from sciknow.index.terms import terms
from sciknow.records import Chunk, Document, Evidence

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY, source TEXT NOT NULL, origin TEXT NOT NULL, kind TEXT NOT NULL,
    uri TEXT NOT NULL, title TEXT NOT NULL, official INTEGER NOT NULL, date TEXT,
    version TEXT, section TEXT, start_line INTEGER, end_line INTEGER, symbols TEXT NOT NULL,
    meta TEXT NOT NULL, content_hash TEXT NOT NULL, text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_origin ON documents (source, origin);
CREATE TABLE IF NOT EXISTS chunks (
    rowid INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL,
    doc_id TEXT NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    text TEXT NOT NULL, section TEXT, start INTEGER, end_ INTEGER, symbols TEXT NOT NULL,
    content_hash TEXT NOT NULL, terms TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks (doc_id);
CREATE TABLE IF NOT EXISTS symbols (
    symbol TEXT NOT NULL, lower TEXT NOT NULL, chunk_rowid INTEGER NOT NULL
        REFERENCES chunks (rowid) ON DELETE CASCADE,
    defines INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS symbols_lower ON symbols (lower);
CREATE INDEX IF NOT EXISTS symbols_chunk ON symbols (chunk_rowid);
-- Definitions alone: a type every page mentions (PetscInt) has one definition.
CREATE INDEX IF NOT EXISTS symbols_defined ON symbols (lower) WHERE defines = 1;
CREATE TABLE IF NOT EXISTS source_state (source TEXT PRIMARY KEY, state TEXT NOT NULL);
"""

SQLITE_HEADER = b"SQLite format 3\x00"
NEARLY_FULL_BYTES = 1 << 20  # free space under which an I/O error is put down to a full disk

CACHE_SCHEMA = """
CREATE TABLE IF NOT EXISTS embeddings (
    content_hash TEXT NOT NULL, model TEXT NOT NULL, vector BLOB NOT NULL,
    PRIMARY KEY (content_hash, model)
);
"""


@dataclass
class Filters:
    """Restrict retrieval by document kind, source and official status."""

    kinds: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    official: bool | None = None

    def __bool__(self) -> bool:
        return bool(self.kinds or self.sources or self.official is not None)

    def sql(self) -> tuple[str, list[Any]]:
        clauses, params = [], []
        if self.kinds:
            clauses.append(f"d.kind IN ({','.join('?' * len(self.kinds))})")
            params.extend(self.kinds)
        if self.sources:
            clauses.append(f"d.source IN ({','.join('?' * len(self.sources))})")
            params.extend(self.sources)
        if self.official is not None:
            clauses.append("d.official = ?")
            params.append(int(self.official))
        return (" AND ".join(clauses) or "1"), params


_DOC_COLUMNS = (
    "id, source, origin, kind, uri, title, official, date, version, section, start_line, "
    "end_line, symbols, meta, content_hash, text"
)


def _document(row: tuple[Any, ...]) -> Document:
    """A `Document` from a row of `_DOC_COLUMNS`."""
    fields = dict(zip(_DOC_COLUMNS.split(", "), row, strict=True))
    fields.update(
        official=bool(fields["official"]),
        symbols=json.loads(fields["symbols"]),
        meta=json.loads(fields["meta"]),
    )
    return Document(**fields)


class StorageError(StoreError, RuntimeError):
    """A storage fault in one line: what happened, which file, what to do; every verb
    prints it as `sciknow: error: ...` instead of a traceback. Also a RuntimeError, as
    storage faults were before they had a type."""


def storage_error(err: BaseException, path: Path) -> StorageError | None:
    """The one line for a SQLite or file-system error on `path` (a database file), or None
    when `err` is no storage fault."""
    text = str(err).lower()
    code = getattr(err, "sqlite_errorcode", 0) & 0xFF  # the primary result code
    folder = path.parent
    if (
        code == sqlite3.SQLITE_FULL
        or getattr(err, "errno", None) == errno.ENOSPC
        or "no space left" in text
    ):
        return _full(folder)
    if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return _damaged(path)
    if code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR) or (
        isinstance(err, OSError)
    ):
        if not os.access(folder, os.W_OK) or getattr(err, "errno", None) == errno.EROFS:
            return StorageError(
                f"the data directory {folder} is read-only: make it writable, or point "
                "--data-dir (SCIKNOW_DATA_DIR) at a writable copy"
            )
        if _nearly_full(folder):  # SQLite says "disk I/O error" when WAL or shm cannot grow
            return _full(folder)
        return StorageError(f"cannot use {path}: {err}")
    return None


def _nearly_full(folder: Path) -> bool:
    try:
        stats = os.statvfs(folder)
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize < NEARLY_FULL_BYTES


def _full(folder: Path) -> StorageError:
    return StorageError(
        f"the disk is full ({folder}): free space and rerun; the last index is intact"
    )


def _damaged(path: Path) -> StorageError:
    return StorageError(
        f"{path.name} is damaged ({path}): restore it from a backup, or move it aside and "
        "re-ingest (sciknow ingest)"
    )


def _reraise(err: BaseException, path: Path) -> NoReturn:
    fault = storage_error(err, path)
    if fault is None:
        raise err
    raise fault from err


class _Connection(sqlite3.Connection):
    """A connection whose statements report storage faults as `StorageError`."""

    path: Path

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        try:
            return super().execute(sql, parameters)
        except sqlite3.DatabaseError as err:
            _reraise(err, self.path)

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> sqlite3.Cursor:
        try:
            return super().executemany(sql, parameters)
        except sqlite3.DatabaseError as err:
            _reraise(err, self.path)

    def executescript(self, script: str, /) -> sqlite3.Cursor:
        try:
            return super().executescript(script)
        except sqlite3.DatabaseError as err:
            _reraise(err, self.path)

    def commit(self) -> None:
        try:
            super().commit()
        except sqlite3.DatabaseError as err:
            _reraise(err, self.path)


def _check_file(path: Path) -> None:
    """A database file that exists is a SQLite file: a 0-byte or overwritten index would
    otherwise open as an empty one, or fail later with SQLite's own words."""
    if not path.exists():
        return
    try:
        with path.open("rb") as handle:
            head = handle.read(len(SQLITE_HEADER))
    except OSError as err:
        _reraise(err, path)
    if head != SQLITE_HEADER:
        raise _damaged(path)


def _connect(path: Path) -> sqlite3.Connection:
    _check_file(path)
    try:
        conn = sqlite3.connect(
            path, timeout=30, isolation_level=None, check_same_thread=False, factory=_Connection
        )
    except sqlite3.Error as err:
        _reraise(err, path)
    conn.path = path
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def _select_in(
    conn: sqlite3.Connection, sql: str, fixed: list[Any], values: Iterable[Any]
) -> Iterator[tuple]:
    """Rows of `sql` (ending in `IN`) for `values`, in batches under SQLite's variable limit."""
    values = list(values)
    for start in range(0, len(values), 500):
        batch = values[start : start + 500]
        yield from conn.execute(f"{sql} ({','.join('?' * len(batch))})", [*fixed, *batch])


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def same_model(first: str, second: str) -> bool:
    """Whether two embedder names differ at most in their runtime (`st:model+onnx-int8`)."""
    return first.partition("+")[0] == second.partition("+")[0]


class EmbeddingCache:
    """Vectors by (text hash, model), committed immediately so crashes lose no work."""

    def __init__(self, path: Path) -> None:
        self.conn = _connect(path)
        self.conn.executescript(CACHE_SCHEMA)

    def missing(self, hashes: Iterable[str], model: str) -> list[str]:
        wanted = list(dict.fromkeys(hashes))
        sql = "SELECT content_hash FROM embeddings WHERE model = ? AND content_hash IN"
        have = {row[0] for row in _select_in(self.conn, sql, [model], wanted)}
        return [h for h in wanted if h not in have]

    def put(self, hashes: list[str], vectors: np.ndarray, model: str) -> None:
        vectors = vectors.astype(np.float32)
        rows = [(h, model, v.tobytes()) for h, v in zip(hashes, vectors, strict=True)]
        with self.conn:
            self.conn.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?)", rows)

    def get(self, hashes: list[str], model: str, dimension: int | None = None) -> np.ndarray:
        """Cached vectors in the order of `hashes` (all must be cached); `dimension` defaults
        to the stored vectors' own, so a caller need not load the model to know it."""
        sql = "SELECT content_hash, vector FROM embeddings WHERE model = ? AND content_hash IN"
        found = dict(_select_in(self.conn, sql, [model], hashes))
        if dimension is None:
            dimension = len(next(iter(found.values()), b"")) // 4
        out = np.zeros((len(hashes), dimension), dtype=np.float32)
        for i, h in enumerate(hashes):
            out[i] = np.frombuffer(found[h], dtype=np.float32)
        return out


class Store:
    """Records, vectors and terms of one data directory (see the module docstring)."""

    def __init__(self, data_dir: str | Path) -> None:
        self.root = Path(data_dir)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            (self.root / "vectors").mkdir(exist_ok=True)
            (self.root / "bm25").mkdir(exist_ok=True)
        except OSError as err:
            _reraise(err, self.root / "index.sqlite")
        self.conn = _connect(self.root / "index.sqlite")
        self.conn.executescript(SCHEMA)
        self.cache = EmbeddingCache(self.root / "embeddings.sqlite")
        self._loaded_generation = -1
        self._faiss: Any = None
        self._bm25: Any = None
        self._bm25_rowids = np.zeros(0, dtype=np.int64)

    def check(self) -> None:
        """What `sciknow serve` needs before it starts: a writable data directory (votes go
        there) and an index whose every page reads (`PRAGMA quick_check`), so that it refuses
        to start instead of failing on the first question that reads a damaged page."""
        if not os.access(self.root, os.W_OK):
            _reraise(PermissionError(errno.EACCES, "read-only"), self.root / "index.sqlite")
        problem = self.conn.execute("PRAGMA quick_check(1)").fetchone()[0]
        if problem != "ok":
            raise _damaged(self.root / "index.sqlite")

    # ----- reading -----------------------------------------------------------------

    def generation(self) -> int:
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(row[0]) if row else 0

    def meta_value(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def get_state(self, source: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT state FROM source_state WHERE source = ?", (source,)
        ).fetchone()
        return json.loads(row[0]) if row else None

    def _ensure_loaded(self) -> None:
        """Load the FAISS and BM25 files of the committed generation (once per generation)."""
        generation = self.generation()
        if generation == self._loaded_generation:
            return
        self._faiss, self._bm25, self._bm25_rowids = None, None, np.zeros(0, dtype=np.int64)
        if generation > 0:
            import bm25s
            import faiss

            if self.needs_generation():  # another backend (`MilvusStore`) committed it
                raise StorageError(
                    f"the index in {self.root} has no FAISS files for its generation "
                    f"{generation} (another store backend wrote it): run `sciknow ingest` "
                    "or `sciknow index copy --to faiss`"
                )
            self._faiss = faiss.read_index(str(self._faiss_path(generation)))
            bm25_dir = self._bm25_path(generation)
            self._bm25_rowids = np.load(bm25_dir / "rowids.npy")
            if len(self._bm25_rowids):
                self._bm25 = bm25s.BM25.load(str(bm25_dir))
        self._loaded_generation = generation

    def allowed_rowids(self, filters: Filters) -> np.ndarray | None:
        if not filters:
            return None
        where, params = filters.sql()
        rows = self.conn.execute(
            f"SELECT c.rowid FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE {where}",
            params,
        )
        return np.fromiter((r[0] for r in rows), dtype=np.int64)

    def search_dense(
        self, vector: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> list[tuple[int, float]]:
        """Top-k chunk rowids by inner product (cosine: vectors are unit length)."""
        return self.search_dense_many(np.asarray(vector).reshape(1, -1), k, allowed)[0]

    def search_dense_many(
        self, vectors: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> list[list[tuple[int, float]]]:
        """`search_dense` for each row of `vectors`, in one FAISS call (one selector)."""
        import faiss

        self._ensure_loaded()
        none: list[list[tuple[int, float]]] = [[] for _ in range(len(vectors))]
        if self._faiss is None or self._faiss.ntotal == 0 or len(vectors) == 0:
            return none
        params = None
        if allowed is not None:
            if len(allowed) == 0:
                return none
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(allowed))
        queries = np.ascontiguousarray(vectors, dtype=np.float32)
        scores, ids = self._faiss.search(queries, min(k, self._faiss.ntotal), params=params)
        return [
            [(int(i), float(s)) for i, s in zip(row_ids, row_scores, strict=True) if i >= 0]
            for row_ids, row_scores in zip(ids, scores, strict=True)
        ]

    def search_terms(
        self, query: str, k: int, allowed: np.ndarray | None = None
    ) -> list[tuple[int, float]]:
        """Top-k chunk rowids by BM25 over identifier-aware terms."""
        self._ensure_loaded()
        if self._bm25 is None:
            return []
        vocab = self._bm25.vocab_dict
        query_terms = [t for t in terms(query) if t in vocab]
        if not query_terms:
            return []
        mask = None
        if allowed is not None:
            mask = np.isin(self._bm25_rowids, allowed).astype(np.float32)
        scores = self._bm25.get_scores(query_terms, weight_mask=mask)
        top = np.argsort(-scores, kind="stable")[:k]
        return [(int(self._bm25_rowids[i]), float(scores[i])) for i in top if scores[i] > 0]

    def lookup_symbols(
        self, names: Iterable[str], k: int, allowed: np.ndarray | None = None
    ) -> list[tuple[int, float]]:
        """Chunks that define (first) or mention the named symbols, case-insensitively.

        Score = 2 per query symbol defined + 1 per symbol mentioned, so the man page
        of `KSPSetTolerances` outranks the hundred pages that merely call it.
        """
        lowered = list({n.lower() for n in names})
        if not lowered:
            return []
        rows = self.conn.execute(
            f"SELECT chunk_rowid, SUM(1 + defines) AS score, COUNT(*) FROM symbols "
            f"WHERE lower IN ({','.join('?' * len(lowered))}) GROUP BY chunk_rowid "
            f"ORDER BY score DESC, chunk_rowid LIMIT ?",
            [*lowered, k * 20 if allowed is not None else k],
        ).fetchall()
        allowed_set = set(allowed.tolist()) if allowed is not None else None
        hits = [(int(r[0]), float(r[1])) for r in rows]
        if allowed_set is not None:
            hits = [h for h in hits if h[0] in allowed_set]
        return hits[:k]

    def known_symbols(self, words: Iterable[str]) -> dict[str, set[str]]:
        """Those of `words` that are symbols in the index (any case), lowercased, each with
        the spellings the index has for it."""
        lowered = list({w.lower() for w in words})
        if not lowered:
            return {}
        rows = self.conn.execute(
            "SELECT DISTINCT lower, symbol FROM symbols "
            f"WHERE lower IN ({','.join('?' * len(lowered))})",
            lowered,
        )
        known: dict[str, set[str]] = {}
        for lower, symbol in rows:
            known.setdefault(lower, set()).add(symbol)
        return known

    def evidence(self, rowids: list[int]) -> dict[int, Evidence]:
        if not rowids:
            return {}
        rows = self.conn.execute(
            "SELECT c.rowid, c.id, c.doc_id, c.text, c.section, d.title, d.uri, d.kind, "
            "d.source, d.official FROM chunks c JOIN documents d ON d.id = c.doc_id "
            f"WHERE c.rowid IN ({','.join('?' * len(rowids))})",
            rowids,
        )
        out = {}
        for rowid, cid, doc_id, text, section, title, uri, kind, source, official in rows:
            out[rowid] = Evidence(
                chunk_id=cid,
                doc_id=doc_id,
                text=text,
                title=title,
                uri=uri,
                kind=kind,
                source=source,
                official=bool(official),
                section=section or "",
            )
        return out

    def document(self, doc_id: str) -> Document | None:
        """The whole stored document (all fields, `meta` decoded), or None."""
        row = self.conn.execute(f"SELECT {_DOC_COLUMNS} FROM documents WHERE id = ?", (doc_id,))
        found = row.fetchone()
        return _document(found) if found else None

    def documents(self, kinds: Collection[str], since: str = "") -> Iterator[Document]:
        """Every document of `kinds` dated `since` or later (ISO dates compare as text),
        oldest first; undated ones only when no `since` is given."""
        sql = f"SELECT {_DOC_COLUMNS} FROM documents WHERE kind IN ({','.join('?' * len(kinds))})"
        params: list[Any] = list(kinds)
        if since:
            sql += " AND date >= ?"
            params.append(since)
        yield from map(_document, self.conn.execute(sql + " ORDER BY date, id", params))

    def defining_documents(self, name: str, limit: int = 5) -> list[Document]:
        """Documents whose chunks define `name` (any case): its man page or definition first,
        man pages before other kinds (a man page is the reference a reader wants)."""
        rows = self.conn.execute(
            f"SELECT DISTINCT {', '.join('d.' + c for c in _DOC_COLUMNS.split(', '))} "
            "FROM symbols s JOIN chunks c ON c.rowid = s.chunk_rowid "
            "JOIN documents d ON d.id = c.doc_id WHERE s.lower = ? AND s.defines = 1 "
            "ORDER BY d.kind != 'manpage', d.id LIMIT ?",
            (name.lower(), limit),
        )
        return [_document(r) for r in rows]

    def documents_at(self, path: str, kind: str, limit: int = 10) -> list[Document]:
        """Documents of `kind` read from the file `path` or from any file ending in `/path`
        (`ex2.c` finds every tutorial of that name), shortest path first."""
        tail = f"/{path}"
        rows = self.conn.execute(
            f"SELECT {_DOC_COLUMNS} FROM documents WHERE kind = ? "
            "AND (origin = ? OR substr(origin, -?) = ?) ORDER BY length(origin), origin LIMIT ?",
            (kind, path, len(tail), tail, limit),
        )
        return [_document(r) for r in rows]

    def stats(self) -> dict[str, Any]:
        by_kind = dict(
            self.conn.execute(
                "SELECT d.kind, COUNT(*) FROM chunks c JOIN documents d ON d.id = c.doc_id "
                "GROUP BY d.kind"
            ).fetchall()
        )
        docs_by_source = dict(
            self.conn.execute("SELECT source, COUNT(*) FROM documents GROUP BY source").fetchall()
        )
        return {
            "data_dir": str(self.root),
            "generation": self.generation(),
            "embedder": self.meta_value("embedder"),
            "unembedded_kinds": self.unembedded_kinds() or "none",
            "vectors": self._vector_count(),
            "documents": sum(docs_by_source.values()),
            "chunks": sum(by_kind.values()),
            "chunks_by_kind": by_kind,
            "documents_by_source": docs_by_source,
            "symbols": self.conn.execute("SELECT COUNT(DISTINCT lower) FROM symbols").fetchone()[0],
        }

    def _vector_count(self) -> int:
        self._ensure_loaded()
        return int(self._faiss.ntotal) if self._faiss is not None else 0

    def unembedded_kinds(self) -> str:
        """The embedding policy of the current generation (`EmbedPolicy.key()`; "" = all)."""
        return self.meta_value("unembedded_kinds") or ""

    def embed_policy_differs(self, policy: EmbedPolicy) -> bool:
        """Whether `policy` is not the one the current generation was embedded with."""
        return policy.key() != self.unembedded_kinds()

    def texts_by_hash(self, policy: EmbedPolicy) -> dict[str, str]:
        """What `policy` embeds of every stored chunk, by cache key."""
        rows = self.conn.execute(
            "SELECT c.id, c.content_hash, c.text, d.kind FROM chunks c "
            "JOIN documents d ON d.id = c.doc_id"
        )
        out: dict[str, str] = {}
        for chunk_id, chash, text, kind in rows:
            out.update(policy.texts(kind, [Chunk(chunk_id, "", text, content_hash=chash)]))
        return out

    def document_hashes(self, source: str, origins: Iterable[str]) -> dict[str, str]:
        sql = "SELECT id, content_hash FROM documents WHERE source = ? AND origin IN"
        return dict(_select_in(self.conn, sql, [source], origins))

    # ----- writing -----------------------------------------------------------------

    def _faiss_path(self, generation: int) -> Path:
        return self.root / "vectors" / f"gen-{generation}.faiss"

    def _bm25_path(self, generation: int) -> Path:
        return self.root / "bm25" / f"gen-{generation}"

    @contextlib.contextmanager
    def writer(
        self,
        embedder_name: str,
        dimension: int,
        before_commit: Callable[[], None] | None = None,
        policy: EmbedPolicy | None = None,
    ) -> Iterator[Writer]:
        """One atomic write: everything inside commits together, or not at all.

        `policy` says which chunks get a vector of what text (`embed_policy.py`; default:
        every chunk, whole); changing it rebuilds the generation even when no document
        changed. `before_commit` runs after the new
        generation's files are written and before SQLite commits (tests use it to
        crash at the worst moment).
        """
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self._remove_stray_generations()
            policy = policy or EmbedPolicy()
            policy_changed = self.embed_policy_differs(policy) or (
                self.embedder_differs(embedder_name)
            )
            self._record_embedder(embedder_name, dimension)
            writer = Writer(self)
            yield writer
            if writer.changed or policy_changed or self.needs_generation():
                generation = self.generation() + 1
                self._build_generation(generation, embedder_name, dimension, policy)
                self.conn.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('unembedded_kinds', ?)", (policy.key(),)
                )
                self.conn.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('generation', ?)", (str(generation),)
                )
            if before_commit:
                before_commit()
            self.conn.execute("COMMIT")
        except BaseException as err:
            if self.conn.in_transaction:  # SQLite ends it itself on a full disk
                self.conn.execute("ROLLBACK")
            self._remove_stray_generations()
            if isinstance(err, OSError | RuntimeError) and not isinstance(err, StorageError):
                _reraise(err, self.root / "index.sqlite")  # FAISS and BM25 files
            raise
        self._remove_stray_generations()

    def needs_generation(self) -> bool:
        """Whether the next write builds a generation even when no row changed: a new
        index, or one whose committed generation another backend wrote (`MilvusStore`)."""
        generation = self.generation()
        return generation == 0 or not self._faiss_path(generation).exists()

    def build_current(self, policy: EmbedPolicy) -> None:
        """Write this backend's search parts of the committed generation from the records
        and the embedding cache, embedding nothing (`sciknow index copy`); FAISS files
        of a generation never change, so existing ones stay."""
        if not self.needs_generation():
            return
        embedder = self.meta_value("embedder") or ""
        dimension = int(self.meta_value("dimension") or 0)
        self._build_generation(self.generation(), embedder, dimension, policy)

    def embedder_differs(self, name: str) -> bool:
        """Whether the committed vectors were made by another embedder than `name`."""
        current = self.meta_value("embedder")
        return bool(current) and current != name and self.generation() > 0

    def check_query_embedder(self, name: str) -> None:
        """Refuse to search with query vectors of another embedder or runtime than the
        index's: vectors of two runtimes agree only within a tolerance, of two models not
        at all."""
        if not self.embedder_differs(name):
            return
        current = self.meta_value("embedder") or ""
        what = "runtime" if same_model(current, name) else "embedder"
        setting = "models.embedder_backend" if what == "runtime" else "models.embedder"
        raise RuntimeError(
            f"the index in {self.root} was built with embedder {current!r}, not the "
            f"configured {name!r}: run `sciknow ingest` to re-embed its chunks with this "
            f"{what} (nothing is re-read), or set {setting} back to the one that built it"
        )

    def _record_embedder(self, name: str, dimension: int) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('embedder', ?)", (name,))
        self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('dimension', ?)", (str(dimension),))

    def _build_generation(
        self, generation: int, embedder_name: str, dimension: int, policy: EmbedPolicy
    ) -> None:
        """Write FAISS and BM25 files for the rows as they stand in this transaction."""
        import bm25s
        import faiss

        rows = self.conn.execute(
            "SELECT c.rowid, c.id, c.content_hash, c.text, c.terms, d.kind FROM chunks c "
            "JOIN documents d ON d.id = c.doc_id ORDER BY c.rowid"
        )
        rowids, corpus, embedded, hashes = [], [], [], []
        for rowid, chunk_id, chash, text, chunk_terms, kind in rows:
            rowids.append(rowid)
            corpus.append(chunk_terms.split())
            keys = policy.texts(kind, [Chunk(chunk_id, "", text, content_hash=chash)])
            if keys:
                embedded.append(rowid)
                hashes.extend(keys)
        ids = np.array(rowids, dtype=np.int64)
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        if embedded:
            vectors = self.cache.get(hashes, embedder_name, dimension)
            index.add_with_ids(vectors, np.array(embedded, dtype=np.int64))
        faiss_tmp = self._faiss_path(generation).with_suffix(".tmp")
        faiss.write_index(index, str(faiss_tmp))
        os.replace(faiss_tmp, self._faiss_path(generation))

        bm25_tmp = self._bm25_path(generation).with_name(f"gen-{generation}.tmp")
        shutil.rmtree(bm25_tmp, ignore_errors=True)
        bm25_tmp.mkdir()
        np.save(bm25_tmp / "rowids.npy", ids)
        if len(ids):
            model = bm25s.BM25()
            model.index([c if c else [""] for c in corpus], show_progress=False)
            model.save(str(bm25_tmp), show_progress=False)
        os.replace(bm25_tmp, self._bm25_path(generation))
        _fsync_dir(self.root / "vectors")
        _fsync_dir(self.root / "bm25")

    def _remove_stray_generations(self) -> None:
        """Delete generation files other than the committed one (old or unfinished)."""
        keep = self.generation()
        for folder in ("vectors", "bm25"):
            for path in (self.root / folder).iterdir():
                if path.name in (f"gen-{keep}.faiss", f"gen-{keep}"):
                    continue
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)


class Writer:
    """Row changes inside `Store.writer()`; each origin is replaced as a whole."""

    def __init__(self, store: Store) -> None:
        self.conn = store.conn
        self.changed = False

    def delete_origins(self, source: str, origins: Iterable[str]) -> int:
        deleted = 0
        for origin in origins:
            cursor = self.conn.execute(
                "DELETE FROM documents WHERE source = ? AND origin = ?", (source, origin)
            )
            deleted += cursor.rowcount
        self.changed |= deleted > 0
        return deleted

    def delete_ids(self, doc_ids: Iterable[str]) -> int:
        deleted = 0
        for doc_id in doc_ids:
            deleted += self.conn.execute("DELETE FROM documents WHERE id = ?", (doc_id,)).rowcount
        self.changed |= deleted > 0
        return deleted

    def add(self, doc: Document, chunks: list[Chunk]) -> None:
        """Insert a document and its chunks (their embeddings must be in the cache)."""
        self.changed = True
        self.conn.execute("DELETE FROM documents WHERE id = ?", (doc.id,))
        self.conn.execute(
            "INSERT INTO documents VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                doc.id, doc.source, doc.origin, doc.kind, doc.uri, doc.title, int(doc.official),
                doc.date, doc.version, doc.section, doc.start_line, doc.end_line,
                json.dumps(doc.symbols), json.dumps(doc.meta, default=str), doc.content_hash,
                doc.text,
            ),
        )  # fmt: skip
        defined = defined_symbol(doc)
        for chunk in chunks:
            cursor = self.conn.execute(
                "INSERT INTO chunks (id, doc_id, text, section, start, end_, symbols, "
                "content_hash, terms) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    chunk.id, chunk.doc_id, chunk.text, chunk.section, chunk.start, chunk.end,
                    json.dumps(chunk.symbols), chunk.content_hash, " ".join(terms(chunk.text)),
                ),
            )  # fmt: skip
            self.conn.executemany(
                "INSERT INTO symbols VALUES (?, ?, ?, ?)",
                [(s, s.lower(), cursor.lastrowid, int(s == defined)) for s in chunk.symbols],
            )

    def set_state(self, source: str, state: dict[str, Any]) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO source_state VALUES (?, ?)", (source, json.dumps(state))
        )
