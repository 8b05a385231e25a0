"""The edit-aware tile cache: vector tiles kept in memory under the versions of the layers they show.

A tile is stored under its layers' versions and its z/x/y. Each request reads the layers' current versions
first (one short statement, the same that answers a conditional request), so an edit, which raises its
layer's version, makes every older tile of that layer unreachable at once: a stale tile is never served, it
only waits to be evicted from the least recently used end. The cache holds at most `max_bytes` of tiles
(`JXPLAN_TILE_CACHE_MB`; 0 turns it off) and belongs to one process.
"""

from __future__ import annotations

from collections import OrderedDict

TileKey = tuple[str, int, int, int]  # the layers' versions ("id:version,…;" and the property set), z, x, y
# What keeping a tile costs besides its bytes and its key's text: the key tuple, its numbers and the ordered
# map's entry. Without it empty tiles (b"") would be free, and every edit makes new keys for them.
ENTRY_BYTES = 256


def entry_bytes(key: TileKey, tile: bytes) -> int:
    """What one kept tile counts against the budget."""
    return len(tile) + len(key[0]) + ENTRY_BYTES


class TileCache:
    """Tiles by key, least recently used first out, within a byte budget."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self._tiles: OrderedDict[TileKey, bytes] = OrderedDict()

    @property
    def enabled(self) -> bool:
        """Whether tiles are kept at all."""
        return self.max_bytes > 0

    def __len__(self) -> int:
        return len(self._tiles)

    def get(self, key: TileKey) -> bytes | None:
        """The tile stored under `key` (an empty tile is b""), or None."""
        tile = self._tiles.get(key)
        if tile is None:
            self.misses += 1
            return None
        self._tiles.move_to_end(key)
        self.hits += 1
        return tile

    def put(self, key: TileKey, tile: bytes) -> None:
        """Keep `tile`, evicting the least recently used tiles to stay within the budget (`entry_bytes`
        each); a tile larger than an eighth of the budget is not kept (it would push out many others)."""
        cost = entry_bytes(key, tile)
        if not self.enabled or cost > self.max_bytes // 8 or key in self._tiles:
            return
        self._tiles[key] = tile
        self.bytes += cost
        while self.bytes > self.max_bytes:
            old_key, old = self._tiles.popitem(last=False)
            self.bytes -= entry_bytes(old_key, old)
            self.evictions += 1
