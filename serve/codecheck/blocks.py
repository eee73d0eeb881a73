"""The C code blocks of a Markdown text (an answer, a docs page), and a verdict for each.

`check_blocks` is what an answer's compile flag, `eval answers --compile` and the docs
check of `sciknow gaps` call: given Markdown, per C block whether it compiles, its first
error with the line in the text, or why it could not be wrapped into a program.

A block is C when its fence says so (```` ```c ````, `c++`, `cpp`, a MyST
`{code-block} c`), or when an untagged fence holds a statement (`;`) that calls a library
name (the profile's prefixes) and no shell prompt — how answers quote code and how the
docs list fragments. Fences are found as the docs ingester finds them
(`ingest/markdown.py`: inside list items, quotes and directives, options dropped), so a
block's line is its first code line in the file.

Verdicts are cached by content (`VerdictCache`, SQLite in the data directory), keyed by
the block, its language and the PETSc compiled against: a rerun over the same docs or
answers compiles only what changed.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from sciknow.ingest.markdown import _fence, _fence_end, _unprefix, prepare
from sciknow.ingest.rest import CODE_DIRECTIVES, drop_options
from sciknow.serve.codecheck.check import CXX_LANGUAGES, CodeChecker, CodeReport

C_TAGS = {"c", *CXX_LANGUAGES}
CACHE_FILE = "codecheck-cache.sqlite"
CACHE_SCHEMA = 3  # bump when a verdict's meaning changes (the harness, the flags)
_SHELL_PROMPT_RE = re.compile(r"^\s*\$ ", re.M)
Status = Literal["compiles", "error", "cannot-wrap"]


@dataclass(frozen=True)
class CodeBlock:
    """One C block of a text."""

    line: int  # the block's first code line in the text (1-based)
    language: str  # "c" or "c++"
    code: str
    tagged: bool  # the fence names C (else: untagged, and it looks like C)


@dataclass
class BlockVerdict:
    """The compile verdict on one block, lines counted in the whole text."""

    line: int
    language: str
    status: Status
    verdict: str  # one line: `CodeReport.verdict()`
    diagnostic: dict[str, Any] | None = None  # the first error; its `line` in the text
    reason: str = ""  # cannot-wrap: why
    petsc: str = ""  # the PETSc compiled against
    compile_s: float = 0.0  # the compiler's time (0: never ran, e.g. a synopsis)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _language(tag: str) -> str:
    return "c++" if tag in CXX_LANGUAGES else "c"


def _looks_like_c(code: str, calls: re.Pattern[str]) -> bool:
    return ";" in code and calls.search(code) is not None and not _SHELL_PROMPT_RE.search(code)


def code_blocks(text: str, prefixes: Sequence[str]) -> list[CodeBlock]:
    """The C blocks of a Markdown or MyST text, in order (see the module docstring)."""
    names = "|".join(map(re.escape, prefixes))
    calls = re.compile(rf"\b(?:{names})\w*\s*\(")
    found: list[CodeBlock] = []
    _scan(prepare(text), 0, calls, found)
    return found


def _scan(lines: list[str], offset: int, calls: re.Pattern[str], found: list[CodeBlock]) -> None:
    """Collect the C blocks of `lines` (which start at line `offset + 1` of the text)."""
    i = 0
    while i < len(lines):
        fence = _fence(lines[i])
        if not fence:
            i += 1
            continue
        end = _fence_end(lines, i, fence.group(2))
        body = _unprefix(lines[i + 1 : end], len(fence.group(1)))
        name = (fence.group(3) or "").lower()
        if name and name not in CODE_DIRECTIVES:  # a directive: its own fences count
            _scan(body, offset + i + 1, calls, found)
        elif not fence.group(2).startswith(":"):
            code = drop_options(body)
            first = offset + i + 2 + len(body) - len(code)
            tag = fence.group(4).split()[0].lower() if fence.group(4).split() else ""
            text = "\n".join(code).rstrip() + "\n"
            if tag in C_TAGS:
                found.append(CodeBlock(first, _language(tag), text, True))
            elif not tag and _looks_like_c(text, calls):
                found.append(CodeBlock(first, "c", text, False))
        i = end + 1


def verdict_of(block: CodeBlock, report: CodeReport) -> BlockVerdict:
    """A block's verdict from its report, the first error's line moved into the text."""
    if report.cannot_wrap:
        status: Status = "cannot-wrap"
    else:
        status = "compiles" if report.compiled else "error"
    first = (report.errors()[:1] or report.diagnostics[:1]) if status == "error" else []
    diagnostic = first[0].to_dict() if first else None
    if diagnostic and diagnostic["line"]:
        diagnostic["line"] += block.line - 1
    verdict = report.verdict()
    if diagnostic and diagnostic["line"]:  # "line 2: ..." of the block reads as the text's
        verdict = verdict.replace(f"line {first[0].line}:", f"line {diagnostic['line']}:", 1)
    return BlockVerdict(
        block.line,
        block.language,
        status,
        verdict,
        diagnostic,
        report.cannot_wrap,
        report.petsc,
        round(report.compile_s, 3),
    )


class VerdictCache:
    """Verdicts by content hash: `get`/`put` a block's verdict relative to its first line."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(path)
        with self.conn:
            self.conn.execute(
                "CREATE TABLE IF NOT EXISTS verdicts (key TEXT PRIMARY KEY, row TEXT)"
            )

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> VerdictCache:
        return cls(Path(data_dir) / CACHE_FILE)

    @staticmethod
    def key(block: CodeBlock, petsc: str) -> str:
        parts = [CACHE_SCHEMA, petsc, block.language, block.code]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()

    def get(self, block: CodeBlock, petsc: str) -> BlockVerdict | None:
        row = self.conn.execute(
            "SELECT row FROM verdicts WHERE key = ?", (self.key(block, petsc),)
        ).fetchone()
        if row is None:
            return None
        verdict = BlockVerdict(**json.loads(row[0]))
        return _shift(verdict, block.line - 1)

    def put(self, block: CodeBlock, petsc: str, verdict: BlockVerdict) -> None:
        relative = _shift(BlockVerdict(**verdict.to_dict()), 1 - block.line)
        with self.conn:
            self.conn.execute(
                "INSERT OR REPLACE INTO verdicts VALUES (?, ?)",
                (self.key(block, petsc), json.dumps(relative.to_dict())),
            )

    def close(self) -> None:
        self.conn.close()


