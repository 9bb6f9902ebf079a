"""Serving many requests on one engine: prompt chunks in the decode steps, the prefix cache across
requests, and the thread count following the governor. Tiny packed models with a float32 KV cache,
so the greedy tokens of every path can be compared exactly."""

from __future__ import annotations

import subprocess
import sys

import pytest

from edge_os.runtime._stepping import MIXED_ROWS
from edge_os.runtime.engine import Engine
from edge_os.runtime.request import Finished, GenerationRequest, SamplingParams, TextDelta

GREEDY = SamplingParams(temperature=0)
LONG = "The hub asks every sensor in the house for its reading, then sums them up. " * 2  # 150 tokens


@pytest.fixture(scope="module")
def engine(tiny_package_factory):
    return Engine.load(tiny_package_factory("q4f32", kv_dtype="float32"), threads=2, context_tokens=512,
                       max_batch=4)


def tokens_of(engine: Engine, prompt: str, max_tokens: int = 12) -> tuple[int, ...]:
    request = GenerationRequest(prompt=prompt, raw=True, sampling=GREEDY, max_tokens=max_tokens, ignore_eos=True)
    return [e for e in engine.generate(request) if isinstance(e, Finished)][0].token_ids


def beside_a_stream(engine: Engine, request: GenerationRequest) -> tuple[tuple[int, ...], int, int]:
    """Run ``request`` while another stream decodes (prefix cache off): its tokens, the steps its
    prefill took, and its prompt's length."""
    cache, engine.prefix_cache = engine.prefix_cache, None
    other = engine.start(GenerationRequest(prompt="hi", raw=True, sampling=GREEDY, max_tokens=400, ignore_eos=True))
    seq = engine.start(request)
    try:
        engine.step([other])
        events, steps = [], 0
        while seq.pending is None and not seq.finished:
            events += engine.step([seq, other])[seq]
            steps += 1
        while not seq.finished:
            events += engine.step([seq, other])[seq]
        return events[-1].token_ids, steps, len(seq.prompt_ids)
    finally:
        engine.release(seq)
        engine.release(other)
        engine.prefix_cache = cache


