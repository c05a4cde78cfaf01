"""Hostile input against the real process over pipes.

Whatever a client sends, imapd answers with a tagged BAD or NO (or `* BYE`
for a limit), the session goes on where the protocol allows it, the mail and
everything outside the mail root stay as they were, memory stays bounded, and
no Python traceback ever reaches the client.  Every test here checks the
files on disk as well as the answers, and every server's whole output (and
its stderr) is checked for leaked internals when the test ends.
"""

from __future__ import annotations

import os
import re
import signal
import time

import pytest

from harness import (
    RecordingPipe,
    chown_tree,
    config_file,
    deliver,
    mail_user,
    make_maildir,
    proc_cpu_seconds,
    proc_rss_kb,
    remove_maildir,
    tagged_status,
    tree_snapshot,
)

LEAK = re.compile(rb"Traceback|File \"|\b[A-Z][A-Za-z]*(Error|Exception)\b|SERVERBUG|NoneType|object has no attribute")
MESSAGE = (b"From: Alice <alice@example.org>\r\nTo: bob@example.com\r\nSubject: Hello\r\n"
           b"Date: Mon, 02 Nov 2026 10:00:00 +0100\r\nMessage-ID: <h1@example.org>\r\n\r\nHello pineapple\r\n")


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def user():
    return mail_user()


@pytest.fixture
def maildir(user):
    root = make_maildir(user, folders=(".Sub",))
    yield root
    remove_maildir(root)


@pytest.fixture
def serve(user, maildir):
    """Start imapd (pre-authenticated on `maildir` unless as_root) with an optional
    config text; at the end, check each server's output and stderr for leaks."""
    started: list[tuple[RecordingPipe, bool]] = []
    configs: list[str] = []

    def start(config: str | None = None, as_root: bool = False, stderr_is_log: bool = False) -> RecordingPipe:
        args: list[str] = []
        if config is not None:
            configs.append(config_file(config))
            args += ["--config", configs[-1]]
        if not as_root:
            args += ["--maildir", maildir]
        c = RecordingPipe(args, None if as_root else user, as_root=as_root)
        started.append((c, stderr_is_log))
        return c

    yield start
    for c, stderr_is_log in started:
        if c.proc.poll() is None:
            c.proc.kill()
        c.proc.wait(10)
        assert c.proc.stdout is not None
        c.transcript += c.proc.stdout.read()
        err = c.proc.stderr.read() if c.proc.stderr is not None else b""
        c.close()
        assert not LEAK.search(bytes(c.transcript)), LEAK.search(bytes(c.transcript))
        if not stderr_is_log:
            assert err == b"", f"imapd wrote to stderr: {err[:500]!r}"
    for path in configs:
        os.unlink(path)


def ok(c: RecordingPipe, text: str | bytes) -> list[bytes]:
    lines = c.command(text)
    assert tagged_status(lines) == b"OK", lines[-3:]
    return lines


def answer(c: RecordingPipe, tag: str, data: bytes, timeout: float = 10.0) -> list[bytes]:
    """Send raw bytes (one command, CRLF added) and read up to its tagged answer."""
    c.send(data + b"\r\n")
    return c.read_until_tagged(tag, timeout)


def alive(c: RecordingPipe) -> None:
    assert tagged_status(c.command("NOOP")) == b"OK"


def messages_on_disk(maildir: str, folder: str = "") -> list[str]:
    """Base names (without flags) of the message files in new/ and cur/."""
    base = os.path.join(maildir, folder)
    names = os.listdir(os.path.join(base, "cur")) + os.listdir(os.path.join(base, "new"))
    return sorted(n.split(":", 1)[0] for n in names)


def top_level(maildir: str) -> set[str]:
    """Mailbox directories at the top of the Maildir (what CREATE/RENAME could add)."""
    return {e for e in os.listdir(maildir) if os.path.isdir(os.path.join(maildir, e))}


# ------------------------------------------------------------ long lines


def test_overlong_lines_are_refused_and_the_session_survives(serve, maildir):
    c = serve()
    lines = answer(c, "big", b"big NOOP " + b"x" * 200_000)
    assert lines[-1].startswith(b"big BAD [TOOBIG]")
    # no tag could be read: an untagged BAD
    c.send(b"y" * 150_000 + b"\r\n")
    assert c.read_line().startswith(b"* BAD [TOOBIG]")
    alive(c)
    # a continuation line after a literal counts against the same limit
    c.send(b"l1 LOGIN {4}\r\n")
    assert c.read_line().startswith(b"+ ")
    lines = answer(c, "l1", b"user " + b"z" * 100_000)
    assert lines[-1].startswith(b"l1 BAD [TOOBIG]")
    # an over-long line that ends with a LITERAL+ announcement: its literal is
    # thrown away with it, never run as a command
    c.send(b"l2 NOOP " + b"q" * 70_000 + b" {17+}\r\nl3 CREATE Sneaky\r\n")
    c.send(b"l4 NOOP\r\n")
    lines = c.read_until_tagged("l4")
    assert lines[0].startswith(b"l2 BAD [TOOBIG]") and lines[-1].startswith(b"l4 OK")
    assert not any(l.startswith(b"l3 ") for l in lines)
    assert ".Sneaky" not in os.listdir(maildir)
    # 16 MB without a line end, in pieces: refused once, memory stays small
    tagline = b"huge NOOP "
    c.send(tagline)
    for _ in range(64):
        c.send(b"w" * 256 * 1024)
    c.send(b"\r\n")
    lines = c.read_until_tagged("huge", timeout=20)
    assert lines[-1].startswith(b"huge BAD [TOOBIG]")
    assert proc_rss_kb(c.proc.pid) < 100_000
    alive(c)


# --------------------------------------------------------------- literals