def _shift(verdict: BlockVerdict, by: int) -> BlockVerdict:
    """The verdict with its lines moved by `by` (stored relative to the block's line 1)."""
    old_line = verdict.diagnostic["line"] if verdict.diagnostic else 0
    verdict.line += by
    if old_line:
        assert verdict.diagnostic is not None
        verdict.diagnostic["line"] = old_line + by
        verdict.verdict = verdict.verdict.replace(f"line {old_line}:", f"line {old_line + by}:", 1)
    return verdict


def check_block(
    checker: CodeChecker, block: CodeBlock, cache: VerdictCache | None = None
) -> tuple[BlockVerdict, bool]:
    """One block's verdict, and whether it came from the cache."""
    petsc = checker.build.describe()
    cached = cache.get(block, petsc) if cache else None
    if cached is not None:
        return cached, True
    verdict = verdict_of(block, checker.check(block.code, block.language))
    if cache is not None:
        cache.put(block, petsc, verdict)
    return verdict, False


def check_blocks(
    checker: CodeChecker,
    text: str,
    prefixes: Sequence[str],
    cache: VerdictCache | None = None,
) -> list[BlockVerdict]:
    """Per C block of the Markdown `text`: compiles, its first error (line in `text`), or
    why it could not be wrapped. An empty list: the text has no C code."""
    return [check_block(checker, block, cache)[0] for block in code_blocks(text, prefixes)]
