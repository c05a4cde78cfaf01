"""The command grammar: one framed command in, one typed command (or error) out.

Examples marked RFC 3501 / RFC 9051 (and the extension RFCs) are the client
lines of the RFCs' own examples.
"""

from __future__ import annotations

import calendar
from datetime import datetime

import pytest

from imapd.protocol import commands as c
from imapd.protocol import states
from imapd.protocol.parser import Limits, NeedLiteral, Parser, ProtocolError
from imapd.protocol.seqset import STAR, SeqSet


# ------------------------------------------------------------------ helpers


def events(data: bytes, **kw) -> list:
    p = Parser(**kw)
    p.feed(data)
    out = []
    while (ev := p.next_event()) is not None:
        out.append(ev)
    return out


def parse(line: bytes, **kw):
    """The one event (other than NeedLiteral) that `line` + CRLF produces."""
    evs = [e for e in events(line + b"\r\n", **kw) if not isinstance(e, NeedLiteral)]
    assert len(evs) == 1, evs
    return evs[0]


def cmd(line: bytes, cls: type = c.Command, **kw):
    ev = parse(line, **kw)
    assert isinstance(ev, cls), ev
    return ev


def err(line: bytes, *fragments: str, tag: str = "a", **kw) -> ProtocolError:
    """Assert `line` is rejected, tagged `tag`, with every fragment in the message."""
    ev = parse(line, **kw)
    assert isinstance(ev, ProtocolError), ev
    assert ev.tag == tag, ev
    assert not ev.fatal, ev
    for f in fragments:
        assert f in ev.text, (f, ev.text)
    return ev


def seq(text: str) -> SeqSet:
    return SeqSet.parse(text)


def ts(text: str) -> int:
    return calendar.timegm(datetime.strptime(text, "%d-%b-%Y %H:%M:%S %z").utctimetuple())


# --------------------------------------------------------------------- tags


@pytest.mark.parametrize("tag", ["a", "A001", "tag.1", "a]", "x}y", "~t", "!#$&'", "1", "a-b_c:d;e<f>g?h@i[j^k`l|m"])
def test_valid_tags(tag):
    ev = cmd(tag.encode() + b" NOOP", c.Simple)
    assert ev.tag == tag and ev.name == "NOOP"


@pytest.mark.parametrize("line", [b"+ NOOP", b"* NOOP", b'"a" NOOP', b"(a NOOP", b"%a NOOP", b"\\a NOOP", b"{a NOOP", b" a NOOP"])
def test_invalid_tag(line):
    err(line, "Missing or invalid tag", tag="*")


@pytest.mark.parametrize("line", [b"a+b NOOP", b"a*b NOOP", b"a%b NOOP", b'a"b NOOP', b"a\tNOOP"])
def test_tag_followed_by_a_special(line):
    err(line, "Expected a space after the tag", tag="*")


def test_tag_never_contains_plus_so_a_reply_cannot_look_like_a_continuation():
    ev = parse(b"+a NOOP")
    assert isinstance(ev, ProtocolError) and ev.tag == "*"


def test_missing_command_after_tag():
    err(b"a", "Missing command name")
    err(b"a ", "Expected command name", "trailing space")


def test_empty_line():
    err(b"", "Empty command line", tag="*")


def test_missing_tag_reads_the_command_name_as_tag():
    # "FETCH 1 FLAGS" without a tag: FETCH is a valid tag, 1 no command
    err(b"FETCH 1 FLAGS", "Unknown command 1", tag="FETCH")


def test_unknown_command():
    err(b"A442 XPIG-LATIN", "Unknown command XPIG-LATIN", tag="A442")  # RFC 3501 6.1.1
    err(b"a NOOP2", "Unknown command NOOP2")
    err(b"a (", "Expected command name", "near '('")


# ----------------------------------------------------- commands, any state


@pytest.mark.parametrize(
    "name", ["CAPABILITY", "NOOP", "LOGOUT", "STARTTLS", "CHECK", "CLOSE", "UNSELECT", "EXPUNGE", "IDLE", "NAMESPACE"]
)
def test_simple_commands(name):
    ev = cmd(b"a002 " + name.lower().encode(), c.Simple)
    assert (ev.tag, ev.name, ev.uid) == ("a002", name, False)


def test_simple_command_with_extra_arguments():
    err(b"a NOOP now", "Unexpected extra arguments", "near ' now'")
    err(b"a LOGOUT (x)", "Unexpected extra arguments")


def test_trailing_space():
    err(b"a NOOP ", "Trailing space")
    err(b"a SELECT INBOX ", "Expected '('", "trailing space")  # SELECT's optional parameters follow a space
    err(b"a FETCH 1 FLAGS ", "trailing space")
    err(b"a SEARCH ALL ", "Expected search key", "trailing space")


def test_rfc3501_sample_session_lines():  # RFC 3501 section 8
    assert cmd(b"a001 login mrc secret", c.Login).password == b"secret"
    assert cmd(b"a002 select inbox", c.MailboxCommand).mailbox == "inbox"
    full = cmd(b"a003 fetch 12 full", c.Fetch)
    assert [i.name for i in full.items] == ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"]
    hdr = cmd(b"a004 fetch 12 body[header]", c.Fetch)
    assert hdr.items == [c.FetchItem("BODY[]", c.Section((), "HEADER"))]
    st = cmd(b"a005 store 12 +flags \\deleted", c.Store)
    assert (st.mode, st.flags, st.silent) == ("add", ["\\deleted"], False)
    assert cmd(b"a006 logout", c.Simple).name == "LOGOUT"


# ------------------------------------------------------------------- LOGIN


def test_login_atoms():  # RFC 3501 6.2.3
    ev = cmd(b"a001 LOGIN SMITH SESAME", c.Login)
    assert (ev.tag, ev.name, ev.user, ev.password) == ("a001", "LOGIN", b"SMITH", b"SESAME")


def test_login_quoted_with_escapes():
    ev = cmd(b'a LOGIN "fred smith" "pa\\"ss\\\\word"', c.Login)
    assert ev.user == b"fred smith"
    assert ev.password == b'pa"ss\\word'


def test_login_empty_quoted_and_8bit_quoted():
    ev = cmd(b'a LOGIN "" "p\xc3\xa4ss"', c.Login)
    assert ev.user == b"" and ev.password == "päss".encode()


def test_login_atom_may_contain_right_bracket_and_tilde():
    ev = cmd(b"a LOGIN ~user pass]word", c.Login)
    assert ev.user == b"~user" and ev.password == b"pass]word"


def test_login_with_literals():
    evs = events(b"a LOGIN {4}\r\nuser {6}\r\nsecret\r\n")
    assert evs[0] == NeedLiteral("a", 4)
    assert evs[1] == NeedLiteral("a", 6)
    assert evs[2] == c.Login("a", "LOGIN", b"user", b"secret")


def test_login_with_literal_holding_any_octets():
    ev = cmd(b'a LOGIN {11}\r\nu "s\r\ne{1}r {3+}\r\n\xff\x01"', c.Login)
    assert ev.user == b'u "s\r\ne{1}r' and ev.password == b'\xff\x01"'


def test_login_errors():
    err(b"a LOGIN", "Missing user name")
    err(b"a LOGIN user", "Missing password")
    err(b"a LOGIN user ", "Expected password", "trailing space")
    err(b"a LOGIN user pass extra", "Unexpected extra arguments")
    err(b'a LOGIN "user pass', "Invalid quoted user name")
    err(b'a LOGIN "us\\er" pass', "Invalid quoted user name")  # only \" and \\ may be escaped
    err(b"a LOGIN (user) pass", "Expected user name", "near '(user) pass'")
    err(b"a LOGIN us%er pass", "Expected a space", "near '%er pass'")


def test_login_literal8_is_refused():
    err(b"a LOGIN ~{4}\r\nuser pass", "literal8", "user name")


def test_login_literal_with_nul_is_refused():
    err(b"a LOGIN {3}\r\na\x00b pass", "NUL octet in literal for user name")


# ------------------------------------------------------------ AUTHENTICATE


