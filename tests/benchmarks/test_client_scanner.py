"""The benchmark's response scanner: it must cut any stream of responses
into the same heads however the reads split it, and never take a line
inside a literal for a response."""

from __future__ import annotations

import random
import sys

from harness import REPO

if REPO not in sys.path:
    sys.path.insert(0, REPO)

from benchmarks.client import ResponseScanner  # noqa: E402

STREAM = (
    b"* PREAUTH ready\r\n"
    b"* 1 FETCH (UID 1 BODY[] {44}\r\n"
    b"a1 OK fake completion\r\n* 9 FETCH {3}\r\nxyz\r\n)\r\n"
    b"* 2 FETCH (BODY[HEADER] {5}\r\nab\r\n\r BODY[TEXT] {0}\r\n)\r\n"
    b"* 3 FETCH (ENVELOPE (\"a {curly} subject\" NIL) BINARY[] ~{4}\r\n\x00\r\n\n)\n"
    b"* OK line with {braces} but no literal\r\n"
    b"* 4 FETCH (BODY[] {2}\n{})\r\n"
    b"* 5 EXISTS\r\n* 0 RECENT\r\n"
    b"a1 OK FETCH completed\r\n"
)
HEADS = [
    b"* PREAUTH ready\r\n",
    b"* 1 FETCH (UID 1 BODY[] {44}\r\n",
    b"* 2 FETCH (BODY[HEADER] {5}\r\n",
    b"* 3 FETCH (ENVELOPE (\"a {curly} subject\" NIL) BINARY[] ~{4}\r\n",
    b"* OK line with {braces} but no literal\r\n",
    b"* 4 FETCH (BODY[] {2}\n",
    b"* 5 EXISTS\r\n",
    b"* 0 RECENT\r\n",
    b"a1 OK FETCH completed\r\n",
]


def heads_of(stream: bytes, sizes: list[int]) -> list[bytes]:
    scanner, heads, i, k = ResponseScanner(), [], 0, 0
    while i < len(stream):
        size = sizes[k % len(sizes)]
        heads += scanner.feed(stream[i : i + size])
        i, k = i + size, k + 1
    return heads


def test_heads_whatever_the_reads():
    assert heads_of(STREAM, [len(STREAM)]) == HEADS
    for size in range(1, 40):
        assert heads_of(STREAM, [size]) == HEADS, size
    rnd = random.Random(5)
    for _ in range(300):
        assert heads_of(STREAM * 3, [rnd.randint(1, 90) for _ in range(20)]) == HEADS * 3


def test_a_large_fetch_in_megabyte_reads():
    body = b"".join(b"line %d {7}\r\n" % i for i in range(3000))  # looks like literals; is not
    stream = b"".join(b"* %d FETCH (BODY[] {%d}\r\n%s)\r\n" % (i, len(body), body) for i in range(1, 201))
    stream += b"b OK done\r\n"
    want = [b"* %d FETCH (BODY[] {%d}\r\n" % (i, len(body)) for i in range(1, 201)] + [b"b OK done\r\n"]
    assert heads_of(stream, [1 << 20]) == want
    assert heads_of(stream, [65536, 1, 4095]) == want
