"""The engine: a verified package, its tokenizer and template, and generation on the paged KV cache.

``Engine.load(path)`` verifies the package and loads it. ``generate(request)`` streams events for
one request; ``start``/``step``/``release`` let the scheduler advance several sequences together
(running ones decode in one batch while new prompts are prefilled a chunk per step, so a long
prompt does not stall the streams already running). ``complete`` and ``chat`` are the simplest
use; ``chat_session()`` opens a conversation that keeps its KV cache between turns, so each turn
only prefills what is new.
"""

from __future__ import annotations

import itertools
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from edge_os.config import settings
from edge_os.errors import InputError, PackageError
from edge_os.package.manifest import Manifest
from edge_os.package.reader import open_package, read_params, verified_bytes, verified_library
from edge_os.runtime.chat_template import ChatTemplate
from edge_os.runtime.grammar import Grammars, TokenMask
from edge_os.runtime.heap import release_free_heap
from edge_os.runtime.kv_pool import PAGE_TOKENS, cache_tokens, serving_context
from edge_os.runtime.prefix_cache import PrefixCache
from edge_os.runtime.request import (
    Event,
    Finished,
    FinishReason,
    GenerationRequest,
    TextDelta,
    Timings,
    Usage,
    request_options,
)
from edge_os.runtime.runner import CacheShape, ModelRunner, package_device
from edge_os.runtime.sampler import Sampler
from edge_os.runtime.text_stream import TextStream
from edge_os.runtime.tools import ChatReply, chat_messages, parse_tools

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Sequence:
    """One request in flight: its ids, what the KV cache holds for it, and its timings."""

    seq_id: int
    request: GenerationRequest
    prompt_ids: list[int]
    sampler: Sampler
    stream: TextStream
    cached_ids: list[int] = field(default_factory=list)  # tokens whose K/V are in the cache
    generated: list[int] = field(default_factory=list)
    pending: int | None = None  # sampled, not yet fed to the model
    mask: TokenMask | None = None  # the output grammar's state, for constrained requests
    finished: bool = False
    started: float = field(default_factory=time.perf_counter)
    first_token_at: float = 0.0
    prefill_s: float = 0.0
    prefilled_tokens: int = 0
    decode_s: float = 0.0

    @property
    def kv_tokens(self) -> int:
        return len(self.cached_ids)


