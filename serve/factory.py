"""Build the backend and the assistant described by a `Config`."""

from __future__ import annotations

from sciknow.config import Config
from sciknow.errors import StoreError
from sciknow.index.factory import load_embedder, open_store
from sciknow.index.store import Store
from sciknow.rerank.hybrid import HybridRetriever
from sciknow.serve.answer import Assistant, resolve_mode
from sciknow.serve.backends.base import Backend
from sciknow.serve.backends.factory import LazyBackend, make_backend
from sciknow.serve.compile_flags import compile_flags
from sciknow.serve.names import name_flags


def build_backend(config: Config, name: str | None = None) -> Backend:
    """SmolLM2 in this process (torch by default, or llama.cpp) or a vLLM server, per `[models]`."""
    models = config.models
    name = name or models.backend
    if name == "transformers":
        return make_backend(
            "transformers", path=models.gguf or None, dtype=models.dtype, threads=models.threads,
            context_window=models.n_ctx,
        )  # fmt: skip
    if name == "embedded":
        return make_backend(
            "embedded", model_path=models.gguf or None, n_ctx=models.n_ctx, n_threads=models.threads
        )
    return make_backend("vllm", url=models.vllm_url, model=models.vllm_model or None)


def build_retriever(
    config: Config, backend: Backend | None = None, allow_empty: bool = False
) -> HybridRetriever:
    """The configured retriever; `retrieval.reranker = "llm"` judges with `backend`.

    An empty index is an error unless `allow_empty` (a server started before the first
    ingest reads each new index generation as it is committed)."""
    store = open_store(config)
    if store.generation() == 0 and not allow_empty:
        raise StoreError(f"the index in {config.data_path} is empty: run `sciknow ingest` first")
    reranker = None
    if config.retrieval.reranker == "llm":
        from sciknow.rerank.llm import LLMReranker

        reranker = LLMReranker(backend or build_backend(config), config.profile.display_name)
    embedder = load_embedder(config, store)  # refuses vectors of another runtime
    return HybridRetriever(store, embedder, config.retrieval, config.profile, reranker)


def build_assistant(
    config: Config, backend: str | None = None, allow_empty: bool = False
) -> Assistant:
    """One backend serves generation and, when configured, LLM reranking."""
    name = backend or config.models.backend
    model = LazyBackend(name, lambda: build_backend(config, name))
    mode = resolve_mode(config.answer.mode, config.models.size, name)
    return assemble_assistant(config, build_retriever(config, model, allow_empty), model, mode)


def assemble_assistant(
    config: Config,
    retriever: HybridRetriever,
    model: Backend,
    mode: str,
    names: Store | None = None,
) -> Assistant:
    """The assistant over a given retriever and backend (`sciknow serve`, the answer
    evaluation's indexes); `names` holds the symbol table that checks names (default: the
    retriever's own index) and suggests names for code that does not compile."""
    store = names or retriever.store
    check = name_flags(store, config.profile) if config.answer.check_names else None
    return Assistant(
        retriever,
        model,
        config.answer,
        library=config.profile.display_name,
        mode=mode,
        name_check=check,
        compile_check=compile_flags(config, store),
    )
