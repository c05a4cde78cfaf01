"""imapd.memory: memory that bulk reads freed goes back to the system."""

from __future__ import annotations

import os

import pytest

from imapd import memory


def _rss_kb() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_trim_returns_the_holes_that_dropped_messages_leave():
    memory.trim()
    if memory._trim is False:
        pytest.skip("this C library has no malloc_trim")  # (glibc has; musl has not)
    # messages of 64 KB (heap-allocated, under the mmap threshold), every
    # tenth kept: the heap is left full of free holes, as after a bulk FETCH
    msgs = [os.urandom(64 << 10) for _ in range(1500)]
    kept = msgs[::10]
    del msgs
    before = _rss_kb()
    memory.trim()
    after = _rss_kb()
    assert before - after > 40_000, (before, after)
    assert all(len(m) == 64 << 10 for m in kept)