class Engine:
    """A loaded model package. Not thread-safe: one owner (the scheduler loop or one caller)."""

    def __init__(self, package_dir: Path, manifest: Manifest, runner: ModelRunner, context_tokens: int,
                 tokenizer: Tokenizer, prefill_chunk: int = 0, prefix_cache: bool = True):
        self.package_dir = package_dir
        self.manifest = manifest
        self.name = manifest.name
        self.memory = manifest.memory
        self.runner = runner
        self.context_length = context_tokens
        self.tokenizer = tokenizer
        bos_id = manifest.tokenizer.get("bos_token_id")
        self.bos_id = bos_id if manifest.tokenizer.get("add_bos_token") else None
        eos = manifest.stop_token_ids[0] if manifest.stop_token_ids else None
        self.template = ChatTemplate(manifest.chat_template, self._token_text(bos_id), self._token_text(eos))
        self.stop_ids = set(manifest.stop_token_ids)
        specials = sorted((t.content for t in tokenizer.get_added_tokens_decoder().values() if t.special),
                          key=len, reverse=True)
        self._special_re = re.compile("|".join(map(re.escape, specials))) if specials else None
        self._ids = itertools.count()
        vocab_size = int(manifest.config.get("vocab_size") or tokenizer.get_vocab_size(with_added_tokens=True))
        self.grammars = Grammars(tokenizer, vocab_size, sorted(self.stop_ids))
        self.prefill_chunk = prefill_chunk
        # Released sequences kept for the prompts that start like them (None: freed at once).
        self.prefix_cache = PrefixCache() if prefix_cache else None
        self._live: set[int] = set()  # ids of the sequences of requests not yet released
        self._decode_step_s = 0.0  # recent seconds per decode step (moving average)
        self._prefill_tok_s = 0.0  # recent prefill tokens per second (moving average)

    @property
    def prefill_chunk(self) -> int:
        """Prompt tokens prefilled per step over all new sequences (the compiled chunk at most)."""
        return self._prefill_chunk

    @prefill_chunk.setter
    def prefill_chunk(self, tokens: int) -> None:
        """``tokens`` <= 0: whole prompts in one step (the streams running wait for it)."""
        compiled = self.runner.cache_shape.prefill_chunk
        self._prefill_chunk = min(tokens, compiled) if tokens > 0 else 0

    def _token_text(self, token_id: int | None) -> str:
        return "" if token_id is None else self.tokenizer.id_to_token(token_id) or ""

    @classmethod
    def load(cls, package_dir: str | Path, threads: int | None = None, context_tokens: int | None = None,
             max_batch: int = 8, verify: bool = True, prefill_chunk: int | None = None) -> Engine:
        """Verify and load a package. ``context_tokens`` sizes the KV cache shared by all sequences;
        ``prefill_chunk`` is the prompt tokens prefilled per step (``EDGE_OS_PREFILL_CHUNK``)."""
        package_dir = Path(package_dir)
        started = time.perf_counter()
        manifest = open_package(package_dir, verify=verify)
        context = serving_context(context_tokens, manifest.name, manifest.context_length)
        limits = manifest.limits
        if max_batch > limits.get("max_batch", max_batch):
            raise InputError(f"{manifest.name} was compiled for at most {limits['max_batch']} sequences at once "
                             f"(asked for {max_batch}); lower the batch or re-pack the model")
        shape = CacheShape(max_batch_size=max_batch, max_total_tokens=cache_tokens(context, max_batch),
                           prefill_chunk=min(256, context, limits.get("prefill_chunk", 256)))
        _check_kv_fits(manifest, shape)
        # The tokenizer first: its parse garbage is handed back before the weights arrive, so the
        # two never add up in the peak. It is parsed from the very bytes whose hash was checked.
        tokenizer = _tokenizer_from(package_dir, manifest)
        release_free_heap()
        params = read_params(package_dir, manifest)
        with verified_library(package_dir, manifest) as library:
            runner = ModelRunner(library, params, shape, threads or settings().threads,
                                 device=package_device(manifest.target.tvm_target))
        release_free_heap()
        chunk = settings().prefill_chunk if prefill_chunk is None else prefill_chunk
        engine = cls(package_dir, manifest, runner, context, tokenizer, chunk)
        engine.load_s = time.perf_counter() - started
        log.info("loaded %s in %.2f s (%d MiB of weights, %d-token context)", manifest.name, engine.load_s,
                 manifest.memory.weight_bytes >> 20, context)
        return engine

    # --- threads ---------------------------------------------------------------------------------
    @property
    def threads(self) -> int:
        """The threads the model's kernels really run on now."""
        return self.runner.threads()

    def set_threads(self, threads: int) -> int:
        """Run the next steps on ``threads`` threads (TVM's pool is per process: every engine of
        this process follows). Returns the threads really in use."""
        return self.runner.set_threads(threads)

    # --- prompts ---------------------------------------------------------------------------------
    def render(self, request: GenerationRequest) -> str:
        if request.raw and request.messages is None:
            return request.prompt
        return self.template.render(_messages(request))

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``, control tokens in it honoured (for raw prompts and templates)."""
        return self._with_bos(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def prompt_ids(self, request: GenerationRequest) -> list[int]:
        """The request's prompt as token ids. In chat prompts only the template's own markers are
        control tokens: a control token's text inside a message stays text (no role injection)."""
        if request.raw and request.messages is None:
            return self.encode(request.prompt)
        messages = _messages(request)
        text = self.template.render(messages)
        ids: list[int] = []
        for piece, literal in _split_literal(text, [m["content"] for m in messages], self._special_re):
            self.tokenizer.encode_special_tokens = literal
            try:
                ids += self.tokenizer.encode(piece, add_special_tokens=False).ids
            finally:
                self.tokenizer.encode_special_tokens = False
        return self._with_bos(ids)

    def _with_bos(self, ids: list[int]) -> list[int]:
        if self.bos_id is not None and (not ids or ids[0] != self.bos_id):
            ids = [self.bos_id] + ids
        return ids

    # --- the step interface ------------------------------------------------------------------------
    def start(self, request: GenerationRequest, reuse: Sequence | None = None) -> Sequence:
        """Admit a request. ``reuse`` continues a finished sequence in its KV-cache slot, keeping the
        prefix it shares with the new prompt cached (the old Sequence object must not be used again).
        Otherwise a prompt that starts like a sequence in the prefix cache shares its pages and
        prefills only the rest."""
        prompt_ids = self.prompt_ids(request)
        if not prompt_ids:
            raise InputError("the prompt is empty")
        if len(prompt_ids) >= self.context_length:
            larger = (f"or load the model with a larger context (up to {self.manifest.context_length})"
                      if self.context_length < self.manifest.context_length else f"({self.name}'s maximum)")
            raise InputError(
                f"the prompt is {len(prompt_ids)} tokens but the context window holds {self.context_length}; "
                f"shorten it {larger}"
            )
        sampler = Sampler(request.sampling)
        stream = TextStream(self.tokenizer, request.stop)
        mask = self.grammars.mask(request.constraint) if request.constraint is not None else None
        if reuse is not None:
            common = _common_prefix(reuse.cached_ids, prompt_ids[:-1])
            self.runner.truncate(reuse.seq_id, len(reuse.cached_ids) - common)
            return Sequence(reuse.seq_id, request, prompt_ids, sampler, stream, cached_ids=reuse.cached_ids[:common],
                            mask=mask)
        seq_id, shared = self._new_sequence(prompt_ids[:-1])
        self._live.add(seq_id)
        return Sequence(seq_id, request, prompt_ids, sampler, stream, cached_ids=prompt_ids[:shared], mask=mask)

    def _new_sequence(self, prefix: list[int]) -> tuple[int, int]:
        """A KV-cache sequence for a prompt starting with ``prefix``: its id and how many of the
        prompt's tokens it already holds (forked from, or taken over from, the prefix cache)."""
        cache = self.prefix_cache
        match = cache.longest(prefix) if cache is not None else None
        spare = match.seq_id if match else None
        while cache and len(self._live) + len(cache) >= self.runner.cache_shape.max_batch_size:
            if (victim := cache.oldest(spare)) is None:
                break
            self._evict(victim)
        if match is None:
            seq_id = next(self._ids)
            self.runner.add_sequence(seq_id)
            return seq_id, 0
        if len(self._live) + len(cache) >= self.runner.cache_shape.max_batch_size:
            # No slot for a fork: the request takes the kept sequence over.
            held = cache.take(match.seq_id)
            self.runner.truncate(match.seq_id, len(held) - match.tokens)
            return match.seq_id, match.tokens
        seq_id = next(self._ids)
        self._make_room(PAGE_TOKENS, spare)
        self.runner.fork(match.seq_id, seq_id, match.tokens)
        return seq_id, match.tokens

    def _make_room(self, tokens: int, spare: int | None = None) -> None:
        """Evict kept sequences, least recently used first, until ``tokens`` fit in free pages."""
        while self.prefix_cache and self.runner.free_tokens() < tokens:
            if (victim := self.prefix_cache.oldest(spare)) is None:
                return
            self._evict(victim)

    def _evict(self, seq_id: int) -> None:
        self.prefix_cache.take(seq_id)
        self.runner.remove_sequence(seq_id)

    def clear_prefix_cache(self) -> None:
        """Free every kept sequence's pages now."""
        while self.prefix_cache:
            self._evict(self.prefix_cache.oldest())

    def step(self, sequences: list[Sequence]) -> dict[Sequence, list[Event]]:
        """Prefill new sequences (in the order given), then decode one token for all running ones
        in one batch. While some are running, a step prefills about as many prompt tokens as one
        of their decode steps costs (``_chunk_budget``: a page at least, ``prefill_chunk`` at most),
        so a long prompt takes several steps and the running streams keep their pace; its first
        token comes with the step that prefills its last chunk. With none running, new prompts
        are prefilled whole (nobody waits for them)."""
        events: dict[Sequence, list[Event]] = {s: [] for s in sequences}
        running, new = [], []
        for seq in sequences:
            if seq.finished:
                continue
            if seq.request.deadline is not None and time.monotonic() > seq.request.deadline:
                self._finish(seq, FinishReason.DEADLINE, events[seq])
            else:
                (new if seq.pending is None else running).append(seq)
        budget = self._chunk_budget() if running and self.prefill_chunk else None
        for seq in new:
            if budget is None or budget > 0:
                budget = self._prefill(seq, events[seq], budget)
        if running:
            self._make_room(PAGE_TOKENS * len(running))  # at most a new page each
            started = time.perf_counter()
            logits = self.runner.decode([s.seq_id for s in running], [s.pending for s in running])
            elapsed = time.perf_counter() - started
            self._decode_step_s = _average(self._decode_step_s, elapsed)
            for row, seq in enumerate(running):
                seq.cached_ids.append(seq.pending)
                seq.decode_s += elapsed
                self._accept(seq, logits[row], events[seq])
        return events

    def _chunk_budget(self) -> int:
        """Prompt tokens to prefill beside the running streams in this step: about what one of
        their decode steps costs (so their inter-token time at most doubles), in whole pages,
        at least a page and at most ``prefill_chunk``."""
        if not (self._decode_step_s and self._prefill_tok_s):
            return self.prefill_chunk
        paced = int(self._decode_step_s * self._prefill_tok_s) // PAGE_TOKENS * PAGE_TOKENS
        return max(PAGE_TOKENS, min(self.prefill_chunk, paced))

    def _prefill(self, seq: Sequence, out: list[Event], budget: int | None) -> int | None:
        """Prefill the next ``budget`` prompt tokens of ``seq`` (all: None); returns what is left."""
        new_ids = seq.prompt_ids[len(seq.cached_ids):]
        if budget is not None:
            new_ids = new_ids[:budget]
            budget -= len(new_ids)
        self._make_room(len(new_ids) + PAGE_TOKENS)
        started = time.perf_counter()
        logits = self.runner.prefill(seq.seq_id, new_ids)
        took = time.perf_counter() - started
        seq.prefill_s += took
        if len(new_ids) >= PAGE_TOKENS and took > 0:
            self._prefill_tok_s = _average(self._prefill_tok_s, len(new_ids) / took)
        seq.prefilled_tokens += len(new_ids)
        seq.cached_ids.extend(new_ids)
        if len(seq.cached_ids) == len(seq.prompt_ids):
            self._accept(seq, logits, out)
            seq.first_token_at = time.perf_counter()
        return budget

    def _accept(self, seq: Sequence, logits: np.ndarray, out: list[Event]) -> None:
        """Sample the next token and decide whether the sequence goes on."""
        seen = np.asarray(seq.prompt_ids + seq.generated, dtype=np.int64)
        allowed = seq.mask.allowed() if seq.mask is not None else None
        token = seq.sampler.sample(logits, seen, allowed)
        if seq.mask is not None and not seq.mask.accept(token):
            log.warning("request %s: the output grammar refused token %d; ending it", seq.request.request_id, token)
            self._finish(seq, FinishReason.STOP, out)
            return
        if token in self.stop_ids and (not seq.request.ignore_eos or seq.mask is not None):
            self._finish(seq, FinishReason.STOP, out)
            return
        seq.generated.append(token)
        seq.pending = token
        text = seq.stream.push(token)
        out.append(TextDelta(text, (token,)))
        if seq.stream.stopped or (seq.mask is not None and seq.mask.terminated):
            self._finish(seq, FinishReason.STOP, out)
        elif len(seq.generated) >= seq.request.max_tokens or len(seq.cached_ids) + 1 >= self.context_length:
            self._finish(seq, FinishReason.LENGTH, out)

    def _finish(self, seq: Sequence, reason: FinishReason, out: list[Event]) -> None:
        """Emit text held back for a stop string that never came, then the Finished event."""
        tail = seq.stream.flush()
        if tail:
            out.append(TextDelta(tail, ()))
        seq.finished = True
        now = time.perf_counter()
        first = seq.first_token_at or now
        decoded = max(len(seq.generated) - 1, 0)
        timings = Timings(
            ttft_s=first - seq.started,
            prefill_tok_s=seq.prefilled_tokens / seq.prefill_s if seq.prefill_s else 0.0,
            decode_tok_s=decoded / seq.decode_s if seq.decode_s else 0.0,
        )
        out.append(Finished(seq.stream.text, tuple(seq.generated), reason,
                            Usage(len(seq.prompt_ids), len(seq.generated)), timings))

    def release(self, seq: Sequence) -> None:
        """Give the sequence's KV pages back now: into the prefix cache (evictable, for requests
        that start the same way) when it holds a page or more, else freed."""
        if seq.seq_id is not None:
            self._live.discard(seq.seq_id)
            cache = self.prefix_cache
            if cache is not None and len(seq.cached_ids) >= cache.min_tokens and not cache.covers(seq.cached_ids):
                for redundant in cache.covered_by(seq.cached_ids):
                    self._evict(redundant)
                cache.keep(seq.seq_id, seq.cached_ids)
            else:
                self.runner.remove_sequence(seq.seq_id)
            seq.seq_id = None
            seq.finished = True

    def run(self, seq: Sequence) -> Iterator[Event]:
        """Step one sequence to its end, yielding its events."""
        while not seq.finished:
            yield from self.step([seq])[seq]

    def generate(self, request: GenerationRequest) -> Iterator[Event]:
        seq = self.start(request)
        try:
            yield from self.run(seq)
        finally:
            self.release(seq)

    def complete(self, prompt: str, **options) -> str:
        """The answer to ``prompt``, rendered as one user message with the model's chat template
        (``raw=True``: continued as plain text). ``options``: ``max_tokens``, ``temperature``,
        ``top_k``, ``top_p``, ``repetition_penalty``, ``seed``, ``stop``, ``ignore_eos``,
        ``response_format`` (OpenAI's form: ``{"type": "json_schema", "json_schema": {"schema": ...}}``)."""
        return self._answer(GenerationRequest(prompt=prompt, **request_options(options)))

    def chat(self, messages: list[dict], *, tools: list[dict] | None = None, tool_choice: str | dict | None = None,
             **options) -> ChatReply:
        """The assistant's answer to ``messages`` (``[{"role": ..., "content": ...}, ...]``; an
        ``assistant`` message may carry earlier ``tool_calls``, a ``tool`` message a tool's result),
        with the options of ``complete``. ``tools`` and ``tool_choice`` are OpenAI's (function tools;
        ``auto``, ``none``, ``required`` or ``{"type": "function", "function": {"name": ...}}``): the
        calls come back in ``ChatReply.tool_calls``, each valid for its tool's schema."""
        use = parse_tools(tools, tool_choice)
        fields = request_options(options)
        chat = chat_messages(messages)
        if use is not None:
            if "constraint" in fields:
                raise InputError("give tools or a response_format, not both")
            chat, fields["constraint"] = use.prompt(chat), use.constraint()
        finished = self._finished(GenerationRequest(messages=chat, **fields))
        content, calls = (finished.text, []) if use is None else use.split(finished.text)
        finish = "tool_calls" if calls else finished.finish_reason.value
        return ChatReply(content, tuple(calls), finish, finished.usage)

    def chat_session(self) -> ChatSession:
        """A conversation that keeps its KV cache between turns (``ChatSession.send``)."""
        return ChatSession(self)

    def _answer(self, request: GenerationRequest) -> str:
        return self._finished(request).text

    def _finished(self, request: GenerationRequest) -> Finished:
        *_, finished = self.generate(request)  # the last event is the Finished one, with the whole text
        return finished

    def close(self) -> None:
        self.runner = None


