"""Guards on generated text: stop a loop while it streams, judge the answer when it ends.

On 2 cores the embedded SmolLM2 printed "The answer to your question is:" thirteen
times, and a run of zeros, citing nothing (docs/design.md, "Answers"). Two checks catch that:

- While streaming, `LoopDetector` sees the text so far; a line repeated three times, or
  a stretch of words that repeats back to back (`x y x y x y ...`, at least
  `MIN_LOOP_WORDS` words in all), stops generation. `END_MARKERS` (a chat-template turn
  marker printed as text, a new "Question:" turn) end the answer too.
- After generation, `problems` names what is wrong with the answer: the loop, no valid
  citation, names the index does not know. The pipeline then replaces the answer with
  the extractive one (or, with fallback off, returns it with the problems as flags).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

END_MARKERS = ("<|im_end|>", "<|endoftext|>", "<|im_start|>", "\nQuestion:", "\nUser:")
MIN_LOOP_WORDS = 12
MIN_REPEATS = 3
MAX_PERIOD_WORDS = 40
MIN_LINE_CHARS = 8


def cut_at_end_marker(text: str) -> tuple[str, bool]:
    """`text` up to the first end-of-answer marker, and whether one was found."""
    positions = [text.find(m) for m in END_MARKERS if m in text]
    if not positions:
        return text, False
    return text[: min(positions)], True


@dataclass
class LoopDetector:
    """Feed it generated text; `looping` turns true once the text repeats itself."""

    text: str = ""
    looping: bool = False
    _lines: Counter[str] = field(default_factory=Counter)

    def feed(self, piece: str) -> bool:
        self.text += piece
        if "\n" in piece:
            self._count_lines()
        if not self.looping:
            self.looping = self._line_loop() or repeated_tail(self.text.split())
        return self.looping

    def _count_lines(self) -> None:
        self._lines = Counter(
            line.strip()
            for line in self.text.split("\n")[:-1]  # the last piece is still growing
            if len(line.strip()) >= MIN_LINE_CHARS
        )

    def _line_loop(self) -> bool:
        return any(count >= MIN_REPEATS for count in self._lines.values())


def repeated_tail(words: list[str]) -> bool:
    """Whether the last words are one stretch repeated back to back, enough times to be a
    loop: at least `MIN_REPEATS` copies and `MIN_LOOP_WORDS` words in all."""
    for period in range(1, min(MAX_PERIOD_WORDS, len(words) // MIN_REPEATS) + 1):
        repeats = max(MIN_REPEATS, -(-MIN_LOOP_WORDS // period))
        if repeats * period > len(words):
            continue
        tail = words[-period:]
        if all(words[-(i + 1) * period : len(words) - i * period] == tail for i in range(repeats)):
            return True
    return False


def problems(looped: bool, cited: int, unknown_names: list[str]) -> list[str]:
    """Why a generated answer should not be shown as is (empty: it passes)."""
    found = []
    if looped:
        found.append("it repeated itself")
    if cited == 0:
        found.append("it cited none of the passages")
    if unknown_names:
        names = ", ".join(dict.fromkeys(unknown_names))  # each name once, in order
        found.append(f"it used names that exist nowhere in the index: {names}")
    return found
