"""Fixtures for the doc-patch and gaps tests: MyST pages, a mail archive and issues,
all written here (fictional people, no corpus text), and the index built from them.

The pages go both into the index and into a git repository (the "docs clone"), the way a
docs checkout and its ingested copy relate in real use.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

MAINTAINERS = ["Barry Smith", "Matthew Knepley"]

PAGES = {
    "manual/ksp.md": """(ch_ksp)=

# KSP: Linear System Solvers

The KSP object solves linear systems; create it with KSPCreate().

(sec_convergence)=

## Convergence tests

The default convergence test stops when the residual norm falls below the tolerances
set with KSPSetTolerances(ksp, rtol, abstol, dtol, maxits). From the command line use
-ksp_rtol, -ksp_atol, -ksp_divtol and -ksp_max_it. Monitor the true residual with
-ksp_monitor_true_residual.

## Preconditioners

Select a preconditioner with PCSetType() or -pc_type; -pc_type ilu uses incomplete LU
factorization.

:::{note}
Algebraic multigrid (-pc_type gamg) suits elliptic problems.
:::

### Multigrid

Geometric multigrid is PCMG; get the smoother of a level with PCMGGetSmoother() and set
its options with the -mg_levels_ prefix, for example -mg_levels_ksp_type richardson.

```c
PetscCall(PCMGGetSmoother(pc, 1, &smoother));
```
""",
    "manual/vec.md": """(ch_vectors)=

# Vectors

## Creating vectors

Create a parallel vector with VecCreate() and VecSetSizes(), then VecSetFromOptions().
Use -vec_type cuda for vectors on NVIDIA GPUs; VecCreateMPI() makes an MPI vector directly.
""",
    "install/index.md": """# Installing

## Configure

Run ./configure with your compilers, then make all and make check. Use
--download-mpich when no MPI implementation is installed.
""",
    "faq/index.md": """(doc_faq)=

# FAQ

## Usage

### How do I view a matrix?

Call MatView() or run with -mat_view:

```console
$ ./ex1 -mat_view
```

## Execution

### Why is my parallel solver slower than the sequential one?

Memory bandwidth limits sparse solvers; see {ref}`sec_convergence` for the tolerances.
""",
}


def _message(mid: str, author: str, day: int, subject: str, body: str, reply_to: str = "") -> str:
    login = author.lower().replace(" ", ".")
    head = [
        f"From {login}@example.invalid Mon Jan {day:2d}10:00:00 2024",
        f"From: {author} <{login}@example.invalid>",
        f"Date: Mon, {day:02d} Jan 2024 10:00:00 +0000",
        f"Subject: {'Re: ' if reply_to else ''}[petsc-users] {subject}",
        f"Message-ID: <{mid}@example.invalid>",
    ]
    if reply_to:
        head += [
            f"In-Reply-To: <{reply_to}@example.invalid>",
            f"References: <{reply_to}@example.invalid>",
        ]
    return "\n".join(head) + "\n\n" + body.strip() + "\n\n"


# (thread id, subject, asker, question body, [(replier, reply body)])
THREADS = [
    (
        "mg1",
        "Different tolerances on each multigrid level",
        "Alice Solver",
        "Hello,\n\nHow do I set a different relative tolerance for the smoother on each "
        "multigrid level? The coarse levels should iterate less.\n\nThanks,\nAlice",
        [
            (
                "Barry Smith",
                "Hi Alice,\n\nEach level has its own options prefix: use "
                "-mg_levels_1_ksp_rtol 1e-2 and -mg_levels_2_ksp_rtol 1e-4, or call "
                "KSPSetTolerances() on the KSP that PCMGGetSmoother() returns for that level. "
                "Run with -ksp_view to check what each level uses.\n\n"
                "> How do I set a different relative tolerance\n> for the smoother\n\n"
                "Write to me at barry.s@example.invalid if it fails.\n\n  Barry\n",
            ),
            ("Alice Solver", "Thanks, that works."),
        ],
    ),
    (
        "mg2",
        "Tolerance of the multigrid smoother per level",
        "Bob Krylov",
        "Can I give each multigrid level its own smoother tolerance from the command line?",
        [("Matthew Knepley", "Yes, use the level prefix, e.g. -mg_levels_1_ksp_rtol 1e-3.")],
    ),
    (
        "gpu1",
        "Running vectors on the GPU",
        "Carol Mesh",
        "How do I run my vectors on an NVIDIA GPU?",
        [("Dan User", "I think -vec_type cuda works, try it.")],
    ),
    (
        "mat1",
        "Viewing a matrix",
        "Gina View",
        "How do I view a matrix from the command line?",
        [("Barry Smith", "Run with -mat_view, or call MatView() in the code.")],
    ),
    (
        "noans",
        "Segfault in my own code",
        "Erin Debug",
        "My program crashes with a segmentation violation in my own function. Any idea?",
        [],
    ),
]

ISSUES = [
    {
        "iid": 41,
        "title": "Smoother tolerance for each multigrid level",
        "author": {"name": "Frank Grid", "username": "fgrid"},
        "description": "How can each multigrid level use a different smoother tolerance?",
        "notes": [
            {
                "id": 1,
                "author": {"name": "Barry Smith", "username": "bsmith"},
                "created_at": "2024-02-02T10:00:00Z",
                "body": "Use -mg_levels_1_ksp_rtol.",
            },
        ],
    },
]


def write_pages(root: Path) -> Path:
    for rel, text in PAGES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def write_mbox(path: Path) -> Path:
    messages = []
    for day, (tid, subject, asker, question, replies) in enumerate(THREADS, start=1):
        messages.append(_message(tid, asker, day, subject, question))
        for n, (author, body) in enumerate(replies, start=1):
            messages.append(_message(f"{tid}.{n}", author, day, subject, body, tid))
    path.write_text("".join(messages))
    return path


def write_issues(path: Path) -> Path:
    items = []
    for issue in ISSUES:
        url = f"https://gitlab.example.invalid/petsc/petsc/-/issues/{issue['iid']}"
        items.append(
            {
                **issue,
                "web_url": url,
                "state": "opened",
                "labels": [],
                "created_at": "2024-02-01T10:00:00Z",
                "updated_at": "2024-02-02T10:00:00Z",
            }
        )
    path.write_text(json.dumps(items))
    return path


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
    return done.stdout


def make_repo(root: Path) -> Path:
    """A git repository holding the pages on `main`, one commit."""
    write_pages(root)
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", "Docs Tester")
    git(root, "config", "user.email", "tester@example.invalid")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "docs")
    return root


def build_index(root: Path, embedder):
    """A Config whose data dir indexes the pages, the mail archive and the issues."""
    from sciknow.config import load_config
    from sciknow.index.factory import make_chunker, open_store
    from sciknow.index.pipeline import ingest
    from sciknow.ingest.docs import DocsSource
    from sciknow.ingest.gitlab import GitLabSource
    from sciknow.ingest.mbox import MboxSource

    config = load_config(environ={"SCIKNOW_DATA_DIR": str(root / "data")})
    config.profile.maintainers = list(MAINTAINERS)
    profile = config.profile
    sources = [
        DocsSource("docs", str(write_pages(root / "docs")), profile),
        MboxSource(
            "petsc-users", str(write_mbox(root / "list.mbox")), profile, maintainers=MAINTAINERS
        ),
        GitLabSource(
            "petsc-issues",
            str(write_issues(root / "issues.json")),
            profile,
            maintainers=MAINTAINERS,
        ),
    ]
    ingest(open_store(config), sources, embedder, make_chunker(config))
    return config
