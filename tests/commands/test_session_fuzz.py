"""Hypothesis drives an in-process `Session` with grammar-built commands, mutated
commands and garbage, and checks what any client may rely on, whatever it sends:

* no exception escapes `receive()` / `pump()`, and every example ends promptly;
* the output is a sequence of well-formed response lines (`* ...`, `+ ...`,
  `<tag> OK|NO|BAD ...`) ending in CRLF, with no bare CR, LF or NUL outside
  literals, and every literal `{n}` / `~{n}` followed by exactly n octets;
* every command with a tracked tag gets exactly one tagged response, in order
  (only a `* BYE` may cut the list short);
* nothing reveals the implementation: no `Traceback`, no Python exception
  name, no `[SERVERBUG]` (an unexpected exception in a handler).

The session is built as `imapd/cli.py` builds it: pre-authenticated as the
current user with a `store_opener` returning `open_store(maildir)` (or, for
some examples, not authenticated, with a login backend), on a fresh copy of
a small Maildir for each example.
"""

from __future__ import annotations

import getpass
import io
import os
import re
import shutil
import signal
import tempfile
import time
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imapd.config import defaults
from imapd.session import Session
from imapd.store import open_store

EXAMPLE_SECONDS = 10.0  # a hang fails the example instead of the whole run

