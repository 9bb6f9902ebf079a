"""The prefix cache's bookkeeping: longest match, least-recently-used order, redundant entries, and
the logits kept after whole prompts."""

import numpy as np

from edge_os.runtime.prefix_cache import MAX_ENDS, Match, PrefixCache

SYSTEM = list(range(100, 140))  # a 40-token system prompt


def test_the_longest_shared_prefix_wins_and_becomes_most_recent():
    cache = PrefixCache(min_tokens=16)
    cache.keep(1, SYSTEM + [1, 2, 3])
    cache.keep(2, SYSTEM[:20] + [9] * 30)
    cache.keep(3, [7] * 50)
    assert cache.longest(SYSTEM + [1, 2, 5]) == Match(1, 42)
    assert cache.oldest() == 2  # 1 was just used
    assert cache.longest(SYSTEM[:20] + [8]) == Match(2, 20)  # a tie goes to the least recently used
    assert cache.hits == 2 and cache.hit_tokens == 62


def test_a_match_shorter_than_a_page_is_no_match():
    cache = PrefixCache(min_tokens=16)
    cache.keep(1, SYSTEM)
    assert cache.longest(SYSTEM[:15] + [0]) is None
    assert cache.hits == 0


def test_oldest_spares_the_entry_being_forked_from():
    cache = PrefixCache()
    cache.keep(1, SYSTEM)
    cache.keep(2, [3] * 20)
    assert cache.oldest() == 1 and cache.oldest(spare=1) == 2
    cache.take(2)
    assert cache.oldest(spare=1) is None


def test_each_kept_sequence_is_counted_once_and_taken_out_once():
    cache = PrefixCache()
    assert cache.keep(1, SYSTEM) == []
    assert cache.keep(1, SYSTEM + [5]) == []  # kept again (a longer life): replaced, not added
    cache.keep(2, [3] * 20)
    assert len(cache) == 2 and cache.tokens == 41 + 20
    assert cache.take(1) == tuple(SYSTEM + [5])
    assert 1 not in cache and cache.tokens == 20
    assert cache.status() == {"sequences": 1, "tokens": 20, "hits": 0, "hit_tokens": 0, "logits_bytes": 0}


def test_a_sequence_too_short_or_already_held_is_handed_back_to_free():
    cache = PrefixCache(min_tokens=16)
    assert cache.keep(1, SYSTEM[:15]) == [1]
    cache.keep(2, SYSTEM)
    assert cache.keep(3, SYSTEM[:30]) == [3]
    assert len(cache) == 1 and 3 not in cache


def test_a_longer_sequence_replaces_the_entries_it_holds():
    cache = PrefixCache()
    cache.keep(1, SYSTEM[:20])
    cache.keep(2, [3] * 20)
    assert cache.keep(3, SYSTEM + [1]) == [1]
    assert 1 not in cache and 2 in cache and 3 in cache


def logits(value: float) -> np.ndarray:
    return np.full(8, value, dtype=np.float32)


def test_a_whole_prompt_matches_only_with_the_logits_that_followed_it():
    cache = PrefixCache(min_tokens=16)
    prompt = SYSTEM[:30]
    cache.keep(1, prompt + [7, 8], {len(prompt): logits(1.0)})
    whole = cache.longest(prompt)
    assert whole == Match(1, 30) and np.array_equal(whole.logits, logits(1.0))
    # Another prompt inside the entry has no logits kept: its last token is left to compute.
    shorter = cache.longest(SYSTEM[:25])
    assert shorter == Match(1, 24) and shorter.logits is None
    assert cache.longest(prompt + [7, 8]).logits is None


def test_logits_move_to_the_entry_that_holds_their_prompt():
    cache = PrefixCache(min_tokens=16)
    cache.keep(1, SYSTEM[:20], {20: logits(1.0)})
    cache.keep(2, SYSTEM, {30: logits(2.0)})  # holds entry 1's tokens: takes its ends
    cache.keep(3, SYSTEM[:25], {25: logits(3.0)})  # held by entry 2: gives it its ends
    assert len(cache) == 1 and 2 in cache
    ends = {n: cache.longest(SYSTEM[:n]).logits for n in (20, 25, 30)}
    assert [ends[n] is not None for n in (20, 25, 30)] == [MAX_ENDS >= 3, True, True]
    assert np.array_equal(ends[25], logits(3.0)) and np.array_equal(ends[30], logits(2.0))
    assert cache.status()["logits_bytes"] == MAX_ENDS * logits(0).nbytes
