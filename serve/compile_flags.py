"""Compile flags: each C code block of an answer compiled against the configured PETSc.

`compile_flags` builds the Assistant's `compile_check` (as `names.name_flags` builds its
`name_check`): one `compile` flag per C block of a final answer (`codecheck/blocks.py`
finds them), spanning the block's code lines, with `status` ("compiles", "error",
"cannot-wrap"), the block's first code `line` in the answer, and a `reason` a person
reads: "compiles against PETSc 3.18.5", "line 7: error: ... (did you mean ...?)" or
"not checked: <why it could not be wrapped>".

A man page's synopsis (`PetscErrorCode KSPSetTolerances(KSP ksp, PetscReal rtol, ...)`,
which extractive answers lead with) is not a program: a block that only declares (every
statement a prototype or a variable declaration) gets no flag and costs no compiler run,
and a block the checker itself calls a synopsis gets none either.

Without a PETSc (`[check] petsc_dir`, `PETSC_DIR`/`PETSC_ARCH`, `pkg-config PETSc`) or
with `[check] answers = false` there is no check and answers are unchanged. The checker
is built on the first block (its header scan costs a fifth of a second); verdicts are
cached by content in the data directory (`VerdictCache`), so a repeated block costs
nothing; one block compiles at a time (about a second of one core each).
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
from collections.abc import Callable
from functools import cached_property

from sciknow.config import Config
from sciknow.index.store import Store
from sciknow.records import Flag
from sciknow.serve.codecheck.blocks import (
    BlockVerdict,
    CodeBlock,
    VerdictCache,
    check_block,
    code_blocks,
)
from sciknow.serve.codecheck.check import CodeChecker, build_checker
from sciknow.serve.codecheck.compiler import Diagnostic
from sciknow.serve.codecheck.harness import CannotWrap, piece_masked, split
from sciknow.serve.codecheck.petsc import PetscNotFound, find_petsc

log = logging.getLogger(__name__)

CompileCheck = Callable[[str], list[Flag]]
# How the checker's reason for a synopsis starts (codecheck/harness.py and check.py).
SYNOPSIS_REASON = "it is a synopsis"
# A declaration: a type (with qualifiers, stars) then a name: `KSP ksp;`, `PetscInt n = 3;`,
# `PetscErrorCode KSPSolve(KSP ksp, Vec b, Vec x);`.
_DECLARATION_RE = re.compile(
    r"^\s*(?:(?:const|static|extern|unsigned|signed|struct|enum)\s+)*([A-Za-z_]\w*)"
    r"[\s*]+[A-Za-z_]\w*\s*(?:[;,=(\[]|$)"
)
_STATEMENT_WORDS = {"return", "goto", "else", "case", "do", "if", "for", "while", "switch"}


def declarations_only(code: str) -> bool:
    """Whether the C `code` only declares (prototypes, variables, typedefs, includes):
    nothing a compile verdict would tell a reader about. A function definition is code."""
    try:
        fragment = split(code)
    except CannotWrap:
        return False
    for item in fragment.file_scope:
        if piece_masked(fragment, item).split("{", 1)[0].rstrip().endswith(")"):
            return False
    for piece in fragment.body:
        match = _DECLARATION_RE.match(piece_masked(fragment, piece))
        if match is None or match.group(1) in _STATEMENT_WORDS:
            return False
    return True


def block_span(text: str, block: CodeBlock) -> tuple[int, int]:
    """Character offsets in `text` of the block's code lines (from its first code line to
    the end of its last, fences left out)."""
    starts = [0] + [m.end() for m in re.finditer("\n", text)]
    first = block.line - 1
    last = min(first + block.code.rstrip("\n").count("\n"), len(starts) - 1)
    end = starts[last + 1] - 1 if last + 1 < len(starts) else len(text)
    return starts[first], end


def verdict_flag(verdict: BlockVerdict, start: int, end: int) -> Flag:
    """The `compile` flag of one block's verdict."""
    flag = Flag(type="compile", start=start, end=end, status=verdict.status, line=verdict.line)
    if verdict.status == "compiles":
        flag["reason"] = verdict.verdict
    elif verdict.status == "cannot-wrap":
        flag["reason"] = f"not checked: {verdict.reason}"
    elif verdict.diagnostic is None:
        flag["reason"] = verdict.verdict
    else:
        first = Diagnostic(**verdict.diagnostic)
        flag["reason"] = first.describe()
        if first.suggestions:
            flag["suggestions"] = first.suggestions
    return flag


class AnswerCompiler:
    """The `compile_check` of one assistant: a text's C blocks as `compile` flags."""

    def __init__(self, config: Config, store: Store | None) -> None:
        self.config = config
        self.store = store
        self.lock = threading.Lock()  # one compile at a time (a server answers in threads)

    @cached_property
    def checker(self) -> CodeChecker:
        return build_checker(self.config.check, self.config.profile, self.store)

    def __call__(self, text: str) -> list[Flag]:
        prefixes = self.config.profile.symbol_prefixes
        blocks = [b for b in code_blocks(text, prefixes) if not declarations_only(b.code)]
        if not blocks:
            return []
        flags = []
        with self.lock:
            cache = self._open_cache()  # its connection serves the thread that opened it
            try:
                for block in blocks:
                    verdict, _ = check_block(self.checker, block, cache)
                    if not _is_synopsis(verdict):
                        flags.append(verdict_flag(verdict, *block_span(text, block)))
            finally:
                if cache is not None:
                    cache.close()
        return flags

    def _open_cache(self) -> VerdictCache | None:
        try:
            return VerdictCache.in_data_dir(self.config.data_path)
        except (OSError, sqlite3.Error) as err:  # a read-only data directory: no cache
            log.warning("compile verdicts are not cached: %s", err)
            return None


def _is_synopsis(verdict: BlockVerdict) -> bool:
    return verdict.status == "cannot-wrap" and verdict.reason.startswith(SYNOPSIS_REASON)


def compile_flags(config: Config, store: Store | None = None) -> CompileCheck | None:
    """The Assistant's `compile_check`, or None when `[check] answers` is off or no PETSc
    is found (answers then carry no compile flags); `store`'s names give suggestions."""
    if not config.check.answers:
        return None
    try:
        find_petsc(config.check.petsc_dir, config.check.petsc_arch)
    except PetscNotFound as err:
        log.info("answers' code is not compiled: %s", err)
        return None
    return AnswerCompiler(config, store)
