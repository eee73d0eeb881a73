"""Answer feedback (thumbs up/down, an optional comment): the records and their table.

Every front end records votes here: the web chat in-process, the Discord bot and other
clients through `POST /feedback`. A row keeps what is needed to replay the question in an
evaluation (question, history, answer, citations, flags, the pipeline's settings, backend
and model) and nothing about who asked: no IP address, no user name.

`FeedbackTable` is the one interface; `FeedbackStore` keeps it in
`<data_dir>/feedback.sqlite` (the default: its own file, not the index's SQLite, so
re-ingesting or deleting the index never touches it), `feedback_postgres.PostgresFeedback`
in the PostgreSQL that replicas share. `feedback_stores.open_feedback` picks one.
"""

from __future__ import annotations

import json
import math
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sciknow.index.store import storage_error
from sciknow.serve.answer import Assistant

FILE_NAME = "feedback.sqlite"
VOTES = ("up", "down")
_JSON_COLUMNS = ("history", "citations", "flags", "settings", "pipeline")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created TEXT NOT NULL,
    client TEXT NOT NULL,
    vote TEXT NOT NULL CHECK (vote IN ('up', 'down')),
    comment TEXT NOT NULL DEFAULT '',
    question TEXT NOT NULL,
    history TEXT NOT NULL,
    answer TEXT NOT NULL,
    citations TEXT NOT NULL,
    flags TEXT NOT NULL,
    settings TEXT NOT NULL,
    backend TEXT NOT NULL,
    model TEXT NOT NULL,
    pipeline TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS feedback_created ON feedback (created);
"""


@dataclass
class Feedback:
    """What a client sends: the exchange it votes on and the settings it asked with."""

    question: str
    answer: str
    vote: str
    history: list[dict[str, str]] = field(default_factory=list)
    citations: list[dict[str, Any]] = field(default_factory=list)
    flags: list[dict[str, Any]] = field(default_factory=list)
    comment: str = ""
    client: str = "api"
    settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.vote not in VOTES:
            raise ValueError(f"vote must be one of {VOTES}, got {self.vote!r}")


@dataclass
class Server:
    """What the server adds: which backend and model answered, with which settings."""

    backend: str
    model: str
    pipeline: dict[str, Any]


class FeedbackTable(ABC):
    """The feedback table wherever it lives: the SQL both databases share, with JSON
    columns written as strict JSON (no NaN) and rows read back as the same dicts."""

    mark: str  # the driver's parameter placeholder ("?", "%s")

    @abstractmethod
    def _insert(self, sql: str, values: list[Any]) -> int:
        """Run an INSERT; the new row's id."""

    @abstractmethod
    def _execute(self, sql: str, values: list[Any]) -> int:
        """Run an UPDATE or DELETE; how many rows it changed."""

    @abstractmethod
    def _query(self, sql: str, values: list[Any]) -> list[dict[str, Any]]:
        """Run a SELECT; its rows as dicts."""

    def add(self, feedback: Feedback, server: Server) -> int:
        """Store one vote; returns its id (a client may later change the vote or comment)."""
        row = {**asdict(feedback), **asdict(server), "created": _now()}
        for column in _JSON_COLUMNS:
            row[column] = json.dumps(_finite(row[column]), ensure_ascii=False, allow_nan=False)
        columns, marks = ", ".join(row), ", ".join([self.mark] * len(row))
        return self._insert(f"INSERT INTO feedback ({columns}) VALUES ({marks})", [*row.values()])

    def update(self, row_id: int, vote: str | None = None, comment: str | None = None) -> bool:
        """Change the vote or the comment of row `row_id`; False when there is no such row."""
        if vote is not None and vote not in VOTES:
            raise ValueError(f"vote must be one of {VOTES}, got {vote!r}")
        changes = {k: v for k, v in (("vote", vote), ("comment", comment)) if v is not None}
        if not changes:
            return self.get(row_id) is not None
        assignments = ", ".join(f"{column} = {self.mark}" for column in changes)
        sql = f"UPDATE feedback SET {assignments} WHERE id = {self.mark}"
        return self._execute(sql, [*changes.values(), row_id]) == 1

    def delete(self, row_id: int) -> bool:
        """Remove a vote its author withdrew; False when there is no such row."""
        return self._execute(f"DELETE FROM feedback WHERE id = {self.mark}", [row_id]) == 1

    def get(self, row_id: int) -> dict[str, Any] | None:
        rows = self._select(f"WHERE id = {self.mark}", [row_id])
        return rows[0] if rows else None

    def rows(self, since: datetime | None = None, vote: str | None = None) -> list[dict[str, Any]]:
        """Rows oldest first, created at or after `since` (UTC when naive), of one vote."""
        where, values = [], []
        if since is not None:
            where.append(f"created >= {self.mark}")
            values.append(_iso(since))
        if vote is not None:
            where.append(f"vote = {self.mark}")
            values.append(vote)
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        return self._select(f"{clause}ORDER BY id", values)

    def _select(self, clause: str, values: list[Any]) -> list[dict[str, Any]]:
        rows = self._query(f"SELECT * FROM feedback {clause}", values)
        for row in rows:
            for column in _JSON_COLUMNS:  # jsonb comes back decoded, SQLite's text does not
                if isinstance(row[column], str):  # NaN stored before votes were checked: null
                    row[column] = json.loads(row[column], parse_constant=lambda _: None)
        return rows


class FeedbackStore(FeedbackTable):
    """The table in a SQLite file; a connection per call, so any thread (or process) may
    write."""

    mark = "?"

    def __init__(self, path: Path) -> None:
        self.path = path
        with self._connect() as conn:
            conn.executescript(_SCHEMA)

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> FeedbackStore:
        return cls(Path(data_dir) / FILE_NAME)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A connection; a read-only, full or damaged data directory raises `StorageError`
        with one line saying so (a 503 from the API), not SQLite's words."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with closing(sqlite3.connect(self.path, timeout=30)) as conn, conn:
                conn.execute("PRAGMA journal_mode=WAL")
                yield conn
        except (sqlite3.DatabaseError, OSError) as err:
            fault = storage_error(err, self.path)
            if fault is None:
                raise
            raise fault from err

    def _insert(self, sql: str, values: list[Any]) -> int:
        with self._connect() as conn:
            row_id = conn.execute(sql, values).lastrowid
        assert row_id is not None
        return row_id

    def _execute(self, sql: str, values: list[Any]) -> int:
        with self._connect() as conn:
            return conn.execute(sql, values).rowcount

    def _query(self, sql: str, values: list[Any]) -> list[dict[str, Any]]:
        with self._connect() as conn:
            conn.row_factory = sqlite3.Row
            return [dict(row) for row in conn.execute(sql, values)]


def _finite(value: Any) -> Any:
    """`value` with every NaN or infinity replaced by None: feedback is strict JSON, which
    has neither (the API refuses them; this covers votes made in-process)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def _iso(moment: datetime) -> str:
    """UTC ISO 8601 with microseconds, so that text order is time order."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _now() -> str:
    return _iso(datetime.now(UTC))


def server_of(assistant: Assistant) -> Server:
    """The backend, model and settings that answer for `assistant` (a backend named
    `engine:model`; a model not loaded yet, as for extractive answers, has no model name)."""
    backend, _, model = assistant.backend.name.partition(":")
    pipeline = {
        "mode": assistant.mode,
        "answer": asdict(assistant.settings),
        "retrieval": asdict(assistant.retriever.settings),
    }
    return Server(backend=backend, model=model, pipeline=pipeline)
