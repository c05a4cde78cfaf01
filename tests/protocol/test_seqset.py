"""Sequence sets: parsing, resolving `*`, message numbers, UIDs, formatting."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imapd.protocol.seqset import MAX_NUMBER, STAR, SeqSet, compress_numbers, format_seqset


def s(text: str) -> SeqSet:
    return SeqSet.parse(text)


# ------------------------------------------------------------------- parse


@pytest.mark.parametrize(
    "text, ranges",
    [
        ("1", ((1, 1),)),
        ("*", ((STAR, STAR),)),
        ("1:*", ((1, STAR),)),
        ("*:1", ((STAR, 1),)),
        ("5:3", ((5, 3),)),
        ("2,4:7,9,12:*", ((2, 2), (4, 7), (9, 9), (12, STAR))),
        ("4294967295", ((MAX_NUMBER, MAX_NUMBER),)),
    ],
)
def test_parse(text, ranges):
    parsed = s(text)
    assert parsed.ranges == ranges and not parsed.saved
    assert format_seqset(parsed) == text
    assert list(parsed) == list(ranges)


def test_parse_saved():
    saved = s("$")
    assert saved.saved and saved.ranges == () and format_seqset(saved) == "$"
    assert saved == SeqSet(saved=True) and saved != SeqSet()


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty number"),
        ("1,", "empty number"),
        (",1", "empty number"),
        ("1:", "empty number"),
        ("0", "0 is not a valid message number"),
        ("00", "0 is not a valid message number"),
        ("3:0", "0 is not a valid message number"),
        ("01", "leading zero"),
        ("4294967296", "too large"),
        ("1" * 30, "too large"),
        ("a", "bad number 'a'"),
        ("1:2:3", "bad number '2:3'"),
        ("$:1", "bad number '$'"),
        ("1,$", "bad number '$'"),
        ("-1", "bad number '-1'"),
        ("١", "bad number"),  # a non-ASCII digit
        ("²", "bad number"),
    ],
)
def test_parse_errors(text, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        s(text)


def test_parse_error_messages_stay_short():
    with pytest.raises(ValueError) as e:
        s("9" * 100000)
    assert len(str(e.value)) < 100
    with pytest.raises(ValueError) as e:
        s("x" * 100000)
    assert len(str(e.value)) < 100


def test_uses_star_and_resolved():
    assert s("1:*").uses_star() and s("*").uses_star() and not s("1:5,7").uses_star()
    assert s("1:*,*:3,5:2,7").resolved(10) == [(1, 10), (3, 10), (2, 5), (7, 7)]


def test_repr_and_equality():
    assert repr(s("1:*,3")) == "SeqSet('1:*,3')"
    assert s("1:2") == SeqSet([(1, 2)])
    assert s("1:2") != s("2:1")
    assert s("1") != (1, 1)


# --------------------------------------------------------- message numbers


@pytest.mark.parametrize(
    "text, count, numbers",
    [
        ("1", 5, [1]),
        ("*", 5, [5]),
        ("1:*", 5, [1, 2, 3, 4, 5]),
        ("*:3", 5, [3, 4, 5]),
        ("4:2", 5, [2, 3, 4]),
        ("5,1,3", 5, [1, 3, 5]),
        ("1:3,2:4,4", 5, [1, 2, 3, 4]),
        ("2,2,2", 5, [2]),
        ("3:*,1", 3, [1, 3]),
        ("1:2,4:5", 5, [1, 2, 4, 5]),
        ("1:2,3:4", 5, [1, 2, 3, 4]),
    ],
)
def test_message_numbers(text, count, numbers):
    assert s(text).message_numbers(count) == numbers


def test_message_numbers_out_of_range():
    with pytest.raises(ValueError, match="message number 6 out of range"):
        s("6").message_numbers(5)
    with pytest.raises(ValueError, match="out of range"):
        s("1,3:7").message_numbers(5)
    with pytest.raises(ValueError, match="out of range"):
        s("*:9").message_numbers(5)


def test_message_numbers_in_an_empty_mailbox():
    with pytest.raises(ValueError, match="no messages"):
        s("1:*").message_numbers(0)


def test_message_numbers_many_overlapping_ranges_is_fast():
    big = SeqSet([(1, STAR)] * 5000)
    t = time.perf_counter()
    assert big.message_numbers(100000) == list(range(1, 100001))
    assert time.perf_counter() - t < 1.0


# -------------------------------------------------------------------- UIDs


UIDS = [3, 5, 9, 10, 11, 40]


@pytest.mark.parametrize(
    "text, picked",
    [
        ("1:*", UIDS),
        ("*", [40]),
        ("9", [9]),
        ("4", []),  # not in use: ignored
        ("4:10", [5, 9, 10]),
        ("10:4", [5, 9, 10]),
        ("41:*", [40]),  # N:* with N > the largest UID still names the largest (RFC 9051 6.4.9)
        ("1000:*", [40]),
        ("*:1000", [40]),
        ("11:39", [11]),
        ("12:39", []),
        ("40,3,3:5", [3, 5, 40]),
        ("1:10,5:20", [3, 5, 9, 10, 11]),
        ("4294967295", []),
    ],
)
def test_select_uids(text, picked):
    assert s(text).select_uids(UIDS) == picked


def test_select_uids_empty_mailbox():
    assert s("1:*").select_uids([]) == []
    assert s("*").select_uids([]) == []


def test_select_uids_many_overlapping_ranges_is_fast():
    uids = list(range(1, 200001, 2))
    big = SeqSet([(1, STAR)] * 5000)
    t = time.perf_counter()
    assert big.select_uids(uids) == uids
    assert time.perf_counter() - t < 1.0


numbers = st.integers(1, 60)
ranges = st.lists(st.tuples(numbers | st.just(STAR), numbers | st.just(STAR)), min_size=1, max_size=6)


@settings(max_examples=100, deadline=None, database=None)
@given(ranges, st.lists(st.integers(1, 50), unique=True, max_size=30))
def test_select_uids_matches_a_simple_model(rs, uids):
    uids.sort()
    got = SeqSet(rs).select_uids(uids)
    if not uids:
        assert got == []
        return
    want = []
    for u in uids:
        for a, b in rs:
            a = uids[-1] if a == STAR else a
            b = uids[-1] if b == STAR else b
            if min(a, b) <= u <= max(a, b):
                want.append(u)
                break
    assert got == want


@settings(max_examples=100, deadline=None, database=None)
@given(ranges, st.integers(1, 60))
def test_message_numbers_matches_a_simple_model(rs, count):
    seqset = SeqSet(rs)
    resolved = [(count if a == STAR else a, count if b == STAR else b) for a, b in rs]
    if any(max(a, b) > count for a, b in resolved):
        with pytest.raises(ValueError):
            seqset.message_numbers(count)
        return
    want = sorted({n for a, b in resolved for n in range(min(a, b), max(a, b) + 1)})
    assert seqset.message_numbers(count) == want


@settings(max_examples=100, deadline=None, database=None)
@given(ranges)
def test_format_parse_round_trip(rs):
    seqset = SeqSet(rs)
    assert SeqSet.parse(format_seqset(seqset)).resolved(99) == seqset.resolved(99)


# --------------------------------------------------------------- formatting


@pytest.mark.parametrize(
    "numbers, text",
    [
        ([], ""),
        ([7], "7"),
        ([1, 2, 3], "1:3"),
        ([1, 2, 3, 5], "1:3,5"),
        ([1, 3, 5], "1,3,5"),
        ([1, 2, 4, 5, 6, 9], "1:2,4:6,9"),
        ([5, 4, 3], "5,4,3"),  # order is kept: COPYUID pairs source and destination by position
        ([10, 11, 1, 2], "10:11,1:2"),
        ([4294967294, 4294967295], "4294967294:4294967295"),
    ],
)
def test_compress_numbers(numbers, text):
    assert compress_numbers(numbers) == text


@settings(max_examples=100, deadline=None, database=None)
@given(st.lists(st.integers(1, 100), unique=True).map(sorted))
def test_compress_numbers_round_trip(nums):
    if nums:
        assert SeqSet.parse(compress_numbers(nums)).message_numbers(100) == nums


def test_format_seqset():
    assert format_seqset(SeqSet([(1, STAR), (3, 3), (STAR, STAR), (9, 2)])) == "1:*,3,*,9:2"
    assert format_seqset(SeqSet(saved=True)) == "$"