def test_literals_beyond_the_limits(serve, maildir):
    c = serve("[limits]\nliteral_size = 1000\nappend_size = 5000\n")
    assert answer(c, "l1", b'l1 ID ("x" {5000}')[-1].startswith(b"l1 NO [TOOBIG]")
    alive(c)
    assert answer(c, "a1", b"a1 APPEND INBOX {6000}")[-1].startswith(b"a1 NO [TOOBIG]")
    assert answer(c, "a2", b"a2 APPEND INBOX {99999999999999999999}")[-1].startswith(b"a2 NO [TOOBIG]")
    alive(c)
    assert messages_on_disk(maildir) == []
    # within the APPEND limit, APPEND works
    c.send(b"a3 APPEND INBOX {4000}\r\n")
    assert c.read_line().startswith(b"+ ")
    lines = answer(c, "a3", b"Subject: x\r\n\r\n" + b"y" * (4000 - 14))
    assert lines[-1].startswith(b"a3 OK [APPENDUID ")
    assert len(messages_on_disk(maildir)) == 1
    # a LITERAL+ beyond the limit is already on its way: the stream is lost, BYE
    c.send(b'l2 ID ("x" {5000+}\r\n')
    assert c.read_line().startswith(b"* BYE [TOOBIG]")
    assert c.proc.wait(5) == 0


def test_literal_before_login_is_small(serve, maildir):
    """An unauthenticated client cannot make the server buffer an APPEND-sized literal."""
    if os.geteuid() != 0:
        pytest.skip("needs root to start a server that asks for a login")
    c = serve(_login_config(maildir), as_root=True)
    assert c.greeting.startswith(b"* OK")
    assert answer(c, "p1", b"p1 APPEND INBOX {10000000}")[-1].startswith(b"p1 NO [TOOBIG]")
    assert answer(c, "p2", b"p2 LOGIN {100000}")[-1].startswith(b"p2 NO [TOOBIG]")
    alive(c)


@pytest.mark.parametrize("plus", [False, True], ids=["sync", "literal+"])
def test_literal_announced_and_never_sent_ends_in_autologout(serve, maildir, plus):
    c = serve("[limits]\nautologout = 1.5\n")
    if plus:
        c.send(b"a APPEND INBOX {100+}\r\n")
    else:
        c.send(b"a APPEND INBOX {100}\r\n")
        assert c.read_line().startswith(b"+ ")
    start = time.monotonic()
    c.send(b"Subject: trickle\r\n")
    # a byte now and then does not keep the session alive
    while time.monotonic() - start < 6:
        try:
            c.send(b"x")
        except BrokenPipeError:
            break
        if _readable(c, 0.25):
            try:
                c.buf += c.read_some(1)
            except EOFError:
                break
    assert b"* BYE Autologout" in c.buf
    assert time.monotonic() - start < 5
    assert c.proc.wait(5) == 0
    assert messages_on_disk(maildir) == []
    assert os.listdir(os.path.join(maildir, "tmp")) == []


def _readable(c: RecordingPipe, timeout: float) -> bool:
    import select

    assert c.proc.stdout is not None
    return bool(select.select([c.proc.stdout.fileno()], [], [], timeout)[0])


# ---------------------------------------------------------------- nesting


def test_deep_nesting_is_refused(serve, maildir, user):
    deliver(maildir, MESSAGE, user)
    c = serve()
    ok(c, "SELECT INBOX")
    deep = b"(" * 10_000
    shallow = b")" * 10_000
    cases = {
        "s1": b"s1 SEARCH " + deep + b"ALL" + shallow,
        "s2": b"s2 SEARCH " + deep,
        "s3": b"s3 SEARCH " + b"NOT " * 10_000 + b"ALL",
        "s4": b"s4 UID SEARCH " + b"(NOT " * 5_000 + b"ALL" + b")" * 5_000,
        "l1": b'l1 LIST ' + deep + shallow + b' "" *',
        "l2": b'l2 LIST (SUBSCRIBED ' + deep + shallow + b') "" *',
        "l3": b'l3 LIST "" * RETURN ' + deep + shallow,
        "l4": b'l4 LIST "" * RETURN (STATUS ' + deep + b"MESSAGES" + shallow + b")",
        "e1": b"e1 EXAMINE INBOX " + deep + shallow,
        "f1": b"f1 FETCH 1 FLAGS " + deep + shallow,
        "f2": b"f2 FETCH 1 " + deep + b"FLAGS" + shallow,
        "t1": b"t1 STORE 1 " + deep + shallow + b" +FLAGS x",
        "t2": b"t2 STORE 1 +FLAGS " + deep + b"x" + shallow,
        "a1": b"a1 APPEND INBOX " + deep + shallow + b" {1+}\r\nx",
        "i1": b"i1 ID " + deep + shallow,
    }
    start = time.monotonic()
    for tag, data in cases.items():
        line = answer(c, tag, data)[-1]
        assert line.startswith(tag.encode() + b" BAD"), line[:200]
    assert time.monotonic() - start < 5
    # still selected, still working
    lines = ok(c, "FETCH 1 (FLAGS)")
    assert lines[0].startswith(b"* 1 FETCH")
    assert len(messages_on_disk(maildir)) == 1


# ------------------------------------------------------- NUL and 8-bit


