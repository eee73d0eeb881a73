"""The vLLM backend: any model served by `vllm serve`, over its OpenAI-compatible HTTP API.

- `generate`: `/v1/chat/completions` streamed as server-sent events, with `logprobs`,
  `top_logprobs` and vLLM's `return_token_ids` (the ids of each streamed token).
  vLLM reports raw log-probabilities (before temperature), like the embedded backend,
  but only the top alternatives: `GenToken.entropy` is `None`.
- `score`: `/v1/completions` with token-id prompts, `max_tokens=1` and vLLM's
  `prompt_logprobs`, several sequences per request so the server batches them.
  The server caps alternatives per position (engine argument `max_logprobs`, 20 by
  default): `top_k` is clamped to `max_top_k`, which is that cap (pass `max_logprobs=`
  when the server was started with `--max-logprobs N`). Entropies are `None`.
- `tokenize` / `detokenize` / `chat_tokens`: vLLM's `/tokenize` and `/detokenize`.

Connection errors and 5xx answers are retried with exponential backoff; read timeouts
are not (a slow server would only get more work). Errors name the URL and the fix.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from typing import Any

import httpx

from sciknow.serve.backends.base import BackendError, GenToken, Message, ScoredSequence

SCORE_BATCH = 16  # sequences per `score` request


def _error_message(response: httpx.Response) -> str:
    """The human part of a vLLM error body ({"error": {"message": ...}} or similar)."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500]
    error = body.get("error", body) if isinstance(body, dict) else body
    return str(error.get("message", error) if isinstance(error, dict) else error)


def _prompt_position(entry: dict[str, Any] | None, token: int, k: int) -> tuple[float, list]:
    """(logprob of `token`, top-k alternatives) from one `prompt_logprobs` entry."""
    if entry is None or str(token) not in entry:
        raise BackendError(f"vLLM returned no prompt logprob for token {token}")
    ranked = sorted(
        ((int(tid), v["logprob"]) for tid, v in entry.items() if v.get("rank", 0) <= k),
        key=lambda pair: -pair[1],
    )
    return entry[str(token)]["logprob"], ranked[:k]