MESSAGES = [
    b"From: Alice <alice@example.org>\r\nTo: bob@example.com\r\nSubject: Hello\r\n"
    b"Date: Mon, 02 Nov 2026 10:00:00 +0100\r\nMessage-ID: <1@example.org>\r\n\r\nHello pineapple\r\n",
    b"From: =?utf-8?q?J=C3=BCrgen?= <j@example.de>\r\nSubject: =?utf-8?b?R3LDvMOfZQ==?=\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n"
    b"--XX\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"Gr=C3=BC=C3=9Fe\r\n--XX\r\nContent-Type: message/rfc822\r\n\r\n"
    b"Subject: inner\r\nContent-Type: text/plain\r\n\r\ninner body\r\n"
    b"--XX\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    b"AAECAwQ=\r\n--XX--\r\n",
    b"Subject: broken\r\nContent-Type: multipart/alternative; boundary=\r\n"
    b"Content-Transfer-Encoding: x-unknown\r\n\r\n\xff\xfe 8-bit body\r\nno end\r\n",
    b"no header at all, no final line end",
]


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A small Maildir: INBOX with four messages, folders Sent, a.b and ☺."""
    root = str(tmp_path_factory.mktemp("fuzz") / "Maildir")
    store = open_store(root)
    try:
        for name in ("Sent", "a.b", "\u263a"):
            store.create(name)
        for i, data in enumerate(MESSAGES):
            store.append("INBOX", io.BytesIO(data), ["\\Seen"] if i % 2 else [], None)
        store.append("Sent", io.BytesIO(MESSAGES[0]), [], None)
        store.subscribe("Sent")
    finally:
        store.close()
    return root


# ------------------------------------------------------------ the grammar

TAG_PREFIX = "T"  # tracked commands; garbage never starts with it


def literal(data: bytes, plus: bool) -> bytes:
    return b"{%d%s}\r\n" % (len(data), b"+" if plus else b"") + data


def string_forms(raw: bytes) -> st.SearchStrategy[bytes]:
    forms = [st.just(b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'),
             st.booleans().map(lambda p: literal(raw, p))]
    if raw and re.fullmatch(rb"[A-Za-z0-9&.\-_/~%*\xc3\xbc]+", raw):
        forms.append(st.just(raw))
    return st.one_of(forms)


def mostly(good: list[bytes], bad: list[bytes]) -> st.SearchStrategy[bytes]:
    """Usually one of `good`, sometimes one of `bad` (hostile values)."""
    return st.one_of(st.sampled_from(good), st.sampled_from(good), st.sampled_from(bad))


GOOD_MAILBOXES = [b"INBOX", b"inbox", b"Sent", b"a", b"a.b", b"&Jjo-", b"New", b"New.Sub", b"INBOX.x", b"Drafts"]
BAD_MAILBOXES = [b"&", b"&Jjo", b"&AGE-", b"&-", b"../x", b"..", b".", b"/etc", b"/", b".hidden", b"a..b", b"a.",
                 b"~root", b"a/b", b"*", b"%", b"", b"B\xc3\xbccher", b"x" * 300, b"nul\x00name", b"tab\tname",
                 b"NIL", b"a" + b".a" * 50]
mailbox = mostly(GOOD_MAILBOXES, BAD_MAILBOXES).flatmap(string_forms)
pattern = st.sampled_from([b"*", b"%", b"", b"INBOX", b"a.%", b"&", b"*.*.*", b"%%%%%%%%", b"\xff"]).flatmap(string_forms)

number = st.one_of(st.sampled_from([b"1", b"2", b"3", b"4", b"*"]), st.sampled_from([b"1", b"2", b"3", b"4", b"*"]),
                   st.sampled_from([b"5", b"0", b"4294967295", b"4294967296", b"99999999999999999999", b"01"]))
seq_range = st.tuples(number, number, st.booleans()).map(lambda t: t[0] + b":" + t[1] if t[2] else t[0])
seqset = st.one_of(st.lists(seq_range, min_size=1, max_size=4).map(b",".join), st.just(b"$"))

FLAGS = [b"\\Seen", b"\\Deleted", b"\\Flagged", b"\\Answered", b"\\Draft", b"\\Recent", b"\\*", b"\\Bogus",
         b"$Forwarded", b"Junk", b"k1", b"k2", b"k3"]
flag_list = st.lists(st.sampled_from(FLAGS), max_size=5).map(lambda fs: b"(" + b" ".join(fs) + b")")

SECTIONS = [b"", b"HEADER", b"TEXT", b"1", b"2", b"1.MIME", b"2.HEADER", b"2.TEXT", b"3", b"3.1", b"0",
            b"1.0", b"4294967295", b"HEADER.FIELDS (SUBJECT FROM)", b"HEADER.FIELDS.NOT (DATE)", b"MIME",
            b"1.2.3.4.5.6.7.8.9"]
PARTIALS = [b"", b"<0.10>", b"<5.1>", b"<4294967295.4294967295>", b"<0.0>"]
SIMPLE_ITEMS = [b"FLAGS", b"UID", b"ENVELOPE", b"BODYSTRUCTURE", b"BODY", b"RFC822.SIZE", b"INTERNALDATE",
                b"RFC822", b"RFC822.HEADER", b"RFC822.TEXT", b"MODSEQ"]
section_item = st.tuples(st.sampled_from([b"BODY", b"BODY.PEEK", b"BINARY", b"BINARY.PEEK", b"BINARY.SIZE"]),
                         st.sampled_from(SECTIONS), st.sampled_from(PARTIALS)).map(
    lambda t: t[0] + b"[" + t[1] + b"]" + t[2])
fetch_item = st.one_of(st.sampled_from(SIMPLE_ITEMS), section_item)
fetch_items = st.one_of(st.sampled_from([b"ALL", b"FAST", b"FULL"]), fetch_item,
                        st.lists(fetch_item, min_size=1, max_size=5).map(lambda xs: b"(" + b" ".join(xs) + b")"))

DATES = [b"1-Jan-2020", b'"02-Nov-2026"', b"31-Dec-9999", b"1-Jan-0001", b"31-Feb-2020", b"1-Foo-2020", b"x"]
search_text = st.sampled_from([b"pineapple", b"", b"Gr\xc3\xbc\xc3\x9fe", b"inner", b"\xff"]).flatmap(string_forms)
atom_key = st.sampled_from([b"ALL", b"SEEN", b"UNSEEN", b"FLAGGED", b"DELETED", b"NEW", b"OLD", b"RECENT",
                            b"ANSWERED", b"DRAFT", b"UNDRAFT", b"BOGUS"])
search_leaf = st.one_of(
    atom_key,
    seqset,
    st.tuples(st.sampled_from([b"FROM", b"TO", b"SUBJECT", b"BODY", b"TEXT", b"CC"]), search_text).map(b" ".join),
    st.tuples(st.just(b"HEADER"), st.sampled_from([b"Subject", b"X-None", b'""']), search_text).map(b" ".join),
    st.tuples(st.sampled_from([b"BEFORE", b"ON", b"SINCE", b"SENTBEFORE", b"SENTON", b"SENTSINCE"]),
              mostly(DATES[:4], DATES[4:])).map(b" ".join),
    st.tuples(st.sampled_from([b"LARGER", b"SMALLER", b"OLDER", b"YOUNGER", b"MODSEQ"]),
              mostly([b"1", b"100", b"4294967296"], [b"0", b"99999999999999999999999"])).map(b" ".join),
    st.tuples(st.sampled_from([b"KEYWORD", b"UNKEYWORD"]), st.sampled_from(FLAGS)).map(b" ".join),
    st.tuples(st.just(b"UID"), seqset).map(b" ".join),
)
search_key = st.recursive(
    search_leaf,
    lambda inner: st.one_of(
        inner.map(lambda k: b"NOT " + k),
        st.tuples(inner, inner).map(lambda t: b"OR " + t[0] + b" " + t[1]),
        st.lists(inner, min_size=1, max_size=3).map(lambda ks: b"(" + b" ".join(ks) + b")"),
    ),
    max_leaves=8,
)
search_args = st.tuples(
    mostly([b"", b"RETURN () ", b"RETURN (MIN MAX COUNT) ", b"RETURN (SAVE) ", b"RETURN (ALL SAVE) "],
           [b"RETURN (BOGUS) ", b"RETURN (MIN"]),
    mostly([b"", b"CHARSET UTF-8 ", b"CHARSET US-ASCII ", b"CHARSET ISO-8859-1 "], [b"CHARSET X-NONE "]),
    st.lists(search_key, min_size=1, max_size=3).map(b" ".join),
).map(b"".join)

DATE_TIMES = [b'"02-Nov-2026 10:00:00 +0100"', b'" 2-Nov-2026 10:00:00 -0000"', b'"31-Feb-2026 10:00:00 +0000"',
              b'"02-Nov-2026 25:00:00 +0000"', b'"bad"']
message_body = st.sampled_from([MESSAGES[0], b"", b"x", b"Subject: nul\r\n\r\na\x00b\r\n", b"\r\n\r\n"])


@st.composite
def append_command(draw) -> bytes:
    parts = [b"APPEND", draw(mailbox)]
    for _ in range(draw(st.integers(1, 2))):
        if draw(st.booleans()):
            parts.append(draw(flag_list))
        if draw(st.booleans()):
            parts.append(draw(st.sampled_from(DATE_TIMES)))
        data = draw(message_body)
        binary = b"\x00" in data and draw(st.booleans())
        parts.append((b"~" if binary else b"") + literal(data, draw(st.booleans())))
    return b" ".join(parts)


list_command = st.tuples(
    st.sampled_from([b"LIST", b"LSUB", b"LIST (SUBSCRIBED)", b"LIST (RECURSIVEMATCH)", b"LIST (SPECIAL-USE)",
                     b"LIST (BOGUS)", b"LIST ()"]),
    st.sampled_from([b'""', b"INBOX", b'"a."', b"&"]),
    pattern,
    st.sampled_from([b"", b" RETURN (CHILDREN)", b" RETURN (SUBSCRIBED SPECIAL-USE)",
                     b" RETURN (STATUS (MESSAGES UNSEEN SIZE))", b" RETURN (STATUS (BOGUS))",
                     b" RETURN (STATUS)", b" RETURN ((()))"]),
).map(lambda t: t[0] + b" " + t[1] + b" " + t[2] + t[3])

STATUS_ITEMS = [b"MESSAGES", b"RECENT", b"UIDNEXT", b"UIDVALIDITY", b"UNSEEN", b"SIZE", b"APPENDLIMIT",
                b"HIGHESTMODSEQ", b"DELETED", b"BOGUS"]

valid_ish = st.one_of(
    st.sampled_from([b"CAPABILITY", b"NOOP", b"CHECK", b"CLOSE", b"UNSELECT", b"EXPUNGE", b"NAMESPACE",
                     b"STARTTLS", b"ID NIL", b'ID ("name" "fuzz" "version" NIL)', b"ENABLE CONDSTORE",
                     b"ENABLE IMAP4rev2 UTF8=ACCEPT", b"IDLE", b"LOGIN user secret", b'LOGIN "user" "wrong"',
                     b"AUTHENTICATE PLAIN AHVzZXIAc2VjcmV0", b"AUTHENTICATE PLAIN =", b"AUTHENTICATE PLAIN",
                     b"AUTHENTICATE CRAM-MD5", b"AUTHENTICATE PLAIN !!!!"]),
    st.tuples(st.sampled_from([b"SELECT", b"EXAMINE"]), mailbox,
              st.sampled_from([b"", b" (CONDSTORE)", b" (BOGUS)", b" ()"])).map(lambda t: t[0] + b" " + t[1] + t[2]),
    st.tuples(st.sampled_from([b"CREATE", b"DELETE", b"SUBSCRIBE", b"UNSUBSCRIBE"]), mailbox).map(b" ".join),
    st.tuples(st.just(b"RENAME"), mailbox, mailbox).map(b" ".join),
    list_command,
    st.tuples(st.just(b"STATUS"), mailbox, st.lists(st.sampled_from(STATUS_ITEMS), min_size=1, max_size=4)).map(
        lambda t: t[0] + b" " + t[1] + b" (" + b" ".join(t[2]) + b")"),
    append_command(),
    st.tuples(st.sampled_from([b"FETCH", b"UID FETCH"]), seqset, fetch_items,
              st.sampled_from([b"", b" (CHANGEDSINCE 1)", b" (VANISHED)", b" (BOGUS 1)"])).map(
        lambda t: t[0] + b" " + t[1] + b" " + t[2] + t[3]),
    st.tuples(st.sampled_from([b"STORE", b"UID STORE"]), seqset,
              st.sampled_from([b"FLAGS", b"+FLAGS", b"-FLAGS", b"+FLAGS.SILENT", b"FLAGS.SILENT",
                               b"(UNCHANGEDSINCE 5) +FLAGS"]), flag_list).map(b" ".join),
    st.tuples(st.sampled_from([b"SEARCH", b"UID SEARCH"]), search_args).map(b" ".join),
    st.tuples(st.sampled_from([b"COPY", b"MOVE", b"UID COPY", b"UID MOVE"]), seqset, mailbox).map(b" ".join),
    st.tuples(st.just(b"UID EXPUNGE"), seqset).map(b" ".join),
)

GARBAGE_TOKENS = [b"(", b")", b"[", b"]", b"{", b"}", b"{5}", b"~{3}", b'"', b"\\", b"*", b"%", b"<", b">", b" ",
                  b"\x00", b"\xff", b"\xc3\xbc", b"\r", b"\t", b"NIL", b"UID", b"FETCH", b"1:*", b"BODY[",
                  b"OR", b"NOT", b"ALL", b"&", b"-", b"+", b"$", b".", b"0", b"4294967296"]
garbage = st.one_of(
    st.binary(max_size=60),
    st.lists(st.sampled_from(GARBAGE_TOKENS), max_size=30).map(b"".join),
)


def tame(line: bytes) -> bytes:
    """Garbage may not start a literal (it would swallow the next command),
    end IDLE or AUTHENTICATE (they read the next line raw), or carry a tracked tag."""
    line = line.replace(b"\n", b" ")
    line = re.sub(rb"(?i)idle|authenticate", b"x", line)
    if line.startswith(TAG_PREFIX.encode()):
        line = b"g" + line
    if re.search(rb"\}\r?$", line):
        line += b" x"
    return line


@st.composite
def mutated(draw) -> bytes:
    """A grammatical command with a few bytes replaced, inserted or cut off."""
    data = bytearray(b"g " + draw(valid_ish).split(b"\r\n", 1)[0])
    for _ in range(draw(st.integers(1, 3))):
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(["replace", "insert", "cut"]))
        byte = draw(st.sampled_from(GARBAGE_TOKENS))
        if op == "replace":
            data[pos : pos + 1] = byte
        elif op == "insert":
            data[pos:pos] = byte
        else:
            del data[pos:]
    return bytes(data)


# one step of a conversation: ("cmd", body) is tracked, ("junk", line) is not
step = st.one_of(
    valid_ish.map(lambda b: ("cmd", b)),
    valid_ish.map(lambda b: ("cmd", b)),
    valid_ish.map(lambda b: ("cmd", b)),
    mutated().map(lambda b: ("junk", tame(b))),
    garbage.map(lambda b: ("junk", tame(b))),
)


@st.composite
def conversation(draw):
    authenticated = draw(st.sampled_from([True, True, True, False]))
    steps = []
    if authenticated and draw(st.sampled_from([True, True, False])):
        steps.append(("cmd", b"SELECT INBOX"))
    steps += draw(st.lists(step, min_size=1, max_size=12))
    if draw(st.sampled_from([False] * 9 + [True])):
        steps.append(("cmd", b"LOGOUT"))
    cut_at = draw(st.lists(st.integers(0, 4000), max_size=4))
    return authenticated, steps, cut_at


def render(steps):
    """The client's bytes and the tracked tags, in order."""
    out = bytearray()
    tags = []
    for i, (kind, body) in enumerate(steps):
        if kind == "cmd":
            tag = f"{TAG_PREFIX}{i}"
            tags.append(tag)
            out += tag.encode() + b" " + body + b"\r\n"
            word = body.split(b" ", 2)
            if word[0] == b"IDLE":
                out += b"DONE\r\n"
            elif word[0] == b"AUTHENTICATE" and len(word) == 2:
                out += b"*\r\n"  # cancel if a challenge comes; a BAD line otherwise
        else:
            out += body + b"\r\n"
    return bytes(out), tags


