"""The encoder: values and response lines to bytes that are always valid IMAP."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imapd.protocol import commands as c
from imapd.protocol import responses as R
from imapd.protocol.parser import Parser

# any text, including CR, LF, NUL, non-ASCII and lone surrogates (a plain
# st.text() would cost seconds building hypothesis's character tables)
TEXT = st.text(st.characters(max_codepoint=0xDFFF) | st.sampled_from(["\r", "\n", "\x00", "\udcff"]))

# ------------------------------------------------------------ strings


@pytest.mark.parametrize(
    "data, wire",
    [
        (b"hello", b'"hello"'),
        (b"", b'""'),
        (b"two words", b'"two words"'),
        (b'say "hi"', b'"say \\"hi\\""'),
        (b"back\\slash", b'"back\\\\slash"'),
        (b'\\"', b'"\\\\\\""'),
        (b"tab\there", b'"tab\there"'),
        (b"(parens) {braces} %*]", b'"(parens) {braces} %*]"'),
    ],
)
def test_quoted(data, wire):
    assert R.quoted_or_literal(data) == wire


@pytest.mark.parametrize("data", [b"a\rb", b"a\nb", b"a\r\nb", b"nul\x00", b"caf\xc3\xa9", b"\xff", b'"\\\r'])
def test_literal_for_cr_lf_nul_and_8bit(data):
    assert R.quoted_or_literal(data) == b"{%d}\r\n" % len(data) + data


def test_literal_for_long_strings():
    assert R.quoted_or_literal(b"x" * R.MAX_QUOTED) == b'"' + b"x" * R.MAX_QUOTED + b'"'
    long = b"x" * (R.MAX_QUOTED + 1)
    assert R.quoted_or_literal(long) == b"{%d}\r\n" % len(long) + long


@pytest.mark.parametrize(
    "value, wire",
    [
        (b"INBOX", b"INBOX"),
        ("Sent", b"Sent"),
        ("a.b/c-d_e&AOQ-", b"a.b/c-d_e&AOQ-"),
        ("NIL", b'"NIL"'),
        ("nil", b'"nil"'),
        ("", b'""'),
        ("Sent Items", b'"Sent Items"'),
        ("a]b", b'"a]b"'),
        ("a%b", b'"a%b"'),
        ("a*", b'"a*"'),
        ("(x)", b'"(x)"'),
        ('q"', b'"q\\""'),
        ("Entwürfe", b"{9}\r\nEntw\xc3\xbcrfe"),
        ("\udcff", b"{1}\r\n\xff"),  # surrogateescape: the octets the client sent
        ("a\r\nb", b"{4}\r\na\r\nb"),
    ],
)
def test_astring(value, wire):
    assert R.astring(value) == wire


def test_nstring():
    assert R.nstring(None) == b"NIL"
    assert R.nstring("NIL") == b'"NIL"'
    assert R.nstring(b"") == b'""'
    assert R.nstring("x y") == b'"x y"'
    assert R.nstring(b"a\r\n") == b"{3}\r\na\r\n"
    assert R.nstring("\udcfe") == b"{1}\r\n\xfe"


# ------------------------------------------------------------- encode()


def test_encode_scalars():
    assert R.encode(None) == b"NIL"
    assert R.encode(0) == b"0"
    assert R.encode(4294967295) == b"4294967295"
    assert R.encode(True) == b"1" and R.encode(False) == b"0"
    assert R.encode("x") == b'"x"'
    assert R.encode(b"x") == b'"x"'
    assert R.encode(R.Atom("\\Seen")) == b"\\Seen"
    assert R.encode(R.Literal(b"short")) == b"{5}\r\nshort"
    assert R.encode(R.Literal(b"")) == b"{0}\r\n"


def test_encode_nested():
    value = [None, 1, "a b", b"c", R.Atom("\\Seen"), R.Literal(b"x"), [[]], (2, [R.Atom("MESSAGES"), 3]), "caf\u00e9", True]
    assert R.encode(value) == b'(NIL 1 "a b" "c" \\Seen {1}\r\nx (()) (2 (MESSAGES 3)) {5}\r\ncaf\xc3\xa9 1)'
    assert R.encode([]) == b"()"
    assert R.encode(()) == b"()"


def test_encode_envelope_like_value():
    env = ["Wed, 17 Jul 1996 02:23:25 -0700 (PDT)", "IMAP4rev1 WG mtg summary and minutes", [["Terry Gray", None, "gray", "cac.washington.edu"]], None]
    assert R.encode(env) == (
        b'("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)" "IMAP4rev1 WG mtg summary and minutes" '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) NIL)'
    )


def test_encode_rejects_unknown_types():
    with pytest.raises(TypeError, match="cannot encode float"):
        R.encode(1.5)
    with pytest.raises(TypeError, match="cannot encode dict"):
        R.encode([{}])


def test_atoms_never_break_framing():
    assert R.encode(R.Atom("bad\r\nflag")) == b"bad??flag"
    assert R.encode(R.Atom("nul\x00")) == b"nul?"
    assert R.encode(R.Atom("k\u00e9y")) == b"k?y"


def test_flag_list():
    assert R.flag_list([]) == b"()"
    assert R.flag_list(["\\Seen", "\\Answered", "$Forwarded"]) == b"(\\Seen \\Answered $Forwarded)"
    assert R.flag_list(["\\*"]) == b"(\\*)"
    assert R.flag_list(["evil\r\n* BYE", "k\u00e9y"]) == b"(evil??* BYE k?y)"


# ------------------------------------------------------------- lines


def test_tagged():
    assert R.tagged("a1", "OK", "LOGIN completed") == b"a1 OK LOGIN completed\r\n"
    assert R.tagged("A003", "NO", "Mailbox does not exist", "TRYCREATE") == b"A003 NO [TRYCREATE] Mailbox does not exist\r\n"
    assert R.tagged("a", "BAD", "Command line too long", "TOOBIG") == b"a BAD [TOOBIG] Command line too long\r\n"


def test_untagged_and_continuation():
    assert R.untagged("imapd ready.", code="CAPABILITY IMAP4rev1 IMAP4rev2") == b"* OK [CAPABILITY IMAP4rev1 IMAP4rev2] imapd ready.\r\n"
    assert R.untagged("Autologout", status="BYE") == b"* BYE Autologout\r\n"
    assert R.untagged("x", status="PREAUTH") == b"* PREAUTH x\r\n"
    assert R.continuation() == b"+ Ready\r\n"
    assert R.continuation("idling") == b"+ idling\r\n"


@pytest.mark.parametrize("text", ["line\r\nbreak", "lf\nonly", "cr\ronly", "nul\x00here", "na\u00efve \u2603", "\udcff"])
def test_lines_stay_one_7bit_line(text):
    for line in (R.tagged("t", "NO", text), R.tagged("t", "NO", "x", code=text), R.untagged(text), R.untagged("x", code=text), R.continuation(text)):
        assert line.endswith(b"\r\n")
        body = line[:-2]
        assert b"\r" not in body and b"\n" not in body and b"\x00" not in body
        assert all(b < 0x80 for b in body)


@settings(max_examples=100, deadline=None, database=None)
@given(TEXT, TEXT, st.one_of(st.none(), TEXT.filter(bool)))
def test_lines_never_emit_cr_lf_inside(text, tag, code):
    for line in (R.tagged(tag, "OK", text, code), R.untagged(text, code), R.continuation(text)):
        assert line.endswith(b"\r\n") and line.count(b"\n") == 1 and line.count(b"\r") == 1
        assert b"\x00" not in line and all(b < 0x80 for b in line)


# ------------------------------------------------- round trip through the parser


def _login(user: bytes, password: bytes) -> bytes:
    return b"a LOGIN " + R.astring(user) + b" " + R.quoted_or_literal(password) + b"\r\n"


@pytest.mark.parametrize("value", [b"", b"NIL", b"a b", b'"', b"\\", b"x\r\ny", b"\xff\xfe", b"{3}", b"~{3}", b"%*", b"x" * 2000])
def test_encoded_strings_parse_back(value):
    p = Parser()
    p.feed(_login(value, value))
    events = []
    while (ev := p.next_event()) is not None:
        events.append(ev)
    assert events[-1] == c.Login("a", "LOGIN", value, value)


@settings(max_examples=100, deadline=None, database=None)
@given(st.binary(max_size=1500).filter(lambda b: b"\x00" not in b), st.binary(max_size=50).filter(lambda b: b"\x00" not in b))
def test_encoded_strings_parse_back_property(user, password):
    p = Parser()
    p.feed(_login(user, password))
    events = []
    while (ev := p.next_event()) is not None:
        events.append(ev)
    assert events[-1] == c.Login("a", "LOGIN", user, password)


# ------------------------------------------------------ internal date


@pytest.mark.parametrize(
    "timestamp, offset, wire",
    [
        (0, 0, b'"01-Jan-1970 00:00:00 +0000"'),
        (0, -420, b'"31-Dec-1969 17:00:00 -0700"'),
        (837596665, -420, b'"17-Jul-1996 02:44:25 -0700"'),  # RFC 3501 8: 17-Jul-1996 02:44:25 -0700
        (837596665, 330, b'"17-Jul-1996 15:14:25 +0530"'),
        (837596665, -570, b'"17-Jul-1996 00:14:25 -0930"'),
        (837596665.9, 0, b'"17-Jul-1996 09:44:25 +0000"'),
        (1709164800, 0, b'"29-Feb-2024 00:00:00 +0000"'),
        (253402300799, 0, b'"31-Dec-9999 23:59:59 +0000"'),
    ],
)
def test_format_internal_date(timestamp, offset, wire):
    assert R.format_internal_date(timestamp, offset) == wire


@pytest.fixture
def tz(monkeypatch):
    def set_tz(name: str) -> None:
        monkeypatch.setenv("TZ", name)
        time.tzset()

    yield set_tz
    monkeypatch.undo()
    time.tzset()


def test_format_internal_date_uses_local_time_by_default(tz):
    tz("EST5")
    assert R.format_internal_date(0) == b'"31-Dec-1969 19:00:00 -0500"'
    tz("IST-5:30")
    assert R.format_internal_date(0) == b'"01-Jan-1970 05:30:00 +0530"'
    tz("UTC0")
    assert R.format_internal_date(837596665) == b'"17-Jul-1996 09:44:25 +0000"'


@pytest.mark.parametrize("zone", ["UTC0", "CET-1CEST,M3.5.0,M10.5.0/3", "EST5EDT,M3.2.0,M11.1.0", "IST-5:30",
                                  "NST3:30NDT,M3.2.0,M11.1.0", "LHST-10:30LHDT-11,M10.1.0,M4.1.0"])
def test_internal_date_formatter_equals_format_internal_date(tz, zone):
    """FETCH 1:* formats dates with InternalDateFormatter; it must say exactly
    what format_internal_date says, across zones, half-hour offsets and the
    seconds around each daylight-saving change."""
    import random

    tz(zone)
    rng = random.Random(zone)
    stamps = [rng.uniform(0, 2**31) for _ in range(5000)] + [rng.randrange(0, 2**31) for _ in range(5000)]
    for year_start in (1704067200, 1009843200):  # 2024 and 2002: find the changes hour by hour
        for h in range(366 * 24):
            t = year_start + h * 3600
            if time.localtime(t).tm_gmtoff != time.localtime(t + 3600).tm_gmtoff:
                stamps += [t + d + 0.5 for d in range(-2, 3602, 1)]
    fmt = R.InternalDateFormatter()
    for stamp in stamps:
        assert fmt(stamp) == R.format_internal_date(stamp), (zone, stamp)


@settings(max_examples=100, deadline=None, database=None)
@given(st.integers(-(10**9), 253402214400 - 86400), st.integers(-23 * 60 - 59, 23 * 60 + 59))
def test_internal_date_round_trips_through_append(timestamp, offset):
    wire = R.format_internal_date(timestamp, offset)
    p = Parser()
    p.feed(b"a APPEND INBOX " + wire + b" {1+}\r\nx\r\n")
    ev = p.next_event()
    assert isinstance(ev, c.Append), (wire, ev)
    assert ev.messages[0].date == timestamp


def test_repeated_lists_are_written_without_spaces():
    """RFC 3501: `"(" 1*address ")"` and `1*body SP media-subtype` have no SP between items."""
    envelope = [b"date", b"subj", [[b"A", None, b"a", b"x"], [None, None, b"b", b"y"]], None]
    assert R.encode(envelope) == b'("date" "subj" (("A" NIL "a" "x")(NIL NIL "b" "y")) NIL)'
    multipart = [[b"text", b"plain"], [b"text", b"html"], b"alternative", [b"boundary", b"b"]]
    assert R.encode(multipart) == b'(("text" "plain")("text" "html") "alternative" ("boundary" "b"))'
    # lists that follow a non-list are separated as usual (ENVELOPE's from, sender, ...)
    assert R.encode([None, [1], [2]]) == b"(NIL (1) (2))"


def test_translation_tables_hold_exactly_their_bytes():
    from imapd.protocol import responses as R

    atom_safe = [b for b in range(256) if 0x20 < b < 0x7F and chr(b) not in '(){%*"\\]']
    assert list(R._ATOM_CHARS) == atom_safe
    assert [R._CTL_TO_QUESTION[b] for b in range(256)] == [
        0x3F if b < 0x20 or b == 0x7F else b for b in range(256)]
