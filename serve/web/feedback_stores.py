"""Which feedback table a server writes and `sciknow feedback export` reads.

`[serve] database_url` empty (the default): `<data_dir>/feedback.sqlite`, one server's
own file. Set to a `postgresql://` URL: that database, shared by every replica. Kept apart
from both stores, so neither imports the other and psycopg is imported only when a URL
is set.
"""

from __future__ import annotations

from pathlib import Path

from sciknow.errors import ConfigError
from sciknow.serve.web.feedback import FeedbackStore, FeedbackTable

DRIVER_MISSING = (
    "serve.database_url is set but the PostgreSQL driver is not installed: "
    "pip install 'psycopg[binary]'"
)


def open_feedback(database_url: str, data_dir: Path) -> FeedbackTable:
    """The feedback table for `database_url`, or the SQLite file in `data_dir` without one."""
    if not database_url:
        return FeedbackStore.in_data_dir(data_dir)
    try:
        from sciknow.serve.web.feedback_postgres import PostgresFeedback
    except ImportError as err:  # psycopg itself, or its libpq wrapper
        if isinstance(err, ModuleNotFoundError) and not (err.name or "").startswith("psycopg"):
            raise
        raise ConfigError(DRIVER_MISSING) from None
    return PostgresFeedback(database_url)
