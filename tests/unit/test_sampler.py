from __future__ import annotations

import numpy as np
import pytest

from edge_os.errors import InputError
from edge_os.runtime.request import GenerationRequest, SamplingParams
from edge_os.runtime.sampler import NUCLEUS_CANDIDATES, Sampler, _draw, _nucleus

LOGITS = np.array([1.0, 3.0, 2.0, -1.0, 0.5], np.float32)


def test_greedy_takes_the_argmax():
    assert Sampler(SamplingParams(temperature=0)).sample(LOGITS, np.array([], np.int64)) == 1


def test_top_k_one_is_greedy_whatever_the_temperature():
    s = Sampler(SamplingParams(temperature=5.0, top_k=1, seed=0))
    assert {s.sample(LOGITS, np.array([], np.int64)) for _ in range(20)} == {1}


def test_top_p_keeps_only_the_nucleus():
    s = Sampler(SamplingParams(temperature=1.0, top_k=0, top_p=0.5, seed=0))
    # softmax: token 1 has ~0.64 of the mass, so a 0.5 nucleus is token 1 alone
    assert {s.sample(LOGITS, np.array([], np.int64)) for _ in range(50)} == {1}


def test_sampling_follows_the_distribution():
    s = Sampler(SamplingParams(temperature=1.0, top_k=0, top_p=1.0, seed=3))
    counts = np.bincount([s.sample(LOGITS, np.array([], np.int64)) for _ in range(4000)], minlength=5)
    probs = np.exp(LOGITS - LOGITS.max()) / np.exp(LOGITS - LOGITS.max()).sum()
    np.testing.assert_allclose(counts / 4000, probs, atol=0.03)


def test_repetition_penalty_pushes_seen_tokens_down():
    s = Sampler(SamplingParams(temperature=0, repetition_penalty=2.0))
    assert s.sample(LOGITS, np.array([1], np.int64)) == 2  # 3.0/2 = 1.5 < 2.0
    penalized = s.apply_penalty(LOGITS, np.array([3], np.int64))
    assert penalized[3] == -2.0  # negative logits are multiplied
    assert s.sample(LOGITS, [0, 1, 1]) == 2  # the ids as the scheduler passes them: a list, repeats allowed


def _oracle_nucleus(weights: np.ndarray, top_p: float) -> set[int]:
    """The nucleus the plain way: every weight sorted, the shortest prefix reaching top_p of the mass."""
    order = np.argsort(-weights, kind="stable")
    keep = int(np.searchsorted(np.cumsum(weights[order]) / weights.sum(), top_p)) + 1
    return set(order[:keep].tolist())


def test_the_nucleus_is_the_one_a_full_sort_finds():
    rng = np.random.default_rng(7)
    sizes = []
    for spread in (0.5, 0.8, 3.0):  # nuclei of a few, hundreds and thousands of tokens
        weights = np.exp(rng.standard_normal(49152) / spread * 3)
        for top_p in (0.5, 0.9, 0.95, 0.999):
            kept = _nucleus(weights, top_p)
            assert set(kept.tolist()) == _oracle_nucleus(weights, top_p), (spread, top_p)
            assert np.all(np.diff(weights[kept]) <= 0)  # largest first
            sizes.append(len(kept))
    small, large = NUCLEUS_CANDIDATES
    # every way through: the first candidate set, the second, and the full sort
    assert min(sizes) <= small and any(small < n <= large for n in sizes) and max(sizes) > large, sizes


def test_draws_over_many_blocks_follow_the_weights():
    """8 likely tokens in 8 different blocks of a 5,000-token vocabulary, the rest nearly zero."""
    weights = np.full(5000, 1e-9)
    likely = [3, 700, 1290, 2049, 2560, 3333, 4100, 4999]
    weights[likely] = [1, 2, 3, 4, 5, 6, 7, 8]
    rng = np.random.default_rng(1)
    counts = np.bincount([_draw(weights, rng.random()) for _ in range(20000)], minlength=5000)
    np.testing.assert_allclose(counts[likely] / 20000, weights[likely] / weights.sum(), atol=0.01)
    assert counts.sum() - counts[likely].sum() <= 2


def test_a_draw_at_the_very_end_never_lands_on_a_masked_token():
    weights = np.zeros(3000)
    weights[[10, 1500]] = [1.0, 0.5]  # the tail, two blocks of it, is masked out
    assert _draw(weights, np.nextafter(1.0, 0.0)) == 1500
    assert _draw(weights, 0.0) == 10


def test_temperature_sampling_never_picks_a_disallowed_token():
    rng = np.random.default_rng(2)
    logits = rng.standard_normal(49152).astype(np.float32) * 3
    allowed = np.zeros(49152, bool)
    allowed[rng.choice(49152, 300, replace=False)] = True
    for params in (SamplingParams(temperature=1.0, top_k=0, top_p=1.0, seed=4), SamplingParams(seed=4),
                   SamplingParams(temperature=2.0, top_k=0, top_p=0.99, seed=4)):
        s = Sampler(params)
        assert all(allowed[s.sample(logits, [], allowed)] for _ in range(300)), params


def test_with_every_token_masked_sampling_says_so():
    s = Sampler(SamplingParams(temperature=1.0, seed=0))
    with pytest.raises(ValueError, match="no token can be sampled"):
        s.sample(LOGITS, [], np.zeros(LOGITS.size, bool))


def test_a_seed_gives_the_same_tokens_on_a_real_vocabulary():
    logits = np.random.default_rng(5).standard_normal(49152).astype(np.float32) * 4
    params = SamplingParams(temperature=0.9, top_k=0, top_p=0.95, seed=11)
    first, second = ([s.sample(logits, []) for _ in range(50)] for s in (Sampler(params), Sampler(params)))
    assert first == second and len(set(first)) > 5


@pytest.mark.parametrize("kwargs,match", [
    ({"temperature": -1}, "temperature"), ({"top_p": 0}, "top_p"), ({"top_p": 1.5}, "top_p"),
    ({"top_k": -2}, "top_k"), ({"repetition_penalty": 0}, "repetition_penalty"),
    ({"temperature": float("nan")}, "temperature"),
])
def test_invalid_sampling_parameters_are_refused(kwargs, match):
    with pytest.raises(InputError, match=match):
        SamplingParams(**kwargs)


def test_requests_need_exactly_one_prompt_and_positive_max_tokens():
    with pytest.raises(InputError, match="exactly one"):
        GenerationRequest()
    with pytest.raises(InputError, match="max_tokens"):
        GenerationRequest(prompt="x", max_tokens=0)
    with pytest.raises(InputError, match="role"):
        GenerationRequest(messages=({"role": "user"},))
