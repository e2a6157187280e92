"""The partitions a materializer owns: each one's rooms (a RoomBook) and the next offset to fold."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import MappingProxyType

from service.materializer.changelog import SnapshotMarks
from service.state.book import RoomBook


class OwnedPartitions:
    """Only partitions whose state is complete are here: one that was assigned but not yet rebuilt
    (or whose rebuild failed) has no book, and none of its records may be folded."""

    def __init__(self) -> None:
        self._books: dict[int, RoomBook] = {}
        self._positions: dict[int, int] = {}
        self._marks: dict[int, SnapshotMarks] = {}

    def install(self, partition: int, book: RoomBook, position: int, marks: SnapshotMarks | None = None) -> None:
        self._books[partition] = book
        self._positions[partition] = position
        self._marks[partition] = marks or SnapshotMarks()

    def drop(self, partition: int) -> None:
        self._books.pop(partition, None)
        self._positions.pop(partition, None)
        self._marks.pop(partition, None)

    def marks(self, partition: int) -> SnapshotMarks:
        """Where the partition's latest snapshot starts (a snapshot is due when unknown)."""
        return self._marks.setdefault(partition, SnapshotMarks())

    def book(self, partition: int) -> RoomBook | None:
        return self._books.get(partition)

    def advance(self, partition: int, next_offset: int) -> None:
        self._positions[partition] = next_offset

    def position(self, partition: int) -> int:
        """The next offset to fold (0 for a partition not owned)."""
        return self._positions.get(partition, 0)

    def items(self) -> Iterator[tuple[int, RoomBook]]:
        """A snapshot: safe to iterate across awaits while partitions come and go."""
        return iter(list(self._books.items()))

    @property
    def numbers(self) -> tuple[int, ...]:
        return tuple(sorted(self._books))

    @property
    def books(self) -> Mapping[int, RoomBook]:
        return MappingProxyType(self._books)

    def status_counts(self) -> dict[str, int]:
        counts = {"in-progress": 0, "completed": 0, "failed": 0}
        for book in self._books.values():
            for key, value in book.rooms.status_counts().items():
                counts[key] += value
        return counts
