"""`sciknow patch` and `sciknow gaps`: doc patches drafted from what maintainers explained.

    sciknow patch --docs-repo PATH (--question Q --answer A | --thread DOC_ID | --gap N)
                  [--out DIR] [--json] [--commit] [--open-mr] [--backend B] [--base REF]
    sciknow gaps [--json] [--since DATE] [--top N] [--questions FILE]

A dry run by default: the patch and its merge-request description are written to `--out`
and their paths printed. `--commit` adds a branch `sciknow/<slug>` to the docs clone (one
commit; the checked-out branch and the target are never touched); `--open-mr` also pushes
it and opens or updates the GitLab merge request (`GITLAB_TOKEN`). See `serve/docpatch/`.
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import date
from pathlib import Path
from typing import Any

from sciknow.config import BACKENDS, Config, ConfigError

SHOWN_ANSWERS = 2  # distinct answer excerpts per gap in the text report


def add_patch_parser(verbs: Any) -> None:
    """Register the `patch` and `gaps` verbs on the `sciknow` sub-parsers."""
    patch = verbs.add_parser("patch", help="draft a validated docs patch (and merge request)")
    patch.add_argument("--docs-repo", required=True, help="local git clone of the docs")
    source = patch.add_mutually_exclusive_group(required=True)
    source.add_argument("--question", help="the question (with --answer)")
    source.add_argument("--thread", metavar="DOC_ID", help="a mail thread or issue in the index")
    source.add_argument("--gap", type=int, metavar="N", help="gap N of the last `sciknow gaps`")
    patch.add_argument("--answer", help="the answer to --question")
    patch.add_argument(
        "--evidence",
        action="append",
        default=[],
        metavar="URL",
        help="where --answer was given (a thread, an issue); repeatable",
    )
    patch.add_argument("--out", default="sciknow-patches", help="folder for .patch and .md")
    patch.add_argument("--json", action="store_true", help="print the result as JSON")
    patch.add_argument("--commit", action="store_true", help="commit on branch sciknow/<slug>")
    patch.add_argument(
        "--open-mr", action="store_true", help="push and open/update a GitLab merge request"
    )
    patch.add_argument("--backend", choices=BACKENDS, help="default: models.backend")
    patch.add_argument("--base", default="", help="ref to patch (default: docpatch.target_branch)")
    patch.set_defaults(run=run_patch)

    gaps = verbs.add_parser("gaps", help="questions the official docs answer weakly, ranked")
    gaps.add_argument("--json", action="store_true", help="print the report as JSON")
    gaps.add_argument("--since", type=_iso_date, help="only threads from DATE on")
    gaps.add_argument("--top", type=int, default=10, help="how many gaps to show (default 10)")
    gaps.add_argument("--questions", type=Path, help="also a JSONL file of {'question': ...}")
    gaps.set_defaults(run=run_gaps)


def _iso_date(value: str) -> str:
    try:
        return date.fromisoformat(value[:10]).isoformat() + value[10:]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date like 2024-01-31") from None


def _knowledge(args: argparse.Namespace, config: Config, store: Any) -> Any:
    from sciknow.serve.docpatch import gaps, sources

    if args.question is not None:
        if not args.answer:
            raise ConfigError("--question needs --answer (or draft from --thread or --gap)")
        return sources.from_answer(args.question, args.answer, args.evidence)
    if args.answer or args.evidence:
        raise ConfigError("--answer and --evidence go with --question only")
    if args.thread is not None:
        return sources.from_thread(store, args.thread)
    return sources.from_gap(store, gaps.load_gap(config, args.gap))


def run_patch(args: argparse.Namespace, config: Config) -> int:
    from sciknow.serve.answer import resolve_mode
    from sciknow.serve.docpatch import draft as drafting
    from sciknow.serve.docpatch.gitlab_mr import open_merge_request
    from sciknow.serve.docpatch.gitops import DocsRepo
    from sciknow.serve.factory import build_backend, build_retriever

    token = os.environ.get("GITLAB_TOKEN", "")
    if args.open_mr and not token:
        raise ConfigError("--open-mr needs a GitLab token in GITLAB_TOKEN")
    repo = DocsRepo(args.docs_repo)
    retriever = build_retriever(config)
    knowledge = _knowledge(args, config, retriever.store)
    name = args.backend or config.models.backend
    generative = resolve_mode(config.answer.mode, config.models.size, name) == "generative"
    backend = build_backend(config, name) if generative else None
    draft = drafting.make_draft(config, repo, knowledge, retriever, backend, args.base)
    patch_path, description_path = drafting.write_outputs(draft, Path(args.out))
    result = draft.summary(patch_path, description_path)
    settings = config.docpatch
    if args.commit or args.open_mr:
        result["commit"] = drafting.commit_draft(repo, draft, settings.target_branch)
    if args.open_mr:
        change = drafting.merge_request_change(repo, draft, settings.labels, settings.review_label)
        request = open_merge_request(settings, token, change)
        result |= {"merge_request": request.url, "merge_request_created": request.created}
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return 0
    _print_patch(result, draft)
    return 0


def _print_patch(result: dict[str, Any], draft: Any) -> None:
    review = "needs expert review" if result["needs_review"] else "no flags"
    print(f"{draft.written.heading}  →  {result['files'][0]} ({draft.target.reason}; {review})")
    print(f"written: {result['model']}")
    print(f"patch:       {result['patch']}\ndescription: {result['description']}")
    if "commit" in result:
        print(f"branch:      {result['branch']} at {result['commit'][:12]}")
    if "merge_request" in result:
        verb = "opened" if result["merge_request_created"] else "updated"
        print(f"merge request {verb}: {result['merge_request']}")


def run_gaps(args: argparse.Namespace, config: Config) -> int:
    from sciknow.index.factory import load_embedder, open_store
    from sciknow.serve.docpatch.gaps import gaps_report

    store = open_store(config)
    if store.generation() == 0:
        raise ConfigError(f"the index in {config.data_path} is empty: run `sciknow ingest` first")
    report = gaps_report(config, store, load_embedder(config), args.since or "", args.questions)
    shown = report["gaps"][: args.top]
    if args.json:
        print(json.dumps({**report, "gaps": shown}, indent=2, ensure_ascii=False))
        return 0
    for gap in shown:
        print(_render_gap(gap))
    print(
        f"({len(report['gaps'])} gaps from {report['weak']} weakly answered of "
        f"{report['questions']} questions, {report['seconds']:.1f} s; "
        "draft one: sciknow patch --docs-repo DOCS --gap N)"
    )
    print(_render_code(report.get("code") or {}, args.top))
    return 0


def _render_code(code: dict[str, Any], top: int) -> str:
    """The docs' code blocks that no longer compile (`gaps.docs_code`), the first `top`."""
    if code.get("skipped"):
        return f"(docs code not checked: {code['skipped']})"
    candidates = code.get("candidates", [])
    lines = [f"{c['file']}:{c['line']} ({c['source']}): {c['verdict']}" for c in candidates[:top]]
    left = f", {code['left']} left for the next run" if code.get("left") else ""
    lines.append(
        f"({len(candidates)} docs code blocks do not compile against {code.get('petsc', '')} "
        f"among {code.get('blocks', 0)} found{left})"
    )
    return "\n".join(lines)


