"""Report files of an answer evaluation: JSON (every answer), Markdown, PNG bars, deltas.

`answers-<mode>.json` holds the report dict of `answers.run` (every question's answer,
citations, passages, metrics and judged values); `answers-<mode>.md` a summary table, a
table per pipeline with its modes side by side, the worst questions of each run, the
deltas against `--compare OLD.json` and, with `--flags`, flags as an error detector;
`answers-<mode>.png` the bounded metrics and the answer time per run, and
`answers-<mode>-flags.png` the flags' precision and recall. With `--compile`, the share
of answers whose C code compiles and the blocks that do not, each with its first error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sciknow.eval.answer_metrics import UNIT_MATCH
from sciknow.eval.judge import CORRECT_AT, JUDGED
from sciknow.eval.metrics import mean
from sciknow.eval.report import cell, pyplot

# (key, label, kind): kind "share" and "num" print 2 decimals, "ms" and "int" none.
SUMMARY_ROWS = [
    ("questions", "questions", "int"),
    ("abstention", "abstention rate", "share"),
    ("symbol_recall", "symbol recall vs the reference", "share"),
    ("symbol_precision", "symbol precision vs the reference", "share"),
    ("lead_hit", "lead hit: first unit names a reference name", "share"),
    ("unit_precision", f"unit precision: units like the reference (cos ≥ {UNIT_MATCH})", "share"),
    ("invented_per_answer", "invented or removed names per answer", "num"),
    ("with_invented", "answers with an invented or removed name", "share"),
    ("citation_validity", "citations supported by their passage", "share"),
    ("cited", "answers with ≥1 valid citation", "share"),
    ("loop", "answers with a repetition loop", "share"),
    ("fallback", "generations replaced by the guard", "share"),
    ("gen_symbol_recall", "generation: symbol recall", "share"),
    ("gen_cited", "generation: ≥1 valid citation", "share"),
    ("gen_loop", "generation: repetition loop", "share"),
    ("gen_with_invented", "generation: an invented name", "share"),
    ("words", "length, words (mean)", "int"),
    ("chars", "length, characters (mean)", "int"),
    ("chars_p50", "length, characters p50", "int"),
    ("ttft_ms_p50", "time to first token p50, ms", "ms"),
    ("tokens_per_s", "tokens/s (generation)", "num"),
    ("total_ms_p50", "answer time p50, ms", "ms"),
    ("total_ms_p95", "answer time p95, ms", "ms"),
]
JUDGED_ROWS = [(m, f"{m.replace('_', ' ')} (judge)", "share") for m in JUDGED] + [
    ("accuracy", "accuracy: correct / all (judge)", "share"),
    ("precision", "precision: correct / answered (judge)", "share"),
]
COMPILE_ROWS = [
    ("code_answers", "answers with C code", "int"),
    ("code_compiles", "answers whose C code compiles (of those with code)", "share"),
    ("no_code_answers", "answers without C code (not counted above)", "int"),
    ("code_blocks", "C code blocks", "int"),
    ("code_blocks_unwrapped", "C blocks that could not be wrapped", "int"),
]
FAILING_BLOCKS = 10
FLAG_ROWS = [
    ("flag_recall", "flags: share of errors flagged", "share"),
    ("flag_precision", "flags: share of flags on an error", "share"),
]
HEADLINE = [
    "symbol_recall",
    "symbol_precision",
    "lead_hit",
    "unit_precision",
    "chars_p50",
    "abstention",
    "cited",
    "loop",
    "gen_loop",
    "total_ms_p50",
]
PLOTTED = [
    "symbol_recall",
    "symbol_precision",
    "lead_hit",
    "unit_precision",
    "citation_validity",
    "cited",
    "loop",
    "abstention",
]
WORST = 5


def _format(value: Any, kind: str) -> str:
    if value is None:
        return "–"
    if kind == "int":
        return f"{value:,.0f}"
    if kind == "ms":
        return f"{value:,.0f}"
    return cell(value)


def _rows(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    rows = list(SUMMARY_ROWS)
    if report.get("judge"):
        rows += JUDGED_ROWS
    if report["settings"].get("flags"):
        rows += FLAG_ROWS
    if report["settings"].get("compile"):
        rows += COMPILE_ROWS
    return rows


def metric_table(report: dict[str, Any], runs: list[dict[str, Any]]) -> str:
    """Metrics as rows, the given runs as columns."""
    head = ["metric", *(r["name"] for r in runs)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, label, kind in _rows(report):
        lines.append("| " + " | ".join([label, *(_format(r.get(key), kind) for r in runs)]) + " |")
    return "\n".join(lines)


def headline_table(report: dict[str, Any]) -> str:
    """One row per run: the figures issues 12 and 27 ask for."""
    labels = {key: label for key, label, _ in SUMMARY_ROWS}
    kinds = {key: kind for key, _, kind in SUMMARY_ROWS}
    head = ["run", *(labels[k] for k in HEADLINE)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in report["runs"]:
        row = [r["name"], *(_format(r.get(k), kinds[k]) for k in HEADLINE)]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def badness(row: dict[str, Any]) -> float:
    """How good one answer is, 0..1 (lower is worse): the mean of its symbol recall, lead
    hit, unit precision, a valid citation, no loop and, when judged, answer correctness
    (a report written before lead hit and unit precision existed goes without them)."""
    m = row["metrics"]
    lead = m.get("lead_hit")
    parts = [m["symbol_recall"], None if lead is None else float(lead), m.get("unit_precision")]
    parts += [None if m["cited"] is None else float(m["cited"]), 1.0 - float(m["loop"])]
    parts += [row.get("judged", {}).get("answer_correctness")]
    return mean(parts) or 0.0


def _snippet(text: str, size: int = 110) -> str:
    flat = " ".join(text.split()).replace("|", "\\|")
    return flat[:size] + ("…" if len(flat) > size else "")


def worst_table(run: dict[str, Any], judged: bool) -> str:
    head = ["id", "question", "sym. recall", "lead hit", "unit prec.", "cited", "loop"]
    head += ["correctness"] if judged else []
    head += ["answer starts (a replaced one: its generation)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in sorted(run["per_question"], key=badness)[:WORST]:
        m = row["metrics"]
        cited = "abstained" if m["cited"] is None else ("yes" if m["cited"] else "no")
        lead = m.get("lead_hit")
        cells = [row["id"], _snippet(row["question"], 70), cell(m["symbol_recall"])]
        cells += ["–" if lead is None else ("yes" if lead else "no")]
        cells += [cell(m.get("unit_precision")), cited, "yes" if m["loop"] else "no"]
        cells += [cell(row["judged"].get("answer_correctness"))] if judged else []
        shown = f"(replaced) {row['generated']}" if row.get("generated") else row["text"]
        cells += [_snippet(shown)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def compare_table(report: dict[str, Any], old: dict[str, Any]) -> str:
    """New minus old for every run present in both reports."""
    before = {r["name"]: r for r in old.get("runs", [])}
    runs = [r for r in report["runs"] if r["name"] in before]
    if not runs:
        return "No run of the earlier report has the same name.\n"
    head = ["metric", *(f"{r['name']} Δ" for r in runs)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, label, kind in _rows(report):
        cells = []
        for r in runs:
            new, was = r.get(key), before[r["name"]].get(key)
            cells.append("–" if new is None or was is None else _delta(new - was, kind))
        lines.append("| " + " | ".join([label, *cells]) + " |")
    return "\n".join(lines) + "\n"


def _delta(value: float, kind: str) -> str:
    return ("+" if value > 0 else "") + (_format(value, kind) if value else "0")


def flags_table(report: dict[str, Any]) -> str:
    head = ["run", "errors", "flagged", "recall", "flags", "on an error", "precision"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in report["runs"]:
        c = r["flag_counts"]
        cells = [r["name"], str(c["errors"]), str(c["caught"]), cell(r["flag_recall"])]
        cells += [str(c["flags"]), str(c["right"]), cell(r["flag_precision"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def failing_code_table(report: dict[str, Any]) -> str:
    """The first blocks of each run that do not compile, with their verdicts."""
    head = ["run", "id", "line", "verdict"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in report["runs"]:
        failing = [
            (row["id"], block)
            for row in r["per_question"]
            for block in row.get("compile", {}).get("blocks", [])
            if block["status"] != "compiles"
        ]
        for question, block in failing[:FAILING_BLOCKS]:
            cells = [r["name"], question, str(block["line"]), _snippet(block["verdict"], 160)]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_report(report: dict[str, Any], old: dict[str, Any] | None = None) -> str:
    judged = bool(report.get("judge"))
    judge = report.get("judge")
    judge_line = (
        f"judge: `{judge['model']}` at {judge['url']}, embeddings `{judge['embedder']}`"
        if judge
        else "judge: none (judge-free metrics only)"
    )
    parts = [
        f"# Answer quality — `{report['mode']}`\n",
        f"{report['questions']} questions from `{report['dataset']}`; corpus `{report['corpus']}`"
        + (f" without {', '.join(report['exclude'])}" if report["exclude"] else "")
        + (f" plus `{report['repo']}`" if report["repo"] else "")
        + f"; retrieval embedder `{report['embedder']}`.",
        f"Answering model: `{report['answering']['model']}` on `{report['answering']['backend']}`"
        " (extractive runs use none); " + judge_line + ".\n",
        "## Summary\n",
        headline_table(report) + "\n",
    ]
    if old is not None:
        parts += ["## Compared with the earlier report\n", compare_table(report, old)]
    for pipeline in dict.fromkeys(r["pipeline"] for r in report["runs"]):
        runs = [r for r in report["runs"] if r["pipeline"] == pipeline]
        parts += [f"## Pipeline `{pipeline}`\n", metric_table(report, runs) + "\n"]
        for run in runs:
            model = (
                "no model" if run["backend"] == "none" else f"`{run['model']}` ({run['backend']})"
            )
            parts += [
                f"### Worst questions of `{run['name']}`\n",
                f"{model}; {run['cached']} of {run['questions']} answers from the cache.\n",
                worst_table(run, judged) + "\n",
            ]
    if report["settings"].get("flags"):
        parts += ["## Flags as an error detector\n", flags_table(report) + "\n", FLAGS_NOTE]
    if report["settings"].get("compile"):
        parts += [f"## Code that does not compile against {report['petsc']}\n"]
        parts += [failing_code_table(report) + "\n"]
    parts += [READING]
    return "\n".join(parts)


FLAGS_NOTE = (
    "Errors are the answer's invented names (in no symbol table) and the real names that "
    "neither the reference nor any given passage uses; flags are the spans flagged as "
    "uncertain or as unknown or removed names. Recall: errors inside a flag; precision: "
    "flags on an error.\n"
)
READING = f"""## How to read this

