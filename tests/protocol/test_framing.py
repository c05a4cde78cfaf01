"""Framing: how the byte stream is cut into commands, literals and raw lines,
under the limits, however the bytes are split across reads."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imapd.protocol import commands as c
from imapd.protocol.parser import Limits, NeedLiteral, Parser, ProtocolError, RawLine

EVENT_TYPES = (c.Command, NeedLiteral, ProtocolError, RawLine)


def drain(p: Parser) -> list:
    out = []
    while (ev := p.next_event()) is not None:
        assert isinstance(ev, EVENT_TYPES), ev
        out.append(ev)
        assert len(out) < 100000
    return out


def events(data: bytes, **kw) -> list:
    p = Parser(**kw)
    p.feed(data)
    return drain(p)


def events_bytewise(data: bytes, **kw) -> list:
    p = Parser(**kw)
    out = []
    for i in range(len(data)):
        p.feed(data[i : i + 1])
        out += drain(p)
    return out


def events_chunked(data: bytes, cuts: list[int], **kw) -> list:
    p = Parser(**kw)
    out = []
    prev = 0
    for cut in sorted(set(cuts)) + [len(data)]:
        p.feed(data[prev:cut])
        prev = cut
        out += drain(p)
    return out


# ------------------------------------------------------------- line ends


def test_crlf_and_bare_lf():
    assert events(b"a NOOP\r\n") == [c.Simple("a", "NOOP")]
    assert events(b"a NOOP\n") == [c.Simple("a", "NOOP")]
    assert events(b"a LOGIN {4}\nuser pass\n") == [NeedLiteral("a", 4), c.Login("a", "LOGIN", b"user", b"pass")]


def test_crlf_split_across_feeds():
    p = Parser()
    p.feed(b"a NO")
    assert p.next_event() is None
    p.feed(b"OP\r")
    assert p.next_event() is None
    p.feed(b"\n")
    assert p.next_event() == c.Simple("a", "NOOP")
    assert p.next_event() is None


def test_lone_cr_is_not_a_line_end():
    assert events(b"a NOOP\rb NOOP\r\n") == [ProtocolError("a", "Unexpected extra arguments near '\rb NOOP'")]


def test_empty_lines_are_errors_and_do_not_stop_the_stream():
    assert events(b"\r\n\na NOOP\r\n") == [
        ProtocolError("*", "Empty command line"),
        ProtocolError("*", "Empty command line"),
        c.Simple("a", "NOOP"),
    ]


def test_pipelined_commands_in_one_feed():
    data = b"a NOOP\r\nb LOGIN {4+}\r\nuser pass\r\nc CAPABILITY\r\nd BOGUS\r\ne LOGOUT\r\n"
    assert events(data) == [
        c.Simple("a", "NOOP"),
        c.Login("b", "LOGIN", b"user", b"pass"),
        c.Simple("c", "CAPABILITY"),
        ProtocolError("d", "Unknown command BOGUS"),
        c.Simple("e", "LOGOUT"),
    ]


def test_nothing_buffered_means_no_event():
    p = Parser()
    assert p.next_event() is None
    p.feed(b"")
    assert p.next_event() is None


# --------------------------------------------------------------- literals


def test_need_literal_comes_before_the_data_and_the_command_after_it():
    p = Parser()
    p.feed(b"a LOGIN {4}\r\n")
    assert p.next_event() == NeedLiteral("a", 4)
    assert p.next_event() is None
    p.feed(b"us")
    assert p.next_event() is None
    p.feed(b"er")
    assert p.next_event() is None  # the command line goes on after the literal
    p.feed(b" {6}\r\n")
    assert p.next_event() == NeedLiteral("a", 6)
    p.feed(b"secret")
    assert p.next_event() is None
    p.feed(b"\r\n")
    assert p.next_event() == c.Login("a", "LOGIN", b"user", b"secret")


def test_literals_fed_one_byte_at_a_time():
    data = b"a LOGIN {4}\r\nuser {6}\r\nsecret\r\nb NOOP\r\n"
    p = Parser()
    seen = []
    for i in range(len(data)):
        p.feed(data[i : i + 1])
        for ev in drain(p):
            seen.append((i, ev))
    assert seen == [
        (data.index(b"{4}\r\n") + 4, NeedLiteral("a", 4)),
        (data.index(b"{6}\r\n") + 4, NeedLiteral("a", 6)),
        (data.index(b"secret\r\n") + 7, c.Login("a", "LOGIN", b"user", b"secret")),
        (len(data) - 1, c.Simple("b", "NOOP")),
    ]


def test_announcement_without_line_end_waits():
    p = Parser()
    p.feed(b"a LOGIN {5}")
    assert p.next_event() is None
    p.feed(b"\r\n")
    assert p.next_event() == NeedLiteral("a", 5)
    p.feed(b"abc")
    assert p.next_event() is None


def test_literal_data_is_never_read_as_commands():
    message = b"b DELETE INBOX\r\nc LOGIN {3}\r\n{5+}\r\n"
    data = b"a APPEND INBOX {%d}\r\n" % len(message) + message + b"\r\nd NOOP\r\n"
    evs = events(data)
    assert evs[0] == NeedLiteral("a", len(message))
    assert evs[1] == c.Append("a", "APPEND", "INBOX", [c.AppendMessage([], None, message)])
    assert evs[2:] == [c.Simple("d", "NOOP")]


def test_zero_length_literal():
    assert events(b"a LOGIN {0}\r\n {0+}\r\n\r\n") == [NeedLiteral("a", 0), c.Login("a", "LOGIN", b"", b"")]


def test_non_synchronizing_literal_has_no_continuation():
    assert events(b"a LOGIN {4+}\r\nuser {4+}\r\npass\r\n") == [c.Login("a", "LOGIN", b"user", b"pass")]


def test_non_synchronizing_literal_when_literal_plus_is_off():
    (ev,) = events(b"a LOGIN {4+}\r\nuser pass\r\n", literal_plus=False)[:1]
    assert ev.fatal and ev.tag == "a" and "Non-synchronizing literals are not enabled" in ev.text


def test_literal8_framing():
    assert events(b"a APPEND INBOX ~{3}\r\n\x00\r\n\r\n") == [
        NeedLiteral("a", 3),
        c.Append("a", "APPEND", "INBOX", [c.AppendMessage([], None, b"\x00\r\n", True)]),
    ]


def test_synchronizing_literal_over_the_limit_is_refused_with_no_toobig():
    limits = Limits(literal_size=10)
    evs = events(b"a LOGIN {11}\r\nb NOOP\r\n", limits=limits)
    assert evs == [ProtocolError("a", "Literal of 11 bytes exceeds the limit of 10", code="TOOBIG", status="NO"), c.Simple("b", "NOOP")]
    assert not evs[0].fatal


def test_literal_limit_counts_all_literals_of_a_command():
    limits = Limits(literal_size=10)
    evs = events(b"a LOGIN {6}\r\nuser12 {5}\r\nb NOOP\r\n", limits=limits)
    assert evs[0] == NeedLiteral("a", 6)
    assert evs[1].status == "NO" and evs[1].code == "TOOBIG" and "Literal of 5 bytes exceeds the limit of 10" in evs[1].text
    assert evs[2:] == [c.Simple("b", "NOOP")]


def test_append_has_its_own_literal_limit():
    limits = Limits(literal_size=10, append_size=100)
    assert events(b"a APPEND INBOX {50}\r\n", limits=limits) == [NeedLiteral("a", 50)]
    assert events(b"a append INBOX {101}\r\n", limits=limits)[0].code == "TOOBIG"
    assert events(b"a LOGIN {50}\r\n", limits=limits)[0].code == "TOOBIG"


def test_non_synchronizing_literal_over_the_limit_is_fatal():
    (ev, *_) = events(b"a LOGIN {11+}\r\n01234567890 x\r\n", limits=Limits(literal_size=10))
    assert ev.fatal and ev.tag == "a" and ev.code == "TOOBIG"
    assert "Literal of 11 bytes exceeds the limit of 10" in ev.text


def test_huge_literal_announcement():
    (ev,) = events(b"a LOGIN {99999999999999999999}\r\n")
    assert ev.tag == "a" and ev.code == "TOOBIG" and ev.status == "NO"


# ------------------------------------------------------------ line limits


def test_over_long_line_is_refused_and_the_next_command_parses():
    limits = Limits(line_length=100)
    data = b"a LOGIN " + b"x" * 200 + b" y\r\nb NOOP\r\n"
    for evs in (events(data, limits=limits), events_bytewise(data, limits=limits)):
        assert evs == [ProtocolError("a", "Command line too long", code="TOOBIG"), c.Simple("b", "NOOP")]


def test_line_exactly_at_the_limit_is_fine():
    line = b"a LOGIN u " + b"p" * 90
    assert len(line) == 100
    for evs in (events(line + b"\r\n", limits=Limits(line_length=100)), events_bytewise(line + b"\r\n", limits=Limits(line_length=100))):
        assert evs == [c.Login("a", "LOGIN", b"u", b"p" * 90)]
    assert events(line + b"p\r\n", limits=Limits(line_length=100))[0].code == "TOOBIG"


def test_over_long_line_memory_is_bounded():
    limits = Limits(line_length=1000)
    p = Parser(limits)
    p.feed(b"a SEARCH TEXT ")
    errors = []
    for _ in range(2000):  # 2 MB without a line end
        p.feed(b"x" * 1000)
        errors += drain(p)
        assert p.buffered <= 2000 and len(p._buf) <= 2000
    assert errors == [ProtocolError("a", "Command line too long", code="TOOBIG")]
    p.feed(b"xx\r\nb NOOP\r\n")
    assert drain(p) == [c.Simple("b", "NOOP")]


def test_over_long_continuation_line_after_a_literal():
    limits = Limits(line_length=50)
    data = b"a LOGIN {4}\r\nuser " + b"p" * 60 + b"\r\nb NOOP\r\n"
    for evs in (events(data, limits=limits), events_bytewise(data, limits=limits)):
        assert evs == [NeedLiteral("a", 4), ProtocolError("a", "Command line too long", code="TOOBIG"), c.Simple("b", "NOOP")]


def test_literal_ending_an_over_long_line_is_skipped():
    # the client sends a non-synchronizing literal right away: its bytes must not run as commands
    limits = Limits(line_length=50)
    data = b"a APPEND " + b"x" * 60 + b" {16+}\r\nc DELETE INBOX\r\n\r\nb NOOP\r\n"
    for evs in (events(data, limits=limits), events_bytewise(data, limits=limits)):
        assert evs == [ProtocolError("a", "Command line too long", code="TOOBIG"), c.Simple("b", "NOOP")]


def test_literals_of_a_skipped_command_are_skipped_one_after_the_other():
    limits = Limits(line_length=40)
    data = b"a LOGIN " + b"x" * 50 + b" {5+}\r\nd NOO {3+}\r\nb X\r\nc NOOP\r\n"
    assert events_bytewise(data, limits=limits) == [ProtocolError("a", "Command line too long", code="TOOBIG"), c.Simple("c", "NOOP")]


def test_synchronizing_literal_ending_an_over_long_line_is_not_waited_for():
    limits = Limits(line_length=50)
    data = b"a APPEND " + b"x" * 60 + b" {16}\r\nb NOOP\r\n"
    assert events(data, limits=limits) == [ProtocolError("a", "Command line too long", code="TOOBIG"), c.Simple("b", "NOOP")]


def test_too_big_literal_ending_an_over_long_line_is_fatal():
    limits = Limits(line_length=50, literal_size=10, append_size=10)
    (ev, *_) = events_bytewise(b"a APPEND " + b"x" * 60 + b" {11+}\r\n" + b"y" * 11, limits=limits)
    assert ev.code == "TOOBIG" and not ev.fatal
    (_, ev) = events(b"a APPEND " + b"x" * 60 + b" {11+}\r\n", limits=limits)[:2]
    assert ev.fatal and ev.tag == "a"


def test_over_long_tagless_line():
    (ev,) = events(b"x" * 200 + b"\r\n", limits=Limits(line_length=100))
    assert ev == ProtocolError("*", "Command line too long", code="TOOBIG")


# ----------------------------------------------------------------- raw mode


def test_raw_mode_returns_the_next_line_as_is():
    p = Parser()
    p.raw_mode = True
    p.feed(b"dGVzdAB0ZXN0AHRlc3Q=\r\na NOOP\r\n")
    assert p.next_event() == RawLine(b"dGVzdAB0ZXN0AHRlc3Q=")
    assert p.raw_mode is False
    assert p.next_event() == c.Simple("a", "NOOP")


def test_raw_mode_line_is_not_parsed():
    for line in (b"DONE", b"*", b"", b"a LOGIN {5}", b"\xff\x00 (", b"a NOOP {3+}"):
        p = Parser()
        p.raw_mode = True
        p.feed(line + b"\r\nb NOOP\n")
        assert drain(p) == [RawLine(line), c.Simple("b", "NOOP")]


def test_raw_mode_waits_for_the_whole_line():
    p = Parser()
    p.raw_mode = True
    p.feed(b"DO")
    assert p.next_event() is None
    p.feed(b"NE\r")
    assert p.next_event() is None
    p.feed(b"\n")
    assert p.next_event() == RawLine(b"DONE")


def test_over_long_raw_line():
    data = b"A" * 50 + b"\r\nb NOOP\r\n"
    for chunk in (len(data), 1):
        p = Parser(Limits(line_length=20))
        p.raw_mode = True
        seen = []
        for i in range(0, len(data), chunk):
            p.feed(data[i : i + chunk])
            seen += drain(p)
        assert seen == [ProtocolError("*", "Line too long", code="TOOBIG"), c.Simple("b", "NOOP")]
        assert p.raw_mode is False


# ------------------------------------------------------------ discard_input


def test_discard_input_forgets_pipelined_commands():
    p = Parser()
    p.feed(b"a STARTTLS\r\nb LOGIN user pass\r\nc LOG")
    assert p.next_event() == c.Simple("a", "STARTTLS")
    p.discard_input()
    assert p.next_event() is None and p.buffered == 0
    p.feed(b"d NOOP\r\n")
    assert p.next_event() == c.Simple("d", "NOOP")


def test_discard_input_in_the_middle_of_a_literal_or_a_skipped_line():
    p = Parser()
    p.feed(b"a LOGIN {10}\r\nus")
    assert p.next_event() == NeedLiteral("a", 10)
    p.discard_input()
    p.feed(b"b NOOP\r\n")
    assert p.next_event() == c.Simple("b", "NOOP")
    p = Parser(Limits(line_length=10))
    p.feed(b"a " + b"x" * 20)
    assert p.next_event().code == "TOOBIG"
    p.discard_input()
    p.feed(b"b NOOP\r\n")
    assert p.next_event() == c.Simple("b", "NOOP")


# ---------------------------------------------------------- flow control


def test_buffered_does_not_count_an_accepted_literal():
    # the session stops reading while `buffered` is large: an accepted literal
    # must not stop it, or a big APPEND would wait for ever
    p = Parser()
    p.feed(b"a APPEND INBOX {2000000}\r\n")
    assert p.next_event() == NeedLiteral("a", 2000000)
    assert p.buffered == 0
    p.feed(b"x" * 1500000)
    assert p.next_event() is None and p.buffered == 0
    p.feed(b"x" * 500000 + b"\r\nb NOOP\r\n")
    assert p.buffered == len(b"\r\nb NOOP\r\n")
    assert isinstance(p.next_event(), c.Append)
    assert p.next_event() == c.Simple("b", "NOOP")
    assert p.buffered == 0


def test_buffered_counts_pipelined_input():
    p = Parser()
    p.feed(b"a NOOP\r\n" * 100)
    assert p.buffered == 800
    p.next_event()
    assert p.buffered == 792


# ------------------------------------------------------------- properties

VALID_COMMANDS = [
    b"a NOOP\r\n",
    b"A001 LOGIN {4}\r\nuser {6+}\r\nsecret\r\n",
    b'a002 SELECT "INBOX" (CONDSTORE)\r\n',
    b"A654 FETCH 2:4,7,9:* (FLAGS BODY.PEEK[HEADER.FIELDS (DATE FROM)]<0.100> BINARY[1.2])\r\n",
    b'A282 SEARCH RETURN (MIN COUNT) CHARSET UTF-8 OR (FLAGGED SINCE 1-Feb-1994) NOT FROM "Smith" UID 1:* OR SEEN OR 1 2\r\n',
    b"a103 UID STORE 6,4,8 (UNCHANGEDSINCE 12121230045) +FLAGS.SILENT (\\Deleted $Junk)\r\n",
    b'A003 APPEND saved-messages (\\Seen) " 7-Feb-1994 22:43:04 -0800" {5}\r\nhello ~{3+}\r\nb\x00n\r\n',
    b'A02 LIST (SUBSCRIBED) "" ("INBOX" %) RETURN (STATUS (MESSAGES UNSEEN))\r\n',
    b"A042 STATUS blurdybloop (UIDNEXT MESSAGES)\r\n",
    b'a023 ID ("name" "sodr" "version" NIL)\r\n',
    b"a AUTHENTICATE PLAIN dGVzdAB0ZXN0AHRlc3Q=\r\n",
    b"t2 ENABLE CONDSTORE X-GOOD-IDEA\r\n",
    b"a UID MOVE 42:69 foo\r\n",
    b"a RENAME {3}\r\nfoo bar\r\n",
]
TAG_CHARS = b"!#$&'" + bytes(range(0x2C, 0x5C)) + bytes(range(0x5D, 0x7B)) + b"|}~"
TAGS = st.lists(st.sampled_from(list(TAG_CHARS)), min_size=1, max_size=12).map(bytes)
SMALL = Limits(line_length=60, literal_size=40, append_size=50, nesting_depth=4)


@st.composite
def mutated_commands(draw):
    data = bytearray(b"".join(draw(st.lists(st.sampled_from(VALID_COMMANDS), min_size=1, max_size=3))))
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.sampled_from(["insert", "delete", "replace", "duplicate"]))
        i = draw(st.integers(0, len(data)))
        if op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=4) | st.sampled_from([b"(", b")", b"{", b"}", b"{3}\r\n", b"{2+}\r\n", b" ", b"\r\n", b'"', b"\\", b"*", b"\x00", b"\xff"]))
        elif op == "delete":
            del data[i : i + draw(st.integers(1, 5))]
        elif op == "replace" and i < len(data):
            data[i] = draw(st.integers(0, 255))
        elif op == "duplicate":
            data[i:i] = data[max(0, i - 8) : i]
    return bytes(data)


FAST = settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.binary(max_size=300))
def test_random_bytes_never_raise(data):
    events(data)
    events(data, limits=SMALL, literal_plus=False)


@FAST
@given(mutated_commands())
def test_mutated_commands_never_raise(data):
    events(data)
    events(data, limits=SMALL)


def _until_fatal(evs: list) -> list:
    for i, ev in enumerate(evs):
        if isinstance(ev, ProtocolError) and ev.fatal:
            return evs[: i + 1]
    return evs


@FAST
@given(mutated_commands() | st.binary(max_size=200), st.lists(st.integers(0, 400), max_size=8))
def test_events_do_not_depend_on_how_the_input_is_split(data, cuts):
    whole = _until_fatal(events(data, limits=SMALL))
    assert _until_fatal(events_chunked(data, [x for x in cuts if x <= len(data)], limits=SMALL)) == whole
    assert _until_fatal(events_bytewise(data, limits=SMALL)) == whole


@FAST
@given(
    TAGS,
    st.binary(max_size=120).map(lambda b: b.replace(b"\n", b"")),
)
def test_errors_for_a_tagged_line_carry_its_tag(tag, rest):
    line = tag + b" " + rest + b"\r\n"
    for limits in (Limits(), SMALL):
        for ev in events(line, limits=limits):
            assert ev.tag == tag.decode(), (line, ev)


@FAST
@given(st.sampled_from(VALID_COMMANDS), TAGS)
def test_mutated_valid_command_errors_carry_the_tag(command, tag):
    # replace the tag and cut the command anywhere after it: every error keeps the tag
    body = command.split(b" ", 1)[1]
    for end in range(0, len(body), 3):
        line = tag + b" " + body[:end].replace(b"\n", b"") + b"\r\n"
        for ev in events(line):
            if isinstance(ev, (ProtocolError, NeedLiteral)):
                assert ev.tag == tag.decode(), (line, ev)


def test_valid_command_corpus_parses():
    for data in VALID_COMMANDS:
        evs = [e for e in events(data) if not isinstance(e, NeedLiteral)]
        assert len(evs) == 1 and isinstance(evs[0], c.Command), (data, evs)


@pytest.mark.parametrize("data", VALID_COMMANDS)
def test_valid_commands_bytewise_equal_whole(data):
    assert events_bytewise(data) == events(data)
