"""HTML for the web chat: answers, their flags and sources, built only from escaped text.

Nothing from a passage or an answer reaches the page as markup. Answer text is Markdown
rendered by markdown-it with raw HTML off (a `<script>` in the text arrives as the
characters `<script>`), images off, and its link check (no `javascript:`, `data:` …).
Passages, titles, reasons and numbers are `html.escape`d; a link is made only from an
http(s) address. The markup this module adds (citation links, highlighted spans, struck
names) is placed by offsets before rendering, as private-use characters that are swapped
for tags afterwards; private-use characters in the text itself are replaced first, so
text cannot forge them. The page's sanitizer then checks the result a second time.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from markdown_it import MarkdownIt

from sciknow.records import Citation, Flag, FlagKind
from sciknow.ui.ask import describe_compile

KIND_LABELS = {
    "doc": "docs",
    "manpage": "man page",
    "example": "example",
    "code": "code",
    "mail": "mail",
    "issue": "issue",
    "chat": "chat",
    "changelog": "release notes",
    "paper": "paper",
}
NAME_LABELS: dict[FlagKind, str] = {
    "unknown_name": "not in the index",
    "removed_name": "removed from the library",
}
_OPEN, _CLOSE, _MAX_TAGS = 0xE000, 0xE800, 0x800
_PRIVATE_RE = re.compile("[\ue000-\uf8ff]")
_TAG_CHAR_RE = re.compile("[\ue000-\uefff]")
_BLOCK_PREFIX_RE = re.compile(r"[ ]{0,3}(?:[-*+]|\d{1,9}[.)]|#{1,6}|>)[ \t]+")
_FENCE_RE = re.compile(r"[ ]{0,3}(`{3,}|~{3,})[^`]*")


def _link_open(self: Any, tokens: list[Any], idx: int, options: Any, env: Any) -> str:
    tokens[idx].attrSet("target", "_blank")
    tokens[idx].attrSet("rel", "noopener noreferrer nofollow")
    return self.renderToken(tokens, idx, options, env)


_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
_MARKDOWN.disable("image")
_MARKDOWN.add_render_rule("link_open", _link_open)


def escape(text: Any) -> str:
    return html.escape(str(text), quote=True)


def safe_href(uri: str) -> str | None:
    """`uri` when it is an http(s) address, else None (shown as text, never as a link)."""
    return uri if re.match(r"https?://", uri or "", re.IGNORECASE) else None


def markdown(text: str) -> str:
    """Markdown to HTML with raw HTML shown as text and unsafe links left unlinked."""
    return _MARKDOWN.render(_PRIVATE_RE.sub("\ufffd", text))


@dataclass
class Tag:
    """Markup around `text[start:end]` (offsets of the answer text)."""

    start: int
    end: int
    open: str
    close: str
    split_lines: bool = True  # a highlight may span lines; a link may not


def _nested(tags: list[Tag]) -> list[Tag]:
    """The tags that nest: one that crosses an earlier kept tag is dropped."""
    kept: list[Tag] = []
    for tag in sorted(tags, key=lambda t: (t.start, -t.end)):
        crosses = any(k.start < tag.start < k.end < tag.end for k in kept)
        if tag.end > tag.start and not crosses:
            kept.append(tag)
    return kept[:_MAX_TAGS]


def _line_pieces(text: str, tag: Tag) -> list[Tag]:
    """A tag cut at line ends, each piece starting after a list, heading or quote marker
    (markup before the marker would stop Markdown from seeing the list or heading)."""
    pieces = []
    for line in re.finditer(r"[^\n]+", text[tag.start : tag.end]):
        a, b = tag.start + line.start(), tag.start + line.end()
        prefix = _BLOCK_PREFIX_RE.match(text, text.rfind("\n", 0, a) + 1)
        if prefix and a < prefix.end() <= b:
            a = prefix.end()
        if text[a:b].strip():
            pieces.append(Tag(a, b, tag.open, tag.close))
    return pieces


def decorated(text: str, tags: Sequence[Tag]) -> str:
    """`text` rendered as Markdown with `tags` around their spans."""
    clean = _PRIVATE_RE.sub("\ufffd", text)
    pieces = [p for t in tags for p in (_line_pieces(clean, t) if t.split_lines else [t])]
    kept = _nested([t for t in pieces if 0 <= t.start < t.end <= len(clean)])
    inserts: list[tuple[int, int, str]] = []  # (position, order, character)
    for i, tag in enumerate(kept):
        inserts.append((tag.start, 1, chr(_OPEN + i)))
        inserts.append((tag.end, 0, chr(_CLOSE + i)))
    marked, last = [], 0
    # At one position closes come before opens; closes of inner tags before outer ones.
    for position, _, char in sorted(inserts, key=lambda x: (x[0], x[1], -ord(x[2]))):
        marked.append(clean[last:position] + char)
        last = position
    marked.append(clean[last:])
    rendered = _MARKDOWN.render("".join(marked))

    def swap(match: re.Match[str]) -> str:
        code = ord(match.group(0))
        return kept[code - _OPEN].open if code < _CLOSE else kept[code - _CLOSE].close

    return _TAG_CHAR_RE.sub(swap, rendered)


def source_id(turn: int, n: int) -> str:
    return f"sk-t{turn}-s{n}"


def _citation_tags(citations: Sequence[Citation], turn: int) -> list[Tag]:
    tags = []
    for citation in citations:
        target = source_id(turn, int(citation["n"]))
        for start, end in citation.get("spans", []):
            link = f'<a class="sk-cite" href="#{target}">'
            tags.append(Tag(int(start), int(end), link, "</a>", split_lines=False))
    return tags


def _flag_tags(flags: Sequence[Flag], show: bool) -> list[Tag]:
    """Struck names and generated text always; uncertain spans when flags are shown."""
    tags = []
    for flag in flags:
        kind = flag.get("type")
        if "start" not in flag or "end" not in flag:
            continue
        start, end = int(flag["start"]), int(flag["end"])
        if kind in NAME_LABELS:
            suggestions = ", ".join(flag.get("suggestions") or []) or "no close name"
            what = f"{flag.get('text', '')}: {NAME_LABELS[kind]}"
            title = escape(f"{what} (did you mean: {suggestions})")
            tags.append(Tag(start, end, f'<del class="sk-name" title="{title}">', "</del>"))
        elif kind == "generated":
            title = escape(flag.get("reason", "generated"))
            tags.append(Tag(start, end, f'<span class="sk-generated" title="{title}">', "</span>"))
        elif kind == "uncertain_span" and show:
            score = float(flag.get("score", 0.0))
            title = escape(f"uncertain, score {score:.2f}: {flag.get('reason', '')}")
            mark = f'<mark class="sk-uncertain" title="{title}">'
            tags.append(Tag(start, end, mark, "</mark>"))
    return tags


def _support(flags: Sequence[Flag]) -> dict[int, float]:
    """Passage number → log-ratio of the whole answer with and without it."""
    return {
        int(f["passage"]): float(f["log_ratio"])
        for f in flags
        if f.get("type") == "support" and f.get("sentence") is None
    }


def _notes(flags: Sequence[Flag], show: bool) -> str:
    """Failed checks and each code block's compile verdict always; skipped flags when
    flags are shown."""
    notes = []
    for flag in flags:
        kind, reason = flag.get("type"), escape(flag.get("reason", ""))
        if kind == "compile":
            style = "sk-warn" if flag.get("status") == "error" else "sk-note"
            status = escape(flag.get("status", ""))
            text = escape(describe_compile(flag))
            notes.append(f'<div class="{style} sk-compile sk-compile-{status}">{text}</div>')
        elif kind == "guard":
            notes.append(f'<div class="sk-warn">Check failed: {reason}</div>')
        elif kind == "skipped" and show:
            notes.append(f'<div class="sk-note sk-skipped">Flags: {reason}</div>')
    return "".join(notes)


LEGEND = (
    '<div class="sk-legend"><mark class="sk-uncertain">highlighted</mark> uncertain span '
    "(hover for its score and reason) · "
    '<del class="sk-name">struck</del> name not found in the index · '
    "support: how much a passage raised the answer's log-likelihood (nats)</div>"
)


def source_html(citation: Citation, turn: int, support: float | None) -> str:
    """One passage: number, title, kind, official or not, support; link and text on expand."""
    n = int(citation["n"])
    badges = []
    if citation.get("kind"):
        kind = str(citation["kind"])
        label = KIND_LABELS.get(kind, kind)
        badges.append(f'<span class="sk-badge sk-kind">{escape(label)}</span>')
    if "official" in citation:
        official = bool(citation["official"])
        name = "official" if official else "unofficial"
        badges.append(f'<span class="sk-badge sk-{name}">{name}</span>')
    if support is not None:
        title = escape(
            "log P(answer | all passages) − log P(answer | without this one): "
            "positive means the passage made the answer likelier"
        )
        badges.append(
            f'<span class="sk-badge sk-support" title="{title}">support {support:+.2f}</span>'
        )
    uri = str(citation.get("uri", ""))
    href = safe_href(uri)
    link = (
        f'<a class="sk-link" href="{escape(href)}" target="_blank" '
        f'rel="noopener noreferrer nofollow">{escape(uri)}</a>'
        if href
        else f'<span class="sk-link">{escape(uri)}</span>'
    )
    plain_title = str(citation.get("title", ""))
    section = _section_above(str(citation.get("section") or ""), plain_title)
    section_html = f'<div class="sk-section">{escape(section)}</div>' if section else ""
    text = citation.get("text")
    heading = {plain_title.strip(), str(citation.get("section") or "").strip()}
    passage = passage_html(str(text), heading) if text else ""
    title = escape(plain_title)
    return (
        f'<details class="sk-source" id="{source_id(turn, n)}"><summary>'
        f'<span class="sk-n">[{n}]</span> <span class="sk-title">{title}</span> '
        f"{' '.join(badges)}</summary>"
        f'<div class="sk-source-body">{link}{section_html}{passage}</div></details>'
    )


def _section_above(section: str, title: str) -> str:
    """The heading path above the passage: its last part is the title, shown already."""
    parts = section.split(" > ")
    return " > ".join(parts[:-1] if parts[-1].strip() == title.strip() else parts)


def passage_html(text: str, heading: set[str]) -> str:
    """A passage as a reader wants it: without the opening lines that repeat its `heading`
    (title and heading path, shown above it: chunks start with them), and with Markdown
    code fences drawn as code blocks, not as backticks. Everything is escaped text."""
    lines = text.split("\n")
    while lines and (lines[0].strip().lstrip("#").strip() in heading or not lines[0].strip()):
        lines = lines[1:]
    blocks: list[str] = []
    prose: list[str] = []
    code: list[str] | None = None
    fence = ""
    for line in lines:
        opening = _FENCE_RE.fullmatch(line)
        if code is None and opening:
            blocks.append(_prose_html(prose))
            prose, code, fence = [], [], opening.group(1)
        elif code is not None and _closes(line, fence):
            blocks.append(_code_html(code))
            code = None
        else:
            (prose if code is None else code).append(line)
    blocks.append(_prose_html(prose) if code is None else _code_html(code))
    return f'<div class="sk-passage">{"".join(blocks)}</div>'


def _closes(line: str, fence: str) -> bool:
    """A closing fence: the opening fence's character, at least as many, nothing else."""
    mark = line.strip()
    return mark.startswith(fence) and not mark.strip(fence[0])