def test_nul_and_8bit_octets_in_commands(serve, maildir, user):
    deliver(maildir, MESSAGE, user)
    before = top_level(maildir)
    c = serve()
    ok(c, "SELECT INBOX")
    bad = {
        "n1": b"n1 NOOP\x00",
        "n2": b"n2 SELECT INB\x00OX",
        "n3": b"n3 CREATE {5+}\r\nab\x00cd",
        "n4": b'n4 SEARCH SUBJECT "a\x00b"',
        "n5": b"n5 SEARCH SUBJECT {3+}\r\na\x00b",
        "n6": b"n6 STORE 1 +FLAGS (a\x00b)",
        "n7": b"n7 APPEND INBOX {6+}\r\nab\x00cd\n",
        "e1": b"e1 SELECT B\xc3\xbccher",
        "e2": b"e2 NO\xffOP",
        "e3": b"e3 FETCH 1 (BODY[HEADER.FIELDS (SUBJ\xffECT)])",
        "e4": b"e4 STORE 1 +FLAGS (caf\xc3\xa9)",
        "e5": b"e5 APPEND INBOX (k\xff) {5+}\r\nhello",
        "e6": b"e6 FETCH 1:\xff FLAGS",
    }
    for tag, data in bad.items():
        line = answer(c, tag, data)[-1]
        assert line.startswith(tag.encode() + b" BAD"), line[:200]
    refused = {
        "r1": b'r1 CREATE "B\xc3\xbccher"',
        "r2": b"r2 CREATE {7+}\r\nB\xc3\xbccher",
        "r3": b'r3 RENAME Sub "\xff\xfe"',
        "r4": b'r4 STATUS "\xc3\xbc" (MESSAGES)',
        "r5": b'r5 COPY 1 "\xc3\xbc"',
    }
    for tag, data in refused.items():
        line = answer(c, tag, data)[-1]
        assert line.startswith(tag.encode() + b" NO"), line[:200]
    # no tag at all
    for data in (b"\x00\x00\x00", b"\xff\xfe NOOP", b"n9\x00 NOOP", b"\x1b[31m NOOP"):
        c.send(data + b"\r\n")
        assert c.read_line().startswith(b"* BAD")
    # 8-bit search text in a charset is fine
    lines = answer(c, "u1", b'u1 SEARCH CHARSET UTF-8 SUBJECT "Gr\xc3\xbc\xc3\x9fe"')
    assert lines[-1].startswith(b"u1 OK")
    lines = answer(c, "u2", b'u2 ID ("n\xc3\xa4me" "\xff")')
    assert lines[-1].startswith(b"u2 OK")
    # answers never carry raw 8-bit or control octets outside literals
    for line in bytes(c.transcript).split(b"\r\n"):
        assert re.fullmatch(rb"[\x20-\x7e]*", line), line[:200]
    alive(c)
    assert top_level(maildir) == before
    assert len(messages_on_disk(maildir)) == 1


# ----------------------------------------------- mailbox names on disk


INVALID_UTF7 = ["&", "&Jjo", "&AGE-", "&Jjo-&AGE-", "&Jjo-&Jjo-", "&AGEAYgBj-", "&2D0-", "&Jjo!-", "&-&"]


def test_invalid_modified_utf7_names(serve, maildir, user):
    deliver(maildir, MESSAGE, user)
    before_dirs = top_level(maildir)
    before_msgs = messages_on_disk(maildir)
    c = serve()
    commands = [
        "SELECT {n}", "EXAMINE {n}", "CREATE {n}", "DELETE {n}", "RENAME Sub {n}", "RENAME {n} Other",
        "RENAME INBOX {n}", "STATUS {n} (MESSAGES)", "SUBSCRIBE {n}", "CREATE {n}.child", "CREATE Sub.{n}",
    ]
    for name in INVALID_UTF7:
        quoted = '"' + name + '"'
        for template in commands:
            lines = c.command(template.format(n=quoted))
            assert tagged_status(lines) in (b"NO", b"BAD"), (template, name, lines[-1])
        lines = answer(c, "ap", b"ap APPEND " + quoted.encode() + b" {5+}\r\nhello")
        assert tagged_status(lines) in (b"NO", b"BAD"), (name, lines[-1])
    ok(c, "SELECT INBOX")
    for name in INVALID_UTF7:
        lines = c.command(f'COPY 1 "{name}"')
        assert tagged_status(lines) in (b"NO", b"BAD"), (name, lines[-1])
    assert top_level(maildir) == before_dirs
    assert messages_on_disk(maildir) == before_msgs
    # the canonical form works, and is what lands on disk
    ok(c, "CREATE &Jjo-")
    assert ".&Jjo-" in os.listdir(maildir)
    assert any(l.endswith(b" &Jjo-") for l in ok(c, 'LIST "" *'))


def test_names_that_would_escape_the_maildir(serve, maildir, user):
    deliver(maildir, MESSAGE, user)
    base = os.path.dirname(maildir)
    token = f"escape{os.getpid()}"
    outside_before = {e for e in os.listdir(base)}
    tmp_before = set(os.listdir("/tmp"))
    before_dirs = top_level(maildir)
    c = serve()
    names = [
        "..", "../" + token, "../../" + token, "../../../../../../tmp/" + token, "/etc", "/etc/" + token,
        "/tmp/" + token, "/", ".", "./" + token, "." + token, ".." + token, "Sub/../../" + token,
        "INBOX/../" + token, "~", "~root", "~/" + token, "a/b", "\\\\" + token, "Sub/../..", "Sub..x",
        ".INBOX", "INBOX..", "..INBOX", "..cur", "tmp/../..", "Sub." + "." * 50, "Sub.", ".Sub",
    ]
    commands = ["CREATE {n}", "DELETE {n}", "RENAME Sub {n}", "RENAME {n} " + token, "SELECT {n}", "EXAMINE {n}",
                "STATUS {n} (MESSAGES)", "CREATE {n}.x", "CREATE Sub.{n}"]
    for name in names:
        quoted = '"' + name.replace("\\", "\\\\") + '"'
        for template in commands:
            lines = c.command(template.format(n=quoted))
            assert tagged_status(lines) in (b"NO", b"BAD"), (template, name, lines[-1])
        lines = answer(c, "ap", b"ap APPEND " + quoted.encode() + b" {5+}\r\nhello")
        assert tagged_status(lines) in (b"NO", b"BAD"), (name, lines[-1])
    ok(c, "SELECT INBOX")
    for name in names:
        quoted = '"' + name.replace("\\", "\\\\") + '"'
        for template in ("COPY 1 {n}", "MOVE 1 {n}"):
            lines = c.command(template.format(n=quoted))
            assert tagged_status(lines) in (b"NO", b"BAD"), (template, name, lines[-1])
    # RENAME INBOX to an escaping name moves no mail anywhere
    for name in ("../" + token, "/tmp/" + token, ".."):
        assert tagged_status(c.command(f'RENAME INBOX "{name}"')) in (b"NO", b"BAD")
    assert {e for e in os.listdir(base)} == outside_before
    assert not any(token in e for e in set(os.listdir("/tmp")) - tmp_before)
    assert not os.path.exists("/etc/" + token)
    assert top_level(maildir) == before_dirs
    assert len(messages_on_disk(maildir)) == 1
    assert messages_on_disk(maildir, ".Sub") == []
    alive(c)


# ---------------------------------------------------------------- symlinks


SECRET_MAIL = b"Subject: SECRET-OUTSIDE-MAIL\r\n\r\nsecret outside mail\r\n"
SECRET_FILE = b"Subject: SECRET-FILE\r\n\r\nsecret file next to the Maildir\r\n"