def _render_gap(gap: dict[str, Any]) -> str:
    kinds = ", ".join(f"{kind} {n}" for kind, n in gap["kinds"].items())
    lines = [f"Gap {gap['id']} · {gap['size']} questions ({kinds}) · score {gap['score']:.2f}"]
    lines += [f"  asked: {q}" for q in gap["questions"]]
    best = gap["best_official"]
    if best:
        lines.append(f"  best official passage ({best['score']:.2f}): {best['title']}")
        lines.append(f"      {best['uri']}")
    shown = {answer["excerpt"]: answer for answer in reversed(gap["answers"])}
    for answer in reversed(list(shown.values())[-SHOWN_ANSWERS:]):
        who = f"{answer['author']}{' [maintainer]' if answer['maintainer'] else ''}"
        lines.append(f"  answered by {who}: {answer['uri']}")
        lines.append(f"      {answer['excerpt']}")
    if gap.get("answer_names"):
        found = len(gap["names_in_docs"])
        lines.append(
            f"  the closest official passages name {found} of the {len(gap['answer_names'])} "
            f"names the answers use: {', '.join(gap['answer_names'])}"
        )
    target = gap["target"]
    if target:
        lines.append(
            f"  suggested target: {target['page']} › {target['section']} ({target['why']})"
        )
    return "\n".join(lines) + "\n"
