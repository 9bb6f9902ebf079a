"""A small scheduler that follows the front-door contract, for bridge tests.

Its answer is a deterministic function of the prompt (so a test can check every answer without
hard-coding it), streamed one word per ``TextDelta``. It can be told to refuse (with a fallback
reason), to serve one request at a time, and to log every submission to a file (so a test in
another process can count how often each request ran).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

from edge_os.mqtt.backends import ThreadedHandle
from edge_os.runtime.request import Event, Finished, FinishReason, GenerationRequest, Refused, TextDelta, Timings, Usage


def prompt_text(request: GenerationRequest) -> str:
    if request.prompt is not None:
        return request.prompt
    return "\n".join(m["content"] for m in request.messages or ())


def expected_answer(prompt: str, max_tokens: int = 256) -> str:
    """What ``EchoScheduler`` answers to ``prompt``: its words reversed, after a count."""
    words = [f"[{len(prompt.split())}]"] + list(reversed(prompt.split()))
    return " ".join(words[:max_tokens])


class EchoScheduler:
    def __init__(
        self,
        *,
        token_delay_s: float = 0.0,
        refuse: Callable[[GenerationRequest], Refused | None] = lambda r: None,
        one_at_a_time: bool = False,
        log_path: Path | None = None,
    ) -> None:
        self.token_delay_s = token_delay_s
        self.refuse = refuse
        self._gate = threading.Semaphore(1) if one_at_a_time else None
        self._log_path = log_path
        self._lock = threading.Lock()
        self.submissions: Counter[str] = Counter()
        self.prompts: list[str] = []

    def submit(self, request: GenerationRequest) -> ThreadedHandle:
        with self._lock:
            self.submissions[request.request_id] += 1
            self.prompts.append(prompt_text(request))
            if self._log_path is not None:
                with open(self._log_path, "a") as f:
                    f.write(request.request_id + "\n")
        return ThreadedHandle(request, self._generate)

    def status(self) -> dict:
        with self._lock:
            served = sum(self.submissions.values())
        return {
            "models": [{"name": "echo", "state": "loaded"}],
            "memory": {"used_bytes": 1 << 20, "budget_bytes": 1 << 30},
            "temperatures": {"cpu": 41.5},
            "governor": "normal",
            "queue": 0,
            "tok_s": 100.0,
            "served": served,
        }

    def _generate(self, request: GenerationRequest, cancelled: threading.Event) -> Iterator[Event]:
        refusal = self.refuse(request)
        if refusal is not None:
            yield refusal
            return
        if self._gate is not None:
            self._gate.acquire()
        try:
            if request.deadline is not None and time.monotonic() >= request.deadline:
                yield Refused("deadline", "the deadline passed while queued", fallback=False)
                return
            words = expected_answer(prompt_text(request), request.max_tokens).split()
            for i, word in enumerate(words):
                if cancelled.is_set():
                    return
                time.sleep(self.token_delay_s)
                yield TextDelta(word if i == 0 else " " + word, (i,))
            text = " ".join(words)
            reason = FinishReason.LENGTH if len(words) == request.max_tokens else FinishReason.STOP
            usage = Usage(len(prompt_text(request).split()), len(words))
            yield Finished(text, tuple(range(len(words))), reason, usage, Timings(0.0, 0.0, 0.0))
        finally:
            if self._gate is not None:
                self._gate.release()
