"""Dovecot's own imap binary and imapd on one Maildir: the same UIDs, the
same UIDVALIDITY and the same flags, in both directions.  Skipped only when
/usr/lib/dovecot/imap is absent (apt-get install dovecot-imapd)."""

from __future__ import annotations

import io
import os
import pwd
import re
import shutil
import subprocess
import tempfile

import pytest

from imapd.store import open_store

from maildir_helpers import deliver, msg

DOVECOT_IMAP = "/usr/lib/dovecot/imap"

pytestmark = pytest.mark.skipif(not os.path.exists(DOVECOT_IMAP), reason="Dovecot's imap binary is not installed")


@pytest.fixture
def home():
    base = tempfile.mkdtemp(prefix="imapd-dovecot-")
    os.chmod(base, 0o755)
    h = os.path.join(base, "home")
    os.mkdir(h)
    with open(os.path.join(base, "dovecot.conf"), "w") as fh:
        fh.write("mail_location = maildir:~/Maildir\nlog_path = /dev/null\nssl = no\n")
    yield h
    shutil.rmtree(base, ignore_errors=True)


def _as_user():
    """Dovecot refuses to run as root: use nobody when we are root."""
    if os.geteuid() != 0:
        return None, os.getuid(), os.getgid()
    pw = pwd.getpwnam("nobody")

    def drop():
        os.setgroups([])
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)

    return drop, pw.pw_uid, pw.pw_gid


def dovecot(home: str, script: str) -> str:
    drop, uid, gid = _as_user()
    if os.geteuid() == 0:
        for dp, dn, fn in os.walk(home):
            os.chown(dp, uid, gid)
            for n in fn:
                os.chown(os.path.join(dp, n), uid, gid)
    conf = os.path.join(os.path.dirname(home), "dovecot.conf")
    env = {"HOME": home, "USER": pwd.getpwuid(uid).pw_name, "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [DOVECOT_IMAP, "-c", conf],
        input=re.sub(r"(?<!\r)\n", "\r\n", script).encode(),
        capture_output=True,
        env=env,
        preexec_fn=drop,
        timeout=30,
    )
    text = out.stdout.decode("utf-8", "replace")
    assert "* PREAUTH" in text, text + out.stderr.decode()
    return text


def fetch_map(text: str) -> dict[int, set[str]]:
    out = {}
    for m in re.finditer(r"\* \d+ FETCH \((.*)\)\r\n", text):
        body = m.group(1)
        uid = int(re.search(r"UID (\d+)", body).group(1))
        flags = set(re.search(r"FLAGS \(([^)]*)\)", body).group(1).split()) - {"\\Recent"}
        out[uid] = flags
    return out


def test_dovecot_sees_imapd_uids(home):
    root = os.path.join(home, "Maildir")
    s = open_store(root, use_inotify=False)
    for i in range(3):
        s.append("INBOX", io.BytesIO(msg(i).replace(b"\n", b"\r\n")), ["\\Seen"] if i else [])
    deliver(root, msg(10))
    deliver(root, msg(11))
    mb = s.open("INBOX")  # numbers the delivered files, moves them to cur/
    mb.store_flags([2], "add", ["\\Flagged", "Work"])
    mb.store_flags([4], "add", ["\\Deleted"])
    assert mb.expunge() == [4]
    mb.sync()
    ours = {u: set(mb.flags(u)) for u in mb.uids()}
    v = mb.uidvalidity
    mb.close()
    s.create("Sub.Fold")
    s.append("Sub.Fold", io.BytesIO(b"Subject: s\r\n\r\nx\r\n"))
    s.close()
    text = dovecot(
        home,
        "a SELECT INBOX\nb UID FETCH 1:* (UID FLAGS)\nc LIST \"\" *\nd SELECT Sub.Fold\ne UID FETCH 1:* (UID)\nz LOGOUT\n",
    )
    assert "[UIDVALIDITY %d]" % v in text
    assert ours == {1: set(), 2: {"\\Seen", "\\Flagged", "Work"}, 3: {"\\Seen"}, 5: set()}
    theirs = fetch_map(text.split("b OK")[0])
    assert theirs == ours
    assert '"Sub.Fold"' in text or " Sub.Fold\r\n" in text
    assert re.search(r"\* 1 FETCH \(UID 1\)", text.split("d OK")[1])
    assert "[UIDNEXT 6]" in text


def test_imapd_sees_dovecot_uids(home):
    os.makedirs(os.path.join(home, "Maildir"))
    bodies = [("\\Seen", "Subject: 1\r\n\r\nx"), ("\\Flagged $Forwarded", "Subject: 2\r\n\r\ny"), ("", "Subject: 3\r\n\r\nz")]
    script = "".join("a%d APPEND INBOX (%s) {%d+}\r\n%s\r\n" % (i, fl, len(b), b) for i, (fl, b) in enumerate(bodies))
    dovecot(home, script + "z LOGOUT\n")
    # one step per session: Dovecot runs pipelined commands out of order
    dovecot(home, "s SELECT INBOX\nt STORE 3 +FLAGS (Junk)\nz LOGOUT\n")
    dovecot(home, "s SELECT INBOX\nx STORE 1 +FLAGS (\\Deleted)\nz LOGOUT\n")
    dovecot(home, "s SELECT INBOX\ny EXPUNGE\nz LOGOUT\n")
    # a second session only reads (Dovecot runs pipelined commands out of order)
    text = dovecot(home, "s SELECT INBOX\nf UID FETCH 1:* (UID FLAGS)\nz LOGOUT\n")
    theirs = fetch_map(text)
    v = int(re.search(r"UIDVALIDITY (\d+)", text).group(1))
    s = open_store(os.path.join(home, "Maildir"), use_inotify=False)
    mb = s.open("INBOX")
    assert mb.uidvalidity == v, text
    assert {u: set(mb.flags(u)) for u in mb.uids()} == theirs == {2: {"\\Flagged", "$Forwarded"}, 3: {"Junk"}}, (
        text,
        os.listdir(os.path.join(home, "Maildir", "cur")),
        open(os.path.join(home, "Maildir", "dovecot-uidlist")).read(),
    )
    assert mb.read(2).endswith(b"\r\n\r\ny")
    r = s.append("INBOX", io.BytesIO(b"Subject: 4\r\n\r\nw\r\n"))
    assert r.uid == 4 and r.uidvalidity == v
    mb.close()
    s.close()
    text = dovecot(home, "s SELECT INBOX\nf UID FETCH 1:* (UID FLAGS)\nz LOGOUT\n")
    assert set(fetch_map(text)) == {2, 3, 4}
