"""One room list over two sources: the hot view (in memory) and the history store.

A room in both is taken from the hot view (its document there is the newest); the history store is
asked only for the rooms around the page (keyset, in the list's order), never for the whole list.
The page, its `has_before` / `has_after` and so its links are exactly what `resource.window` gives
for the merged list held in memory: same order, same tokens, same `Page` offsets.

Pure paging logic: the history store comes in as `fetch(bound, inclusive, descending, limit)`,
returning documents in key order (ascending, or descending from `bound` when `descending`).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Any, Awaitable, Callable, Container, Sequence

from service.rooms.resource import Key, Window

Doc = dict[str, Any]
Fetch = Callable[[Key | None, bool, bool, int], Awaitable[list[Doc]]]

# Extra rows asked for per history query, to make up for rows that the hot view holds (and wins).
MAX_OVERFETCH = 500


class MergedList:
    def __init__(
        self, hot: Sequence[Doc], hot_sids: Container[str], fetch: Fetch, key: Callable[[Doc], Key], overfetch: int = 0
    ) -> None:
        """`hot`: the hot view's matching rooms, sorted by `key`; `hot_sids`: every room the hot view
        holds (matching or not: it wins either way); `overfetch`: how many history rows per query may
        turn out to be hot (e.g. the number of hot rooms of the list's status, capped)."""
        self.hot = list(hot)
        self.keys = [key(d) for d in self.hot]
        self.hot_sids = hot_sids
        self.fetch = fetch
        self.key = key
        self.overfetch = max(0, min(overfetch, MAX_OVERFETCH))

    def _from_hot(self, bound: Key | None, inclusive: bool, descending: bool, n: int) -> list[Doc]:
        if not descending:
            start = 0 if bound is None else (bisect_left if inclusive else bisect_right)(self.keys, bound)
            return self.hot[start : start + n]
        end = len(self.keys) if bound is None else (bisect_right if inclusive else bisect_left)(self.keys, bound)
        return self.hot[max(0, end - n) : end][::-1]

    async def _from_history(self, bound: Key | None, inclusive: bool, descending: bool, n: int) -> list[Doc]:
        out: list[Doc] = []
        while len(out) < n:
            want = n - len(out) + self.overfetch
            batch = await self.fetch(bound, inclusive, descending, want)
            out.extend(d for d in batch if d["sid"] not in self.hot_sids)
            if len(batch) < want:
                break
            bound, inclusive = self.key(batch[-1]), False
        return out[:n]

    async def take(self, bound: Key | None, inclusive: bool, descending: bool, n: int) -> list[Doc]:
        """The first `n` rooms of the merged list from `bound` on (after it, or before it when
        `descending`, nearest first)."""
        if n <= 0:
            return []
        both = self._from_hot(bound, inclusive, descending, n) + await self._from_history(
            bound, inclusive, descending, n
        )
        return sorted(both, key=self.key, reverse=descending)[:n]

    async def window(self, page_size: int, *, offset: int = 0, token: tuple[str, Key] | None = None) -> Window:
        """As `resource.window(merged, key, page_size, offset=..., token=...)`."""
        if token is not None and token[0] == "A":
            items = await self.take(token[1], False, False, page_size + 1)
            before = await self.take(token[1], True, True, 1)
            return Window(items[:page_size], bool(before), len(items) > page_size)
        if token is not None:
            items = await self.take(token[1], False, True, page_size + 1)
            after = await self.take(token[1], True, False, 1)
            return Window(items[:page_size][::-1], len(items) > page_size, bool(after))
        items = await self.take(None, False, False, offset + page_size + 1)
        return Window(
            items[offset : offset + page_size], offset > 0 and len(items) > 0, len(items) > offset + page_size
        )