def _prose_html(lines: list[str]) -> str:
    text = "\n".join(lines).strip("\n")
    return f'<div class="sk-passage-text">{escape(text)}</div>' if text.strip() else ""


def _code_html(lines: list[str]) -> str:
    code = "\n".join(lines).strip("\n")
    return f'<pre class="sk-code"><code>{escape(code)}</code></pre>'


def _timings(answer: dict[str, Any], mode: str) -> str:
    timings = answer.get("timings", {})
    parts = []
    if "retrieval_ms" in timings:
        parts.append(f"retrieval {timings['retrieval_ms']:.0f} ms")
    if "ttft_ms" in timings:
        parts.append(f"first token {timings['ttft_ms']:.0f} ms")
    if timings.get("tokens_per_s"):
        parts.append(f"{timings['tokens_per_s']:.1f} tokens/s")
    if "extract_ms" in timings:
        parts.append(f"extraction {timings['extract_ms']:.0f} ms")
    if "flags_ms" in timings:
        parts.append(f"flags {timings['flags_ms']:.0f} ms")
    if "compile_ms" in timings:
        parts.append(f"compile {timings['compile_ms']:.0f} ms")
    parts.append(mode)
    return (
        f'<details class="sk-details"><summary>details</summary>'
        f"{escape(' · '.join(parts))}</details>"
    )


