"""ENVELOPE, BODYSTRUCTURE and part offsets for the hand-written corpus.

Expected values were worked out by hand from RFC 3501 §7.4.2 / RFC 2045-2046
(sizes in wire form, line counts = LFs in the body, the CRLF before a
boundary belonging to the boundary); comments show the arithmetic where it
is not obvious.
"""

from __future__ import annotations

from typing import Any

import pytest
from mime_helpers import corpus_names, kids, load, msg

from imapd.mime import body_structure, envelope, parse_message

US_ASCII = ["charset", "us-ascii"]
NIL4: list[Any] = [None, None, None, None]


def bs(name: str, extended: bool = True, **kw: bool) -> list[Any]:
    d = load(name)
    return body_structure(d, parse_message(d), extended, **kw)


def env(name: str) -> list[Any]:
    d = load(name)
    return envelope(d, parse_message(d))


# ------------------------------------------------------------------- simple
def test_simple_rfc3501_example() -> None:
    d = load("simple")
    root = parse_message(d)
    # header: 44+48+28+36+50+19+44 field bytes + 2 for the blank line
    assert (root.start, root.body_start, root.end) == (0, 271, 326)
    assert root.children is None and root.message is None
    assert (root.maintype, root.subtype) == ("text", "plain")
    assert root.params == {"charset": "US-ASCII"}
    assert envelope(d, root) == [
        b"Mon, 7 Feb 1994 21:52:25 -0800 (PST)",
        b"afternoon meeting",
        [[b"Fred Foobar", None, b"foobar", b"Blurdybloop.example"]],
        [[b"Fred Foobar", None, b"foobar", b"Blurdybloop.example"]],
        [[b"Fred Foobar", None, b"foobar", b"Blurdybloop.example"]],
        [[None, None, b"mooch", b"owatagu.siam.edu.example"]],
        None, None, None,
        b"<B27397-0100000@Blurdybloop.example>",
    ]
    # type, subtype and parameters as written (Dovecot keeps the case);
    # body "Hello Joe, ... tomorrow?\r\n" is 53 + 2 octets, one line
    assert body_structure(d, root, False) == [
        b"TEXT", b"PLAIN", [b"CHARSET", b"US-ASCII"], None, None, "7bit", 55, 1,
    ]
    assert body_structure(d, root, True) == [
        b"TEXT", b"PLAIN", [b"CHARSET", b"US-ASCII"], None, None, "7bit", 55, 1,
        None, None, None, None,
    ]


def test_alternative() -> None:
    assert bs("alternative") == [
        # "Hello Bob,\r\nplain text.\r\n" -- the empty line's CRLF is the boundary's
        [b"text", b"plain", [b"charset", b"utf-8"], None, None, b"7bit", 25, 2] + NIL4,
        # "<p>Hello Bob,</p>" without its CRLF: 17 octets, no complete line
        [b"text", b"html", [b"charset", b"utf-8"], None, None, "7bit", 17, 0] + NIL4,
        b"alternative",
        [b"boundary", b"=_alt_42"], None, None, None,
    ]
    assert bs("alternative", extended=False) == [
        [b"text", b"plain", [b"charset", b"utf-8"], None, None, b"7bit", 25, 2],
        [b"text", b"html", [b"charset", b"utf-8"], None, None, "7bit", 17, 0],
        b"alternative",
    ]


def test_mixed_with_attachment_all_extension_fields() -> None:
    assert bs("mixed-attachment") == [
        [b"text", b"plain", [b"charset", b"UTF-8", b"format", b"flowed"], None, None,
         b"7bit", 15, 1] + NIL4,
        [b"application", b"pdf", [b"name", b"report.pdf"], b"<part2@example.org>",
         b"The report", b"base64", 30,  # 20 + CRLF + 8
         b"Q2hlY2sgSW50ZWdyaXR5IQ==",
         [b"attachment", [b"filename", b"report.pdf", b"size", b"12"]],
         [b"en", b"de"],
         b"http://example.org/report.pdf"],
        b"mixed",
        [b"boundary", b"------------mix0123456789"], None, None, None,
    ]
    # an address without a display name
    assert env("mixed-attachment")[2] == [[None, None, b"alice", b"example.org"]]


