"""Report files of a retrieval evaluation: JSON (everything), a Markdown table, PNG curves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

COLUMNS_PER_K = ("R", "SymR")


def cell(value: float | None, digits: int = 2) -> str:
    """A table cell: the number rounded, or an en dash when there is none."""
    return "–" if value is None else f"{value:.{digits}f}"


def pyplot() -> Any:
    """matplotlib's pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _at(values: dict[Any, float | None], k: int) -> float | None:
    """Value at k whether keys are ints (in memory) or strings (read back from JSON)."""
    return values.get(k, values.get(str(k)))


def markdown_table(report: dict[str, Any]) -> str:
    """One row per pipeline: recall@k, MRR, symbol recall@k, ceiling, latency p50/p95."""
    ks = report["ks"]
    head = (
        ["pipeline"]
        + [f"R@{k}" for k in ks]
        + ["MRR"]
        + [f"SymR@{k}" for k in ks]
        + ["ceiling", "p50 ms", "p95 ms"]
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for p in report["pipelines"]:
        row = (
            [p["name"]]
            + [cell(_at(p["recall"], k)) for k in ks]
            + [cell(p["mrr"])]
            + [cell(_at(p["symbol_recall"], k)) for k in ks]
            + [cell(p["ceiling"])]
            + [cell(p["latency_ms"]["p50"], 1), cell(p["latency_ms"]["p95"], 1)]
        )
        lines.append("| " + " | ".join(row) + " |")
    first = report["pipelines"][0] if report["pipelines"] else {}
    note = (
        f"{report['questions']} questions ({first.get('gold_questions', 0)} with the gold page "
        f"indexed, {first.get('symbol_questions', 0)} naming symbols); mode `{report['mode']}`; "
        f"symbol recall within the first {report['context_budget_chars']:,} characters; "
        "ceiling = share of reference symbols anywhere in the index."
    )
    return "\n".join(lines) + "\n\n" + note + "\n"


def plot_curves(report: dict[str, Any], path: Path) -> None:
    """Recall@k (gold, when measured) and symbol recall@k per pipeline, k = 1..max."""
    plt = pyplot()
    depth = max(report["ks"])
    ks = list(range(1, depth + 1))
    panels = [("symbol_recall", "symbol recall@k")]
    if any(_at(p["recall"], 1) is not None for p in report["pipelines"]):
        panels.insert(0, ("recall", "gold recall@k"))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (key, label) in zip(axes[0], panels, strict=True):
        for p in report["pipelines"]:
            values = [_at(p[key], k) for k in ks]
            if any(v is not None for v in values):
                ax.plot(ks, [v if v is not None else float("nan") for v in values],
                        marker="o", label=p["name"])  # fmt: skip
        if key == "symbol_recall" and report["pipelines"]:
            ceiling = report["pipelines"][0]["ceiling"]
            if ceiling is not None:
                ax.axhline(ceiling, linestyle="--", color="grey", label="ceiling")
        ax.set(xlabel="k", ylabel=label, ylim=(0, 1), xticks=ks)
        ax.set_title(f"{label} ({report['mode']})")
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(report: dict[str, Any], out: Path) -> dict[str, Path]:
    """Write `retrieval-<mode>.json`, `.md` and `.png` into `out`; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    stem = f"retrieval-{report['mode']}"
    paths = {kind: out / f"{stem}.{kind}" for kind in ("json", "md", "png")}
    paths["json"].write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    paths["md"].write_text(markdown_table(report), encoding="utf-8")
    plot_curves(report, paths["png"])
    return paths
