"""Feedback in PostgreSQL (`[serve] database_url`): one table that every `sciknow serve`
replica behind a proxy shares, so a vote taken by one is seen by all and by
`sciknow feedback export`.

The columns are the SQLite file's (`feedback.py`). The JSON columns are `jsonb`, whose
parser refuses NaN as the API does; `created` stays ISO 8601 text, so rows read the same
from either database. A connection per call, as with SQLite: votes are rare next to
answers and no connection outlives a request; statements are not prepared, so a pooler
such as PgBouncer may sit in front. Replicas that start together create the table once,
under an advisory lock.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row

from sciknow.errors import ConfigError
from sciknow.index.store import StorageError
from sciknow.serve.web.feedback import FeedbackTable

CONNECT_TIMEOUT_S = 10  # unless the URL sets connect_timeout
_SCHEMA_LOCK = 0x5C1E_F33D  # pg_advisory_xact_lock key: one replica at a time creates
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS feedback (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        created TEXT NOT NULL,
        client TEXT NOT NULL,
        vote TEXT NOT NULL CHECK (vote IN ('up', 'down')),
        comment TEXT NOT NULL DEFAULT '',
        question TEXT NOT NULL,
        history JSONB NOT NULL,
        answer TEXT NOT NULL,
        citations JSONB NOT NULL,
        flags JSONB NOT NULL,
        settings JSONB NOT NULL,
        backend TEXT NOT NULL,
        model TEXT NOT NULL,
        pipeline JSONB NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS feedback_created ON feedback (created)",
)
# Faults of the database rather than of sciknow's SQL: one line and a 503, like a full disk.
_FAULTS = (
    psycopg.OperationalError,
    psycopg.errors.InsufficientPrivilege,
    psycopg.errors.ReadOnlySqlTransaction,
)


class PostgresFeedback(FeedbackTable):
    """The table in the PostgreSQL database at `url`; creates it when missing."""

    mark = "%s"

    def __init__(self, url: str) -> None:
        try:
            params = conninfo_to_dict(url)
        except psycopg.ProgrammingError as err:
            raise ConfigError(f"serve.database_url is not a valid URL: {_line(err)}") from None
        self.params: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT_S, **params}
        with self._connect() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", [_SCHEMA_LOCK])
            for statement in _SCHEMA:
                conn.execute(statement)

    @contextmanager
    def _connect(self) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        """A connection whose block is one transaction; a database that cannot be reached
        or written raises `StorageError` with PostgreSQL's own first line."""
        try:
            with psycopg.connect(
                **self.params, row_factory=dict_row, prepare_threshold=None
            ) as conn:
                yield conn
        except _FAULTS as err:
            raise StorageError(
                f"the feedback database (serve.database_url) failed: {_line(err)}"
            ) from err

    def _insert(self, sql: str, values: list[Any]) -> int:
        with self._connect() as conn:
            row = conn.execute(f"{sql} RETURNING id", values).fetchone()
        assert row is not None
        return row["id"]

    def _execute(self, sql: str, values: list[Any]) -> int:
        with self._connect() as conn:
            return conn.execute(sql, values).rowcount

    def _query(self, sql: str, values: list[Any]) -> list[dict[str, Any]]:
        with self._connect() as conn:
            return conn.execute(sql, values).fetchall()


def _line(err: Exception) -> str:
    """The first line of a driver's message (libpq adds hints on the lines after)."""
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