@pytest.fixture
def evil_maildir(maildir, user):
    """A Maildir with symlinks pointing out: `.Evil` to a mail folder outside,
    `.Etc` to /etc, message files in cur/ and new/ to /etc/passwd and to a file
    outside.  Everything outside is readable by the server's user."""
    base = os.path.dirname(maildir)
    outside = os.path.join(base, "outside")
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(outside, sub))
    with open(os.path.join(outside, "cur", "1700000000.M1P1.host:2,S"), "wb") as f:
        f.write(SECRET_MAIL)
    secret = os.path.join(base, "secret.eml")
    with open(secret, "wb") as f:
        f.write(SECRET_FILE)
    chown_tree(base, user)
    os.symlink(outside, os.path.join(maildir, ".Evil"))
    os.symlink("/etc", os.path.join(maildir, ".Etc"))
    os.symlink("/etc/passwd", os.path.join(maildir, "cur", "1700000001.M2P2.host:2,"))
    os.symlink(secret, os.path.join(maildir, "cur", "1700000002.M3P3.host:2,S"))
    os.symlink(secret, os.path.join(maildir, "new", "1700000003.M4P4.host"))
    os.symlink(os.path.join(outside, "cur"), os.path.join(maildir, ".Sub", "cur", "1700000004.M5P5.host:2,"))
    deliver(maildir, MESSAGE, user)
    if os.geteuid() == 0:
        for path in (".Evil", ".Etc", "cur/1700000001.M2P2.host:2,", "cur/1700000002.M3P3.host:2,S",
                     "new/1700000003.M4P4.host", ".Sub/cur/1700000004.M5P5.host:2,"):
            os.lchown(os.path.join(maildir, path), user.uid, user.gid)
    return maildir, outside, secret


def _no_secrets(data: bytes) -> None:
    assert b"SECRET" not in data and b"root:" not in data and b"secret" not in data, data[:500]


def test_symlinks_inside_the_maildir_are_never_served(serve, evil_maildir):
    maildir, outside, secret = evil_maildir
    base = os.path.dirname(maildir)
    outside_before = tree_snapshot(outside)
    c = serve()
    lines = ok(c, 'LIST "" *')
    for l in lines:
        if b"Evil" in l or b"Etc" in l:
            assert b"\\Noselect" in l, l
    for cmd in ("SELECT Evil", "EXAMINE Etc", "STATUS Evil (MESSAGES UNSEEN SIZE)", "STATUS Etc (MESSAGES)",
                "DELETE Evil", "DELETE Etc", "RENAME Evil Good", "RENAME Etc Good", "CREATE Evil", "CREATE Evil.Sub",
                "CREATE Etc.x"):
        lines = c.command(cmd)
        assert tagged_status(lines) == b"NO", (cmd, lines[-1])
    for mailbox in ("Evil", "Etc"):
        lines = answer(c, "ap", b"ap APPEND " + mailbox.encode() + b" {5+}\r\nhello")
        assert tagged_status(lines) == b"NO", lines[-1]
    lines = ok(c, "SELECT INBOX")
    assert b"* 1 EXISTS" in lines  # only the real message
    lines = ok(c, "FETCH 1:* (UID RFC822.SIZE BODY.PEEK[] BODY.PEEK[HEADER] BINARY.PEEK[1])")
    _no_secrets(b"\r\n".join(lines))
    assert tagged_status(c.command("FETCH 2 FLAGS")) == b"BAD"
    lines = ok(c, "UID FETCH 1:4294967295 (BODY.PEEK[])")
    _no_secrets(b"\r\n".join(lines))
    lines = ok(c, "SEARCH TEXT secret")
    assert lines[0] == b"* SEARCH"
    for cmd in ("COPY 1 Evil", "MOVE 1 Evil", "COPY 1 Etc"):
        assert tagged_status(c.command(cmd)) == b"NO", cmd
    ok(c, "STORE 1:* +FLAGS (\\Deleted)")
    ok(c, "EXPUNGE")
    lines = ok(c, "EXAMINE Sub")
    assert b"* 0 EXISTS" in lines
    # nothing outside changed, the links are still links
    assert tree_snapshot(outside) == outside_before
    with open(secret, "rb") as f:
        assert f.read() == SECRET_FILE
    for path in (".Evil", ".Etc", "cur/1700000001.M2P2.host:2,", "cur/1700000002.M3P3.host:2,S"):
        assert os.path.islink(os.path.join(maildir, path)), path
    assert sorted(os.listdir(base)) == sorted(["Maildir", "outside", "secret.eml"])
    _no_secrets(bytes(c.transcript))
    alive(c)


def test_rename_inbox_onto_a_symlinked_folder_keeps_the_mail(serve, evil_maildir):
    maildir, outside, _ = evil_maildir
    outside_before = tree_snapshot(outside)
    c = serve()
    lines = c.command("RENAME INBOX Evil")
    assert tree_snapshot(outside) == outside_before
    assert tagged_status(lines) == b"NO"
    real = [e.name for sub in ("cur", "new") for e in os.scandir(os.path.join(maildir, sub))
            if not e.is_symlink() and e.is_file()]
    assert len(real) == 1, real  # the delivered message is still in INBOX


# ------------------------------------------------------- sequence numbers


