"""Sequence sets (RFC 3501 §9 `sequence-set`, RFC 5182 `$`).

A set is kept as the ranges the client wrote, with `*` unresolved, because `*`
means "the largest number in use" only at the moment the command runs.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    from typing import Iterator, Sequence

from . import MAX_NUMBER

STAR = 0  # stands for `*` inside a range; real numbers are >= 1


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
        out: list[int] = []
        for a, b in self.message_ranges(count):
            out.extend(range(a, b + 1))
        return out

    def message_ranges(self, count: int) -> list[tuple[int, int]]:
        """`message_numbers` as ordered, merged (low, high) ranges: what a
        whole-mailbox command walks without a number per message."""
        if count == 0:
            raise ValueError("no messages in mailbox")
        ranges = self.resolved(count)
        for _, b in ranges:
            if b > count:
                raise ValueError(f"message number {b} out of range (mailbox has {count})")
        return _merged(ranges)

    def select_uids(self, uids: Sequence[int]) -> list[int]:
        """The members of the ascending `uids` that the set names as UIDs.

        Numbers that are not in use are ignored, as UID commands require;
        `*` is the largest UID in use (so `N:*` always includes it)."""
        if not uids:
            return []
        # (what `bisect` re-exports, loaded by the first command that needs it: not by SELECT)
        from _bisect import bisect_left, bisect_right

        out: list[int] = []
        for a, b in _merged(self.resolved(uids[-1])):
            out.extend(uids[bisect_left(uids, a) : bisect_right(uids, b)])
        return out

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(self.ranges)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SeqSet) and (self.ranges, self.saved) == (other.ranges, other.saved)

    def __repr__(self) -> str:
        return f"SeqSet({format_seqset(self)!r})"


def _merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Ordered (low, high) ranges sorted and joined where they overlap or touch,
    so that expanding them costs only the size of the result."""
    out: list[tuple[int, int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1] + 1:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def _number(text: str) -> int:
    if text == "*":
        return STAR
    if not text:
        raise ValueError("empty number in sequence set")
    if not text.isdigit() or not text.isascii():
        raise ValueError(f"bad number {text[:20]!r} in sequence set")
    if text.strip("0") == "":
        raise ValueError("0 is not a valid message number or UID (they start at 1)")
    if text[0] == "0":
        raise ValueError(f"number {text[:20]} has a leading zero")
    if len(text) > 10 or int(text) > MAX_NUMBER:
        raise ValueError(f"number {text[:20]} is too large (the limit is {MAX_NUMBER})")
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
