"""`body_contains` answers exactly ``needle in body_text(...).casefold()``.

Every test compares against that reference; the hand-made cases aim at the
places where searching bytes instead of folded text could go wrong (folds
like "ß" -> "ss", charsets whose bytes are not ASCII-clear, transfer
encodings, nesting), and a Hypothesis test throws random trees of them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mime_helpers import corpus_names, load

from imapd.mime import body_contains, body_text, decode_charset, parse_message
from imapd.mime.decode import (
    _QP_SPACE_RE,
    OPAQUE,
    SEVEN_BIT,
    _decode_qp,
    _strip_line_end_blanks,
    charset_decoders,
)
from imapd.mime.searchtext import _case_folds, _Needle

# ------------------------------------------------------------------ builders

def entity(body: bytes, ctype: str | None = "text/plain", charset: str | None = None,
           cte: str | None = None) -> bytes:
    """One MIME entity (header + body) in wire form."""
    h = b""
    if ctype is not None:
        h += f"Content-Type: {ctype}".encode()
        if charset is not None:
            h += f"; charset={charset}".encode()
        h += b"\r\n"
    if cte is not None:
        h += f"Content-Transfer-Encoding: {cte}\r\n".encode()
    return h + b"\r\n" + body


def multipart(*parts: bytes, subtype: str = "mixed") -> bytes:
    # from the content: never in it, and the same on every run (Hypothesis)
    b = b"=_" + hashlib.sha1(b"|".join(parts)).hexdigest().encode()
    out = b"Content-Type: multipart/" + subtype.encode() + b"; boundary=\"" + b + b"\"\r\n\r\n"
    for p in parts:
        out += b"--" + b + b"\r\n" + p + b"\r\n"
    return out + b"--" + b + b"--\r\n"


def message(ent: bytes, subject: bytes = b"hello") -> bytes:
    """A whole message around *ent* (MIME, so its Content-* fields count)."""
    return b"From: a@example.org\r\nSubject: " + subject + b"\r\nMIME-Version: 1.0\r\n" + ent


def rfc822(inner: bytes) -> bytes:
    return entity(inner, "message/rfc822")


def b64(raw: bytes, width: int = 76) -> bytes:
    enc = base64.b64encode(raw)
    return b"\r\n".join(enc[i:i + width] for i in range(0, len(enc), width)) + b"\r\n"


def check(data: bytes, *needles: str) -> dict[str, bool]:
    """Assert body_contains agrees with the reference; return the answers."""
    root = parse_message(data)
    text = body_text(data, root).casefold()
    got = {}
    for n in needles:
        n = n.casefold()
        want = n in text
        assert body_contains(data, root, n) is want, (n, want, text[:300])
        got[n] = want
    return got


# ------------------------------------------------------------------- corpus

NEEDLES = [
    "", "a", "the", "hello", "world", "café", "cafe", "grüsse", "köln", "ss", "k",
    "subject: lunch", "lunch at noon", "softbreak", "base64", "=", "\r\n", "\n",
    "noon?\n", "zzzz", "<b>", "\x00", "\ufffd", "é", "jörg",
]


@pytest.mark.parametrize("name", corpus_names())
def test_corpus(name: str) -> None:
    data = load(name)
    check(data, *NEEDLES)
    text = body_text(data, parse_message(data)).casefold()
    # every word of the text is found, also where it spans lines or parts
    words = set(re.findall(r"\S{3,}", text)) | {text[i:i + 7] for i in range(0, len(text), 97)}
    check(data, *sorted(words))


# -------------------------------------------------------- hand-made cases


def test_plain_ascii() -> None:
    d = message(entity(b"The Kumquat season\r\n", charset="us-ascii"))
    assert check(d, "kumquat", "the kumquat", "kumquats", "season\r\n") == {
        "kumquat": True, "the kumquat": True, "kumquats": False, "season\r\n": True}


def test_no_content_type_and_non_mime() -> None:
    # not MIME: Content-Transfer-Encoding is ignored, the body is plain text
    d = b"From: a@example.org\r\nContent-Transfer-Encoding: base64\r\n\r\nS3VtcXVhdA==\r\n"
    assert check(d, "kumquat", "s3vtcxvhdA==".casefold()) == {"kumquat": False, "s3vtcxvhda==": True}
    d = b"Subject: x\r\n\r\nStra\xc3\x9fe\r\n"
    assert check(d, "strasse", "stra", "strb") == {"strasse": True, "stra": True, "strb": False}


def test_base64_split_lines() -> None:
    text = b"x" * 50 + b"kumquat" + b"y" * 50
    for width in (4, 8, 57, 76):
        d = message(entity(b64(text, width), charset="utf-8", cte="base64"))
        assert check(d, "kumquat", "xkumquaty")["kumquat"]
    # junk and bad padding take the tolerant decoder
    d = message(entity(b"S3Vt*cXVh\r\ndA", cte="base64"))
    assert check(d, "kumquat")["kumquat"]


def test_quoted_printable() -> None:
    body = b"Ku=\r\nmquat and caf=C3=A9 and stra=C3=9Fe=\r\n"
    d = message(entity(body, charset="utf-8", cte="quoted-printable"))
    got = check(d, "kumquat", "café", "strasse", "ku=", "e=", "mquat")
    assert got["kumquat"] and got["café"] and got["strasse"] and not got["ku="]
    # blanks before a line end are transport padding (RFC 2045 6.7 rule 3):
    # "=  " becomes a soft break, plain trailing blanks go
    d = message(entity(b"kum=  \r\nquat  \r\nend \t", cte="quoted-printable"))
    assert check(d, "kumquat", "quat ", "quat\r\nend", "end ")["kumquat"]
    assert not check(d, "quat ")["quat "]


def test_qp_encoded_charsets() -> None:
    d = message(entity(b"stra=DFe =E9t=E9", charset="iso-8859-1", cte="quoted-printable"))
    assert check(d, "strasse", "été", "ss", "s")["strasse"]


def test_latin1_and_cp1252() -> None:
    d = message(entity("Un été à Paris — Straße".encode("cp1252"), charset="iso-8859-1", cte="8bit"))
    assert check(d, "é", "été", "paris", "strasse", "ss", "—", "e") == {
        "é": True, "été": True, "paris": True, "strasse": True, "ss": True, "—": True, "e": True}
    d = message(entity("Straße".encode("latin-1"), charset="iso-8859-15"))
    assert check(d, "strasse")["strasse"]
    d = message(entity("Straße".encode("latin-1"), charset="x-unknown-charset"))  # -> latin-1
    assert check(d, "strasse")["strasse"]


def test_invalid_utf8_fallbacks() -> None:
    # "us-ascii" (or no charset) with 8-bit bytes: UTF-8 if valid, else cp1252
    raw = "Straße Kelvin\u212a".encode("utf-8")
    d = message(entity(raw, charset="us-ascii"))
    assert check(d, "strasse", "kelvink", "kelvin")["kelvink"]
    d = message(entity("Straße".encode("cp1252") + b" \xe2\x84\xaa", charset="us-ascii"))
    got = check(d, "strasse", "\u00e2", "k")  # invalid UTF-8: all of it read as cp1252
    assert got["strasse"] and got["\u00e2"]
    # labelled UTF-8 but invalid: what is valid is kept, a Kelvin sign folds to k
    d = message(entity(b"\xff \xe2\x84\xaa\xe2 stra\xc3\x9fe", charset="utf-8"))
    assert check(d, " k", "k\ufffd", "strasse", "\ufffd")[" k"]


def test_danger_bytes_without_danger_characters() -> None:
    # every byte of the Kelvin sign's UTF-8 form (E2 84 AA) occurs, the sign not
    d = message(entity("Ä – ê kumqua".encode(), charset="utf-8"))
    assert not check(d, "kumquat")["kumquat"]
    # 0xDF is "ß" in cp1252, but valid UTF-8 here (U+07C0), so no "ss"
    d = message(entity(b"\xdf\x80 s", charset="us-ascii"))
    assert not check(d, "ss")["ss"]
    d = message(entity(b"\xdf s", charset="us-ascii"))  # invalid UTF-8: cp1252
    assert check(d, "ss")["ss"]


@pytest.mark.parametrize("ch, fold", [
    ("\u00df", "ss"), ("\u1e9e", "ss"), ("\u017f", "s"), ("\u212a", "k"), ("\ufb01", "fi"),
    ("\ufb03", "ffi"), ("\ufb05", "st"), ("\u0130", "i\u0307"), ("\u1e97", "t\u0308"),
    ("\u1e9a", "a\u02be"), ("\u0149", "\u02bcn"),
])
def test_folds_to_ascii(ch: str, fold: str) -> None:
    """Characters whose fold contains ASCII: matches only the fold makes."""
    for cs, cte in (("utf-8", None), ("utf-8", "base64"), ("utf-8", "quoted-printable"), (None, None)):
        raw = f"x{ch}y {ch.upper()}".encode()
        if cte == "base64":
            raw = b64(raw)
        elif cte == "quoted-printable":
            raw = binascii.b2a_qp(raw)
        d = message(entity(raw, charset=cs, cte=cte))
        first = fold[0]
        got = check(d, f"x{fold}y", first, f"x{first}", f"{fold[-1]}y", fold, ch)
        assert got[f"x{fold}y"]


def test_non_ascii_needles() -> None:
    d = message(entity("GRÜSSE aus Köln, ΟΔΟΣ, Straße".encode(), charset="utf-8"))
    got = check(d, "grüsse", "köln", "οδοσ", "strasse", "ü", "ä", "grüsse aus kölnn")
    assert got["grüsse"] and got["köln"] and got["οδοσ"] and got["strasse"] and got["ü"]
    assert not got["ä"] and not got["grüsse aus kölnn"]
    # final sigma folds to sigma; capital sharp s to ss
    d = message(entity(b64("ὈΔΥΣΣΕΎΣ σς ẞ".encode()), charset="utf-8", cte="base64"))
    assert check(d, "σσ", "ss", "ὀδυσσεύσ")["σσ"]
    # an ASCII text never holds a non-ASCII needle...
    d = message(entity(b"plain ascii", charset="utf-16"))
    assert not check(d, "é")["é"]
    # ...unless a 7-bit charset makes non-ASCII text of ASCII bytes
    d = message(entity("Grüße".encode("utf-7"), charset="utf-7"))
    assert check(d, "grüsse", "gr")["grüsse"]


def test_opaque_charsets() -> None:
    # UTF-16: the ASCII bytes "ab" are the character U+6261, not "ab"
    d = message(entity("\u6261\u00e9 xy".encode("utf-16-le"), charset="utf-16le"))
    got = check(d, "ab", "a", "\u6261", "\u00e9")
    assert got["\u6261"] and not got["ab"] and not got["a"]
    d = message(entity("kumquat".encode("utf-16"), charset="utf-16"))  # BOM: not ASCII
    assert check(d, "kumquat", "k\x00u")["kumquat"]
    # Shift_JIS: second bytes of double-byte characters are in the ASCII range
    sj = "ソ表示 kumquat".encode("cp932")
    assert b"\\" in sj
    d = message(entity(sj, charset="shift_jis"))
    assert check(d, "\\", "kumquat", "表示")["kumquat"]
    assert not check(d, "\\")["\\"]
    # all-ASCII bytes read as ASCII whatever the charset says
    d = message(entity(b"kumquat", charset="utf-16"))
    assert check(d, "kumquat")["kumquat"]


def test_seven_bit_charsets() -> None:
    d = message(entity("日本語 kumquat".encode("iso2022_jp"), charset="iso-2022-jp"))
    got = check(d, "日本", "kumquat", "$b", "\x1b")
    assert got["日本"] and got["kumquat"] and not got["$b"]
    d = message(entity(b"+AGsAdQBt-quat", charset="utf-7"))  # "kum" encoded
    assert check(d, "kumquat", "agsa")["kumquat"]


def test_single_byte_charsets() -> None:
    d = message(entity("Привет KUMQUAT".encode("koi8-r"), charset="koi8-r"))
    assert check(d, "привет", "kumquat")["привет"]
    d = message(entity(binascii.b2a_qp("ΟΔΟΣ οδός".encode("iso8859-7")), charset="iso-8859-7",
                       cte="quoted-printable"))
    assert check(d, "οδοσ", "οδός")["οδοσ"]
    # RFC 2231 charset parameter
    d = message(b"Content-Type: text/plain; charset*=iso-8859-1''\r\n\r\nStra\xdfe\r\n")
    assert check(d, "strasse")["strasse"]


def test_unknown_transfer_encoding_searches_raw() -> None:
    d = message(entity(b"begin 644 kumquat.txt\r\n", cte="x-uuencode"))
    assert check(d, "kumquat")["kumquat"]


def test_non_text_parts_are_skipped() -> None:
    d = message(multipart(
        entity(b"nothing here", charset="us-ascii"),
        entity(b"kumquat", "application/octet-stream"),
        entity(b64(b"kumquat"), "image/png", cte="base64"),
    ))
    assert not check(d, "kumquat")["kumquat"]
    d = message(multipart(entity(b"kumquat", "text/calendar", cte="8bit")))
    assert check(d, "kumquat")["kumquat"]


def test_nested_messages() -> None:
    inner = message(entity(b64(b"It is Kumquat time"), charset="utf-8", cte="base64"),
                    subject=b"=?utf-8?q?Stra=C3=9Fe?= news")
    d = message(multipart(entity(b"see below"), rfc822(inner)))
    got = check(d, "kumquat", "strasse", "subject: strasse news", "from: a@example.org",
                "see below", "mime-version")
    assert all(got.values())
    # the outer header is no body text
    d = message(entity(b"body"), subject=b"kumquat")
    assert not check(d, "kumquat", "subject")["kumquat"]
    # doubly nested, inside an alternative
    d = message(multipart(entity(b"a"), entity(rfc822(message(multipart(
        entity(b"plain"), entity(b"<i>Kumquat</i>", "text/html"), subtype="alternative"))),
        "message/rfc822"), subtype="mixed"))
    assert check(d, "kumquat", "<i>kumquat")["kumquat"]


def test_needle_across_parts() -> None:
    """Parts are joined with a newline; only a needle with one can span them."""
    d = message(multipart(entity(b"one kum"), entity(b"quat two")))
    got = check(d, "kum\nquat", "kumquat", "one kum\n", "\nquat")
    assert got["kum\nquat"] and not got["kumquat"]


def test_needle_not_casefolded_and_empty() -> None:
    d = message(entity(b"Kumquat"))
    root = parse_message(d)
    assert body_contains(d, root, "") is True
    assert body_contains(d, root, "Kumquat") is ("Kumquat" in body_text(d, root).casefold())
    assert body_contains(d, parse_message(b""), "") is True


def test_empty_and_odd_structures() -> None:
    for d in (b"", b"\r\n", b"Subject: x\r\n", message(multipart()),
              message(b"Content-Type: multipart/mixed\r\n\r\nno boundary kumquat\r\n"),
              message(entity(b"", charset="utf-8", cte="base64"))):
        check(d, "kumquat", "x", "")


def test_deep_nesting() -> None:
    ent = entity(b"deep kumquat")
    for _ in range(70):  # deeper than MAX_DEPTH: served as leaves, not text
        ent = multipart(ent)
    check(message(ent), "kumquat")


# ------------------------------------------------------------ random trees

ALPHABET = "aAkKsStTfFiIuUmMqQ  \r\n.=é\u00df\u1e9e\u017f\u212a\ufb01\ufb05\u0130\u1e97\u03a3\u03c2\u00fc\u00dc€“\x00"
CHARSETS = [None, "us-ascii", "utf-8", "iso-8859-1", "windows-1252", "iso-8859-15", "koi8-r",
            "iso-8859-7", "utf-16", "shift_jis", "iso-2022-jp", "utf-7", "x-bogus", "macintosh"]
CTES = [None, "7bit", "8bit", "binary", "base64", "quoted-printable", "x-unknown"]


@st.composite
def leaves(draw: st.DrawFn) -> bytes:
    charset = draw(st.sampled_from(CHARSETS))
    if draw(st.integers(0, 4)) == 0:
        raw = draw(st.binary(max_size=60))
    else:
        text = draw(st.text(ALPHABET, max_size=60))
        codec = draw(st.sampled_from([charset or "utf-8", "utf-8", "cp1252"]))
        try:
            raw = text.encode(codec, "replace")
        except LookupError:
            raw = text.encode("utf-8")
    cte = draw(st.sampled_from(CTES))
    if cte == "base64":
        raw = b64(raw, draw(st.sampled_from([4, 8, 76])))
    elif cte == "quoted-printable":
        raw = binascii.b2a_qp(raw) + draw(st.sampled_from([b"", b"  ", b" \r\n", b"=\r\n", b"=  \r\nx"]))
    ctype = draw(st.sampled_from(["text/plain", "text/html", "text/calendar", "application/x-y", None]))
    return entity(raw, ctype, charset, cte)


def trees() -> st.SearchStrategy[bytes]:
    return st.recursive(
        leaves(),
        lambda kids: st.one_of(
            st.lists(kids, min_size=1, max_size=3).map(lambda ps: multipart(*ps)),
            kids.map(lambda k: rfc822(message(k, b"=?utf-8?q?K=E2=84=AA?="))),
        ),
        max_leaves=5,
    )


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trees(), st.data())
def test_random_trees(ent: bytes, data: st.DataObject) -> None:
    d = message(ent)
    text = body_text(d, parse_message(d)).casefold()
    needles = [data.draw(st.text(ALPHABET, min_size=1, max_size=4)).casefold()]
    if text:
        i = data.draw(st.integers(0, len(text) - 1))
        needles.append(text[i:i + data.draw(st.integers(1, 8))])
    check(d, *needles)


PIECES = [b"a", b"K", b"s", b"S", b"t", b" ", b"\x00", b"\x80", b"\xbf", b"\xc3", b"\xe2",
          b"\xff", b"\xdf", b"\xb5", b"\xdc", b"\xfc", b"\x8a", b"\x9a", b"\x81"] + [
    c.encode("utf-8") for c in "üÜßẞſKﬁﬅİẗσΣςµμ€\ufffd"]
PART_NEEDLES = ["s", "ss", "st", "k", "ks", "a", "ü", "üs", "süß".casefold(), "σ", "μ", "š",
                "j\u030c", "t\u0308", "i\u0307", "\x00", "€", " k", "ÿ"]
PART_CHARSETS = [None, "us-ascii", "utf-8", "iso-8859-1", "windows-1252", "iso-8859-15",
                 "x-bogus", "koi8-r", "iso-8859-7", "windows-1250", "utf-16", "shift_jis",
                 "iso-2022-jp"]


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=12).map(b"".join),
       st.sampled_from(PART_CHARSETS), st.sampled_from(PART_NEEDLES))
def test_in_part(raw: bytes, charset: str | None, needle: str) -> None:
    """One decoded part, all the ways bytes can mislead: stray continuation
    bytes, truncated sequences, cp1252 fallbacks, folds to several chars."""
    assert needle.casefold() == needle  # what body_contains hands on
    want = needle in decode_charset(raw, charset).casefold()
    assert _Needle(needle).in_part(raw, charset) is want


# -------------------------------------------------------- building blocks


def test_case_fold_table_is_complete() -> None:
    folds = _case_folds()
    naive = {}
    for cp in range(sys.maxunicode + 1):
        c = chr(cp)
        f = c.casefold()
        if f != c:
            naive[c] = f
    assert folds == naive
    danger = _Needle("abcdefghijklmnopqrstuvwxyz").danger
    assert {"\u00df", "\u212a", "\ufb01", "\u0130", "\u017f"} <= set(danger)
    assert all(not c.isascii() for c in danger)
    assert _Needle("xz").danger == ""  # nothing else folds to an x or a z
    assert _Needle("y").danger == "\u1e99"  # y with ring above: y + U+030A


@pytest.mark.parametrize("label, want", [
    (None, ("utf-8", "cp1252")), ("us-ascii", ("utf-8", "cp1252")), ("UTF-8", ("utf-8",)),
    ("iso-8859-1", ("cp1252",)), ("koi8-r", ("koi8-r",)), ("x-bogus", ("utf-8", "iso8859-1")),
    ("utf-16", OPAQUE), ("shift_jis", OPAQUE), ("cp037", OPAQUE), ("gb2312", OPAQUE),
    ("iso-2022-jp", SEVEN_BIT), ("utf-7", SEVEN_BIT),
])
def test_charset_decoders(label: str | None, want: object) -> None:
    assert charset_decoders(label) == want


_ASCII_RUNS_B = re.compile(rb"[\x00-\x7f]+")
_ASCII_RUNS = re.compile(r"[\x00-\x7f]+")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40), st.sampled_from(
    [None, "us-ascii", "utf-8", "iso-8859-1", "latin1", "x-bogus", "koi8-r", "iso-8859-7",
     "windows-1251", "macintosh", "cp437", "646", "iso_8859-1"]))
def test_clear_charsets_keep_ascii_runs(raw: bytes, label: str | None) -> None:
    """What the byte search relies on: the decoded text's ASCII runs are the
    input's ASCII runs, one for one (nothing merges, nothing appears)."""
    assert isinstance(charset_decoders(label), tuple)
    text = decode_charset(raw, label)
    assert _ASCII_RUNS.findall(text) == [r.decode("ascii") for r in _ASCII_RUNS_B.findall(raw)]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from([b" ", b"\t", b"\r", b"\n", b"=", b"a", b"=2", b"0", b"\r\n"]),
                max_size=30).map(b"".join))
def test_qp_blank_stripping(body: bytes) -> None:
    assert _strip_line_end_blanks(body) == _QP_SPACE_RE.sub(b"", body)
    assert _decode_qp(body) == binascii.a2b_qp(_QP_SPACE_RE.sub(b"", body))
