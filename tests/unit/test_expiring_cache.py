"""shared/expiring_cache.py: entries expire on their own time and the cache never holds more
than its bound, least recently used out first."""

from __future__ import annotations

from shared.expiring_cache import ExpiringCache, Hit


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_entries_expire_and_none_is_a_remembered_answer() -> None:
    clock = Clock()
    cache: ExpiringCache[str, str | None] = ExpiringCache(10, clock)
    cache.put("known", "route", 60)
    cache.put("unknown", None, 2)
    assert cache.get("known") == Hit("route") and cache.get("unknown") == Hit(None)
    clock.now = 2.0
    assert cache.get("unknown") is None and cache.get("known") == Hit("route")
    clock.now = 60.0
    assert cache.get("known") is None and len(cache) == 0


def test_the_bound_holds_and_the_least_recently_used_goes_first() -> None:
    cache: ExpiringCache[int, int] = ExpiringCache(100, Clock())
    for key in range(100):
        cache.put(key, key, 60)
    assert cache.get(0) == Hit(0)  # used: now the most recent
    for key in range(100, 10_100):
        cache.put(key, key, 60)
        assert len(cache) <= 100
    assert cache.get(1) is None and cache.get(10_099) == Hit(10_099)