- Symbol recall: share of the reference answer's library names the answer contains;
  precision: share of the answer's names the reference uses (low precision is not
  wrong by itself: an answer may name more than the FAQ did). Invented names exist in
  no symbol table of the index.
- Lead hit: the answer's first unit (paragraph, list item or code block) names one of
  the reference's library names. Unit precision: the share of the answer's sentences
  and code blocks whose best cosine (the index's embedder) to a sentence or block of the
  reference is at least {UNIT_MATCH}. Length: characters of the answer as shown.
- A question without a reference answer (an off-topic set) has no symbol recall, lead
  hit or unit precision: its figure is the abstention rate (each answer to it is a
  missed abstention; on a set with references, each abstention is a false one).
- A citation is supported when its passage shares a library name or a sentence with the
  cited text; an answer counts as cited with at least one supported citation.
  Abstentions are left out of citation figures.
- Generative runs are scored as shown (after the guard's fallback, which replaces
  looping, uncited or invented answers with the extractive one) and, as "generation",
  on the model's own text before any replacement.
- Judged metrics (ragas) are means over the questions they apply to; a judge failure
  leaves the metric missing for that question (`*_missing` in the JSON). Correct means
  answer accuracy ≥ {CORRECT_AT}: accuracy counts abstentions as not correct, precision
  counts only answered questions.
"""


def plot(report: dict[str, Any], path: Path) -> None:
    """Bounded metrics per run (grouped bars) and the answer time per run."""
    plt = pyplot()
    runs = report["runs"]
    keys = PLOTTED + ([m for m in JUDGED] + ["accuracy"] if report.get("judge") else [])
    labels = {k: label for k, label, _ in SUMMARY_ROWS + JUDGED_ROWS}
    fig, (bars, times) = plt.subplots(
        1, 2, figsize=(12, 0.45 * len(keys) * max(1, len(runs)) + 1.5),
        gridspec_kw={"width_ratios": [3, 1]},
    )  # fmt: skip
    height = 0.8 / max(1, len(runs))
    for i, run in enumerate(runs):
        values = [run.get(k) if run.get(k) is not None else float("nan") for k in keys]
        positions = [j + i * height for j in range(len(keys))]
        bars.barh(positions, values, height=height, label=run["name"])
        for y, value in zip(positions, values, strict=True):
            if value == value:  # not NaN
                bars.annotate(f" {value:.2f}", (value, y), va="center", fontsize="x-small")
    bars.set_yticks([j + height * (len(runs) - 1) / 2 for j in range(len(keys))])
    bars.set_yticklabels([labels[k] for k in keys], fontsize="small")
    bars.invert_yaxis()
    bars.set(xlim=(0, 1), title=f"answers ({report['mode']})")
    bars.grid(axis="x", alpha=0.3)
    bars.legend(loc="lower right", fontsize="small")
    _time_bars(times, runs)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _time_bars(ax: Any, runs: list[dict[str, Any]]) -> None:
    """Answer time p50 per run, labelled; a log axis once the runs differ 20-fold."""
    seconds = [(r.get("total_ms_p50") or float("nan")) / 1000 for r in runs]
    ax.barh([r["name"] for r in runs], seconds, color="grey")
    for i, value in enumerate(seconds):
        ax.annotate(f" {value:.2f} s", (value, i), va="center", fontsize="small")
    present = [v for v in seconds if v > 0]
    if present and max(present) >= 20 * min(present):
        ax.set_xscale("log")
    else:
        ax.set_xlim(0, 1.3 * max(present, default=1.0))
    ax.invert_yaxis()
    ax.set(xlabel="answer time p50, s", title="time")


def plot_flags(report: dict[str, Any], path: Path) -> None:
    """Precision and recall of the flags as an error detector, per run."""
    plt = pyplot()
    runs = report["runs"]
    fig, ax = plt.subplots(figsize=(6, 1 + 0.6 * len(runs)))
    for offset, (key, label) in enumerate(
        [("flag_precision", "precision"), ("flag_recall", "recall")]
    ):
        values = [r.get(key) if r.get(key) is not None else float("nan") for r in runs]
        ax.barh([i + offset * 0.4 for i in range(len(runs))], values, height=0.4, label=label)
    ax.set_yticks([i + 0.2 for i in range(len(runs))])
    ax.set_yticklabels([r["name"] for r in runs])
    ax.invert_yaxis()
    ax.set(xlim=(0, 1), title="flags as an error detector")
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_answer_report(
    report: dict[str, Any], out: Path, old: dict[str, Any] | None = None
) -> dict[str, Path]:
    """Write `answers-<mode>.json`, `.md`, `.png` (and `-flags.png`) into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    stem = f"answers-{report['mode']}"
    paths = {kind: out / f"{stem}.{kind}" for kind in ("json", "md", "png")}
    paths["json"].write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    paths["md"].write_text(markdown_report(report, old), encoding="utf-8")
    plot(report, paths["png"])
    if report["settings"].get("flags"):
        paths["flags"] = out / f"{stem}-flags.png"
        plot_flags(report, paths["flags"])
    return paths