# ------------------------------------------------------------ the checks

_TAGGED = re.compile(rb"([\x21\x23\x24\x26\x27\x2c-\x5b\x5d-\x7a\x7c-\x7e]+) (OK|NO|BAD)( .*)?")
_LITERAL_END = re.compile(rb"~?\{(\d+)\}$")
PYTHON_WORDS = re.compile(
    rb"Traceback|Exception|\b\w+Error\b|SERVERBUG|File \"|line \d+, in |object has no attribute|NoneType")


def responses(out: bytes) -> list[tuple[bytes, list[bytes]]]:
    """Split the output into (text, [literals]) responses; assert the framing."""
    result = []
    pos = 0
    while pos < len(out):
        text = bytearray()
        lits = []
        while True:
            end = out.find(b"\r\n", pos)
            assert end >= 0, f"response not ended by CRLF: {out[pos:pos + 200]!r}"
            piece = out[pos:end]
            assert b"\n" not in piece and b"\r" not in piece and b"\x00" not in piece, piece[:200]
            text += piece
            pos = end + 2
            m = _LITERAL_END.search(piece)
            if not m:
                break
            n = int(m.group(1))
            assert pos + n <= len(out), f"literal of {n} octets cut short: {out[pos:pos + 100]!r}"
            lits.append(out[pos : pos + n])
            pos += n
        result.append((bytes(text), lits))
    return result


