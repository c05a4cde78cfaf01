"""A lean IMAP client over a server's stdin/stdout pipes.

It never parses responses.  It reads in large chunks and only cuts the stream
into the *heads* of responses (the text of a response line up to its first
literal or its CRLF), skipping literal bodies by their `{n}` length, so a
`tag OK` inside a message never counts as a completion.  Heads are all the
benchmark needs: tagged completions, `+` continuations, `* n EXISTS`,
`* SEARCH ...`.  Writing and reading share one poll loop, so a long pipelined
upload (APPEND) never deadlocks against the server's replies.
"""

from __future__ import annotations

import os
import re
import select
import time
from collections.abc import Callable
from dataclasses import dataclass, field

CHUNK = 1 << 20
_LITERAL = re.compile(rb"\{(\d+)\}\r?\n")  # a line ending in a literal's length


class ServerClosed(Exception):
    """The server closed its output before the expected response."""


class ServerTimeout(Exception):
    """No expected response within the time limit."""


class ResponseScanner:
    """Bytes in, response heads out; literal contents are counted and skipped."""

    def __init__(self) -> None:
        self._partial = bytearray()
        self._skip = 0
        self._line_start = True

    def feed(self, data: bytes) -> list[bytes]:
        """The heads of the responses that start in `data` (and the pieces
        before it).  The literals are found by one regex search each and the
        lines between them split in C: a FETCH 1:* of 100,000 literals must
        not take the client longer than the server, as a loop over every
        line in Python did."""
        heads: list[bytes] = []
        if self._partial:  # a line cut by the last chunk: read on from its start
            data = bytes(self._partial) + data
            self._partial.clear()
        search, find = _LITERAL.search, data.find
        skip, line_start = self._skip, self._line_start
        i, n = 0, len(data)
        if skip:
            k = min(skip, n)
            skip -= k
            i = k
        while i < n:
            m = search(data, i)
            end = m.end() if m is not None else data.rfind(b"\n", i) + 1
            if end <= i:  # no whole line left
                self._partial += data[i:]
                break
            if not line_start:  # the rest of a response after its literal
                j = find(b"\n", i, end) + 1
                line_start = True
            else:
                j = i
            if j < end:
                if find(b"\n", j, end - 1) < 0:  # one line (the usual case)
                    heads.append(data[j:end])
                else:
                    heads += [line + b"\n" for line in data[j : end - 1].split(b"\n")]
            i = end
            if m is not None:  # past the literal, or as far as this chunk goes
                i += int(m.group(1))
                line_start = False
                if i > n:
                    skip = i - n
        self._skip, self._line_start = skip, line_start
        return heads


@dataclass
class Reply:
    """The outcome of one command: its completion line and what it cost."""

    tag: bytes
    status: str
    line: bytes
    seconds: float
    received: int
    heads: list[bytes] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "OK"


class StdioClient:
    def __init__(self, to_server: int, from_server: int, default_timeout: float = 3600.0) -> None:
        self.wfd = to_server
        self.rfd = from_server
        os.set_blocking(self.wfd, False)
        os.set_blocking(self.rfd, False)
        self.scanner = ResponseScanner()
        self.received = 0
        self.timeout = default_timeout
        self._tagn = 0
        self._pending: list[bytes] = []   # heads read but not yet consumed

    def next_tag(self) -> bytes:
        self._tagn += 1
        return b"a%d" % self._tagn

    def exchange(self, data: bytes, done: Callable[[bytes], bool] | None,
                 timeout: float | None = None) -> int:
        """Write `data` while reading; stop once all is written and `done(head)` said True
        (or at once after writing when `done` is None).  Returns bytes received."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        out = memoryview(data)
        received = 0
        finished = done is None
        # heads left over from an earlier read come first
        while self._pending and not finished:
            finished = done(self._pending.pop(0))  # type: ignore[misc]
        poller = select.poll()
        poller.register(self.rfd, select.POLLIN)
        writing = False
        while True:
            if out and not writing:
                poller.register(self.wfd, select.POLLOUT)
                writing = True
            elif not out and writing:
                poller.unregister(self.wfd)
                writing = False
            if not out and finished:
                return received
            left = deadline - time.monotonic()
            if left <= 0:
                raise ServerTimeout(f"no response within {timeout or self.timeout:.0f} s")
            for fd, ev in poller.poll(min(left, 60.0) * 1000):
                if fd == self.wfd:
                    if ev & (select.POLLERR | select.POLLHUP):
                        raise ServerClosed("server closed its input")
                    try:
                        k = os.write(self.wfd, out[:CHUNK])
                    except BlockingIOError:
                        continue
                    except BrokenPipeError:
                        raise ServerClosed("server closed its input") from None
                    out = out[k:]
                    continue
                try:
                    chunk = os.read(self.rfd, CHUNK)
                except BlockingIOError:
                    continue
                if not chunk:
                    raise ServerClosed("server closed its output")
                received += len(chunk)
                self.received += len(chunk)
                heads = self.scanner.feed(chunk)
                if finished or not heads:
                    self._pending.extend(heads)
                    continue
                for k, head in enumerate(heads):
                    if done(head):  # type: ignore[misc]
                        finished = True
                        self._pending.extend(heads[k + 1:])
                        break

    def greeting(self, timeout: float = 60.0) -> bytes:
        got: list[bytes] = []

        def done(head: bytes) -> bool:
            if head.startswith(b"* "):
                got.append(head)
                return True
            return False

        self.exchange(b"", done, timeout)
        return got[0]

    def pipeline(self, commands: list[bytes], keep: bytes | None = None,
                 timeout: float | None = None) -> list[Reply]:
        """Send commands (without tag and final CRLF) back to back; wait for every completion.
        Heads starting with `keep` are kept on the reply of the command running then."""
        tags = [self.next_tag() for _ in commands]
        data = b"".join(t + b" " + c + b"\r\n" for t, c in zip(tags, commands))
        index = {t: k for k, t in enumerate(tags)}
        lines: list[list[bytes]] = [[] for _ in tags]
        results: dict[int, tuple[bytes, float]] = {}
        current = [0]
        started = time.perf_counter()

        def done(head: bytes) -> bool:
            tag, _, rest = head.partition(b" ")
            k = index.get(tag)
            if k is not None and rest[:2] in (b"OK", b"NO", b"BA"):
                results[k] = (head, time.perf_counter())
                current[0] = len(results)
                return len(results) == len(tags)
            if keep is not None and head.startswith(keep):
                lines[min(current[0], len(tags) - 1)].append(head)
            return False

        received = self.exchange(data, done, timeout)
        replies = []
        for k, tag in enumerate(tags):
            line, t_end = results[k]
            status = line.split(b" ", 2)[1].decode("ascii", "replace")
            replies.append(Reply(tag, status, line.rstrip(b"\r\n"), t_end - started,
                                 received if len(tags) == 1 else 0, lines[k]))
        return replies

    def command(self, text: bytes, keep: bytes | None = None, timeout: float | None = None) -> Reply:
        return self.pipeline([text], keep, timeout)[0]

    def send(self, data: bytes) -> None:
        self.exchange(data, None)

    def wait_head(self, match: Callable[[bytes], bool], timeout: float) -> bytes:
        got: list[bytes] = []

        def done(head: bytes) -> bool:
            if match(head):
                got.append(head)
                return True
            return False

        self.exchange(b"", done, timeout)
        return got[0]
