"""`make_backend`: build a backend by name, kept apart from the backends it builds."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sciknow.config import BACKENDS
from sciknow.serve.backends.base import Backend, BackendError


def make_backend(name: str, **options: Any) -> Backend:
    """Build the backend called `name` (one of `BACKENDS`) with its constructor options.

    Imports are deferred so that using one backend never requires the other's packages.
    """
    if name == "transformers":
        from sciknow.serve.backends.hf import TransformersBackend

        return TransformersBackend.from_gguf(**options)
    if name == "embedded":
        from sciknow.serve.backends.embedded import EmbeddedBackend

        return EmbeddedBackend(**options)
    if name == "vllm":
        from sciknow.serve.backends.vllm import VLLMBackend

        return VLLMBackend(**options)
    raise BackendError(f"unknown backend {name!r}; expected one of {', '.join(BACKENDS)}")


class LazyBackend:
    """A backend built on first use: an extractive answer never needs the model, so the
    default `sciknow ask` and `sciknow serve` skip loading it (seconds and ~1 GiB)."""

    def __init__(self, name: str, build: Callable[[], Backend]) -> None:
        self.name = name
        self._build = build
        self._backend: Backend | None = None

    @property
    def loaded(self) -> bool:
        return self._backend is not None

    def __getattr__(self, attribute: str) -> Any:
        if self._backend is None:
            self._backend = self._build()
            self.name = self._backend.name
        return getattr(self._backend, attribute)