def check_output(out: bytes, tags: list[str]) -> None:
    seen = []
    bye = False
    for text, _lits in responses(out):
        assert not PYTHON_WORDS.search(text), text[:300]
        assert re.fullmatch(rb"[\x20-\x7e]*", text), f"8-bit or control octets outside literals: {text[:200]!r}"
        if text.startswith(b"* "):
            bye = bye or text.startswith(b"* BYE")
            continue
        if text == b"+" or text.startswith(b"+ "):
            continue
        m = _TAGGED.fullmatch(text)
        assert m, f"not a response line: {text[:200]!r}"
        tag = m.group(1).decode()
        if tag.startswith(TAG_PREFIX) and tag in tags:
            seen.append(tag)
    assert seen == tags[: len(seen)], f"tagged responses out of order or repeated: {seen} for {tags}"
    if not bye:
        assert seen == tags, f"commands without a tagged response: {tags[len(seen):]}"


class LoginBackend:
    """Accepts user/secret as the current user."""

    last_failure = None

    def authenticate(self, user: str, password: str):
        if user == "user" and password == "secret":
            return SimpleNamespace(name=getpass.getuser(), home="/", mail_location="")
        return None


def _alarm(signum, frame):  # pragma: no cover - only on a hang
    raise TimeoutError(f"session example took more than {EXAMPLE_SECONDS}s")


