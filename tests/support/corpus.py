"""Documents for index tests, written here (not corpus text): three pages, a man page and
a piece of code, and the retriever the tests search them with."""

from __future__ import annotations

from sciknow.config import Profile, RetrievalConfig
from sciknow.index.store import Store
from sciknow.records import Document
from sciknow.rerank.hybrid import HybridRetriever

PREFIXES = tuple(Profile().symbol_prefixes)


def doc(title: str, text: str, kind: str = "doc", origin: str | None = None, **kw) -> Document:
    from sciknow.ingest.symbols import find_symbols

    symbols = kw.pop("symbols", None) or find_symbols(f"{title}\n{text}", PREFIXES)
    return Document(
        id=f"test:{origin or title}#{title}",
        source="test",
        kind=kind,
        uri=f"https://example.org/{title}",
        title=title,
        text=text,
        origin=origin or title,
        symbols=symbols,
        **kw,
    )


CORPUS = [
    doc(
        "KSPSetTolerances",
        "KSPSetTolerances - Sets the relative, absolute, divergence and maximum iteration "
        "tolerances used by the default KSP convergence test. Options: -ksp_rtol, -ksp_atol, "
        "-ksp_max_it.",
        kind="manpage",
        symbols=["KSPSetTolerances", "-ksp_rtol", "-ksp_atol", "-ksp_max_it"],
    ),
    doc(
        "Preconditioners",
        "A preconditioner is selected with PCSetType or the option -pc_type; incomplete LU "
        "factorization is the default for sequential matrices.",
    ),
    doc(
        "Matrix formats",
        "The default sparse storage is compressed row, MATAIJ. Block variants such as MATBAIJ "
        "store small dense blocks.",
    ),
    doc(
        "Installing",
        "Run configure with the compilers you want, then make all. Use --download-mpich when "
        "no MPI is installed.",
    ),
]


CODE = doc(
    "KSPSolve_GMRES",
    "static PetscErrorCode KSPSolve_GMRES(KSP ksp) { arnoldi restart loop over the basis }",
    kind="code",
)


def retriever(store: Store, embedder) -> HybridRetriever:
    return HybridRetriever(store, embedder, RetrievalConfig(k=3, candidates=10), Profile())