def test_sequence_sets_with_huge_numbers(serve, maildir, user):
    for i in range(3):
        deliver(maildir, MESSAGE.replace(b"Hello", b"Hello %d" % i), user)
    c = serve()
    ok(c, "SELECT INBOX")
    expect = {
        "FETCH 4294967295 FLAGS": b"BAD",
        "FETCH 4294967296 FLAGS": b"BAD",
        "FETCH 99999999999999999999 FLAGS": b"BAD",
        "FETCH 99999999999999999999999999999999999999999 FLAGS": b"BAD",
        "FETCH 0 FLAGS": b"BAD",
        "FETCH 0:* FLAGS": b"BAD",
        "FETCH 1:0 FLAGS": b"BAD",
        "FETCH 01 FLAGS": b"BAD",
        "FETCH -1 FLAGS": b"BAD",
        "FETCH 1,,2 FLAGS": b"BAD",
        "FETCH 1: FLAGS": b"BAD",
        "FETCH :1 FLAGS": b"BAD",
        "FETCH *:* FLAGS": b"OK",
        "FETCH *:4294967295 FLAGS": b"BAD",
        "UID FETCH 4294967295 FLAGS": b"OK",
        "UID FETCH 4294967295:* FLAGS": b"OK",
        "UID FETCH 1:4294967295 FLAGS": b"OK",
        "UID FETCH 4294967296 FLAGS": b"BAD",
        "UID FETCH 99999999999999999999 FLAGS": b"BAD",
        "UID FETCH 0 FLAGS": b"BAD",
        "UID FETCH *:* FLAGS": b"OK",
        "STORE 4294967295 +FLAGS (x)": b"BAD",
        "STORE 4294967296 +FLAGS (x)": b"BAD",
        "UID STORE 4294967295:1 +FLAGS (x)": b"OK",
        "UID STORE 4294967296 +FLAGS (x)": b"BAD",
        "COPY 4294967295 INBOX": b"BAD",
        "UID COPY 4294967295 Sub": b"OK",
        "UID MOVE 4294967296 Sub": b"BAD",
        "SEARCH 4294967295": b"OK",
        "SEARCH 4294967296": b"BAD",
        "SEARCH UID 99999999999999999999": b"BAD",
        "SEARCH *:* 0": b"BAD",
        "SEARCH LARGER 99999999999999999999999": b"BAD",
        "SEARCH LARGER 9223372036854775807": b"OK",
        "SEARCH OLDER 0": b"BAD",
        "SEARCH YOUNGER 4294967296": b"BAD",
        "SEARCH MODSEQ 99999999999999999999": b"BAD",
        "UID EXPUNGE 4294967296": b"BAD",
        "UID EXPUNGE 4294967295": b"OK",
        "FETCH 1 (BODY[]<4294967295.4294967295>)": b"OK",
        "FETCH 1 (BODY[]<99999999999999999999.1>)": b"BAD",
        "FETCH 1 (BODY[4294967295])": b"OK",
        "FETCH 1 (BODY[4294967296])": b"BAD",
        "FETCH 1 (BODY[1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19.20])": b"OK",
        "FETCH 1 FLAGS (CHANGEDSINCE 99999999999999999999)": b"BAD",
    }
    for cmd, status in expect.items():
        lines = c.command(cmd)
        assert tagged_status(lines) == status, (cmd, lines[-1])
    lines = ok(c, "FETCH *:* FLAGS")
    assert [l for l in lines if b"FETCH" in l and l.startswith(b"*")] == [l for l in lines[:-1] if l.startswith(b"* 3 FETCH")]
    lines = ok(c, "UID FETCH 1:4294967295 UID")
    assert sum(l.startswith(b"* ") and b" FETCH " in l for l in lines) == 3
    assert tagged_status(c.command("UID FETCH 4294967295 FLAGS")) == b"OK"
    assert len(messages_on_disk(maildir)) == 3
    alive(c)


def test_sequence_sets_as_long_as_the_line(serve, maildir, user):
    for i in range(5):
        deliver(maildir, MESSAGE, user)
    c = serve()
    ok(c, "SELECT INBOX")
    # as many elements as fit the default 64 KiB line
    ones = b",".join([b"1"] * 32_000)
    distinct = b",".join(b"%d" % i for i in range(1, 11_000))
    ranges = b",".join(b"%d:%d" % (i, i + 1_000_000) for i in range(1, 5_000))
    start = time.monotonic()
    for tag, data in {
        "f1": b"f1 FETCH " + ones + b" FLAGS",
        "f2": b"f2 UID FETCH " + distinct + b" (UID FLAGS)",
        "f3": b"f3 UID FETCH " + ranges + b" UID",
        "s1": b"s1 SEARCH " + ones,
        "s2": b"s2 SEARCH UID " + distinct,
        "s3": b"s3 SEARCH " + b",".join([b"2"] * 20_000) + b" UID " + ranges[: ranges.index(b",", 20_000)],
        "t1": b"t1 UID STORE " + distinct + b" +FLAGS.SILENT (big)",
        "c1": b"c1 UID COPY " + ranges + b" Sub",
        "x1": b"x1 UID EXPUNGE " + distinct.replace(b"1,", b"7,"),
    }.items():
        assert len(data) < 65536
        lines = answer(c, tag, data)
        assert lines[-1].startswith(tag.encode() + b" OK"), lines[-1][:200]
    assert time.monotonic() - start < 10
    assert len(messages_on_disk(maildir, ".Sub")) == 5
    assert proc_rss_kb(c.proc.pid) < 100_000
    alive(c)


def test_a_million_element_sequence_set_with_a_raised_line_limit(serve, maildir, user):
    for i in range(5):
        deliver(maildir, MESSAGE, user)
    c = serve("[limits]\nline_length = 16777216\n")
    ok(c, "SELECT INBOX")
    million = b",".join([b"1"] * 1_000_000)
    distinct = b",".join(b"%d" % i for i in range(1, 1_000_001))
    start = time.monotonic()
    lines = answer(c, "m1", b"m1 FETCH " + million + b" FLAGS", timeout=30)
    assert lines[-1].startswith(b"m1 OK") and sum(l.startswith(b"* 1 FETCH ") for l in lines) == 1
    lines = answer(c, "m2", b"m2 UID SEARCH UID " + distinct, timeout=30)
    assert lines[-1].startswith(b"m2 OK") and lines[0].startswith(b"* SEARCH 1 2 3 4 5")
    lines = answer(c, "m3", b"m3 SEARCH " + distinct, timeout=30)
    assert lines[-1].startswith(b"m3 OK")
    assert time.monotonic() - start < 30
    alive(c)


# ------------------------------------------------------------- OR chains