class ChatSession:
    """A conversation whose KV cache survives between turns."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.messages: list[dict] = []
        self._seq: Sequence | None = None

    def send(self, text: str, **request_args) -> Iterator[Event]:
        """Add a user message and stream the assistant's answer (kept for the next turn)."""
        request = GenerationRequest(messages=(*self.messages, {"role": "user", "content": text}), **request_args)
        self._seq = self.engine.start(request, reuse=self._seq)  # raises before anything changes
        self.messages.append({"role": "user", "content": text})
        reply = []
        try:
            for event in self.engine.run(self._seq):
                if isinstance(event, TextDelta):
                    reply.append(event.text)
                yield event
        finally:  # an answer stopped half-way (the caller closed this generator) is kept as said
            self.messages.append({"role": "assistant", "content": "".join(reply)})

    def clear(self) -> None:
        """Forget the conversation; the next turn reuses the cached prefix it still shares."""
        self.messages = []

    def close(self) -> None:
        if self._seq is not None:
            self.engine.release(self._seq)
            self._seq = None


def _tokenizer_from(package_dir: Path, manifest: Manifest) -> Tokenizer:
    text = verified_bytes(package_dir, manifest, manifest.tokenizer["file"])
    try:
        return Tokenizer.from_str(text.decode("utf-8"))
    except Exception as exc:  # the tokenizers library raises bare Exceptions for malformed documents
        raise PackageError(f"package {package_dir}: {manifest.tokenizer['file']} is not a usable tokenizer "
                           f"({str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}); "
                           "re-pack the model") from None


