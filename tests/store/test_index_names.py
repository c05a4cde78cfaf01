"""The index's names segment read a megabyte at a time (index.read_names)
gives exactly what splitting it whole gives, wherever the chunks end."""

from __future__ import annotations

import os
import random

import pytest

from imapd.store.maildir import index


@pytest.mark.parametrize("chunk", [1, 3, 16, 100, 1 << 20])
def test_chunked_read_equals_whole_split(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(index, "NAMES_CHUNK", chunk)
    rnd = random.Random(chunk)
    path = tmp_path / "segment"
    for _ in range(40):
        names = ["%d.M%dP%d.h\u00e9st,S=%d" % (rnd.randrange(10**10), rnd.randrange(10**6), k, rnd.randrange(10**6))
                 for k in range(rnd.randrange(0, 50))]
        blob = "".join(n + "\n" for n in names).encode("utf-8", "surrogateescape")
        if blob and rnd.random() < 0.25:
            blob = blob[: -rnd.randrange(1, 5)]  # torn: the last piece is no name
        pad = b"x" * rnd.randrange(0, 9)
        path.write_bytes(pad + blob + b"more segments")
        fd = os.open(path, os.O_RDONLY)
        try:
            assert index.read_names(fd, len(pad), len(blob)) == index.split_names(blob)
        finally:
            os.close(fd)


def test_a_segment_cut_short_reads_as_nothing(tmp_path):
    path = tmp_path / "segment"
    path.write_bytes(b"a\nb\n")
    fd = os.open(path, os.O_RDONLY)
    try:
        assert index.read_names(fd, 0, 100) == []
    finally:
        os.close(fd)