def test_authenticate():  # RFC 3501 6.2.2
    ev = cmd(b"A001 AUTHENTICATE GSSAPI", c.Authenticate)
    assert (ev.mechanism, ev.initial) == ("GSSAPI", None)


def test_authenticate_sasl_ir():  # RFC 4959
    ev = cmd(b"a001 authenticate plain dGVzdAB0ZXN0AHRlc3Q=", c.Authenticate)
    assert (ev.mechanism, ev.initial) == ("PLAIN", b"dGVzdAB0ZXN0AHRlc3Q=")
    assert cmd(b"a AUTHENTICATE EXTERNAL =", c.Authenticate).initial == b"="
    assert cmd(b"a AUTHENTICATE SCRAM-SHA-256 biwsbj11c2VyLHI9ck9wck5HZndFYmVSV2diTkVrcU8=", c.Authenticate).mechanism == "SCRAM-SHA-256"


def test_authenticate_errors():
    err(b"a AUTHENTICATE", "Missing SASL mechanism")
    err(b"a AUTHENTICATE PLAIN ", "Expected base64 initial response")
    err(b"a AUTHENTICATE PLAIN abc!", "Unexpected extra arguments", "near '!'")
    err(b"a AUTHENTICATE PLAIN abc= x", "Unexpected extra arguments")


# ----------------------------------------------------------------- ENABLE, ID


def test_enable():  # RFC 5161
    ev = cmd(b"t2 ENABLE CONDSTORE X-GOOD-IDEA", c.Enable)
    assert ev.capabilities == ["CONDSTORE", "X-GOOD-IDEA"]
    assert cmd(b"a enable utf8=accept", c.Enable).capabilities == ["UTF8=ACCEPT"]


def test_enable_errors():
    err(b"a ENABLE", "ENABLE needs at least one capability")
    err(b"a ENABLE (QRESYNC)", "Expected capability near '(QRESYNC)'")


def test_id():  # RFC 2971
    ev = cmd(b'a023 ID ("name" "sodr" "version" "19.34" "vendor" "Pink Floyd Music Limited")', c.Id)
    assert ev.params == {"name": "sodr", "version": "19.34", "vendor": "Pink Floyd Music Limited"}
    assert cmd(b"a023 ID NIL", c.Id).params is None
    assert cmd(b'a ID ("name" NIL "os" {5}\r\nLinux)', c.Id).params == {"name": None, "os": "Linux"}
    assert cmd(b"a ID ()", c.Id).params == {}


def test_id_is_bounded():
    pairs = b" ".join(b'"k%d" "%s"' % (i, b"v" * 1500) for i in range(40))
    ev = cmd(b"a ID (" + pairs + b")", c.Id)
    assert len(ev.params) == 30
    assert all(len(v) == 1024 for v in ev.params.values())


def test_id_errors():
    err(b"a ID", "Missing ID parameter list")
    err(b'a ID ("name")', "Expected a space near ')'")
    err(b'a ID ("name"', "Missing ID field value")
    err(b'a ID ("name" "x"', "Expected ')' to end ID list")
    err(b"a ID (name x)", "Expected ID field name")


# ------------------------------------------------------- mailbox commands


@pytest.mark.parametrize(
    "line, name, mailbox",
    [
        (b"A142 SELECT INBOX", "SELECT", "INBOX"),  # RFC 3501 6.3.1
        (b"A932 EXAMINE blurdybloop", "EXAMINE", "blurdybloop"),
        (b"A003 CREATE owatagusiam/", "CREATE", "owatagusiam/"),
        (b"A004 CREATE owatagusiam/blurdybloop", "CREATE", "owatagusiam/blurdybloop"),
        (b"A683 DELETE foo", "DELETE", "foo"),
        (b"A684 DELETE foo/bar", "DELETE", "foo/bar"),
        (b"A002 SUBSCRIBE #news.comp.mail.mime", "SUBSCRIBE", "#news.comp.mail.mime"),
        (b"A002 UNSUBSCRIBE #news.comp.mail.mime", "UNSUBSCRIBE", "#news.comp.mail.mime"),
        (b'a SELECT "Sent Items"', "SELECT", "Sent Items"),
        (b"a SELECT ~/Mail/foo", "SELECT", "~/Mail/foo"),
        (b"a SELECT &AMk-t&AOk-", "SELECT", "&AMk-t&AOk-"),
        (b"a SELECT {5}\r\nIN\"OX", "SELECT", 'IN"OX'),
        (b'a SELECT "Entw\xc3\xbcrfe"', "SELECT", "Entwürfe"),  # RFC 9051 UTF8=ACCEPT: UTF-8 quoted
    ],
)
def test_mailbox_commands(line, name, mailbox):
    ev = cmd(line, c.MailboxCommand)
    assert (ev.name, ev.mailbox, ev.params) == (name, mailbox, [])


def test_mailbox_name_8bit_invalid_utf8_survives_for_the_handler():
    ev = cmd(b'a SELECT "\xff"', c.MailboxCommand)
    assert ev.mailbox.encode("utf-8", "surrogateescape") == b"\xff"


def test_select_parameters():  # RFC 7162
    assert cmd(b"A01 SELECT INBOX (CONDSTORE)", c.MailboxCommand).params == ["CONDSTORE"]
    ev = cmd(b"A02 SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))", c.MailboxCommand)
    assert ev.params == ["QRESYNC", ["67890007", "20050715194045000", "41,43:211,214:541"]]
    ev = cmd(b"A03 EXAMINE INBOX (QRESYNC (67890007 90060115194045000 1:29997 (5000,7500,9000,9990:9999 15000,22500,27000,29970,29997:29999)))", c.MailboxCommand)
    assert ev.params[1][3] == ["5000,7500,9000,9990:9999", "15000,22500,27000,29970,29997:29999"]


def test_create_special_use():  # RFC 6154
    ev = cmd(b"t1 CREATE MyDrafts (USE (\\Drafts))", c.MailboxCommand)
    assert ev.params == ["USE", ["\\Drafts"]]


def test_mailbox_command_errors():
    err(b"a SELECT", "Missing mailbox name")
    err(b"a SELECT (INBOX)", "Expected mailbox name", "near '(INBOX)'")
    err(b"a DELETE foo (x)", "Unexpected extra arguments")
    err(b"a SELECT INBOX (CONDSTORE", "Expected ')' to end list")
    err(b"a SELECT INBOX CONDSTORE", "Expected '('")
    err(b"a SELECT Entw\xc3\xbcrfe", "8-bit characters need a quoted string or a literal")
    err(b"a SELECT caf\xc3\xa9 x", "Unexpected extra arguments", "8-bit")


def test_rename():  # RFC 3501 6.3.5
    ev = cmd(b"A682 RENAME blurdybloop sarasoop", c.Rename)
    assert (ev.old, ev.new) == ("blurdybloop", "sarasoop")
    assert cmd(b'a RENAME "a b" {3}\r\nc d', c.Rename).new == "c d"
    err(b"a RENAME foo", "Missing new mailbox name")
    err(b"a RENAME", "Missing mailbox name")


# ------------------------------------------------------------------ LIST


@pytest.mark.parametrize(
    "line, reference, patterns",
    [
        (b'A101 LIST "" ""', "", [""]),  # RFC 3501 6.3.8
        (b'A102 LIST #news.comp.mail.misc ""', "#news.comp.mail.misc", [""]),
        (b'A103 LIST /usr/staff/jones ""', "/usr/staff/jones", [""]),
        (b"A202 LIST ~/Mail/ %", "~/Mail/", ["%"]),
        (b'A682 LIST "" *', "", ["*"]),
        (b'a LIST "" INBOX.*', "", ["INBOX.*"]),
        (b'a LIST "" foo]bar%', "", ["foo]bar%"]),
        (b'a LIST "" {3}\r\na*b', "", ["a*b"]),
        (b'A01 LIST "" ("INBOX" "Drafts" Sent/%)', "", ["INBOX", "Drafts", "Sent/%"]),  # RFC 5258
    ],
)
def test_list(line, reference, patterns):
    ev = cmd(line, c.List)
    assert (ev.name, ev.reference, ev.patterns, ev.select_options, ev.return_options) == ("LIST", reference, patterns, [], [])