def _check_kv_fits(manifest: Manifest, shape: CacheShape) -> None:
    """Refuse a KV cache that cannot fit in the memory available now, before TVM allocates it."""
    need = manifest.memory.kv_bytes_per_token * shape.max_total_tokens
    available = _available_memory()
    if available is not None and need > available:
        raise InputError(
            f"{manifest.name} needs {need >> 20} MiB of KV cache for {shape.max_total_tokens} tokens but only "
            f"{available >> 20} MiB of memory is available; use a smaller context (--ctx)"
        )


def _available_memory() -> int | None:
    """MemAvailable in bytes, or None where /proc/meminfo cannot tell."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _messages(request: GenerationRequest) -> list[dict]:
    if request.messages is not None:
        return list(request.messages)
    return [{"role": "user", "content": request.prompt}]


def _split_literal(text: str, contents: list[str], special: re.Pattern | None) -> list[tuple[str, bool]]:
    """``text`` cut into ``(piece, literal)``: control-token strings that come from a message's
    content are literal (tokenized as text); everything else is tokenized as usual."""
    if special is None or not any(special.search(c) for c in contents):
        return [(text, False)]
    literal_spans = []
    cursor = 0
    for content in contents:
        at = text.find(content, cursor) if content else -1
        if at < 0:
            if special.search(content):
                token = special.search(content).group(0)
                raise InputError(f"a message contains the model's control token {token!r} and its chat template "
                                 "changes the message, so it cannot be kept as text; remove the token")
            continue
        literal_spans += [(at + m.start(), at + m.end()) for m in special.finditer(content)]
        cursor = at + len(content)
    pieces, last = [], 0
    for start, end in literal_spans:
        if start > last:
            pieces.append((text[last:start], False))
        pieces.append((text[start:end], True))
        last = end
    if last < len(text):
        pieces.append((text[last:], False))
    return pieces


def _average(previous: float, value: float, weight: float = 0.2) -> float:
    """Exponential moving average (the first value stands alone)."""
    return value if not previous else previous + weight * (value - previous)


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):  # up to the shorter one
        if x != y:
            break
        n += 1
    return n
