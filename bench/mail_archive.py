"""A synthetic petsc-users archive for the gaps report and its benchmark (fictional people).

Each topic is a question users ask again and again, in several wordings, with the answer
a maintainer gives in the thread; threads pick a topic, a wording and an asker, get a
maintainer reply (sometimes a user's instead, sometimes none) and a thank-you. Run

    python bench/mail_archive.py --messages 300 --out list.mbox

and ingest the file with `maintainers = ["Maya Krylov", "Sam Newton"]` in `[profile]`.
"""

from __future__ import annotations

import argparse
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

MAINTAINERS = ["Maya Krylov", "Sam Newton"]
USERS = [
    f"{first} {last}"
    for first in ("Ada", "Ben", "Chen", "Dina", "Emil", "Fatou", "Goran", "Hana", "Ivo", "Jun")
    for last in (
        "Arnoldi",
        "Bratu",
        "Courant",
        "Dirichlet",
        "Euler",
        "Fourier",
        "Galerkin",
        "Hermite",
    )
]

# (subjects, questions, maintainer answer)
TOPICS = [
    (
        ["Different smoother tolerance on each multigrid level", "mg level tolerances"],
        [
            "How do I set a different relative tolerance for the smoother on each multigrid level?",
            "Can each level of PCMG use its own smoother tolerance?",
        ],
        "Every level has its own options prefix. Use -mg_levels_1_ksp_rtol 1e-2 for level 1 "
        "(and so on), or call KSPSetTolerances() on the KSP that PCMGGetSmoother() returns "
        "for that level. Check the result with -ksp_view.",
    ),
    (
        ["Dense constraint rows in a sparse matrix", "Lagrange multiplier with a dense row"],
        [
            "How should I handle a few dense constraint rows and columns in a sparse system?",
            "My system has one dense row and column from a constraint; how do I solve it "
            "efficiently?",
        ],
        "For a handful of constraints (fewer than about 50) use a low-rank correction, "
        "MatCreateLRC(), since the cost is the inversion of a small dense matrix. You can also "
        "give the constraint rows to PCFIELDSPLIT with PCFieldSplitSetIS(), but dense rows "
        "tend to slow down iterative convergence.",
    ),
    (
        ["Reusing the preconditioner", "Keep the preconditioner between solves"],
        [
            "How do I keep the same preconditioner for several solves while the matrix changes?",
            "Can KSP reuse the preconditioner from the previous solve?",
        ],
        "Call KSPSetReusePreconditioner() with PETSC_TRUE, or run with "
        "-ksp_reuse_preconditioner; the preconditioner is then rebuilt only when you set it "
        "back to PETSC_FALSE.",
    ),
    (
        ["Eigenvalue estimates of the preconditioned operator", "condition number estimate"],
        [
            "How can I estimate the extreme eigenvalues of my preconditioned operator?",
            "Is there a way to see the condition number of the preconditioned system?",
        ],
        "Run with -ksp_compute_eigenvalues, or call KSPSetComputeEigenvalues() before the "
        "solve and KSPComputeEigenvalues() after it; -ksp_monitor_singular_value prints "
        "condition number estimates at each iteration.",
    ),
    (
        ["Saving the trajectory of a TS run", "Checkpoint a time-stepping run"],
        [
            "How do I save the whole trajectory of a TS run to restart or adjoint it later?",
            "Can TS write checkpoints of every step?",
        ],
        "Call TSSetSaveTrajectory() before TSSolve(); the TSTrajectory object then stores the "
        "steps, and its options select where and how.",
    ),
    (
        ["Kokkos matrices and vectors", "Running my solver on GPUs with Kokkos"],
        [
            "How do I run my existing KSP solve on a GPU with Kokkos?",
            "What options move my matrices and vectors to Kokkos?",
        ],
        "Configure with Kokkos, create the objects with VecSetFromOptions() and "
        "MatSetFromOptions(), then run with -vec_type kokkos -mat_type aijkokkos.",
    ),
    (
        ["Error on a new nonzero after preallocation", "MatSetValues new nonzero error"],
        [
            "Why does MatSetValues() fail with a new nonzero caused a malloc error?",
            "How do I find which entry was not preallocated?",
        ],
        "The entry was not in your preallocation. Fix the preallocation, or to find the entry "
        "keep MatSetOption() with MAT_NEW_NONZERO_ALLOCATION_ERR set to PETSC_TRUE and run in "
        "the debugger; turning the option off hides the cost.",
    ),
    (
        ["Line search choice for SNES", "SNES line search types"],
        [
            "Which SNES line search should I use when Newton stalls?",
            "How do I change the line search of SNES?",
        ],
        "Use -snes_linesearch_type bt (backtracking, the default) or try l2 or cp; "
        "-snes_linesearch_monitor shows what each step does.",
    ),
]
THANKS = ["Thanks, that works.", "Thank you, this solved it.", "Great, thanks!"]
USER_GUESS = "I am not sure, maybe try -ksp_view and look at the options."
FOLLOW_UP = "Let me know if you need anything else."


def _message(
    mid: str, author: str, when: datetime, subject: str, body: str, parent: str = ""
) -> str:
    login = author.lower().replace(" ", ".")
    lines = [
        f"From {login}@example.invalid {when.strftime('%a %b %d %H:%M:%S %Y')}",
        f"From: {author} <{login}@example.invalid>",
        f"Date: {format_datetime(when)}",
        f"Subject: {'Re: ' if parent else ''}[petsc-users] {subject}",
        f"Message-ID: <{mid}@archive.invalid>",
    ]
    if parent:
        lines += [
            f"In-Reply-To: <{parent}@archive.invalid>",
            f"References: <{parent}@archive.invalid>",
        ]
    return "\n".join(lines) + "\n\n" + body + "\n\n"


def _thread(n: int, rng: random.Random, start: datetime) -> list[str]:
    subjects, questions, answer = rng.choice(TOPICS)
    subject, asker = f"{rng.choice(subjects)} ({n})", rng.choice(USERS)
    when = start + timedelta(hours=7 * n)
    question = f"Hello,\n\n{rng.choice(questions)}\n\nThanks,\n{asker.split()[0]}"
    out = [_message(f"t{n}", asker, when, subject, question)]
    roll = rng.random()
    if roll < 0.75:
        maintainer = rng.choice(MAINTAINERS)
        body = f"Hi {asker.split()[0]},\n\n{answer}\n\n{FOLLOW_UP}\n\n  {maintainer.split()[0]}"
        out.append(
            _message(f"t{n}.1", maintainer, when + timedelta(hours=2), subject, body, f"t{n}")
        )
        out.append(
            _message(
                f"t{n}.2", asker, when + timedelta(hours=5), subject, rng.choice(THANKS), f"t{n}.1"
            )
        )
    elif roll < 0.9:
        out.append(
            _message(
                f"t{n}.1",
                rng.choice(USERS),
                when + timedelta(hours=3),
                subject,
                USER_GUESS,
                f"t{n}",
            )
        )
    return out


def write_archive(path: Path, messages: int, seed: int = 7) -> int:
    """Write about `messages` messages as whole threads; returns how many were written."""
    rng = random.Random(seed)
    start = datetime(2024, 1, 1, 9, tzinfo=UTC)
    written, n = 0, 0
    with path.open("w", encoding="utf-8") as out:
        while written < messages:
            for message in _thread(n, rng, start):
                out.write(message)
                written += 1
            n += 1
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    print(f"{write_archive(args.out, args.messages)} messages in {args.out}")


if __name__ == "__main__":
    main()