def test_nested_message_with_own_multipart() -> None:
    d = load("nested-rfc822")
    root = parse_message(d)
    inner = msg(kids(root)[1])
    assert inner.children is not None
    # encapsulated header: 29+23+16+38+33+19+55 + 2 = 215 octets
    assert inner.body_start - inner.start == 215
    inner_env = [
        b"Wed, 1 Mar 2023 12:00:00 +0000", b"lunch",
        [[b"Eve", None, b"eve", b"example.com"]],
        [[b"Eve", None, b"eve", b"example.com"]],
        [[b"Eve", None, b"eve", b"example.com"]],
        [[None, None, b"carol", b"example.net"]],
        None, None, None, b"<inner@example.com>",
    ]
    assert body_structure(d, root, True) == [
        [b"text", b"plain", US_ASCII, None, None, "7bit", 10, 0] + NIL4,
        [b"message", b"rfc822", None, None, None, "7bit",
         374,  # 215 header + 159 body (9+44+2+16+9+43+2+23+11)
         inner_env,
         [[b"text", b"plain", [b"charset", b"us-ascii"], None, None, "7bit", 14, 0] + NIL4,
          [b"text", b"html", [b"charset", b"us-ascii"], None, None, "7bit", 21, 0] + NIL4,
          b"alternative", [b"boundary", b"inner"], None, None, None],
         17,  # 8 header lines + 9 body lines
         None, [b"inline", None], None, None],
        b"mixed", [b"boundary", b"outer"], None, None, None,
    ]
    assert envelope(d, inner) == inner_env


def test_digest_defaults_to_message_rfc822() -> None:
    d = load("digest")
    root = parse_message(d)
    parts = kids(root)
    assert [(k.maintype, k.subtype) for k in parts] == [
        ("message", "rfc822"), ("message", "rfc822"), ("text", "plain")]
    assert parts[0].type_raw is None  # defaulted, not written
    first = body_structure(d, parts[0], False)
    # defaulted type is written in lower case; no parameters: NIL
    assert first[:7] == ["message", "rfc822", None, None, None, "7bit", 49]
    assert first[7][1] == b"first"
    assert first[8] == ["text", "plain", US_ASCII, None, None, "7bit", 8, 0]
    assert first[9] == 3
    assert body_structure(d, parts[2], False) == [
        b"text", b"plain", US_ASCII, None, None, "7bit", 13, 0]


# -------------------------------------------------------------- broken mail
def test_missing_final_boundary_part_runs_to_end() -> None:
    d = load("missing-final-boundary")
    root = parse_message(d)
    assert len(kids(root)) == 2
    last = kids(root)[1]
    assert last.end == len(d)
    assert d[last.body_start:last.end] == b"part two, and then the message just ends\r\n"
    assert bs("missing-final-boundary", extended=False)[1] == [
        b"text", b"plain", US_ASCII, None, None, "7bit", 42, 1]


def test_wrong_boundary_gives_one_empty_part() -> None:
    d = load("wrong-boundary")
    root = parse_message(d)
    assert root.children == []
    assert body_structure(d, root, True) == [
        ["text", "plain", US_ASCII, None, None, "7bit", 0, 0] + NIL4,
        b"mixed", [b"boundary", b"right"], None, None, None,
    ]


def test_multipart_without_boundary_param() -> None:
    d = load("no-boundary-param")
    root = parse_message(d)
    assert root.children == []
    assert body_structure(d, root, False) == [
        ["text", "plain", US_ASCII, None, None, "7bit", 0, 0], b"mixed"]


def test_header_only_message() -> None:
    d = load("header-only")
    root = parse_message(d)
    assert root.body_start == root.end == len(d)
    assert body_structure(d, root, False) == ["text", "plain", US_ASCII, None, None, "7bit", 0, 0]
    assert env("header-only")[1] == b"nothing here"


