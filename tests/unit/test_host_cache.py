"""The host-memory cache of put-aside conversations: within its budget, oldest out first."""

from cortex_neuron.host_cache import HostCache


def test_oldest_out_first_within_the_budget() -> None:
    cache = HostCache(budget_bytes=10)
    assert cache.put([1], b"aaaa") and cache.put([2], b"bbbb")
    assert cache.put([3], b"cccc")  # the first goes to make room
    assert [v.tokens for v in cache.views()] == [[2], [3]] and cache.used == 8
    assert not cache.put([4], b"x" * 11)  # larger than the whole budget: not kept
    key = cache.views()[0].key
    assert cache.take(key).data == b"bbbb" and cache.used == 4 and len(cache) == 1
    assert not HostCache(0).put([1], b"a")  # off
