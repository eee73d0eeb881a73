"""The errors sciknow raises on purpose, by what the caller does about them.

Each one carries a message a user can act on (what failed, which key, file or
command fixes it), so a front end shows it as one line. Anything that is not a
`SciknowError` is a bug or a fault in a library underneath, and keeps its
traceback: that is why sciknow never raises a bare `RuntimeError` for a problem
the user can fix. The subclasses are the few kinds a caller handles differently;
a module may subclass one of them to say more (`FetchError` is a `SourceError`).
"""

from __future__ import annotations


class SciknowError(Exception):
    """A problem sciknow explains in its message; front ends print that message alone."""


class ConfigError(SciknowError, ValueError):
    """A configuration or command-line problem, worded so the user knows which key or
    option to fix. Also a `ValueError`, as it was before this module existed."""


class StoreError(SciknowError):
    """The index (or other data sciknow keeps on disk) is missing, empty or was made
    for something else; the message says which command makes it right."""


class BackendError(SciknowError):
    """A model backend (generator or embedding server) cannot do what was asked; the
    message says what to fix."""


class SourceError(SciknowError):
    """An input cannot be read or holds nothing usable: a source to ingest, a data set,
    a file named on the command line."""


class DraftError(SciknowError):
    """A doc patch cannot be drafted or committed from what was given; the message says
    why."""