def test_no_blank_line_is_all_header() -> None:
    d = load("no-blank-line")
    root = parse_message(d)
    assert root.body_start == root.end == len(d) == 64
    assert env("no-blank-line")[1] == b"no blank line"
    assert body_structure(d, root, False)[6:] == [0, 0]


def test_boundary_cuts_a_part_header() -> None:
    d = load("boundary-in-header")
    root = parse_message(d)
    first, second = kids(root)
    # the header stops before the CRLF that belongs to the delimiter line
    assert d[first.start:first.body_start] == b"Content-Type: text/plain"
    assert first.body_start == first.end
    assert d[second.body_start:second.end] == b"second"


def test_longest_boundary_prefix_wins() -> None:
    d = load("same-prefix-boundaries")
    root = parse_message(d)
    alt, outer2 = kids(root)
    assert alt.subtype == "alternative"
    # "--abcdef" lines belong to the inner multipart even though "--abc"
    # is a prefix of them; "--abc" ends the inner one (no close delimiter)
    assert [d[c.body_start:c.end] for c in kids(alt)] == [b"inner one", b"inner two"]
    assert d[outer2.body_start:outer2.end] == b"outer two"


def test_not_mime_ignores_content_fields() -> None:
    # no MIME-Version and no Content-Type: Content-* fields do not apply
    assert bs("not-mime") == ["text", "plain", US_ASCII, None, None, "7bit", 10, 1] + NIL4


def test_eight_bit_and_nul() -> None:
    d = load("eightbit-nul")
    root = parse_message(d)
    e = envelope(d, root)
    assert e[1] == b"Gr\xfc\xdfe \xef\xbf\xbd raw"  # NUL -> U+FFFD, 8-bit kept raw
    assert e[2] == [[b"J\xc3\xb6rg", None, b"joerg", b"example.de"]]
    # "Gr\xfc\xdfe aus K\xf6ln\r\n" 16 + "NUL:\0:end\r\n" 11
    assert body_structure(d, root, False) == [
        b"text", b"plain", [b"charset", b"iso-8859-1"], None, None, b"8bit", 27, 2]


def test_long_folded_headers() -> None:
    e = env("long-folded")
    assert e[1] == b"a subject that is folded over two lines\tand a third with a tab"
    assert len(e[5]) == 200
    assert e[5][199] == [b"User Number 199", None, b"user199", b"example.com"]
    # Content-Type folded before its parameter
    assert bs("long-folded", extended=False) == [
        b"text", b"plain", [b"charset", b"us-ascii"], None, None, "7bit", 6, 1]


def test_addresses() -> None:
    e = env("addresses")
    assert e[2] == [[b'Doe, John "JD"', None, b"john.doe", b"example.com"]]
    # a comment after a bare address names it (the last comment wins)
    assert e[3] == [[b"The Sender", None, b"sender", b"example.com"]]
    # an empty group
    assert e[4] == [[None, None, b"undisclosed-recipients", None], NIL4]
    assert e[5] == [
        [None, None, b"Team", None],
        [None, None, b"ann", b"example.com"],
        [b"Bob B.", None, b"bob", b"example.com"],
        NIL4,
        [None, b"@relay1.example,@relay2.example", b"carl", b"example.com"],
    ]
    # a non-group address never gets a NIL host (that would mean "group")
    assert e[6] == [
        [None, None, b"root", b"MISSING_DOMAIN"],
        [b"Just A Name", None, b"MISSING_MAILBOX", b"MISSING_DOMAIN"],
        [None, None, b"quoted", b"example.com"],
        [None, None, b"someone", b"[192.0.2.1]"],
    ]
    assert e[7] == [
        [b"Mary Smith", None, b"mary", b"x.test"],
        [None, None, b"jdoe", b"example.org"],
        [b"John Q. Public", b"@a.test", b"jqp", b"b.test"],
    ]
    assert e[8] == b"<parent@example.com>"
    assert e[9] is None
    assert e[0] is None