def test_chunked_prefill_gives_the_tokens_of_a_whole_prefill(engine):
    request = GenerationRequest(prompt=LONG, raw=True, sampling=GREEDY, max_tokens=12, ignore_eos=True)
    engine.prefill_chunk = 0
    whole, steps, prompt = beside_a_stream(engine, request)
    assert steps == 1
    for chunk in (3, 48):  # 3 a step (the setting), 7 (what fills MIXED_ROWS beside the stream)
        engine.prefill_chunk = chunk
        tokens, steps, _ = beside_a_stream(engine, request)
        assert tokens == whole and steps == -(-prompt // min(chunk, MIXED_ROWS - 1)), chunk


def test_a_package_packed_before_mixed_steps_prefills_a_prompt_whole_beside_a_stream(engine):
    # such a library has no prefill_ragged; the runner then has none, as here
    request = GenerationRequest(prompt=LONG, raw=True, sampling=GREEDY, max_tokens=12, ignore_eos=True)
    engine.prefill_chunk = 0
    whole, _, _ = beside_a_stream(engine, request)
    engine.prefill_chunk = 48
    ragged, engine.runner._prefill_ragged = engine.runner._prefill_ragged, None
    try:
        assert not engine.runner.mixes_prompts
        tokens, steps, _ = beside_a_stream(engine, request)
    finally:
        engine.runner._prefill_ragged = ragged
    assert steps == 1 and tokens == whole


def test_alone_a_prompt_is_prefilled_whole(engine):
    engine.prefill_chunk = 16
    engine.clear_prefix_cache()
    seq = engine.start(GenerationRequest(prompt=LONG, raw=True, sampling=GREEDY, max_tokens=4))
    events = engine.step([seq])[seq]
    engine.release(seq)
    assert seq.kv_tokens == len(seq.prompt_ids) and any(isinstance(e, TextDelta) for e in events)


def test_a_long_prompt_rides_in_the_decode_steps_of_a_running_stream(engine):
    engine.prefill_chunk = 32
    engine.clear_prefix_cache()  # the whole prompt is prefilled here
    request = GenerationRequest(prompt="hi", raw=True, sampling=GREEDY, max_tokens=40, ignore_eos=True)
    running = engine.start(request)
    engine.step([running])
    newcomer = engine.start(GenerationRequest(prompt=LONG, raw=True, sampling=GREEDY, max_tokens=4))
    prompt = len(newcomer.prompt_ids)
    steps, held = 0, 0
    try:
        while newcomer.pending is None:
            events = engine.step([newcomer, running])
            steps += 1
            # The running stream gets its token in every step of the newcomer's prefill, and each
            # step carries as many prompt tokens as fill MIXED_ROWS rows beside its decode token.
            assert [e for e in events[running] if isinstance(e, TextDelta) and e.token_ids]
            grew, held = newcomer.kv_tokens - held, newcomer.kv_tokens
            assert grew == MIXED_ROWS - 1 or held == prompt
            assert bool(events[newcomer]) == (held == prompt)
        assert steps == -(-prompt // (MIXED_ROWS - 1))
    finally:
        engine.release(newcomer)
        engine.release(running)


def test_the_chunk_is_bounded_by_the_compiled_prefill_limit(engine):
    compiled = engine.runner.cache_shape.prefill_chunk
    engine.prefill_chunk = compiled * 4
    assert engine.prefill_chunk == compiled
    engine.prefill_chunk = -1
    assert engine.prefill_chunk == 0


SYSTEM = "You are the voice of a small house. Answer in one short sentence, politely. " * 2  # 152 tokens


def cold_tokens(engine: Engine, prompt: str) -> tuple[int, ...]:
    """The greedy tokens of ``prompt`` prefilled from nothing (prefix cache off)."""
    cache, engine.prefix_cache = engine.prefix_cache, None
    try:
        return tokens_of(engine, prompt)
    finally:
        engine.prefix_cache = cache


def test_a_request_from_a_shared_prefix_gives_the_tokens_of_a_cold_one(engine):
    engine.prefill_chunk = 64
    engine.clear_prefix_cache()
    question = SYSTEM + "Is the kitchen light on?"
    cold = cold_tokens(engine, question)
    tokens_of(engine, SYSTEM + "What is the temperature?")  # leaves its pages in the cache
    hits = engine.prefix_cache.hits
    seq = engine.start(GenerationRequest(prompt=question, raw=True, sampling=GREEDY, max_tokens=12,
                                         ignore_eos=True))
    assert engine.prefix_cache.hits == hits + 1
    shared = seq.kv_tokens
    assert len(SYSTEM) <= shared < len(seq.prompt_ids)  # the system prompt came from the cache
    events = list(engine.run(seq))
    engine.release(seq)
    assert seq.prefilled_tokens == len(seq.prompt_ids) - shared  # only the rest was prefilled
    assert events[-1].token_ids == cold


def test_batched_requests_forked_from_one_prefix_decode_like_cold_ones(engine):
    engine.prefill_chunk = 64
    engine.clear_prefix_cache()
    questions = [SYSTEM + q for q in ("Open the door.", "Close the blinds!", "Who rang?")]
    cold = [cold_tokens(engine, q) for q in questions]
    tokens_of(engine, SYSTEM + "Hello.")
    seqs = [engine.start(GenerationRequest(prompt=q, raw=True, sampling=GREEDY, max_tokens=12, ignore_eos=True))
            for q in questions]
    assert all(s.kv_tokens >= len(SYSTEM) for s in seqs)
    finals = {}
    while not all(s.finished for s in seqs):
        for seq, events in engine.step(seqs).items():
            if events and isinstance(events[-1], Finished):
                finals[seq] = events[-1].token_ids
    for seq in seqs:
        engine.release(seq)
    assert [finals[s] for s in seqs] == cold


def test_a_repeated_prompt_starts_from_its_first_runs_state(engine):
    """The same prompt again is not prefilled at all: the kept sequence and the logits after the
    prompt give its first token, and a seed gives the first run's sampled text, token for token."""
    engine.prefill_chunk = 64
    engine.clear_prefix_cache()
    hot = SamplingParams(temperature=1.5, top_k=0, top_p=1.0, seed=7)
    request = GenerationRequest(prompt=LONG, raw=True, sampling=hot, max_tokens=40, ignore_eos=True)
    first = [e for e in engine.generate(request) if isinstance(e, Finished)][0]
    hits = engine.prefix_cache.hits
    tokens_of(engine, LONG[:100] + "something else")  # meanwhile another request forks from its first part
    assert engine.prefix_cache.hits == hits + 1
    seq = engine.start(request)
    assert seq.kv_tokens == len(seq.prompt_ids) and seq.prompt_logits is not None
    again = [e for e in engine.run(seq) if isinstance(e, Finished)][0]
    engine.release(seq)
    assert seq.prefilled_tokens == 0
    assert again.token_ids == first.token_ids


def test_kept_prefixes_give_way_to_running_sequences(tiny_package_factory):
    """A pool filled with kept prefixes still serves a request that needs all of it."""
    engine = Engine.load(tiny_package_factory("q4f32", kv_dtype="float32"), threads=2, context_tokens=192,
                         max_batch=2)
    empty = engine.runner.free_tokens()
    for word in ("alpha", "bravo", "charlie"):
        tokens_of(engine, f"{word}: " + "x" * 60)
    assert len(engine.prefix_cache) >= 1
    assert engine.runner.free_tokens() < empty
    long_prompt = "y" * 150
    final = tokens_of(engine, long_prompt, max_tokens=30)
    assert len(final) == 30
    engine.clear_prefix_cache()
    assert engine.runner.free_tokens() == empty  # every kept page came back


def test_the_thread_pool_follows_set_threads_at_once(engine):
    engine.prefix_cache and engine.clear_prefix_cache()
    want = tokens_of(engine, "threads")
    try:
        assert engine.set_threads(1) == 1 and engine.threads == 1
        assert tokens_of(engine, "threads") == want
    finally:
        assert engine.set_threads(2) == 2 and engine.threads == 2


def test_a_process_whose_first_model_ran_on_one_thread_can_grow_to_two(tiny_package_factory):
    """TVM sizes its pool once per process: the first engine's thread count must not cap later ones."""
    script = ("import sys\nfrom edge_os.runtime.engine import Engine\n"
              "engine = Engine.load(sys.argv[1], threads=1, context_tokens=256)\n"
              "engine.complete('warm the pool', max_tokens=2)\n"
              "print(engine.threads, engine.set_threads(2), engine.threads)\n")
    package = tiny_package_factory("q4f32", kv_dtype="float32")
    run = subprocess.run([sys.executable, "-c", script, str(package)], capture_output=True, text=True, timeout=300,
                         check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["1", "2", "2"]


@pytest.fixture(scope="module")
def smollm2(default_package):
    return Engine.load(default_package, context_tokens=1024, max_batch=4)


@pytest.mark.slow
def test_smollm2_chunked_prefill_and_a_shared_prefix_give_the_cold_tokens(smollm2):
    """The real model, with its float16 KV cache: chunked prefill and a forked system prompt
    keep the greedy tokens of a whole, cold prefill."""
    system = ("You are the assistant of a smart home hub. You answer questions about the sensors, the lights and "
              "the heating in one or two short sentences, and you never invent readings. ") * 3
    chat = lambda q: GenerationRequest(messages=({"role": "system", "content": system},  # noqa: E731
                                                 {"role": "user", "content": q}),
                                       sampling=GREEDY, max_tokens=24, ignore_eos=True)
    question = "Which rooms are warmer than twenty degrees?"
    smollm2.prefill_chunk = 0
    whole, _, prompt = beside_a_stream(smollm2, chat(question))
    smollm2.prefill_chunk = 32
    chunked, steps, _ = beside_a_stream(smollm2, chat(question))
    assert chunked == whole and steps >= -(-prompt // 32)
    cache, smollm2.prefix_cache = smollm2.prefix_cache, None
    cold = [e for e in smollm2.generate(chat(question)) if isinstance(e, Finished)][0].token_ids
    smollm2.prefix_cache = cache
    list(smollm2.generate(chat("Is the front door locked?")))  # leaves the system prompt cached
    seq = smollm2.start(chat(question))
    assert seq.kv_tokens > len(system) // 8  # the system prompt's tokens came from the cache
    shared = [e for e in smollm2.run(seq) if isinstance(e, Finished)][0].token_ids
    smollm2.release(seq)
    assert shared == cold