class VLLMBackend:
    """A client for one model on one vLLM server; thread-safe (the server batches).

    The constructor checks the server and the model at once, so a wrong URL or model
    name fails at start-up with the list of served models. With `model=None` the
    server's only model is used.
    """

    def __init__(
        self,
        url: str = "http://localhost:8000",
        model: str | None = None,
        timeout: float = 120.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_logprobs: int = 20,
        api_key: str | None = None,
    ) -> None:
        self.url = url.rstrip("/").removesuffix("/v1")
        self.retries, self.backoff, self.timeout = retries, backoff, timeout
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            base_url=self.url, headers=headers, timeout=httpx.Timeout(timeout, connect=10.0)
        )
        self.model, self.context_window = self._pick_model(model)
        self.name = f"vllm:{self.model}"
        self.max_top_k = max_logprobs

    def close(self) -> None:
        self._client.close()

    def tokenize(self, text: str, special: bool = False) -> list[int]:
        """Token ids of `text`, without BOS. vLLM's tokenizer always maps special-token text
        (e.g. "<|im_end|>") to special ids, so `special=False` cannot keep it literal here."""
        payload = {"model": self.model, "prompt": text, "add_special_tokens": False}
        return self._post("/tokenize", payload)["tokens"]

    def detokenize(self, ids: Sequence[int]) -> str:
        return self._post("/detokenize", {"model": self.model, "tokens": list(ids)})["prompt"]

    def chat_tokens(self, messages: list[Message]) -> list[int]:
        """Prompt ids for `messages` through the served model's chat template."""
        payload = {"model": self.model, "messages": messages, "add_generation_prompt": True}
        return self._post("/tokenize", payload)["tokens"]

    def generate(
        self,
        messages: list[Message],
        stream: bool = True,
        max_tokens: int = 512,
        temperature: float = 0.0,
        logprobs: bool = True,
        top_logprobs: int = 0,
        repetition_penalty: float = 1.0,
    ) -> Iterator[GenToken]:
        """Stream a chat reply. Each streamed text delta goes to the last token of its chunk,
        so the token texts always concatenate to the reply. The end-of-sequence token that
        vLLM reports is dropped, as in the embedded backend."""
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "stream": True,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "return_token_ids": True,
        }
        if repetition_penalty != 1.0:  # a vLLM sampling parameter beyond the OpenAI schema
            payload["repetition_penalty"] = repetition_penalty
        if logprobs:
            payload |= {"logprobs": True, "top_logprobs": min(top_logprobs, self.max_top_k)}
        tokens = self._stream("/v1/chat/completions", payload)
        return tokens if stream else iter(list(tokens))

    def score(self, sequences: Sequence[Sequence[int]], top_k: int = 0) -> list[ScoredSequence]:
        """Per-position logprobs from `prompt_logprobs`; `top_k` is clamped to `max_top_k`."""
        seqs = [list(s) for s in sequences]
        if any(not s for s in seqs):
            raise ValueError("cannot score an empty sequence")
        k = min(top_k, self.max_top_k)
        scored: list[ScoredSequence] = []
        for start in range(0, len(seqs), SCORE_BATCH):
            scored += self._score_batch(seqs[start : start + SCORE_BATCH], k)
        return scored

    def _score_batch(self, seqs: list[list[int]], k: int) -> list[ScoredSequence]:
        payload = {
            "model": self.model,
            "prompt": seqs,
            "max_tokens": 1,
            "temperature": 0.0,
            "prompt_logprobs": k,
        }
        choices = sorted(
            self._post("/v1/completions", payload)["choices"], key=lambda c: c["index"]
        )
        return [
            self._scored(ids, c["prompt_logprobs"], k) for ids, c in zip(seqs, choices, strict=True)
        ]

    @staticmethod
    def _scored(ids: list[int], entries: list[dict | None], k: int) -> ScoredSequence:
        positions = [_prompt_position(entries[i], ids[i], k) for i in range(1, len(ids))]
        return ScoredSequence(
            ids=ids,
            logprobs=[None, *(lp for lp, _ in positions)],
            top=[[], *(top for _, top in positions)],
            entropies=[None] * len(ids),
        )

    def _pick_model(self, model: str | None) -> tuple[str, int]:
        """(model id, max_model_len) of the requested model, checked against /v1/models."""
        served = {m["id"]: m for m in self._send("GET", "/v1/models").json()["data"]}
        if model is None and len(served) == 1:
            model = next(iter(served))
        if model not in served:
            raise BackendError(
                f"vLLM at {self.url} serves {', '.join(sorted(served)) or 'no model'}, "
                f"not {model!r}; set models.vllm_model to one of them"
            )
        return model, int(served[model].get("max_model_len") or 0)

    def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        return self._send("POST", path, payload).json()

    def _stream(self, path: str, payload: dict[str, Any]) -> Iterator[GenToken]:
        response = self._send("POST", path, payload, stream=True)
        try:
            for line in response.iter_lines():
                data = line.removeprefix("data: ").strip()
                if not line.startswith("data: ") or data == "[DONE]":
                    continue
                yield from self._chunk_tokens(json.loads(data))
        except httpx.TransportError as err:
            raise BackendError(f"vLLM at {self.url} broke off a stream: {err}") from err
        finally:
            response.close()

    def _chunk_tokens(self, chunk: dict[str, Any]) -> Iterator[GenToken]:
        if "error" in chunk:
            raise BackendError(f"vLLM at {self.url} failed mid-stream: {chunk['error']}")
        for choice in chunk.get("choices", []):
            ids = choice.get("token_ids") or []
            content = (choice.get("logprobs") or {}).get("content") or []
            text = (choice.get("delta") or {}).get("content") or ""
            count = max(len(ids), len(content))
            if choice.get("finish_reason") == "stop" and choice.get("stop_reason") is None:
                count -= 1  # the end-of-sequence token: not part of the reply (as embedded)
            for i in range(count):
                info = content[i] if i < len(content) else {}
                yield GenToken(
                    text=text if i == count - 1 else "",
                    token_id=ids[i] if i < len(ids) else None,
                    logprob=info.get("logprob"),
                    top=[(t["token"], t["logprob"]) for t in info.get("top_logprobs", [])],
                )

    def _send(
        self, method: str, path: str, payload: dict | None = None, stream: bool = False
    ) -> httpx.Response:
        """One request with retries on connection errors and 5xx; 4xx raise at once."""
        error = BackendError(f"no request made to vLLM at {self.url}")
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            request = self._client.build_request(method, path, json=payload)
            try:
                response = self._client.send(request, stream=stream)
            except httpx.ReadTimeout as err:
                raise BackendError(
                    f"vLLM at {self.url} did not answer {path} within {self.timeout:g} s"
                ) from err
            except httpx.TransportError as err:
                error = BackendError(
                    f"cannot reach vLLM at {self.url}: {err or type(err).__name__}; start it with "
                    "`vllm serve MODEL` or set models.vllm_url"
                )
                continue
            if response.status_code < 400:
                return response
            response.read()
            response.close()
            error = BackendError(
                f"vLLM at {self.url} answered {path} with {response.status_code}: "
                f"{_error_message(response)}"
            )
            if response.status_code < 500:
                raise error
        raise error