def test_encoded_words_stay_encoded_in_envelope() -> None:
    e = env("encoded-words")
    assert e[1].startswith(b"=?utf-8?q?caf=C3?= =?utf-8?q?=A9?= and")
    assert e[2] == [[b"=?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?=", None, b"keld", b"example.dk"]]
    assert e[5] == [[b"=?utf-8?B?SsO2cmc=?=", None, b"joerg", b"example.de"]]


def test_rfc2231_parameters_like_dovecot() -> None:
    d = load("rfc2231")
    root = parse_message(d)
    got = body_structure(d, root, True)
    # continuations merged; an encoded value keeps its encoding under "name*"
    assert got[0][2] == [b"name", b"verylong.txt"]
    assert got[0][8] == [b"attachment", [b"filename*", b"UTF-8''%E2%82%AC%20rates.txt"]]
    assert got[1][2] == [b"charset", b"utf-8",
                         b"title*", b"us-ascii'en-us'This%20is%20%2A%2A%2Afun%2A%2A%2A"]
    # the decoded view for programs
    att = kids(root)[0]
    assert att.params == {"name": "verylong.txt"}
    from imapd.mime.headers import decode_params

    assert decode_params(att.disposition_params) == {"filename": "\u20ac rates.txt"}
    assert kids(root)[1].params["title"] == "This is ***fun***"


def test_message_global() -> None:
    d = load("message-global")
    root = parse_message(d)
    part = kids(root)[0]
    assert part.message is not None  # sections can go inside
    # IMAP4rev1 knows only MESSAGE/RFC822 as encapsulating: a basic part
    assert body_structure(d, root, False)[0] == [
        b"message", b"global", None, None, None, "7bit", 70]
    rev2 = body_structure(d, root, False, imap4rev2=True)[0]
    assert rev2[:7] == [b"message", b"global", None, None, None, "7bit", 70]
    assert rev2[7][1] == b"\xc3\xa9t\xc3\xa9"
    assert rev2[7][2] == [[b"=?utf-8?q?x?=", None, b"\xc3\xa9l\xc3\xa8ve",
                           b"\xc3\xa9cole.example"]]
    assert rev2[8] == ["text", "plain", US_ASCII, None, None, "7bit", 6, 0]
    assert rev2[9] == 3


def test_transfer_encodings_in_bodystructure() -> None:
    got = bs("base64-qp", extended=False)
    assert [p[5] for p in got[:4]] == [b"quoted-printable", b"base64", b"BASE64", b"x-uuencode"]


def test_bare_lf_message_is_tolerated() -> None:
    d = load("bare-lf", crlf=False)
    root = parse_message(d)
    assert len(kids(root)) == 1
    part = kids(root)[0]
    assert d[part.body_start:part.end] == b"line one\nline two"
    assert body_structure(d, root, False)[0] == [
        b"text", b"plain", US_ASCII, None, None, "7bit", 17, 1]


# ------------------------------------------------------------ whole corpus
@pytest.mark.parametrize("name", corpus_names())
@pytest.mark.parametrize("crlf", [True, False])
def test_offsets_are_consistent(name: str, crlf: bool) -> None:
    d = load(name, crlf)
    root = parse_message(d)
    assert (root.start, root.end) == (0, len(d))
    for p in root.walk():
        assert p.start <= p.body_start <= p.end <= len(d)
        assert p.body_lines(d) == d.count(b"\n", p.body_start, p.end)
        prev = p.body_start
        for c in p.children or ():
            assert prev <= c.start and c.end <= p.end
            prev = c.end
        if p.message is not None:
            assert (p.message.start, p.message.end) == (p.body_start, p.end)
    assert len(envelope(d, root)) == 10
    assert body_structure(d, root, True)


def test_corpus_is_big_enough() -> None:
    assert len(corpus_names()) >= 15