def test_list_extended():  # RFC 5258 / RFC 9051 6.3.9
    ev = cmd(b'A02 LIST (SUBSCRIBED) "" "*"', c.List)
    assert ev.select_options == ["SUBSCRIBED"]
    ev = cmd(b'A03 LIST () "" "%" RETURN (CHILDREN)', c.List)
    assert (ev.select_options, ev.return_options) == ([], ["CHILDREN"])
    ev = cmd(b'G2 list (subscribed recursivematch remote) "" "%" return (children special-use)', c.List)
    assert ev.select_options == ["SUBSCRIBED", "RECURSIVEMATCH", "REMOTE"]
    assert ev.return_options == ["children", "special-use"]  # kept as sent
    ev = cmd(b'A04 LIST "" % RETURN (STATUS (MESSAGES UNSEEN))', c.List)  # RFC 5819
    assert ev.return_options == ["STATUS", ["MESSAGES", "UNSEEN"]]


def test_lsub():  # RFC 3501 6.3.9
    ev = cmd(b'A002 LSUB "#news." "comp.mail.*"', c.List)
    assert (ev.name, ev.reference, ev.patterns) == ("LSUB", "#news.", ["comp.mail.*"])
    err(b'a LSUB (SUBSCRIBED) "" *', "Expected mailbox name")
    err(b'a LSUB "" ("a" "b")', "Expected mailbox pattern")
    err(b'a LSUB "" * RETURN (CHILDREN)', "Unexpected extra arguments")


def test_list_errors():
    err(b"a LIST", "Missing reference name")
    err(b'a LIST ""', "Missing mailbox pattern")
    err(b'a LIST "" ()', "Expected mailbox pattern", "near ')'")
    err(b'a LIST "" ("a" "b"', "Expected ')' to end pattern list")
    err(b'a LIST "" * (CHILDREN)', "Expected RETURN")
    err(b'a LIST "" * RETURN', "Missing RETURN options")
    err(b'a LIST "" * RETURN CHILDREN', "Expected '('")
    err(b'a LIST (SUBSCRIBED "" *', "Expected ')' to end list")


# ---------------------------------------------------------------- STATUS


def test_status():  # RFC 3501 6.3.10
    ev = cmd(b"A042 STATUS blurdybloop (UIDNEXT MESSAGES)", c.Status)
    assert (ev.mailbox, ev.items) == ("blurdybloop", ["UIDNEXT", "MESSAGES"])
    ev = cmd(b"a status INBOX (messages recent uidnext uidvalidity unseen size highestmodseq deleted appendlimit mailboxid)", c.Status)
    assert ev.items == ["MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "SIZE", "HIGHESTMODSEQ", "DELETED", "APPENDLIMIT", "MAILBOXID"]


def test_status_errors():
    err(b"a STATUS INBOX", "Missing status items")
    err(b"a STATUS INBOX ()", "Expected status item", "near ')'")
    err(b"a STATUS INBOX (MESSAGES BOGUS)", "Unknown STATUS item BOGUS")
    err(b"a STATUS INBOX MESSAGES", "Expected '(' to start status items")
    err(b"a STATUS INBOX (MESSAGES", "Expected ')' to end status items")


# ---------------------------------------------------------------- APPEND


MESSAGE = (
    b"Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)\r\n"
    b"From: Fred Foobar <foobar@Blurdybloop.example>\r\n"
    b"Subject: afternoon meeting\r\n"
    b"To: mooch@owatagu.siam.edu.example\r\n"
    b"Message-Id: <B27397-0100000@Blurdybloop.example>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n"
    b"\r\n"
    b"Hello Joe, do you think we can meet at 3:30 tomorrow?\r\n"
)


def test_append():  # RFC 3501 6.3.11
    data = b"A003 APPEND saved-messages (\\Seen) {%d}\r\n" % len(MESSAGE) + MESSAGE + b"\r\n"
    evs = events(data)
    assert evs[0] == NeedLiteral("A003", len(MESSAGE))
    ev = evs[1]
    assert isinstance(ev, c.Append) and len(evs) == 2
    assert ev.mailbox == "saved-messages"
    assert ev.messages == [c.AppendMessage(["\\Seen"], None, MESSAGE, False)]


def test_append_with_date_time():
    ev = cmd(b'a APPEND INBOX (\\Seen \\Draft $Forwarded) "17-Jul-1996 02:44:25 -0700" {5}\r\nhello', c.Append)
    (m,) = ev.messages
    assert m.flags == ["\\Seen", "\\Draft", "$Forwarded"]
    assert m.date == ts("17-Jul-1996 02:44:25 -0700")
    assert m.data == b"hello"


def test_append_date_only_and_no_flags():
    ev = cmd(b'a APPEND INBOX " 7-Feb-1994 22:43:04 -0800" {2}\r\nhi', c.Append)
    assert ev.messages[0].flags == [] and ev.messages[0].date == ts("07-Feb-1994 22:43:04 -0800")
    assert cmd(b"a APPEND INBOX () {2}\r\nhi", c.Append).messages[0].flags == []


def test_multiappend():  # RFC 3502
    line = b'A003 APPEND saved-messages (\\Seen) {5}\r\nfirst (\\Seen) " 7-Feb-1994 22:43:04 -0800" {6+}\r\nsecond {5}\r\nthird'
    evs = events(line + b"\r\n")
    assert [e for e in evs if isinstance(e, NeedLiteral)] == [NeedLiteral("A003", 5), NeedLiteral("A003", 5)]
    ev = evs[-1]
    assert [m.data for m in ev.messages] == [b"first", b"second", b"third"]
    assert [m.flags for m in ev.messages] == [["\\Seen"], ["\\Seen"], []]
    assert ev.messages[1].date == ts("07-Feb-1994 22:43:04 -0800") and ev.messages[2].date is None


def test_append_literal8():  # RFC 3516
    ev = cmd(b"a APPEND INBOX ~{5}\r\nhe\x00lo", c.Append)
    assert ev.messages == [c.AppendMessage([], None, b"he\x00lo", True)]
    ev = cmd(b"a APPEND INBOX (\\Seen) ~{3+}\r\n\x00\x01\x02", c.Append)
    assert ev.messages[0].binary and ev.messages[0].data == b"\x00\x01\x02"


def test_append_literal8_gets_a_continuation():
    evs = events(b"a APPEND INBOX ~{3}\r\n")
    assert evs == [NeedLiteral("a", 3)]


def test_append_date_times():
    for text in ["01-Jan-1970 00:00:00 +0000", "31-Dec-2099 23:59:59 +1400", "29-Feb-2024 12:00:00 -0930", "01-jan-2000 00:00:00 +0530"]:
        ev = cmd(b'a APPEND INBOX "%s" {1}\r\nx' % text.encode(), c.Append)
        assert ev.messages[0].date == ts(text.replace("jan", "Jan")), text
    # a leap second is accepted and read as :59
    ev = cmd(b'a APPEND INBOX "30-Jun-2015 23:59:60 +0000" {1}\r\nx', c.Append)
    assert ev.messages[0].date == ts("30-Jun-2015 23:59:59 +0000")


@pytest.mark.parametrize(
    "date, fragment",
    [
        (b'"17-Jul-1996 24:00:00 -0700"', "Invalid time in date-time"),
        (b'"17-Jul-1996 02:60:00 -0700"', "Invalid time in date-time"),
        (b'"17-Jul-1996 02:44:25 -0760"', "Invalid time zone"),
        (b'"30-Feb-1996 02:44:25 -0700"', "Invalid date"),
        (b'"29-Feb-2023 02:44:25 -0700"', "Invalid date"),
        (b'"00-Jan-2023 02:44:25 -0700"', "Invalid date"),
        (b'"17-Jux-1996 02:44:25 -0700"', "Expected date-time"),
        (b'"17-Jul-96 02:44:25 -0700"', "Expected date-time"),
        (b'"17-Jul-1996 02:44:25"', "Expected date-time"),
        (b'"17-Jul-1996 2:44:25 -0700"', "Expected date-time"),
        (b'"17-Jul-1996 02:44:25 0700"', "Expected date-time"),
    ],
)
def test_append_bad_date_time(date, fragment):
    err(b"a APPEND INBOX " + date + b" {1}\r\nx", fragment)


def test_append_errors():
    err(b"a APPEND", "Missing mailbox name")
    err(b"a APPEND INBOX", "Missing message literal")
    err(b"a APPEND INBOX (\\Seen)", "Missing message literal")
    err(b'a APPEND INBOX "hello"', "Expected date-time")
    err(b"a APPEND INBOX hello", "Expected message literal", "near 'hello'")
    err(b"a APPEND INBOX (\\Seen {1}\r\nx", "Expected flag near '{1}'")
    err(b"a APPEND INBOX (\\Seen", "Expected ')' to end flag list")
    err(b"a APPEND INBOX {3}\r\na\x00b", "NUL octet in message literal")
    err(b"a APPEND INBOX {1}\r\nx extra", "Expected message literal", "near 'extra'")
    err(b"a APPEND INBOX {1}\r\nx ", "Expected message literal", "trailing space")


# ---------------------------------------------------------- sequence sets


@pytest.mark.parametrize(
    "text, ranges, saved",
    [
        ("1", ((1, 1),), False),
        ("*", ((STAR, STAR),), False),
        ("1:*", ((1, STAR),), False),
        ("*:4", ((STAR, 4),), False),
        ("4:2", ((4, 2),), False),
        ("2,4:7,9,12:*", ((2, 2), (4, 7), (9, 9), (12, STAR)), False),
        ("4294967295", ((4294967295, 4294967295),), False),
        ("$", (), True),
    ],
)
def test_fetch_sequence_sets(text, ranges, saved):
    ev = cmd(b"a FETCH %s FLAGS" % text.encode(), c.Fetch)
    assert ev.seqset.ranges == ranges and ev.seqset.saved == saved


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("0", "0 is not a valid message number"),
        ("1:0", "0 is not a valid message number"),
        ("0:*", "0 is not a valid message number"),
        ("4294967296", "number 4294967296 is too large"),
        ("1:4294967296", "too large"),
        ("99999999999999999999999999", "too large"),
        ("1,,2", "empty number"),
        ("1,", "empty number"),
        ("1:", "empty number"),
        (":1", "empty number"),
        ("1:2:3", "bad number '2:3'"),
        ("$,1", "bad number '$'"),
        ("1:$", "bad number '$'"),
        ("01", "leading zero"),
        ("**", "bad number '**'"),
    ],
)
def test_bad_sequence_sets(text, fragment):
    err(b"a FETCH %s FLAGS" % text.encode(), "Invalid sequence set", fragment)