def test_search_with_thousands_of_ors(serve, maildir, user):
    for i in range(20):
        deliver(maildir, MESSAGE.replace(b"pineapple", b"pineapple " * 500 + b"%d" % i), user)
    c = serve()
    ok(c, "SELECT INBOX")
    start = time.monotonic()
    # right-nested: OR a OR b OR c ... is read without recursion
    lines = answer(c, "o1", b"o1 SEARCH " + b"OR SEEN " * 5000 + b"ALL")
    assert lines[-1].startswith(b"o1 OK") and lines[0] == b"* SEARCH " + b" ".join(b"%d" % i for i in range(1, 21))
    lines = answer(c, "o2", b"o2 SEARCH " + b"OR (FLAGGED) " * 5000 + b"UNSEEN")
    assert lines[-1].startswith(b"o2 OK")
    # every operand a full-text search that never matches: bounded time
    lines = answer(c, "o3", b"o3 SEARCH " + b"OR TEXT zzz " * 4000 + b"TEXT zzz")
    assert lines[-1].startswith(b"o3 OK") and lines[0] == b"* SEARCH"
    lines = answer(c, "o4", b"o4 UID SEARCH " + b"OR BODY q%d " * 4000 % tuple(range(4000)) + b"BODY 19")
    assert lines[-1].startswith(b"o4 OK") and lines[0] == b"* SEARCH 20"
    # left-nested: OR OR OR ... a b c is nesting, refused beyond the depth limit
    lines = answer(c, "o5", b"o5 SEARCH " + b"OR " * 5000 + b"ALL" + b" SEEN" * 5000)
    assert lines[-1].startswith(b"o5 BAD")
    lines = answer(c, "o6", b"o6 SEARCH " + b"(OR " * 5000 + b"ALL" + b" SEEN)" * 5000)
    assert lines[-1].startswith(b"o6 BAD")
    assert time.monotonic() - start < 15
    alive(c)


# ----------------------------------------------------------- wrong state

# RFC 3501 §6 (and the extensions imapd offers): the states each command is valid in.
N, A, S = "not authenticated", "authenticated", "selected"
VALID_IN = {
    "CAPABILITY": {N, A, S}, "NOOP": {N, A, S}, "ID": {N, A, S},
    "STARTTLS": {N}, "AUTHENTICATE": {N}, "LOGIN": {N},
    "SELECT": {A, S}, "EXAMINE": {A, S}, "CREATE": {A, S}, "DELETE": {A, S}, "RENAME": {A, S},
    "SUBSCRIBE": {A, S}, "UNSUBSCRIBE": {A, S}, "LIST": {A, S}, "LSUB": {A, S}, "STATUS": {A, S},
    "APPEND": {A, S}, "NAMESPACE": {A, S}, "IDLE": {A, S}, "ENABLE": {A},
    "CHECK": {S}, "CLOSE": {S}, "EXPUNGE": {S}, "SEARCH": {S}, "FETCH": {S}, "STORE": {S}, "COPY": {S},
    "UID": {S}, "UNSELECT": {S}, "MOVE": {S},
}
EXAMPLE = {
    "CAPABILITY": b"CAPABILITY", "NOOP": b"NOOP", "ID": b"ID NIL", "STARTTLS": b"STARTTLS",
    "AUTHENTICATE": b"AUTHENTICATE PLAIN AHUAcA==", "LOGIN": b"LOGIN u p",
    "SELECT": b"SELECT INBOX", "EXAMINE": b"EXAMINE INBOX", "CREATE": b"CREATE Made", "DELETE": b"DELETE Made",
    "RENAME": b"RENAME Made Moved", "SUBSCRIBE": b"SUBSCRIBE Moved", "UNSUBSCRIBE": b"UNSUBSCRIBE Moved",
    "LIST": b'LIST "" *', "LSUB": b'LSUB "" *', "STATUS": b"STATUS INBOX (MESSAGES)",
    "APPEND": b"APPEND Sub {5+}\r\nhello", "NAMESPACE": b"NAMESPACE", "IDLE": b"IDLE\r\nDONE",
    "ENABLE": b"ENABLE CONDSTORE", "CHECK": b"CHECK", "CLOSE": b"CLOSE", "EXPUNGE": b"EXPUNGE",
    "SEARCH": b"SEARCH ALL", "FETCH": b"FETCH 1 FLAGS", "STORE": b"STORE 1 +FLAGS (kw)", "COPY": b"COPY 1 Sub",
    "UID": b"UID FETCH 1 FLAGS", "UNSELECT": b"UNSELECT", "MOVE": b"MOVE 1 Sub",
}
REFUSAL = re.compile(rb"requires authentication|only allowed before authentication|requires a selected mailbox|"
                     rb"only allowed in the authenticated state|not allowed in the")


def _login_config(maildir: str) -> str:
    path = os.path.join(os.path.dirname(maildir), "passwd")  # empty: every login fails, at once
    with open(path, "w"):
        pass
    os.chmod(path, 0o600)
    return f'[auth]\nbackend = "passwd-file"\npasswd_file = "{path}"\nfailure_delay = 0\n[limits]\nfailed_logins = 50\n'


def _run_every_command(c: RecordingPipe, state: str) -> None:
    for i, (name, example) in enumerate(EXAMPLE.items()):
        tag = f"w{i}"
        lines = answer(c, tag, tag.encode() + b" " + example)
        if example.endswith(b"DONE") and state not in VALID_IN[name]:
            c.read_line()  # the DONE line, answered on its own as a bad command
        last = lines[-1]
        if state in VALID_IN[name]:
            assert not REFUSAL.search(last), (state, name, last)
        else:
            assert last.startswith(tag.encode() + b" BAD") and REFUSAL.search(last), (state, name, last)
        alive(c)  # a valid command between the refusals: never too many bad commands in a row
        # back to the state under test
        if state == S and name in ("CLOSE", "UNSELECT", "SELECT", "EXAMINE"):
            ok(c, "SELECT INBOX")
        elif state == A and name in ("SELECT", "EXAMINE"):
            ok(c, "UNSELECT")


def test_every_command_in_every_state(serve, maildir, user):
    deliver(maildir, MESSAGE, user)
    if os.geteuid() == 0:
        c = serve(_login_config(maildir), as_root=True)
        assert c.greeting.startswith(b"* OK")
        _run_every_command(c, N)
        c.command("LOGOUT")
    c = serve()
    _run_every_command(c, A)
    ok(c, "SELECT INBOX")
    _run_every_command(c, S)
    # the logout state: nothing pipelined behind LOGOUT is run
    c.send(b"z1 LOGOUT\r\nz2 CREATE AfterLogout\r\nz3 NOOP\r\n")
    rest = c.read_to_eof()
    assert b"* BYE" in rest and b"z1 OK" in rest and b"z2 " not in rest and b"z3 " not in rest
    assert c.proc.wait(5) == 0
    assert ".AfterLogout" not in os.listdir(maildir)


