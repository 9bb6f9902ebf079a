"""The prefix cache's bookkeeping: longest match, least-recently-used order, redundant entries."""

from edge_os.runtime.prefix_cache import Match, PrefixCache

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
    cache.keep(2, SYSTEM[:30])
    assert cache.oldest() == 1 and cache.oldest(spare=1) == 2
    cache.take(2)
    assert cache.oldest(spare=1) is None


def test_each_kept_sequence_is_counted_once_and_taken_out_once():
    cache = PrefixCache()
    cache.keep(1, SYSTEM)
    cache.keep(1, SYSTEM + [5])  # kept again (a longer life): replaced, not added
    cache.keep(2, [3] * 20)
    assert len(cache) == 2 and cache.tokens == 41 + 20
    assert cache.take(1) == tuple(SYSTEM + [5])
    assert 1 not in cache and cache.tokens == 20
    assert cache.status() == {"sequences": 1, "tokens": 20, "hits": 0, "hit_tokens": 0}


def test_redundant_entries_are_found_both_ways():
    cache = PrefixCache()
    cache.keep(1, SYSTEM)
    cache.keep(2, [3] * 20)
    assert cache.covers(SYSTEM[:30]) and not cache.covers(SYSTEM + [1])
    assert cache.covered_by(SYSTEM + [1]) == [1]
    assert cache.covered_by(SYSTEM[:30]) == []
