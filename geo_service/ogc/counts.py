"""`numberMatched` of filtered queries, remembered per layer version.

Counting the matches of a filter costs a scan; the answer only changes when the layer does. So a count is
kept under (layer, layer version, filter) and a later page of the same query, or the same query from another
client, reuses it. An edit bumps the layer version, and with it every key: a stale count is never served.
"""

from __future__ import annotations

import threading
from collections import OrderedDict


class MatchedCounts:
    """A bounded, thread-safe, least-recently-used map from (layer, version, filter) to a count."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._counts: OrderedDict[tuple[str, int, str], int] = OrderedDict()
        self._latest: dict[tuple[str, str], int] = {}  # (layer, filter) → the newest version counted
        self._lock = threading.Lock()

    def get(self, layer_id: str, version: int, fingerprint: str) -> int | None:
        """The remembered count, or None."""
        key = (layer_id, version, fingerprint)
        with self._lock:
            count = self._counts.get(key)
            if count is not None:
                self._counts.move_to_end(key)
            return count

    def latest(self, layer_id: str, fingerprint: str) -> tuple[int, int] | None:
        """The newest remembered (version, count) of a filter: the page's statement then counts only if
        the layer has moved on from that version."""
        with self._lock:
            version = self._latest.get((layer_id, fingerprint))
            if version is None:
                return None
            count = self._counts.get((layer_id, version, fingerprint))
            if count is None:
                del self._latest[(layer_id, fingerprint)]
                return None
            self._counts.move_to_end((layer_id, version, fingerprint))
            return version, count

    def put(self, layer_id: str, version: int, fingerprint: str, count: int) -> None:
        """Remember a count, forgetting the least recently used beyond the bound."""
        with self._lock:
            if version >= self._latest.get((layer_id, fingerprint), version):
                self._latest[(layer_id, fingerprint)] = version
            self._counts[(layer_id, version, fingerprint)] = count
            self._counts.move_to_end((layer_id, version, fingerprint))
            while len(self._counts) > self._size:
                (layer, old, filter_), _ = self._counts.popitem(last=False)
                if self._latest.get((layer, filter_)) == old:
                    del self._latest[(layer, filter_)]