# ------------------------------------------------------------ pipelining


def test_500_pipelined_mixed_commands_are_answered_in_order(serve, maildir, user):
    deliver(maildir, MESSAGE, user)
    c = serve()
    mix = [
        b"NOOP", b"CAPABILITY", b"SELECT INBOX", b"FETCH 1:* (UID FLAGS RFC822.SIZE)", b"UID SEARCH ALL",
        b"STORE 1 +FLAGS (k%d)", b"STATUS Sub (MESSAGES UIDNEXT)", b'LIST "" *', b"APPEND Sub {5+}\r\nhello",
        b"FROB", b"FETCH", b"SEARCH CHARSET X-NONE ALL", b"CHECK", b"ID NIL", b"NAMESPACE", b"EXAMINE Sub",
        b"FETCH 1:* (ENVELOPE BODYSTRUCTURE)", b"SELECT INBOX", b"COPY 1 Sub", b"UID FETCH 1:* BODY.PEEK[HEADER]",
        b"UNSELECT", b"CREATE P%d", b"DELETE P%d",
    ]
    commands = []
    for i in range(500):
        cmd = mix[i % len(mix)]
        if b"%d" in cmd:
            cmd = cmd % (i // len(mix))
        commands.append(b"p%d " % i + cmd + b"\r\n")
    c.send(b"".join(commands))  # one write
    lines = c.read_until_tagged("p499", timeout=30)
    tagged = [l.split(b" ", 1)[0] for l in lines if l.startswith(b"p")]
    assert tagged == [b"p%d" % i for i in range(500)]
    assert sum(l.startswith(b"p") and b" BAD " in l for l in lines) == 2 * len(range(0, 500, len(mix)))
    assert len(messages_on_disk(maildir, ".Sub")) > 20
    alive(c)


# ------------------------------------------------ a client that never reads


def _make_big_mailbox(maildir: str, user) -> int:
    total = 0
    line = b"x" * 76 + b"\r\n"
    for i in range(4):  # beyond the streaming threshold (1 MiB)
        data = b"Subject: big %d\r\n\r\n" % i + line * 16_000
        deliver(maildir, data, user)
        total += len(data)
    for i in range(8):  # below it: built in memory
        data = b"Subject: medium %d\r\n\r\n" % i + line * 7_000
        deliver(maildir, data, user)
        total += len(data)
    return total


def test_client_that_never_reads_is_disconnected_with_bounded_memory(serve, maildir, user):
    assert _make_big_mailbox(maildir, user) > 8_000_000
    c = serve("[limits]\nautologout = 2\n[server]\nlog_to_stderr = true\n", stderr_is_log=True)
    ok(c, "SELECT INBOX")
    pid = c.proc.pid
    c.send(b"f1 FETCH 1:* BODY.PEEK[]\r\n")
    time.sleep(0.5)  # let it fill the pipe and its own buffer
    start = time.monotonic()
    peak = 0
    while c.proc.poll() is None and time.monotonic() - start < 10:
        peak = max(peak, proc_rss_kb(pid))
        time.sleep(0.05)
    elapsed = time.monotonic() - start
    assert c.proc.returncode == 0, "the server did not give up on a client that stopped reading"
    assert 1.0 < elapsed < 5.0
    assert peak < 100_000, f"RSS grew to {peak} KiB"
    assert c.proc.stderr is not None
    log = c.proc.stderr.read()
    c.proc.stderr = None
    assert b"client stopped reading" in log, log[-2000:]


def test_slow_reader_is_served_without_spinning(serve, maildir, user):
    """A client that reads slowly (long past the autologout after its command) is
    neither cut off nor a cause of busy-waiting: the server sleeps until it can write."""
    _make_big_mailbox(maildir, user)
    c = serve("[limits]\nautologout = 1\n")
    ok(c, "SELECT INBOX")
    assert c.proc.stdout is not None
    fd = c.proc.stdout.fileno()
    c.send(b"f1 FETCH 1:* BODY.PEEK[]\r\n")
    time.sleep(0.2)
    before = proc_cpu_seconds(c.proc.pid)
    start = time.monotonic()
    while time.monotonic() - start < 2.5:
        c.buf += os.read(fd, 65536)  # 64 KiB every 0.25 s
        time.sleep(0.25)
    used = proc_cpu_seconds(c.proc.pid) - before
    assert used < 0.5, f"{used:.2f}s of CPU in 2.5s while blocked on output"
    lines = c.read_until_tagged("f1", timeout=20)
    assert lines[-1].startswith(b"f1 OK")
    assert sum(l.startswith(b"* ") and b" FETCH " in l for l in lines) == 12
    alive(c)  # the idle time counts from the end of the answer


def test_client_that_floods_commands_and_never_reads(serve, maildir):
    c = serve("[limits]\nautologout = 2\n")
    assert c.proc.stdin is not None
    fd = c.proc.stdin.fileno()
    os.set_blocking(fd, False)
    chunk = b"a NOOP\r\nb CAPABILITY\r\nc LIST \"\" *\r\n" * 2000
    sent = 0
    start = time.monotonic()
    peak = 0
    while c.proc.poll() is None and time.monotonic() - start < 10:
        try:
            sent += os.write(fd, chunk)
        except BlockingIOError:
            time.sleep(0.05)
        except BrokenPipeError:
            break
        peak = max(peak, proc_rss_kb(c.proc.pid))
    assert c.proc.wait(5) == 0
    assert time.monotonic() - start < 8
    assert peak < 100_000, f"RSS grew to {peak} KiB"
    assert sent > 200_000  # it did read a while (more than a pipe holds), then stopped reading, then gave up


# ------------------------------------------------------------------ APPEND


def test_append_edge_cases(serve, maildir):
    c = serve()
    # {0}: an empty message is refused, the session goes on
    c.send(b"z1 APPEND INBOX {0}\r\n")
    assert c.read_line().startswith(b"+ ")
    assert answer(c, "z1", b"")[-1].startswith(b"z1 NO")
    assert answer(c, "z2", b"z2 APPEND INBOX {0+}\r\n")[-1].startswith(b"z2 NO")
    # a mailbox that does not exist
    assert answer(c, "m1", b"m1 APPEND Nowhere {5+}\r\nhello")[-1].startswith(b"m1 NO [TRYCREATE]")
    assert answer(c, "m2", b"m2 APPEND Sub.Nowhere {5+}\r\nhello")[-1].startswith(b"m2 NO [TRYCREATE]")
    # bad flags
    for tag, flags in (("f1", b"(\\Bogus)"), ("f2", b"(\\Seen"), ("f3", b"(\\*)"), ("f4", b"((x))"),
                       ("f5", b"(x y"), ("f6", b"(\\)")):
        assert answer(c, tag, tag.encode() + b" APPEND INBOX " + flags + b" {5+}\r\nhello")[-1].startswith(
            tag.encode() + b" BAD"), flags
    # bad dates
    for tag, date in (("d1", b'"31-Feb-2026 10:00:00 +0000"'), ("d2", b'"01-Jan-2026 24:00:00 +0000"'),
                      ("d3", b'"01-Jan-2026 10:00:00 +0099"'), ("d4", b'"bad"'), ("d5", b'"01-Foo-2026 10:00:00 +0000"'),
                      ("d6", b'"01-Jan-0000 10:00:00 +0000"'), ("d7", b'"1-Jan-2026"'), ("d8", b"01-Jan-2026")):
        assert answer(c, tag, tag.encode() + b" APPEND INBOX (\\Seen) " + date + b" {5+}\r\nhello")[-1].startswith(
            tag.encode() + b" BAD"), date
    assert messages_on_disk(maildir) == []
    # NUL needs literal8; with it the octets are kept exactly
    binary = b"Subject: nul\r\nContent-Transfer-Encoding: binary\r\n\r\na\x00b\x00c\r\n"
    assert answer(c, "b1", b"b1 APPEND INBOX {%d+}\r\n" % len(binary) + binary)[-1].startswith(b"b1 BAD")
    lines = answer(c, "b2", b"b2 APPEND INBOX ~{%d+}\r\n" % len(binary) + binary)
    assert lines[-1].startswith(b"b2 OK [APPENDUID ")
    ok(c, "SELECT INBOX")
    lines = ok(c, "FETCH 1 (BINARY.PEEK[] RFC822.SIZE)")
    assert b"~{%d}\r\n" % len(binary) + binary in lines[0]
    assert b"RFC822.SIZE %d" % len(binary) in lines[0]
    # MULTIAPPEND is all or nothing
    before = messages_on_disk(maildir)
    assert answer(c, "u1", b"u1 APPEND INBOX {5+}\r\nhello (\\Bogus) {5+}\r\nworld")[-1].startswith(b"u1 BAD")
    assert answer(c, "u2", b"u2 APPEND INBOX {5+}\r\nhello {0+}\r\n")[-1].startswith(b"u2 NO")
    assert answer(c, "u3", b'u3 APPEND INBOX {5+}\r\nhello "31-Feb-2026 10:00:00 +0000" {5+}\r\nworld')[-1].startswith(
        b"u3 BAD")
    assert messages_on_disk(maildir) == before
    # a store failure on the second message (no keyword letters left) takes the first back
    k = b"(" + b" ".join(b"k%d" % i for i in range(15)) + b")"
    j = b"(" + b" ".join(b"j%d" % i for i in range(15)) + b")"
    lines = answer(c, "u5", b"u5 APPEND INBOX " + k + b" {5+}\r\nhello " + j + b" {5+}\r\nworld")
    assert lines[-1].startswith(b"u5 NO [LIMIT]")
    assert messages_on_disk(maildir) == before
    lines = answer(c, "u4", b'u4 APPEND INBOX (\\Flagged k1) "02-Nov-2026 10:00:00 +0100" {5+}\r\nhello {5+}\r\nworld')
    assert lines[-1].startswith(b"u4 OK [APPENDUID ")
    lines = ok(c, "FETCH 2:* (FLAGS INTERNALDATE)")
    assert b'INTERNALDATE "02-Nov-2026' in lines[0] or b"02-Nov-2026" in lines[0] or b"-Nov-2026" in lines[0]
    assert b"\\Flagged" in lines[0] and b"k1" in lines[0]
    assert len(messages_on_disk(maildir)) == 3
    assert os.listdir(os.path.join(maildir, "tmp")) == []
    alive(c)


def test_client_gone_mid_append_leaves_no_partial_mail(serve, maildir):
    """The client disappears in the middle of an APPEND literal: nothing half-written remains."""
    c = serve()
    c.send(b"a APPEND INBOX {100000+}\r\nSubject: cut\r\n\r\n" + b"x" * 5000)
    time.sleep(0.2)
    assert c.proc.stdin is not None
    c.proc.stdin.close()
    assert c.proc.wait(5) == 0
    assert messages_on_disk(maildir) == []
    assert os.listdir(os.path.join(maildir, "tmp")) == []
    # and a server killed outright leaves the Maildir readable by the next one
    c2 = serve()
    c2.proc.send_signal(signal.SIGKILL)
    c2.proc.wait(5)
    c3 = serve()
    ok(c3, "SELECT INBOX")


def test_a_long_command_that_sends_keepalives_runs_to_the_end(serve, maildir, user):
    """A command paused only to let a keepalive out must go on at once, not wait for the client."""
    for i in range(600):
        deliver(maildir, b"Subject: m%d\r\n\r\nbody %d\r\n" % (i, i), user, name=f"{1700000000 + i}.M{i}P1.host")
    c = serve("[idle]\ncommand_keepalive = 0.000001\n")
    ok(c, "SELECT INBOX")
    start = time.monotonic()
    lines = c.command("SEARCH BODY nomatch", timeout=10)
    assert lines[-1].endswith(b"OK SEARCH completed") and b"* OK Still searching" in lines
    assert time.monotonic() - start < 5