def copy_text(answer: dict[str, Any]) -> str:
    """What the copy button puts on the clipboard: the answer, then its sources."""
    sources = [f"[{c['n']}] {c.get('title', '')} {c.get('uri', '')}" for c in answer["citations"]]
    return answer["text"] + ("\n\nSources:\n" + "\n".join(sources) if sources else "")


def answer_html(answer: dict[str, Any], turn: int, show_flags: bool, mode: str) -> str:
    """A finished answer: text with citation links and flags, sources, timings, copy."""
    flags: list[Flag] = answer.get("flags", [])
    citations: list[Citation] = answer.get("citations", [])
    tags = _citation_tags(citations, turn) + _flag_tags(flags, show_flags)
    body = decorated(answer["text"], tags)
    support = _support(flags) if show_flags else {}
    sources = "".join(source_html(c, turn, support.get(int(c["n"]))) for c in citations)
    label = "Closest passages" if answer.get("abstained") else "Sources"
    sources_block = (
        f'<div class="sk-sources"><div class="sk-sources-head">{label}</div>{sources}</div>'
        if sources
        else ""
    )
    legend = LEGEND if show_flags else ""
    copy = (  # the page keeps no data-* attributes: the text to copy rides in a hidden element
        '<button type="button" class="sk-copy">Copy answer</button>'
        f'<pre class="sk-copy-text" hidden>{escape(copy_text(answer))}</pre>'
    )
    return (
        f'<div class="sk-answer">{body}</div>{_notes(flags, show_flags)}'
        f"{legend}{sources_block}"
        f'<div class="sk-footer">{copy}{_timings(answer, mode)}</div>'
    )


def streaming_html(text: str) -> str:
    """The answer so far, while tokens arrive."""
    return f'<div class="sk-answer sk-streaming">{markdown(text)}</div>'


def stopped_html(text: str) -> str:
    """An answer the reader stopped: the text so far, marked."""
    return f'<div class="sk-answer">{markdown(text)}</div>' + notice_html("*Stopped.*")


def notice_html(text: str, kind: str = "note") -> str:
    """A line from the chat itself (errors, an empty index), Markdown-rendered."""
    role = ' role="alert"' if kind == "error" else ""
    return f'<div class="sk-{kind}"{role}>{markdown(text)}</div>'


def question_html(question: str) -> str:
    return f'<div class="sk-question">{escape(question)}</div>'