@settings(max_examples=200, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(conversation())
def test_session_answers_anything_cleanly(template, example):
    authenticated, steps, cuts = example
    data, tags = render(steps)
    work = tempfile.mkdtemp(prefix="imapd-fuzz-")
    maildir = os.path.join(work, "Maildir")
    shutil.copytree(template, maildir, symlinks=True)
    cfg = defaults()
    cfg.auth.failure_delay = 0
    cfg.limits.failed_logins = 100
    session = Session(
        cfg,
        user=getpass.getuser() if authenticated else None,
        store_opener=lambda _user: open_store(maildir),
        login_backend=LoginBackend(),
        secure_channel=True,
    )
    out = bytearray()
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, EXAMPLE_SECONDS)
    start = time.monotonic()
    try:
        prev = 0
        for cut in sorted(set(c for c in cuts if c < len(data))) + [len(data)]:
            session.receive(data[prev:cut])
            prev = cut
            for _ in range(100000):  # the client reads everything, as fast as it comes
                session.pump()
                if not session.has_output():
                    break
                out += session.take_output()
        elapsed = time.monotonic() - start
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        session.finish("end of example")
        shutil.rmtree(work, ignore_errors=True)
    assert elapsed < EXAMPLE_SECONDS / 2, f"{elapsed:.1f}s for {data[:300]!r}"
    try:
        check_output(bytes(out), tags)
    except AssertionError as e:
        raise AssertionError(f"{e}\n--- input:\n{data[:3000]!r}\n--- output:\n{bytes(out)[:3000]!r}") from None
