"""`header_part`: the top-level header as a Part without the MIME parse, for
HEADER, HEADER.FIELDS(.NOT) and header SEARCH of a header read alone.  It
must agree with the root `parse_message` gives, on any input."""

from __future__ import annotations

import random

import pytest

from imapd.mime.searchtext import all_headers_text, header_text
from imapd.mime.sections import section_bytes
from imapd.mime.structure import header_part, parse_message

SPECS = [
    ("HEADER", None),
    ("HEADER.FIELDS", ["FROM", "to", "Cc", "SUBJECT", "date"]),
    ("HEADER.FIELDS", ["Message-ID", "References", "content-type"]),
    ("HEADER.FIELDS.NOT", ["Received", "DKIM-Signature"]),
    ("header.fields", ["nonexistent"]),
]
ODD = [
    b"",
    b"\r\n",
    b"\r\n\r\nbody",
    b"Subject: x",
    b"Subject: x\r\n",
    b"Subject: x\n\nbody in bare LF form",
    b"\nSubject: starts with a bare LF\n\n",
    b"Subject: a\nTo: b\r\n\r\n",
    b"--boundary\r\nSubject: y\r\n\r\n",
    b"From: a\r\n--x\r\nTo: b\r\n\r\n",
    b" folded: at the start\r\nSubject: s\r\n\r\n",
    b"no colon at all\r\nSubject: s\r\n\r\n",
    b"Subject : space before the colon\r\nFROM:no space\r\n\r\n",
    b"Subject: folded\r\n over\r\n\ttwo lines\r\nTo: b\r\n\r\nbody\r\n",
    b"Content-Type: multipart/mixed; boundary=x\r\nSubject: outer\r\n\r\n--x\r\nSubject: inner\r\n\r\nhi\r\n--x--\r\n",
    b"Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nbody\r\n",
]


def agree(data: bytes) -> None:
    full, light = parse_message(data), header_part(data)
    assert (light.start, light.body_start) == (full.start, full.body_start)
    for spec, fields in SPECS:
        assert section_bytes(data, light, (), spec, fields) == section_bytes(data, full, (), spec, fields), spec
    for name in ("From", "Subject", "To", "X-Absent"):
        assert header_text(data, light, name) == header_text(data, full, name)
    assert all_headers_text(data, light) == all_headers_text(data, full)


@pytest.mark.parametrize("data", ODD)
def test_agrees_with_parse_message_on_odd_headers(data):
    agree(data)


def test_agrees_with_parse_message_on_generated_headers():
    pieces = [b"Subject: ", b"From: ", b"To:", b"Cc :", b"\r\n", b"\n", b" ", b"\t", b"x", b":", b"--", b"\r",
              b"Content-Type: multipart/mixed; boundary=q", b"--q", b"\r\n\r\n", b"=?utf-8?q?x?="]
    rnd = random.Random(11)
    for _ in range(5000):
        agree(b"".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 16))))
