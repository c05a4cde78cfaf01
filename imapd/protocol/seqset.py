"""Sequence sets (RFC 3501 §9 `sequence-set`, RFC 5182 `$`).

A set is kept as the ranges the client wrote, with `*` unresolved, because `*`
means "the largest number in use" only at the moment the command runs.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Iterator, Sequence

STAR = 0  # stands for `*` inside a range; real numbers are >= 1
MAX_NUMBER = 0xFFFFFFFF  # nz-number / uniqueid are 32-bit


class SeqSet:
    """A parsed sequence set: a tuple of inclusive (low, high) ranges.

    `STAR` (0) in a range means `*`.  `saved` marks the SEARCHRES `$` set.
    """

    __slots__ = ("ranges", "saved")

    def __init__(self, ranges: Sequence[tuple[int, int]] = (), saved: bool = False) -> None:
        self.ranges = tuple(ranges)
        self.saved = saved

    @classmethod
    def parse(cls, text: str) -> "SeqSet":
        """Parse `1:4,7,9:*` or `$`; ValueError on anything malformed."""
        if text == "$":
            return cls(saved=True)
        ranges: list[tuple[int, int]] = []
        for item in text.split(","):
            low, sep, high = item.partition(":")
            a = _number(low)
            b = _number(high) if sep else a
            ranges.append((a, b))
        return cls(ranges)

    def uses_star(self) -> bool:
        return any(a == STAR or b == STAR for a, b in self.ranges)

    def resolved(self, largest: int) -> list[tuple[int, int]]:
        """Ranges with `*` replaced by `largest` and each ordered low..high."""
        out = []
        for a, b in self.ranges:
            a = largest if a == STAR else a
            b = largest if b == STAR else b
            if a > b:
                a, b = b, a
            out.append((a, b))
        return out

    def message_numbers(self, count: int) -> list[int]:
        """Sequence numbers named by the set in a mailbox of `count` messages.

        Raises ValueError if a number is beyond `count` (RFC 9051 §6.4.4: the
        client referenced a message that does not exist)."""
        if count == 0:
            raise ValueError("no messages in mailbox")
        seen: set[int] = set()
        out: list[int] = []
        for a, b in self.resolved(count):
            if b > count:
                raise ValueError(f"message number {b} out of range (mailbox has {count})")
            for n in range(a, b + 1):
                if n not in seen:
                    seen.add(n)
                    out.append(n)
        out.sort()
        return out

    def select_uids(self, uids: Sequence[int]) -> list[int]:
        """The members of the ascending `uids` that the set names as UIDs.

        Numbers that are not in use are ignored, as UID commands require;
        `*` is the largest UID in use (so `N:*` always includes it)."""
        if not uids:
            return []
        largest = uids[-1]
        ranges = self.resolved(largest)
        if len(ranges) == 1:
            a, b = ranges[0]
            return list(uids[bisect_left(uids, a) : bisect_right(uids, b)])
        picked: set[int] = set()
        for a, b in ranges:
            picked.update(uids[bisect_left(uids, a) : bisect_right(uids, b)])
        return sorted(picked)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(self.ranges)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SeqSet) and (self.ranges, self.saved) == (other.ranges, other.saved)

    def __repr__(self) -> str:
        return f"SeqSet({format_seqset(self)!r})"


def _number(text: str) -> int:
    if text == "*":
        return STAR
    if not text.isdigit() or not text.isascii() or text[0] == "0":
        raise ValueError(f"bad number {text!r} in sequence set")
    if len(text) > 10 or int(text) > MAX_NUMBER:
        raise ValueError(f"number {text} too large in sequence set")
    return int(text)


def format_seqset(s: SeqSet) -> str:
    if s.saved:
        return "$"
    return ",".join(_fmt(a) if a == b else f"{_fmt(a)}:{_fmt(b)}" for a, b in s.ranges)


def _fmt(n: int) -> str:
    return "*" if n == STAR else str(n)


def compress_numbers(numbers: Sequence[int]) -> str:
    """`1,2,3,5` -> `1:3,5` for responses such as COPYUID and ESEARCH ALL."""
    parts: list[str] = []
    i = 0
    n = len(numbers)
    while i < n:
        j = i
        while j + 1 < n and numbers[j + 1] == numbers[j] + 1:
            j += 1
        parts.append(str(numbers[i]) if i == j else f"{numbers[i]}:{numbers[j]}")
        i = j + 1
    return ",".join(parts)
