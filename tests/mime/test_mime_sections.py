"""BODY[<section>] and BINARY[<section>] bytes (RFC 3501 §6.4.5, RFC 3516)."""

from __future__ import annotations

import pytest
from mime_helpers import kids, load, msg

from imapd.mime import UnknownCTE, binary_section, find_part, parse_message, section_bytes


def sec(name: str, path: tuple[int, ...], spec: str | None = None,
        fields: list[str] | None = None) -> bytes | None:
    d = load(name)
    return section_bytes(d, parse_message(d), path, spec, fields)


def test_whole_message_header_and_text() -> None:
    d = load("alternative")
    root = parse_message(d)
    assert section_bytes(d, root, (), None) == d
    header = section_bytes(d, root, (), "HEADER")
    text = section_bytes(d, root, (), "TEXT")
    assert header is not None and header.endswith(b'boundary="=_alt_42"\r\n\r\n')
    assert text is not None and header + text == d
    assert section_bytes(d, root, (), "MIME") is None


def test_header_fields_in_original_order_and_bytes() -> None:
    # asked for in another order and case: the message's order and bytes win
    assert sec("alternative", (), "HEADER.FIELDS", ["SUBJECT", "from", "x-nothing"]) == (
        b"From: Alice <alice@example.org>\r\nSubject: alternative\r\n\r\n")
    assert sec("alternative", (), "header.fields.not",
               ["To", "Date", "Message-ID", "MIME-Version", "Content-Type"]) == (
        b"From: Alice <alice@example.org>\r\nSubject: alternative\r\n\r\n")
    # nothing matches: just the blank line
    assert sec("alternative", (), "HEADER.FIELDS", ["X-Nope"]) == b"\r\n"


def test_header_fields_keep_folding() -> None:
    got = sec("long-folded", (), "HEADER.FIELDS", ["subject"])
    assert got == (b"Subject: a subject that is folded\r\n over two lines\r\n"
                   b"\tand a third with a tab\r\n\r\n")


def test_header_fields_of_header_without_blank_line() -> None:
    d = load("no-blank-line")
    root = parse_message(d)
    assert section_bytes(d, root, (), "HEADER") == d  # served as it is
    assert section_bytes(d, root, (), "HEADER.FIELDS", ["to"]) == b"To: b@example.org\r\n\r\n"
    assert section_bytes(d, root, (), "TEXT") == b""


def test_parts_of_multipart() -> None:
    assert sec("alternative", (1,)) == b"Hello Bob,\r\nplain text.\r\n"
    assert sec("alternative", (1,), "MIME") == (
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: 7bit\r\n\r\n")
    assert sec("alternative", (2,)) == b"<p>Hello Bob,</p>"
    assert sec("alternative", (3,)) is None
    assert sec("alternative", (0,)) is None
    # HEADER/TEXT only exist for message/rfc822 parts
    assert sec("alternative", (1,), "HEADER") is None
    assert sec("alternative", (1,), "TEXT") is None
    # like any non-multipart entity a text part has exactly a part 1: itself
    # (Dovecot's walk); nothing deeper
    assert sec("alternative", (1, 1)) == sec("alternative", (1,))
    assert sec("alternative", (1, 1, 1)) is None
    assert sec("alternative", (1, 2)) is None


def test_non_multipart_message_has_part_1() -> None:
    d = load("simple")
    root = parse_message(d)
    assert section_bytes(d, root, (1,), None) == (
        b"Hello Joe, do you think we can meet at 3:30 tomorrow?\r\n")
    assert section_bytes(d, root, (1,), "MIME") == d[:root.body_start]
    assert section_bytes(d, root, (2,), None) is None
    assert section_bytes(d, root, (1, 1, 1), None) is None


def test_message_rfc822_numbering() -> None:
    d = load("nested-rfc822")
    root = parse_message(d)
    whole_inner = section_bytes(d, root, (2,), None)
    assert whole_inner is not None and whole_inner.startswith(b"From: Eve <eve@example.com>\r\n")
    assert whole_inner.endswith(b"--inner--\r\n")
    assert section_bytes(d, root, (2,), "MIME") == (
        b"Content-Type: message/rfc822\r\nContent-Disposition: inline\r\n\r\n")
    hdr = section_bytes(d, root, (2,), "HEADER")
    text = section_bytes(d, root, (2,), "TEXT")
    assert hdr is not None and text is not None and hdr + text == whole_inner
    assert section_bytes(d, root, (2,), "HEADER.FIELDS", ["subject"]) == b"Subject: lunch\r\n\r\n"
    # 2.1 and 2.2 are the parts of the encapsulated multipart
    assert section_bytes(d, root, (2, 1), None) == b"Lunch at noon?"
    assert section_bytes(d, root, (2, 2), None) == b"<b>Lunch at noon?</b>"
    assert section_bytes(d, root, (2, 2), "MIME") == (
        b"Content-Type: text/html; charset=us-ascii\r\n\r\n")
    assert section_bytes(d, root, (2, 3), None) is None


def test_message_rfc822_with_simple_body() -> None:
    d = load("digest")
    root = parse_message(d)
    # 1 is a message/rfc822 (by digest default); 1.1 is that message's body
    assert section_bytes(d, root, (1, 1), None) == b"body one"
    assert section_bytes(d, root, (1,), "TEXT") == b"body one"
    assert section_bytes(d, root, (1,), "HEADER") == (
        b"From: one@example.org\r\nSubject: first\r\n\r\n")
    assert section_bytes(d, root, (1, 2), None) is None
    # its part header is empty: just the blank line
    assert section_bytes(d, root, (1,), "MIME") == b"\r\n"


def test_find_part_walk() -> None:
    d = load("nested-rfc822")
    root = parse_message(d)
    assert find_part(root, ()) is root
    assert find_part(root, (2,)) is kids(root)[1]
    assert find_part(root, (2, 1)) is kids(msg(kids(root)[1]))[0]
    assert find_part(root, (1, 1)) is kids(root)[0]
    assert find_part(root, (1, 2)) is None
    assert find_part(root, (5,)) is None


def test_binary_decodes() -> None:
    d = load("base64-qp")
    root = parse_message(d)
    # soft line break joins lines; transport-added trailing blanks dropped
    assert binary_section(d, root, (1,)) == "café = softbreak".encode()
    assert binary_section(d, root, (2,)) == "café base64".encode()
    # missing padding is tolerated; the CTE token case does not matter
    assert binary_section(d, root, (3,)) == b"hello world"
    with pytest.raises(UnknownCTE) as exc:
        binary_section(d, root, (4,))
    assert exc.value.cte == "x-uuencode"
    assert binary_section(d, root, (9,)) is None
    assert binary_section(d, root, ()) == d


def test_binary_of_identity_and_containers() -> None:
    d = load("nested-rfc822")
    root = parse_message(d)
    assert binary_section(d, root, (1,)) == b"See below."
    assert binary_section(d, root, (2,)) == section_bytes(d, root, (2,), None)
