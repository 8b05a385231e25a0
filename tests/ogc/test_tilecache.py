"""The tile cache's bookkeeping: least recently used out first, within its byte budget."""

from __future__ import annotations

from geo_service.ogc.tilecache import ENTRY_BYTES, TileCache, entry_bytes


def _key(n: int) -> tuple[str, int, int, int]:
    return ("bench_parcels:1", 14, n, 0)


TILE = entry_bytes(_key(0), bytes(100))  # what a 100-byte tile counts against the budget


def test_least_recently_used_tiles_leave_first() -> None:
    """With room for eight 100-byte tiles, a ninth evicts the one used longest ago, not the one just read."""
    cache = TileCache(8 * TILE + 99)
    for n in range(8):
        cache.put(_key(n), bytes(100))
    assert cache.get(_key(0)) == bytes(100)  # 0 is now the most recently used
    cache.put(_key(8), bytes(100))
    assert cache.get(_key(1)) is None
    assert all(cache.get(_key(n)) == bytes(100) for n in (0, 2, 3, 4, 5, 6, 7, 8))
    assert cache.bytes == 8 * TILE and len(cache) == 8
    assert (cache.hits, cache.misses) == (9, 1)


def test_versions_are_part_of_the_key() -> None:
    """A tile stored under version 1 is not found under version 2 (an edit raises the version)."""
    cache = TileCache(10_000)
    cache.put(("rail_stations:1", 12, 3, 4), b"old")
    assert cache.get(("rail_stations:2", 12, 3, 4)) is None
    assert cache.get(("rail_stations:1", 12, 3, 4)) == b"old"


def test_empty_tiles_are_kept_and_big_ones_are_not() -> None:
    """An empty tile is kept (b""); a tile over an eighth of the budget is not, and evicts nothing."""
    cache = TileCache(8 * TILE)
    cache.put(_key(0), b"")
    cache.put(_key(1), bytes(100))
    cache.put(_key(2), bytes(101))
    assert cache.get(_key(0)) == b""
    assert cache.get(_key(1)) == bytes(100)
    assert cache.get(_key(2)) is None
    assert cache.bytes == TILE - 100 + TILE  # the empty tile costs its key and bookkeeping only


def test_a_budget_of_zero_keeps_nothing() -> None:
    """JXPLAN_TILE_CACHE_MB=0: the cache is off and stores nothing."""
    cache = TileCache(0)
    assert not cache.enabled
    cache.put(_key(0), b"")
    assert cache.get(_key(0)) is None and len(cache) == 0


def test_empty_tiles_count_against_the_budget() -> None:
    """Empty tiles (204) cost no tile bytes but do cost memory (a key and the map's bookkeeping), and every
    edit makes new keys: a soak of edits and tile reads must not grow the cache past its budget."""
    cache = TileCache(64 * 1024)
    for version in range(20_000):  # an edit, then the same empty tile read again: a new key each time
        cache.put((f"rail_stations:{version},hubs:{version}", 12, 3411, 1663), b"")
    assert cache.bytes <= cache.max_bytes
    assert len(cache) <= cache.max_bytes // ENTRY_BYTES
    assert cache.get(("rail_stations:19999,hubs:19999", 12, 3411, 1663)) == b""
