"""A scripted model backend: the tests decide what the model says."""

from __future__ import annotations

import copy
import re
import threading
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from sciknow.serve.backends.base import BackendError, GenToken, Message

if TYPE_CHECKING:  # the answer pipeline loads the index's libraries: only when used
    from sciknow.config import Config
    from sciknow.serve.answer import Assistant

FAILURE = "the vLLM server at http://127.0.0.1:9 is not answering"


class ScriptedBackend:
    """Replays `pieces` as generated tokens, `delay` seconds apart, and records each call.

    The point of the tests that use it is what the pipeline does with a model's text (its
    streaming, guards, fallbacks, citations), which a real small model produces only by
    chance. It raises a `BackendError` at piece `fail_after`, and sets `closed_early` when
    the consumer closes the stream before the end. Its tokens carry no ids, so no answer
    asks it for the scoring pass it cannot do; a token is a word of the text."""

    max_top_k = 0

    def __init__(
        self,
        pieces: Sequence[str] = (),
        delay: float = 0.0,
        fail_after: int = -1,
        name: str = "scripted:test",
        context_window: int = 8192,
    ) -> None:
        self.pieces = list(pieces)
        self.delay = delay
        self.fail_after = fail_after
        self.name = name
        self.context_window = context_window
        self.calls: list[dict[str, Any]] = []
        self.closed_early = threading.Event()

    @classmethod
    def replying(cls, reply: str, **options: Any) -> ScriptedBackend:
        """A backend that replays `reply` word by word, each word with the space after it."""
        return cls(re.split(r"(?<=\s)", reply), **options)

    @property
    def messages(self) -> list[list[Message]]:
        """The prompts it was sent, one per call."""
        return [call["messages"] for call in self.calls]

    def generate(
        self, messages: list[Message], stream: bool = True, max_tokens: int = 512, **options: Any
    ) -> Iterator[GenToken]:
        self.calls.append({"messages": messages, "max_tokens": max_tokens, **options})
        return self._tokens()

    def _tokens(self) -> Iterator[GenToken]:
        done = False
        try:
            for i, piece in enumerate(self.pieces):
                if i == self.fail_after:
                    raise BackendError(FAILURE)
                time.sleep(self.delay)
                yield GenToken(piece, None, -0.1)
            done = True
        finally:
            if not done:
                self.closed_early.set()

    def chat_tokens(self, messages: list[Message]) -> list[int]:
        return list(range(sum(len(m["content"].split()) for m in messages)))

    def tokenize(self, text: str, special: bool = False) -> list[int]:
        return list(range(len(text.split())))

    def detokenize(self, ids: Sequence[int]) -> str:
        return " ".join("x" for _ in ids)

    def score(self, sequences: Sequence[Sequence[int]], top_k: int = 0) -> Any:
        raise NotImplementedError("the scripted backend does not score")


def scripted_assistant(config: Config, reply: str, **answer_settings: Any) -> Assistant:
    """An assistant over `config`'s index whose model says `reply` (generative mode), with
    `answer_settings` changed in a copy of the configured ones."""
    from sciknow.serve.answer import Assistant
    from sciknow.serve.factory import build_retriever

    settings = copy.deepcopy(config.answer)
    for key, value in answer_settings.items():
        setattr(settings, key, value)
    backend = ScriptedBackend.replying(reply)
    return Assistant(build_retriever(config), backend, settings, mode="generative")
