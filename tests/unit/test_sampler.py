from __future__ import annotations

import numpy as np
import pytest

from edge_os.errors import InputError
from edge_os.runtime.request import GenerationRequest, SamplingParams
from edge_os.runtime.sampler import Sampler

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
