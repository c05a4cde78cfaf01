"""RFC 6154 special-use mailboxes: LIST marks the folders `[mail] special_use`
names (by default Drafts, Sent, "Sent Messages", Trash, Junk and Archive), so
that clients find them without being told."""

from __future__ import annotations

import os
import re
import subprocess

import imapclient.imapclient
import pytest

from harness import IMAPD, ImapPipe, config_file, make_maildir, mail_user, remove_maildir, server_env
from test_clients import listening, tunnel_command


@pytest.fixture
def maildir():
    root = make_maildir(mail_user(), folders=(".Sent", ".Sent Messages", ".Drafts", ".Trash", ".Work", ".Outbox"))
    yield root
    remove_maildir(root)


def list_attributes(lines: list[bytes]) -> dict[str, str]:
    """Mailbox name -> its attributes, from untagged LIST responses."""
    found = {}
    for line in lines:
        m = re.fullmatch(rb'\* LIST \(([^)]*)\) "\." (.+)', line.rstrip(b"\r\n"))
        if m:
            found[m.group(2).decode().strip('"')] = m.group(1).decode()
    return found


def test_list_marks_the_default_special_use_mailboxes(maildir):
    with ImapPipe(["--maildir", maildir], mail_user()) as c:
        every = list_attributes(c.command(b'LIST "" "*"'))
        assert every == {
            "INBOX": "\\HasNoChildren", "Drafts": "\\HasNoChildren \\Drafts", "Outbox": "\\HasNoChildren",
            "Sent": "\\HasNoChildren \\Sent", "Sent Messages": "\\HasNoChildren \\Sent",
            "Trash": "\\HasNoChildren \\Trash", "Work": "\\HasNoChildren",
        }
        # the SPECIAL-USE selection option (RFC 6154 section 3) lists only those
        special = list_attributes(c.command(b'LIST (SPECIAL-USE) "" "*"'))
        assert special == {name: attrs for name, attrs in every.items() if attrs != "\\HasNoChildren"}
        assert list_attributes(c.command(b'LIST "" "*" RETURN (SPECIAL-USE)')) == every


def test_the_configured_table_replaces_the_default(maildir):
    cfg = config_file("[mail]\nspecial_use = { Outbox = '\\Sent', Work = '\\Archive \\Flagged' }\n")
    try:
        with ImapPipe(["--config", cfg, "--maildir", maildir], mail_user()) as c:
            special = list_attributes(c.command(b'LIST (SPECIAL-USE) "" "*"'))
        assert special == {"Outbox": "\\HasNoChildren \\Sent", "Work": "\\HasNoChildren \\Archive \\Flagged"}
        # a real client finds the folder through the attribute alone ("Outbox"
        # is none of the names imapclient would guess)
        with listening(tunnel_command(maildir) + f" --config {cfg}") as port:
            client = imapclient.IMAPClient("127.0.0.1", port=port, ssl=False)
            try:
                assert client.find_special_folder(imapclient.imapclient.SENT) == "Outbox"
            finally:
                client.logout()
    finally:
        os.unlink(cfg)


@pytest.mark.parametrize("table, problem", [
    ("{ Sent = '\\Outgoing' }", "\\Outgoing (for 'Sent') is not one of"),
    ("{ Sent = '' }", "the attributes of 'Sent' must be a string"),
    ("'\\Sent'", "mail.special_use: must be a table"),
])
def test_check_config_rejects_a_bad_table(table, problem):
    cfg = config_file(f"[mail]\nspecial_use = {table}\n")
    try:
        out = subprocess.run(IMAPD + ["--check-config", cfg], capture_output=True, text=True, env=server_env())
    finally:
        os.unlink(cfg)
    assert out.returncode == 1 and problem in out.stdout, out.stdout


def test_create_with_use_takes_only_what_the_configuration_gives(maildir):
    with ImapPipe(["--maildir", maildir], mail_user()) as c:
        # the configured use: created (RFC 6154 section 3)
        assert c.command(b"CREATE Junk (USE (\\Junk))")[-1].endswith(b"OK CREATE completed")
        # another one: refused with USEATTR, and no mailbox is made
        refused = c.command(b"CREATE Archive2 (USE (\\Archive))")[-1]
        assert b" NO [USEATTR] " in refused
        assert c.command(b"CREATE Other (FOO bar)")[-1].endswith(b"BAD Unknown CREATE parameter FOO")
        listed = list_attributes(c.command(b'LIST "" "*"'))
    assert listed["Junk"] == "\\HasNoChildren \\Junk"
    assert "Archive2" not in listed and "Other" not in listed
    assert not os.path.exists(os.path.join(maildir, ".Archive2"))
