"""Transfer encodings, charsets, RFC 2047 words and SEARCH text."""

from __future__ import annotations

import pytest
from mime_helpers import load

from imapd.mime import (
    all_headers_text,
    body_text,
    decode_charset,
    decode_encoded_words,
    decode_transfer,
    header_text,
    parse_message,
)


@pytest.mark.parametrize("cte", [None, "7bit", "8BIT", "binary", b"7bit", " 8bit "])
def test_identity_encodings(cte: str | bytes | None) -> None:
    assert decode_transfer(b"a\r\nb=3D", cte) == b"a\r\nb=3D"


@pytest.mark.parametrize("body, out", [
    (b"aGVsbG8=", b"hello"),
    (b"aGVs\r\nbG8=\r\n", b"hello"),
    (b"aGVsbG8", b"hello"),  # missing padding
    (b"aGVsbG8==", b"hello"),  # too much padding
    (b"aG Vs*bG8=", b"hello"),  # junk inside
    (b"aGVsbG8=aGk=", b"hello"),  # data after padding is not fatal
    (b"a", b""),
    (b"", b""),
])
def test_base64_is_tolerant(body: bytes, out: bytes) -> None:
    got = decode_transfer(body, "base64")
    assert got is not None and got.startswith(out)


def test_quoted_printable() -> None:
    assert decode_transfer(b"a=3Db=\r\nc  \r\nd=\r\n", "Quoted-Printable") == b"a=bc\r\nd"
    assert decode_transfer(b"bad =ZZ and =", "quoted-printable") is not None


def test_unknown_encoding() -> None:
    assert decode_transfer(b"begin 644 x", "x-uuencode") is None


@pytest.mark.parametrize("raw, want", [
    (b"plain ascii", "plain ascii"),
    (b"=?utf-8?q?caf=C3=A9?=", "café"),
    (b"=?UTF-8?B?SsO2cmc=?=", "Jörg"),
    (b"=?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?=", "Keld Jørn Simonsen"),
    # whitespace between adjacent encoded words disappears (RFC 2047 §6.2)
    (b"=?utf-8?q?a?= =?utf-8?q?b?=", "ab"),
    (b"=?utf-8?q?a?=\r\n =?utf-8?q?b?=", "ab"),
    # ...but not between an encoded word and text
    (b"=?utf-8?q?a?= b", "a b"),
    # a UTF-8 character split across two words survives
    (b"=?utf-8?q?caf=C3?= =?utf-8?q?=A9?=", "café"),
    # RFC 2231 language suffix
    (b"=?utf-8*en?q?hi?=", "hi"),
    # broken things do not raise
    (b"=?bogus?x?y?=", "=?bogus?x?y?="),
    (b"=?unknown-charset?q?ok?=", "ok"),
    (b"=?utf-8?B?####?=", ""),
    (b"=?utf-8?q?=ZZ?=", "=ZZ"),
    (b"raw \xc3\xa9 utf8", "raw é utf8"),
    (b"raw \xe9 latin1", "raw é latin1"),
])
def test_encoded_words(raw: bytes, want: str) -> None:
    assert decode_encoded_words(raw) == want


def test_charsets() -> None:
    assert decode_charset(b"\xe9", "iso-8859-1") == "é"
    assert decode_charset(b"\x80", "iso-8859-1") == "€"  # read as windows-1252
    assert decode_charset(b"\xc3\xa9", "us-ascii") == "é"  # mislabelled UTF-8
    assert decode_charset(b"\xe9t\xe9", None) == "été"  # not UTF-8: legacy 8-bit
    assert decode_charset(b"\xff\xfe", "utf-8") == "\ufffd\ufffd"
    assert decode_charset(b"\xe9", "no-such-charset") == "é"
    assert decode_charset(b"x\xe9", "base64") == "xé"  # not a text codec
    assert decode_charset(b"\x82\xa0", "shift_jis") == "あ"
    # 7-bit charsets must not take the ASCII shortcut
    assert decode_charset(b"+AOk-", "utf-7") == "é"
    assert decode_charset(b"\x1b$B$3$s$K$A$O\x1b(B", "ISO-2022-JP") == "こんにちは"


def test_header_text() -> None:
    d = load("encoded-words")
    root = parse_message(d)
    assert header_text(d, root, "Subject") == [
        "café and Hello à =?bogus?x?y?= ok done"]
    assert header_text(d, root, "to") == ["Jörg <joerg@example.de>"]
    assert header_text(d, root, "X-Missing") == []


def test_header_text_unfolds_and_repeats() -> None:
    d = b"X-A: one\r\n two\r\nX-a: three\r\n\r\n"
    root = parse_message(d)
    assert header_text(d, root, "x-a") == ["one two", "three"]


def test_all_headers_text() -> None:
    d = load("encoded-words")
    text = all_headers_text(d, parse_message(d))
    assert "From: Keld Jørn Simonsen <keld@example.dk>" in text.splitlines()
    assert "To: Jörg <joerg@example.de>" in text.splitlines()


def test_body_text_decodes_every_text_part() -> None:
    d = load("base64-qp")
    text = body_text(d, parse_message(d))
    assert "café = softbreak" in text
    assert "café base64" in text
    assert "hello world" not in text  # application/octet-stream is skipped


def test_body_text_includes_nested_messages() -> None:
    d = load("nested-rfc822")
    text = body_text(d, parse_message(d))
    assert "See below." in text
    assert "Subject: lunch" in text  # the encapsulated header is body text
    assert "Lunch at noon?" in text and "<b>Lunch at noon?</b>" in text


def test_body_text_charset() -> None:
    d = load("eightbit-nul")
    assert "Grüße aus Köln" in body_text(d, parse_message(d))
