"""`imapd --demo`: a throwaway Maildir with a few messages and folders.

It lets a newcomer type IMAP at the server at once; it is removed on exit.
"""

from __future__ import annotations

import os
import tempfile
import time

_MESSAGES = [
    ("", "S", "Alice Example <alice@example.org>", "Welcome to imapd",
     "Hello!\n\nThis is a demo mailbox. Try:\n\n  a LIST \"\" \"*\"\n  b SELECT INBOX\n"
     "  c FETCH 1:* (FLAGS ENVELOPE)\n  d LOGOUT\n"),
    ("", "", "=?UTF-8?Q?J=C3=BCrgen_M=C3=BCller?= <juergen@example.de>", "=?UTF-8?Q?Gr=C3=BC=C3=9Fe?=",
     "Ein Gruss aus Berlin.\n"),
    ("", "F", "Bob <bob@example.com>", "Quarterly report",
     None),
    ("Archive", "S", "Carol <carol@example.net>", "Old news", "An archived message.\n"),
    ("Sent", "S", "Demo User <demo@localhost>", "Re: Welcome to imapd", "Thanks!\n"),
]


def _multipart(sender: str, subject: str, date: str) -> bytes:
    return (
        f"From: {sender}\nTo: Demo User <demo@localhost>\nSubject: {subject}\nDate: {date}\n"
        "Message-ID: <report@example.com>\nMIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="b1"\n\n'
        "--b1\nContent-Type: text/plain; charset=us-ascii\n\nThe report is attached.\n"
        '--b1\nContent-Type: text/csv; name="report.csv"\nContent-Disposition: attachment; filename="report.csv"\n'
        "Content-Transfer-Encoding: base64\n\ncXVhcnRlcixyZXZlbnVlCjEsMTAwCjIsMTIwCg==\n--b1--\n"
    ).encode()


def make_demo_maildir() -> str:
    """Create the demo Maildir in a new temporary directory; return its path."""
    root = tempfile.mkdtemp(prefix="imapd-demo-")
    maildir = os.path.join(root, "Maildir")
    for folder in ("", ".Archive", ".Sent", ".Archive.2025"):
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(maildir, folder, sub), exist_ok=True)
        if folder:
            open(os.path.join(maildir, folder, "maildirfolder"), "w").close()
    with open(os.path.join(maildir, "subscriptions"), "w") as f:
        f.write("INBOX\nArchive\nSent\n")
    now = int(time.time())
    for i, (folder, flags, sender, subject, body) in enumerate(_MESSAGES):
        when = now - (len(_MESSAGES) - i) * 3600
        date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(when))
        if body is None:
            data = _multipart(sender, subject, date)
        else:
            data = (
                f"From: {sender}\nTo: Demo User <demo@localhost>\nSubject: {subject}\nDate: {date}\n"
                f"Message-ID: <demo{i}@localhost>\nMIME-Version: 1.0\n"
                "Content-Type: text/plain; charset=utf-8\n\n"
            ).encode() + body.encode()
        name = f"{when}.M{i}P{os.getpid()}.demo,S={len(data)}"
        sub = "cur" if flags or i == 0 else "new"
        path = os.path.join(maildir, "." + folder if folder else "", sub, name + (f":2,{flags}" if sub == "cur" else ""))
        with open(path, "wb") as f:
            f.write(data)
        os.utime(path, (when, when))
    return maildir


def remove_demo_maildir(maildir: str) -> None:
    import shutil

    shutil.rmtree(os.path.dirname(maildir), ignore_errors=True)
