"""Header blocks and MIME value syntax."""

from __future__ import annotations

import pytest

from imapd.mime.headers import (
    _strip_comments,
    find_header_end,
    header_end,
    merge_rfc2231,
    parse_content_type,
    parse_params,
    parse_token,
    scan_header,
    split_fields,
)

HDR = b"Subject: hi\r\nX-Fold: a\r\n\tb\r\nno colon here\r\nSubject : second\r\n\r\nbody"
# field lengths 13 + 15 + 15 + 18 = 61, then the blank line: body at 63


def test_find_header_end() -> None:
    assert find_header_end(HDR, 0, len(HDR)) == (61, 63)
    assert find_header_end(b"\r\nbody", 0, 6) == (0, 2)
    assert find_header_end(b"A: b\r\n", 0, 6) == (6, 6)  # no blank line
    assert find_header_end(b"A: b\n\nbody", 0, 10, lf_form=True) == (5, 6)
    assert find_header_end(b"\nbody", 0, 5, lf_form=True) == (0, 1)
    # the blank line is only looked for before the limit
    assert find_header_end(HDR, 0, 40) == (40, 40)


def test_header_end_from_offsets() -> None:
    assert header_end(HDR, 0, 63) == 61
    assert header_end(b"A: b\r\n", 0, 6) == 6
    assert header_end(b"\r\nx", 0, 2) == 0
    assert header_end(b"A: b\n\nx", 0, 6) == 5


def test_split_fields_offsets_tile_the_header() -> None:
    fields = split_fields(HDR, 0, 61)
    assert [f[0] for f in fields] == [b"subject", b"x-fold", b"no colon here", b"subject"]
    assert b"".join(HDR[s:e] for _, s, _, e in fields) == HDR[:61]
    name, s, vs, e = fields[1]
    assert HDR[s:e] == b"X-Fold: a\r\n\tb\r\n" and HDR[vs:e] == b" a\r\n\tb\r\n"
    assert fields[2][2] == fields[2][3]  # no colon: no value


def test_scan_header_first_occurrence_clean_values() -> None:
    d = b"Subject: first\r\nTo: a@b,\r\n c@d\r\nsubject: again\r\nX-Other: x\r\n"
    assert scan_header(d, 0, len(d)) == {b"subject": b"first", b"to": b"a@b, c@d"}
    # obsolete "Name : value" syntax, and a header not at offset 0
    d2 = b"junk\r\nSUBJECT  : spaced \r\n"
    assert scan_header(d2, 6, len(d2)) == {b"subject": b"spaced"}
    assert scan_header(b"Subject: a\x00b\r\n", 0, 14) == {b"subject": b"a\xef\xbf\xbdb"}


@pytest.mark.parametrize("value, want", [
    (b"text/plain", (b"text", b"plain", ())),
    (b"TEXT/HTML; CHARSET=UTF-8", (b"TEXT", b"HTML", ((b"CHARSET", b"UTF-8"),))),
    (b' text / plain ; charset = "utf-8" ; format=flowed',
     (b"text", b"plain", ((b"charset", b"utf-8"), (b"format", b"flowed")))),
    (b'multipart/mixed; boundary="a\\"b"', (b"multipart", b"mixed", ((b"boundary", b'a"b'),))),
    (b"text/plain (a comment); charset=us-ascii (another)",
     (b"text", b"plain", ((b"charset", b"us-ascii"),))),
    (b"text/plain; junk; charset=x; =y; z=", (b"text", b"plain", ((b"charset", b"x"), (b"z", b"")))),
    (b'text/plain; name="unterminated', (b"text", b"plain", ((b"name", b"unterminated"),))),
    (b"text", None),
    (b"/plain", None),
    (b"", None),
])
def test_parse_content_type(value: bytes, want: tuple | None) -> None:
    assert parse_content_type(value) == want


def test_rfc2231_merge() -> None:
    assert merge_rfc2231([(b"a*1", b"B"), (b"x", b"1"), (b"a*0", b"A")]) == [
        (b"x", b"1"), (b"a", b"AB")]
    # an encoded piece makes the whole value encoded, plain pieces %-escaped
    assert merge_rfc2231([(b"f*0", b"50%"), (b"f*1*", b"%41")]) == [(b"f*", b"''50%25%41")]
    # a gap in the numbering: kept as they are
    assert merge_rfc2231([(b"f*0", b"a"), (b"f*2", b"c")]) == [(b"f*0", b"a"), (b"f*2", b"c")]
    assert merge_rfc2231([(b"t*", b"utf-8''x")]) == [(b"t*", b"utf-8''x")]
    assert merge_rfc2231([(b"odd*x", b"v")]) == [(b"odd*x", b"v")]
    assert parse_params(b"; F*0*=utf-8''a; f*1=b") == [(b"F*", b"utf-8''ab")]


def test_comments() -> None:
    assert _strip_comments(b'a (b (c) d) e "q(x)" (f') == b'a   e "q(x)"  '
    assert _strip_comments(b"a\\(b(c)") == b"a\\(b "
    assert _strip_comments(b'(a"b) c"d') == b'  c"d'


def test_parse_token() -> None:
    assert parse_token(b"base64") == b"base64"
    assert parse_token(b"Quoted-Printable") == b"Quoted-Printable"
    assert parse_token(b"7bit (comment)") == b"7bit"
    assert parse_token(b"") is None
    assert parse_token(b";") is None