def test_sequence_set_missing_or_garbage():
    err(b"a FETCH", "Missing sequence set")
    err(b"a FETCH FLAGS", "Expected sequence set", "near 'FLAGS'")
    err(b"a FETCH -1 FLAGS", "Expected sequence set")
    err(b"a FETCH 1", "Missing fetch attributes")


def test_huge_sequence_number_message_is_short():
    ev = err(b"a FETCH " + b"9" * 60000 + b" FLAGS", "too large")
    assert len(ev.text) < 200


# ------------------------------------------------------------------ FETCH


def test_fetch_rfc_example():  # RFC 3501 / RFC 9051 6.4.5
    ev = cmd(b"A654 FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)])", c.Fetch)
    assert ev.seqset == seq("2:4")
    assert ev.items == [c.FetchItem("FLAGS"), c.FetchItem("BODY[]", c.Section((), "HEADER.FIELDS", ("DATE", "FROM")))]
    assert (ev.uid, ev.modifiers) == (False, {})


@pytest.mark.parametrize(
    "macro, names",
    [
        ("ALL", ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"]),
        ("FAST", ["FLAGS", "INTERNALDATE", "RFC822.SIZE"]),
        ("FULL", ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"]),
    ],
)
def test_fetch_macros(macro, names):
    for spelling in (macro, macro.lower()):
        ev = cmd(b"a FETCH 1:* " + spelling.encode(), c.Fetch)
        assert [i.name for i in ev.items] == names
    err(b"a FETCH 1 (FLAGS %s)" % macro.encode(), f"{macro} must be used alone")


@pytest.mark.parametrize(
    "name",
    ["ENVELOPE", "FLAGS", "INTERNALDATE", "RFC822", "RFC822.HEADER", "RFC822.SIZE", "RFC822.TEXT", "BODY", "BODYSTRUCTURE", "UID", "MODSEQ", "EMAILID", "THREADID", "SAVEDATE"],
)
def test_fetch_simple_attributes(name):
    assert cmd(b"a FETCH 1 " + name.encode(), c.Fetch).items == [c.FetchItem(name)]
    assert cmd(b"a FETCH 1 (" + name.lower().encode() + b")", c.Fetch).items == [c.FetchItem(name)]


def test_fetch_all_simple_attributes_in_one_list():
    names = ["ENVELOPE", "FLAGS", "INTERNALDATE", "RFC822", "RFC822.HEADER", "RFC822.SIZE", "RFC822.TEXT", "BODY", "BODYSTRUCTURE", "UID"]
    ev = cmd(b"a FETCH 1 (" + " ".join(names).encode() + b")", c.Fetch)
    assert [i.name for i in ev.items] == names


@pytest.mark.parametrize(
    "att, item",
    [
        ("BODY[]", c.FetchItem("BODY[]", c.Section())),
        ("BODY.PEEK[]", c.FetchItem("BODY[]", c.Section(), peek=True)),
        ("BODY[HEADER]", c.FetchItem("BODY[]", c.Section((), "HEADER"))),
        ("body.peek[header]", c.FetchItem("BODY[]", c.Section((), "HEADER"), peek=True)),
        ("BODY[TEXT]", c.FetchItem("BODY[]", c.Section((), "TEXT"))),
        ("BODY[1]", c.FetchItem("BODY[]", c.Section((1,)))),
        ("BODY[1.2.3]", c.FetchItem("BODY[]", c.Section((1, 2, 3)))),
        ("BODY[1.MIME]", c.FetchItem("BODY[]", c.Section((1,), "MIME"))),
        ("BODY[4.2.HEADER]", c.FetchItem("BODY[]", c.Section((4, 2), "HEADER"))),
        ("BODY[3.TEXT]", c.FetchItem("BODY[]", c.Section((3,), "TEXT"))),
        ("BODY[4.2.2.1.MIME]", c.FetchItem("BODY[]", c.Section((4, 2, 2, 1), "MIME"))),
        ("BODY[HEADER.FIELDS (date From x-Custom)]", c.FetchItem("BODY[]", c.Section((), "HEADER.FIELDS", ("DATE", "FROM", "X-CUSTOM")))),
        ("BODY.PEEK[HEADER.FIELDS.NOT (Received)]", c.FetchItem("BODY[]", c.Section((), "HEADER.FIELDS.NOT", ("RECEIVED",)), peek=True)),
        ("BODY[2.HEADER.FIELDS (\"Subject\" {2}\r\nTo)]", c.FetchItem("BODY[]", c.Section((2,), "HEADER.FIELDS", ("SUBJECT", "TO")))),
        ("BODY[]<0.2048>", c.FetchItem("BODY[]", c.Section(), (0, 2048))),
        ("BODY.PEEK[1.TEXT]<100.4294967295>", c.FetchItem("BODY[]", c.Section((1,), "TEXT"), (100, 4294967295), peek=True)),
        ("BODY[0]", c.FetchItem("BODY[]", c.Section((), "HEADER"))),  # obsolete IMAP2bis form
        ("BODY[1.0]", c.FetchItem("BODY[]", c.Section((1,), "HEADER"))),
        ("BINARY[]", c.FetchItem("BINARY[]", c.Section())),
        ("BINARY[1]", c.FetchItem("BINARY[]", c.Section((1,)))),  # RFC 3516
        ("BINARY.PEEK[1.2]<0.100>", c.FetchItem("BINARY[]", c.Section((1, 2)), (0, 100), peek=True)),
        ("BINARY.SIZE[1]", c.FetchItem("BINARY.SIZE[]", c.Section((1,)))),
        ("binary.size[]", c.FetchItem("BINARY.SIZE[]", c.Section())),
    ],
)
def test_fetch_sections(att, item):
    ev = cmd(b"a FETCH 1 " + att.encode(), c.Fetch)
    assert ev.items == [item]
    ev = cmd(b"a UID FETCH 1 (UID " + att.encode() + b" FLAGS)", c.Fetch)
    assert ev.items == [c.FetchItem("UID"), item, c.FetchItem("FLAGS")]


@pytest.mark.parametrize(
    "att, fragment",
    [
        ("BODY[1.]", "Expected part number after '.'"),
        ("BODY[1..2]", "Invalid section specifier"),
        ("BODY[.1]", "Invalid section specifier"),
        ("BODY[1TEXT]", "Expected '.' or ']' after part number"),
        ("BODY[MIME]", "MIME section needs a part number"),
        ("BODY[HEADERS]", "Invalid section specifier"),
        ("BODY[TEXT.FOO]", "Invalid section specifier"),
        ("BODY[HEADER.FIELDS]", "Expected a space"),
        ("BODY[HEADER.FIELDS ()]", "Expected header field name"),
        ('BODY[HEADER.FIELDS (FROM "TO"]', "Expected ')' to end header field list"),
        ("BODY[HEADER.FIELDS (FROM]", "Expected ']' to end section"),  # ] is an ASTRING-CHAR: the name is FROM]
        ("BODY[HEADER.FIELDS FROM]", "Expected '(' to start header field list"),
        ("BODY[HEADER", "Expected ']' to end section"),
        ("BODY[0.1]", "Expected ']' to end section"),
        ("BODY[4294967296]", "Part number 4294967296 is too large"),
        ("BODY[]<0.0>", "Partial length must not be zero"),
        ("BODY[]<0>", "Expected '.' in partial range"),
        ("BODY[]<0.10", "Expected '>' to end partial range"),
        ("BODY[]<.10>", "Expected partial offset"),
        ("BODY[]<4294967296.1>", "Partial offset 4294967296 is too large"),
        ("BINARY[0]", "Part number must not be zero"),
        ("BINARY[1.TEXT]", "Expected part number after '.'"),
        ("BINARY[HEADER]", "BINARY sections take part numbers only"),
        ("BINARY[1.]", "Expected part number after '.'"),
        ("FLAGS[]", "Fetch attribute FLAGS takes no section"),
        ("BODY.PEEK", "BODY.PEEK needs a section in brackets"),
        ("BINARY", "BINARY needs a section in brackets"),
        ("BINARY.SIZE", "BINARY.SIZE needs a section in brackets"),
        ("RFC822.PEEK", "Unknown fetch attribute RFC822.PEEK"),
        ("XYZZY", "Unknown fetch attribute XYZZY"),
    ],
)
def test_fetch_bad_attributes(att, fragment):
    err(b"a FETCH 1 (" + att.encode() + b")", fragment)


def test_fetch_binary_size_takes_no_partial():
    err(b"a FETCH 1 BINARY.SIZE[1]<0.10>", "Unexpected extra arguments")


def test_fetch_list_errors():
    err(b"a FETCH 1 ()", "Expected fetch attribute", "near ')'")
    err(b"a FETCH 1 (FLAGS", "Expected ')' to end fetch attributes")
    err(b"a FETCH 1 (FLAGS UID", "Expected ')' to end fetch attributes")
    err(b"a FETCH 1 FLAGS)", "Unexpected extra arguments")
    err(b"a FETCH 1 (FLAGS  UID)", "Expected fetch attribute")
    err(b"a FETCH 1 ((FLAGS))", "Expected fetch attribute")
    err(b"a FETCH 1 FLAGS UID", "Expected '('")


def test_fetch_modifiers():  # RFC 7162
    ev = cmd(b"s100 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345)", c.Fetch)
    assert ev.uid and ev.modifiers == {"CHANGEDSINCE": 12345}
    ev = cmd(b"s100 UID FETCH 300:500 (FLAGS) (CHANGEDSINCE 12345 VANISHED)", c.Fetch)
    assert ev.modifiers == {"CHANGEDSINCE": 12345, "VANISHED": True}
    ev = cmd(b"a FETCH 1 FAST (changedsince 9223372036854775807)", c.Fetch)
    assert ev.modifiers == {"CHANGEDSINCE": (1 << 63) - 1}


def test_fetch_modifier_errors():
    err(b"a FETCH 1 FLAGS (CHANGEDSINCE)", "CHANGEDSINCE needs a number")
    err(b"a FETCH 1 FLAGS (CHANGEDSINCE x)", "CHANGEDSINCE needs a number")
    err(b"a FETCH 1 FLAGS (CHANGEDSINCE 9223372036854775808)", "too large")
    err(b"a FETCH 1 FLAGS (CHANGEDSINCE " + b"9" * 5000 + b")", "too large")
    err(b"a FETCH 1 FLAGS (FOO 1)", "Unknown modifier FOO")
    err(b"a FETCH 1 FLAGS CHANGEDSINCE 1", "Expected '('")


# ------------------------------------------------------------------ STORE


@pytest.mark.parametrize(
    "op, mode, silent",
    [
        ("FLAGS", "set", False),
        ("+FLAGS", "add", False),
        ("-FLAGS", "remove", False),
        ("FLAGS.SILENT", "set", True),
        ("+FLAGS.SILENT", "add", True),
        ("-flags.silent", "remove", True),
    ],
)
def test_store_forms(op, mode, silent):
    ev = cmd(b"A003 STORE 2:4 %s (\\Deleted $Junk)" % op.encode(), c.Store)
    assert (ev.seqset, ev.mode, ev.silent, ev.flags, ev.uid) == (seq("2:4"), mode, silent, ["\\Deleted", "$Junk"], False)
    ev = cmd(b"a STORE 1 %s \\Seen \\Answered" % op.encode(), c.Store)
    assert ev.flags == ["\\Seen", "\\Answered"]


def test_store_empty_flag_list_clears():
    assert cmd(b"a STORE 1:* FLAGS ()", c.Store).flags == []


def test_store_condstore():  # RFC 7162
    ev = cmd(b"a103 UID STORE 6,4,8 (UNCHANGEDSINCE 12121230045) +FLAGS.SILENT (\\Deleted)", c.Store)
    assert ev.uid and ev.seqset == seq("6,4,8") and ev.modifiers == {"UNCHANGEDSINCE": 12121230045}
    assert (ev.mode, ev.silent, ev.flags) == ("add", True, ["\\Deleted"])
    assert cmd(b"a STORE 1 (UNCHANGEDSINCE 0) FLAGS ()", c.Store).modifiers == {"UNCHANGEDSINCE": 0}


def test_store_errors():
    err(b"a STORE 1", "Missing FLAGS, +FLAGS or -FLAGS")
    err(b"a STORE 1 *FLAGS (\\Seen)", "Expected FLAGS, +FLAGS or -FLAGS")
    err(b"a STORE 1 FLAGSX (\\Seen)", "Expected a space")
    err(b"a STORE 1 FLAGS", "Missing flags")
    err(b"a STORE 1 +FLAGS (\\Seen", "Expected ')' to end flag list")
    err(b"a STORE 1 +FLAGS ((\\Seen))", "Expected flag")
    err(b"a STORE 1 +FLAGS (\\Recent)", "\\Recent cannot be stored")
    err(b"a STORE 1 +FLAGS \\*", "\\* cannot be stored")
    err(b"a STORE 1 +FLAGS (\\)", "Expected flag name")
    err(b"a STORE 1 (UNCHANGEDSINCE) FLAGS ()", "UNCHANGEDSINCE needs a number")
    err(b"a STORE 1 +FLAGS (\\Seen) extra", "Unexpected extra arguments")


# ------------------------------------------------------------ COPY, MOVE, UID


def test_copy_move():
    ev = cmd(b"A003 COPY 2:4 MEETING", c.CopyMove)  # RFC 3501 6.4.7
    assert (ev.name, ev.seqset, ev.mailbox, ev.uid) == ("COPY", seq("2:4"), "MEETING", False)
    ev = cmd(b"a UID MOVE 42:69 foo", c.CopyMove)  # RFC 6851
    assert (ev.name, ev.seqset, ev.mailbox, ev.uid) == ("MOVE", seq("42:69"), "foo", True)
    assert cmd(b'a copy $ "Sent Items"', c.CopyMove).seqset.saved
    err(b"a COPY 1", "Missing mailbox name")
    err(b"a COPY", "Missing sequence set")
    err(b"a MOVE 1 a b", "Unexpected extra arguments")


def test_uid_commands():
    ev = cmd(b"A999 UID FETCH 4827313:4828442 FLAGS", c.Fetch)  # RFC 3501 6.4.8
    assert (ev.name, ev.uid, ev.seqset, ev.items) == ("FETCH", True, seq("4827313:4828442"), [c.FetchItem("FLAGS")])
    assert cmd(b"a uid store 1 flags ()", c.Store).uid
    assert cmd(b"a UID SEARCH ALL", c.Search).uid
    assert cmd(b"a UID COPY 1 x", c.CopyMove).uid
    ev = cmd(b"A003 UID EXPUNGE 3000:3002", c.UidExpunge)  # RFC 4315
    assert (ev.name, ev.uid, ev.seqset) == ("EXPUNGE", True, seq("3000:3002"))
    assert cmd(b"a FETCH 1 FLAGS", c.Fetch).uid is False


def test_uid_errors():
    err(b"a UID", "UID must be followed by FETCH, STORE, SEARCH, COPY, MOVE or EXPUNGE")
    err(b"a UID NOOP", "UID must be followed by")
    err(b"a UID FETCH1 FLAGS", "UID must be followed by")
    err(b"a UID EXPUNGE", "Missing sequence set")
    err(b"a UID UID FETCH 1 FLAGS", "UID must be followed by")


# ----------------------------------------------------------------- SEARCH


def search(criteria: bytes, **kw) -> c.Search:
    return cmd(b"a SEARCH " + criteria, c.Search, **kw)


def test_search_rfc3501_examples():  # RFC 3501 6.4.4
    ev = cmd(b'A282 SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"', c.Search)
    assert ev.key == ("AND", [("FLAG", "\\Flagged"), ("SINCE", (1994, 2, 1)), ("NOT", ("HEADER", "FROM", b"Smith"))])
    assert (ev.charset, ev.return_options, ev.uid) == (None, None, False)
    ev = cmd(b'A283 SEARCH TEXT "string not in mailbox"', c.Search)
    assert ev.key == ("TEXT", b"string not in mailbox")
    ev = cmd(b"A284 SEARCH CHARSET UTF-8 TEXT {6}\r\n\xe4\xbd\xa0\xe5\xa5\xbd", c.Search)
    assert (ev.charset, ev.key) == ("UTF-8", ("TEXT", "你好".encode()))


def test_search_rfc9051_examples():  # RFC 9051 6.4.4 (ESEARCH)
    ev = cmd(b'A282 SEARCH RETURN (MIN COUNT) FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"', c.Search)
    assert ev.return_options == ["MIN", "COUNT"]
    assert ev.key[1][0] == ("FLAG", "\\Flagged")
    assert cmd(b'A283 SEARCH RETURN () FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"', c.Search).return_options == []
    ev = cmd(b"A285 SEARCH CHARSET UTF-8 TEXT {12}\r\n\xd0\x9c\xd0\xbe\xd1\x81\xd0\xba\xd0\xb2\xd0\xb0", c.Search)
    assert ev.key == ("TEXT", "Москва".encode())
    ev = cmd(b"A286 SEARCH CHARSET UTF-8 TEXT {12+}\r\n\xd0\x9c\xd0\xbe\xd1\x81\xd0\xba\xd0\xb2\xd0\xb0", c.Search)
    assert ev.key == ("TEXT", "Москва".encode())
    ev = cmd(b"A301 SEARCH RETURN (SAVE) SINCE 1-Jan-2004 NOT SEEN UID $", c.Search)  # RFC 5182
    assert ev.return_options == ["SAVE"]
    assert ev.key == ("AND", [("SINCE", (2004, 1, 1)), ("NOT", ("FLAG", "\\Seen")), ("UID", SeqSet(saved=True))])
    ev = cmd(b"a UID SEARCH return (min max all count save) charset us-ascii $", c.Search)
    assert ev.return_options == ["MIN", "MAX", "ALL", "COUNT", "SAVE"] and ev.charset == "US-ASCII"
    assert ev.key == ("SEQ", SeqSet(saved=True)) and ev.uid


@pytest.mark.parametrize(
    "criteria, key",
    [
        (b"ALL", ("ALL",)),
        (b"ANSWERED", ("FLAG", "\\Answered")),
        (b"DELETED", ("FLAG", "\\Deleted")),
        (b"DRAFT", ("FLAG", "\\Draft")),
        (b"FLAGGED", ("FLAG", "\\Flagged")),
        (b"SEEN", ("FLAG", "\\Seen")),
        (b"UNANSWERED", ("UNFLAG", "\\Answered")),
        (b"UNDELETED", ("UNFLAG", "\\Deleted")),
        (b"UNDRAFT", ("UNFLAG", "\\Draft")),
        (b"UNFLAGGED", ("UNFLAG", "\\Flagged")),
        (b"unseen", ("UNFLAG", "\\Seen")),
        (b"NEW", ("NEW",)),
        (b"OLD", ("OLD",)),
        (b"RECENT", ("RECENT",)),
        (b"KEYWORD $Forwarded", ("FLAG", "$Forwarded")),
        (b"UNKEYWORD $Junk", ("UNFLAG", "$Junk")),
        (b"BCC bob", ("HEADER", "BCC", b"bob")),
        (b"CC {3}\r\nbob", ("HEADER", "CC", b"bob")),
        (b'FROM "Smith"', ("HEADER", "FROM", b"Smith")),
        (b"SUBJECT hello", ("HEADER", "SUBJECT", b"hello")),
        (b'TO ""', ("HEADER", "TO", b"")),
        (b'HEADER Message-ID "<a@b>"', ("HEADER", "MESSAGE-ID", b"<a@b>")),
        (b'HEADER "X-Spam" ""', ("HEADER", "X-SPAM", b"")),
        (b"BODY word", ("BODY", b"word")),
        (b'TEXT "two words"', ("TEXT", b"two words")),
        (b"BEFORE 1-Feb-1994", ("BEFORE", (1994, 2, 1))),
        (b"ON 01-Feb-1994", ("ON", (1994, 2, 1))),
        (b'SINCE "29-feb-2024"', ("SINCE", (2024, 2, 29))),
        (b"SENTBEFORE 31-Dec-1999", ("SENTBEFORE", (1999, 12, 31))),
        (b"SENTON 1-Jan-2000", ("SENTON", (2000, 1, 1))),
        (b"SENTSINCE 15-Mar-2021", ("SENTSINCE", (2021, 3, 15))),
        (b"LARGER 1024", ("LARGER", 1024)),
        (b"SMALLER 0", ("SMALLER", 0)),
        (b"LARGER 9223372036854775807", ("LARGER", (1 << 63) - 1)),
        (b"UID 1:100", ("UID", SeqSet([(1, 100)]))),
        (b"2:4,*", ("SEQ", SeqSet([(2, 4), (STAR, STAR)]))),
        (b"$", ("SEQ", SeqSet(saved=True))),
        (b"MODSEQ 620162338", ("MODSEQ", 620162338)),  # RFC 7162
        (b'MODSEQ "/flags/\\\\draft" all 620162338', ("MODSEQ", 620162338)),
        (b"YOUNGER 259200", ("YOUNGER", 259200)),  # RFC 5032
        (b"OLDER 1", ("OLDER", 1)),
        (b"NOT SEEN", ("NOT", ("FLAG", "\\Seen"))),
        (b"NOT NOT SEEN", ("NOT", ("NOT", ("FLAG", "\\Seen")))),
        (b"OR SEEN FLAGGED", ("OR", ("FLAG", "\\Seen"), ("FLAG", "\\Flagged"))),
        (b"OR (SEEN FLAGGED) NOT DRAFT", ("OR", ("AND", [("FLAG", "\\Seen"), ("FLAG", "\\Flagged")]), ("NOT", ("FLAG", "\\Draft")))),
        (b"OR OR SEEN DRAFT FLAGGED", ("OR", ("OR", ("FLAG", "\\Seen"), ("FLAG", "\\Draft")), ("FLAG", "\\Flagged"))),
        (b"OR SEEN OR DRAFT FLAGGED", ("ORN", [("FLAG", "\\Seen"), ("FLAG", "\\Draft"), ("FLAG", "\\Flagged")])),
        (b"(SEEN)", ("FLAG", "\\Seen")),
        (b"((SEEN) (1:2 DRAFT))", ("AND", [("FLAG", "\\Seen"), ("AND", [("SEQ", SeqSet([(1, 2)])), ("FLAG", "\\Draft")])])),
        (b"NOT (OR 1 2)", ("NOT", ("OR", ("SEQ", SeqSet([(1, 1)])), ("SEQ", SeqSet([(2, 2)]))))),
    ],
)
def test_search_keys(criteria, key):
    assert search(criteria).key == key


def test_search_or_chain_is_flat_and_does_not_recurse():
    n = 20000
    # right-nested: OR 1 OR 2 OR 3 ... (each OR's second operand is the next OR)
    criteria = b"".join(b"OR %d " % (i + 1) for i in range(n)) + b"%d" % (n + 1)
    ev = search(criteria, limits=Limits(line_length=1 << 20))
    assert ev.key[0] == "ORN" and len(ev.key[1]) == n + 1
    assert ev.key[1][0] == ("SEQ", SeqSet([(1, 1)])) and ev.key[1][-1] == ("SEQ", SeqSet([(n + 1, n + 1)]))


def test_search_or_chain_inside_not_and_parentheses():
    ev = search(b"NOT (OR SEEN OR DRAFT OR FLAGGED DELETED) ALL")
    assert ev.key == ("AND", [("NOT", ("ORN", [("FLAG", f) for f in ("\\Seen", "\\Draft", "\\Flagged", "\\Deleted")])), ("ALL",)])


def test_search_many_keys_without_recursion():
    ev = search(b" ".join([b"SEEN"] * 10000))
    assert ev.key[0] == "AND" and len(ev.key[1]) == 10000


@pytest.mark.parametrize(
    "criteria, fragment",
    [
        (b"", "Expected search key (trailing space at end of line)"),
        (b"BOGUS", "Unknown search key BOGUS"),
        (b"FROM", "Missing FROM value"),
        (b"SINCE", "Missing date after SINCE"),
        (b"SINCE yesterday", "Expected date (dd-Mon-yyyy)"),
        (b"SINCE 1-Foo-2000", "Expected date (dd-Mon-yyyy)"),
        (b"SINCE 31-Apr-2000", "Invalid date"),
        (b"SINCE 29-Feb-1900", "Invalid date"),
        (b"SINCE 1-Jan-0000", "Invalid date"),
        (b'SINCE "1-Jan-2000', "Expected closing quote after date"),
        (b"SINCE 1-Jan-20001", "Unexpected extra arguments near '1'"),
        (b"LARGER", "Missing size after LARGER"),
        (b"LARGER big", "Expected size"),
        (b"LARGER 9223372036854775808", "Size 9223372036854775808 is too large"),
        (b"YOUNGER 0", "Interval must not be zero"),
        (b"KEYWORD", "Missing keyword after KEYWORD"),
        (b"KEYWORD (x)", "Expected flag"),
        (b"HEADER Subject", "Missing header value"),
        (b"UID", "Missing sequence set after UID"),
        (b"UID 0", "0 is not a valid message number"),
        (b"0", "Invalid sequence set"),
        (b"NOT", "Missing search key after NOT"),
        (b"OR SEEN", "Missing second search key after OR"),
        (b"OR", "Missing first search key after OR"),
        (b"(SEEN", "Expected ')' to end search group"),
        (b"SEEN)", "Unexpected extra arguments"),
        (b"()", "Expected search key near ')'"),
        (b"SEEN  DRAFT", "Expected search key"),
        (b"RETURN (MIN", "Expected ')' to end RETURN options"),
        (b"RETURN MIN ALL", "Expected '(' after RETURN"),
        (b"RETURN (BOGUS) ALL", "Unknown SEARCH RETURN option BOGUS"),
        (b"RETURN (MIN)", "Missing search criteria"),
        (b"CHARSET UTF-8", "Missing search criteria"),
        (b"MODSEQ", "Missing mod-sequence"),
        (b'MODSEQ "/flags/x"', "Missing entry type"),
        (b"SUBJECT caf\xc3\xa9", "8-bit characters need a quoted string or a literal"),
    ],
)
def test_search_errors(criteria, fragment):
    err(b"a SEARCH " + criteria, fragment)


# -------------------------------------------------------------- nesting


def test_nesting_depth_limit_search_parentheses():
    assert search(b"(" * 32 + b"SEEN" + b")" * 32).key == ("FLAG", "\\Seen")
    err(b"a SEARCH " + b"(" * 33 + b"SEEN" + b")" * 33, "Command nested too deeply")


def test_nesting_depth_limit_not_chain():
    assert search(b"NOT " * 32 + b"SEEN").key[0] == "NOT"
    err(b"a SEARCH " + b"NOT " * 33 + b"SEEN", "Command nested too deeply")


def test_nesting_depth_limit_left_nested_or():
    err(b"a SEARCH " + b"OR " * 40 + b"SEEN " * 41, "Command nested too deeply")


def test_nesting_depth_limit_generic_lists():
    assert cmd(b"a SELECT INBOX " + b"(" * 32 + b")" * 32, c.MailboxCommand)
    err(b"a SELECT INBOX " + b"(" * 33 + b")" * 33, "Command nested too deeply")


def test_nesting_depth_is_configurable():
    err(b"a SEARCH ((SEEN))", "nested too deeply", limits=Limits(nesting_depth=1))


def test_deep_nesting_beyond_the_interpreter_stack_is_an_error_not_a_crash():
    ev = err(b"a SEARCH " + b"(" * 50000 + b"SEEN" + b")" * 50000, "nested too deeply", limits=Limits(line_length=1 << 20, nesting_depth=10**6))
    assert ev.tag == "a"


# ------------------------------------------------------------- malformed


def test_unbalanced_parentheses():
    err(b"a FETCH 1 (FLAGS (UID)", "Expected fetch attribute")
    err(b"a STATUS INBOX (MESSAGES))", "Unexpected extra arguments")
    err(b"a SELECT INBOX ((CONDSTORE)", "Expected ')' to end list")
    err(b"a SEARCH ((SEEN)", "Expected ')' to end search group")


def test_bad_literal_announcements():
    err(b"a LOGIN {abc}", "Invalid literal for user name")
    err(b"a LOGIN {5} pass", "Invalid literal for user name", "near '{5} pass'")
    err(b"a LOGIN {-1}", "Invalid literal")
    err(b"a LOGIN {5", "Invalid literal")
    err(b"a LOGIN user {}", "Invalid literal for password")


def test_literal_announcement_too_long_for_a_number():
    err(b"a LOGIN user {123456789012345678901}", "Literal without data")


def test_nul_in_command_line():
    err(b"a LOGIN user pa\x00ss", "NUL octet in command line")
    err(b'a LOGIN user "pa\x00ss"', "NUL octet in command line")
    err(b"a NOOP\x00", "NUL octet")
    err(b"\x00", "NUL octet", tag="*")


def test_8bit_in_atoms():
    err(b"a LOGIN us\xe9r pass", "8-bit characters need a quoted string or a literal")
    err(b"a NO\xd6P", "Unknown command NO")  # the command name is an atom that stops at 8-bit
    err(b"\xe9 NOOP", "Missing or invalid tag", "8-bit", tag="*")


def test_control_characters():
    err(b"a LOGIN user\tpass", "Expected a space", "near '\tpass'")
    err(b"a NOOP\r", "Unexpected extra arguments")


def test_error_messages_quote_a_short_context():
    ev = err(b"a FETCH 1 (FLAGS " + b"x" * 1000 + b"!)", "Unknown fetch attribute")
    assert len(ev.text) < 120


# -------------------------------------------------------- states table


PARSED_NAMES = {
    "CAPABILITY", "NOOP", "LOGOUT", "STARTTLS", "CHECK", "CLOSE", "UNSELECT", "EXPUNGE", "IDLE", "NAMESPACE",
    "LOGIN", "AUTHENTICATE", "ENABLE", "ID", "SELECT", "EXAMINE", "CREATE", "DELETE", "SUBSCRIBE",
    "UNSUBSCRIBE", "RENAME", "LIST", "LSUB", "STATUS", "APPEND", "SEARCH", "FETCH", "STORE", "COPY", "MOVE",
}


def test_a_grammar_that_cannot_be_loaded_is_a_server_error_and_the_next_command_parses(monkeypatch):
    """The grammars of FETCH, SEARCH... load at first use. If one cannot be
    (a broken installation), that command is answered NO [SERVERBUG] with the
    exception kept for the log, and parsing goes on."""
    from imapd.protocol import parser

    monkeypatch.setattr(parser, "COMMANDS", dict(parser.COMMANDS))
    parser.later("no_such_syntax", ("XNOTHERE",))
    evs = events(b"a XNOTHERE 1\r\nb NOOP\r\n")
    assert isinstance(evs[0], ProtocolError) and (evs[0].tag, evs[0].status, evs[0].code) == ("a", "NO", "SERVERBUG")
    assert isinstance(evs[0].failure, ModuleNotFoundError) and "no_such_syntax" not in evs[0].text
    assert isinstance(evs[1], c.Simple) and evs[1].tag == "b"


def test_the_grammars_load_at_first_use_and_parse_as_before():
    from imapd.protocol import parser

    assert parser.COMMANDS["FETCH"].__name__ in ("parse", "_fetch")
    f = cmd(b"a UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (FROM)])", c.Fetch)
    assert f.uid and [i.name for i in f.items] == ["FLAGS", "BODY[]"] and f.items[1].section.fields == ("FROM",)
    assert parser.COMMANDS["FETCH"].__name__ == "_fetch"  # the stand-in replaced
    assert cmd(b"a UID EXPUNGE 3:5", c.UidExpunge).uid


def test_every_parsed_command_is_allowed_in_some_state():
    from imapd.protocol.parser import COMMANDS

    assert set(COMMANDS) == PARSED_NAMES
    everywhere = set().union(*states.ALLOWED.values())
    assert PARSED_NAMES <= everywhere
    assert states.ALLOWED[states.LOGOUT] == frozenset()


@pytest.mark.parametrize(
    "state, name, allowed",
    [
        (states.NOT_AUTHENTICATED, "LOGIN", True),
        (states.NOT_AUTHENTICATED, "CAPABILITY", True),
        (states.NOT_AUTHENTICATED, "ID", True),
        (states.NOT_AUTHENTICATED, "SELECT", False),
        (states.AUTHENTICATED, "LOGIN", False),
        (states.AUTHENTICATED, "SELECT", True),
        (states.AUTHENTICATED, "FETCH", False),
        (states.SELECTED, "FETCH", True),
        (states.SELECTED, "SELECT", True),
        (states.SELECTED, "AUTHENTICATE", False),
        (states.SELECTED, "IDLE", True),
    ],
)
def test_states_table(state, name, allowed):
    assert (name in states.ALLOWED[state]) is allowed


def test_refusal_messages():
    assert "only allowed before authentication" in states.refusal(states.SELECTED, "LOGIN")
    assert "requires authentication" in states.refusal(states.NOT_AUTHENTICATED, "SELECT")
    assert "requires a selected mailbox" in states.refusal(states.AUTHENTICATED, "FETCH")
    assert "not allowed in the logout state" in states.refusal(states.LOGOUT, "NOOP")


# ----------------------------------------------- tokens without regular expressions
# The reader finds tokens with byte-class tables (bytes.translate + find), not
# `re`: these pin down the edges of the hand-written scanners.


def test_quoted_escapes_at_the_edges():
    assert cmd(b'a LOGIN "\\"" "x\\\\"', c.Login).user == b'"'
    assert cmd(b'a LOGIN "\\"" "x\\\\"', c.Login).password == b"x\\"
    assert cmd(b'a LOGIN "" "a\\"b\\\\c"', c.Login).password == b'a"b\\c'
    err(b'a LOGIN "a\\', "Invalid quoted user name")
    err(b'a LOGIN "a\rb" x', "Invalid quoted user name")


def test_date_time_day_forms():
    for text in (b'" 7-Feb-1994 22:43:04 -0800"', b'"7-Feb-1994 22:43:04 -0800"', b'"07-Feb-1994 22:43:04 -0800"'):
        ev = cmd(b"a APPEND INBOX " + text + b" {1+}\r\nx", c.Append)
        assert ev.messages[0].date == ts("07-Feb-1994 22:43:04 -0800"), text
    for bad in (b'"123-Feb-1994 22:43:04 -0800"', b'"7-Fe1-1994 22:43:04 -0800"', b'"7-Feb-1994 22:43:04 0800"',
                b'"7-Feb-1994 22:43:04 -0800', b'"7-Xyz-1994 22:43:04 -0800"'):
        assert isinstance(parse(b"a APPEND INBOX " + bad + b" {1+}\r\nx"), ProtocolError), bad


def test_search_date_forms():
    assert cmd(b"a SEARCH SINCE 1-Feb-1994", c.Search)
    assert cmd(b'a SEARCH SINCE "01-feb-1994"', c.Search)
    err(b"a SEARCH SINCE 123-Feb-1994", "Expected date")
    err(b"a SEARCH SINCE 1-Fob-1994", "Expected date")


def test_store_mode_words():
    assert cmd(b"a STORE 1 flags.silent (\\Seen)", c.Store).silent
    ev = cmd(b"a STORE 1 -FLAGS \\Seen", c.Store)
    assert (ev.mode, ev.silent) == ("remove", False)
    err(b"a STORE 1 *FLAGS \\Seen", "Expected FLAGS")


def test_literal_announcement_only_at_the_end_of_a_line():
    evs = events(b"a LOGIN {3}\r\n")
    assert isinstance(evs[0], NeedLiteral) and evs[0].size == 3
    assert events(b"a LOGIN {3} x\r\n")[0].text  # not a literal: a syntax error
    assert isinstance(events(b"a LOGIN {123456789012345678901}\r\n")[0], ProtocolError)


def test_a_long_line_of_many_tokens_parses_in_linear_time():
    import time

    flags = b" ".join(b"kw%d" % i for i in range(20000))
    start = time.monotonic()
    ev = cmd(b"a STORE 1:* +FLAGS (" + flags + b")", c.Store, limits=Limits(line_length=1 << 20))
    assert len(ev.flags) == 20000 and ev.flags[-1] == "kw19999"
    assert time.monotonic() - start < 2.0


def test_byte_classes_hold_exactly_the_grammars_characters():
    """RFC 3501's character classes, byte by byte (the tables are built from ranges)."""
    from imapd.protocol import parser as P

    def atom_char(b: int) -> bool:  # any CHAR except atom-specials
        return 0x20 < b < 0x7F and chr(b) not in '(){%*"\\]'

    expected = {
        "_ATOM": atom_char,
        "_ASTRING": lambda b: atom_char(b) or b == ord("]"),
        "_TAG": lambda b: (atom_char(b) or b == ord("]")) and b != ord("+"),
        "_LIST_MAILBOX": lambda b: atom_char(b) or chr(b) in "%*]",
        "_LIST_ELEMENT": lambda b: atom_char(b) or chr(b) in "%*]\\",
        "_NUMBER": lambda b: chr(b).isdigit() and b < 0x80,
        "_SEQSET": lambda b: b < 0x80 and (chr(b).isdigit() or chr(b) in ":*,$"),
        "_BASE64": lambda b: b < 0x80 and (chr(b).isalnum() or chr(b) in "+/"),
        "_FETCH_NAME": lambda b: b < 0x80 and (chr(b).isalnum() or chr(b) == "."),
    }
    for name, member in expected.items():
        table = getattr(P, name)
        assert len(table) == 256
        assert [b for b in range(256) if table[b] != member(b)] == [], name
