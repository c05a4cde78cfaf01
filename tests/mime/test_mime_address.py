"""RFC 5322 address lists to ENVELOPE address structures."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imapd.mime.address import _fast, _full, parse_address_list

NIL4 = [None, None, None, None]


@pytest.mark.parametrize("value, want", [
    (b"", None),
    (b"   ", None),
    (b"user@example.com", [[None, None, b"user", b"example.com"]]),
    (b"<user@example.com>", [[None, None, b"user", b"example.com"]]),
    (b"John Doe <jd@example.com>", [[b"John Doe", None, b"jd", b"example.com"]]),
    (b"John   Doe\t<jd@example.com>", [[b"John Doe", None, b"jd", b"example.com"]]),
    (b'"Doe, John" <jd@example.com>', [[b"Doe, John", None, b"jd", b"example.com"]]),
    (b'"a \\"b\\" \\\\c" <x@y>', [[b'a "b" \\c', None, b"x", b"y"]]),
    (b'"" <x@y>', [[None, None, b"x", b"y"]]),
    (b"x@y (Real Name)", [[b"Real Name", None, b"x", b"y"]]),
    (b"x@y (outer (nested) comment)", [[b"outer (nested) comment", None, b"x", b"y"]]),
    (b"Name (comment) <x@y>", [[b"Name", None, b"x", b"y"]]),
    (b"a@b, c@d", [[None, None, b"a", b"b"], [None, None, b"c", b"d"]]),
    (b"a@b,,c@d,", [[None, None, b"a", b"b"], [None, None, b"c", b"d"]]),
    (b"John Q. Public <jqp@x>", [[b"John Q. Public", None, b"jqp", b"x"]]),
    (b"<@r1,@r2:u@h>", [[None, b"@r1,@r2", b"u", b"h"]]),
    (b"john . doe @ example . com", [[None, None, b"john.doe", b"example.com"]]),
    (b'"john doe"@example.com', [[None, None, b"john doe", b"example.com"]]),
    (b"u@[192.0.2.1]", [[None, None, b"u", b"[192.0.2.1]"]]),
    (b"=?utf-8?q?J=C3=B6rg?= <j@x>", [[b"=?utf-8?q?J=C3=B6rg?=", None, b"j", b"x"]]),
    (b"J\xc3\xb6rg <j@x>", [[b"J\xc3\xb6rg", None, b"j", b"x"]]),
    # missing parts get placeholders, never a NIL host (that marks groups)
    (b"root", [[None, None, b"root", b"MISSING_DOMAIN"]]),
    (b"Just Words", [[b"Just Words", None, b"MISSING_MAILBOX", b"MISSING_DOMAIN"]]),
    (b"@example.com", [[None, None, b"MISSING_MAILBOX", b"example.com"]]),
    (b"user@", [[None, None, b"user", b"MISSING_DOMAIN"]]),
    (b"<>", [[None, None, b"MISSING_MAILBOX", b"MISSING_DOMAIN"]]),
    (b"Name <user", [[b"Name", None, b"user", b"SYNTAX_ERROR"]]),
    # groups
    (b"undisclosed-recipients:;", [[None, None, b"undisclosed-recipients", None], NIL4]),
    (b"G: a@b, C <c@d>;", [[None, None, b"G", None], [None, None, b"a", b"b"],
                          [b"C", None, b"c", b"d"], NIL4]),
    (b'"My Group": a@b', [[None, None, b"My Group", None], [None, None, b"a", b"b"], NIL4]),
    (b"G1:a@b;, G2:;", [[None, None, b"G1", None], [None, None, b"a", b"b"], NIL4,
                       [None, None, b"G2", None], NIL4]),
])
def test_addresses(value: bytes, want: list | None) -> None:
    assert parse_address_list(value) == want


def test_nul_bytes_replaced() -> None:
    got = parse_address_list(b"A\x00B <a@b(c\x00)>")
    assert got is not None
    assert all(b"\x00" not in (x or b"") for a in got for x in a)


def test_long_address_lists_are_linear() -> None:
    value = b", ".join(b"Person %d <p%d@example.com>" % (i, i) for i in range(5000))
    got = parse_address_list(value)
    assert got is not None and len(got) == 5000
    # the same through the general parser
    assert _full(value) == got
    long_local = b"x" * 50000
    assert parse_address_list(long_local + b"@y") == [[None, None, long_local, b"y"]]
    assert parse_address_list(long_local) == [[None, None, long_local, b"MISSING_DOMAIN"]]


_chars = st.sampled_from(list(b'aZ09 .@<>,;:"\\()[]\t=?_-\xc3\xa9'))


@settings(max_examples=400, deadline=None)
@given(st.lists(_chars, max_size=60).map(bytes))
def test_fast_path_agrees_with_full_parser(value: bytes) -> None:
    fast = _fast(value) if value else None
    if fast is not None:
        assert fast == _full(value)
    parse_address_list(value)  # and nothing raises


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes(value: bytes) -> None:
    got = parse_address_list(value)
    if got is not None:
        for a in got:
            assert len(a) == 4
            assert all(x is None or isinstance(x, bytes) for x in a)
            # only group markers have a NIL host
            if a[3] is None:
                assert a[0] is None and a[1] is None
