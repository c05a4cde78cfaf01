"""What a connection imports before it can answer: every connection pays for
it, so the heavy modules (TOML, typing, dataclasses, re, PAM, TLS, email
parsing...) must wait until a command needs them.  Run through the real
`bin/imapd` launcher, as inetd or ssh would run it, with the sample config."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.harness import REPO, config_file, mail_user, make_maildir, remove_maildir, require_root

# Each costs a connection milliseconds (with what it imports in turn).
HEAVY = {"tomllib", "typing", "dataclasses", "re", "collections", "inspect", "enum", "ipaddress",
         "ssl", "OpenSSL", "pam", "ctypes", "email", "socket", "datetime"}


def _imports(args: list[str], commands: bytes, as_user: bool) -> tuple[set[str], bytes]:
    """The modules the server imported, and what it answered."""
    user = mail_user()

    def demote() -> None:
        if as_user and os.geteuid() == 0:
            os.setgroups([])
            os.setgid(user.gid)
            os.setuid(user.uid)

    env = {"PATH": os.path.dirname(sys.executable) + ":/usr/bin:/bin", "PYTHONPATH": REPO,
           "PYTHONPROFILEIMPORTTIME": "1", "HOME": "/tmp"}
    out = subprocess.run([os.path.join(REPO, "bin", "imapd")] + args, input=commands, capture_output=True,
                         env=env, preexec_fn=demote, cwd="/", timeout=30)
    names = {line.rsplit("|", 1)[1].strip() for line in out.stderr.decode().splitlines()
             if line.startswith("import time:") and "|" in line}
    assert "imapd.cli" in names, out.stderr[-2000:]
    return names, out.stdout


@pytest.fixture
def sample_config():
    with open(os.path.join(REPO, "etc", "imapd.toml"), encoding="utf-8") as f:
        path = config_file(f.read())
    yield path
    os.unlink(path)


def test_preauth_greeting_and_select_import_nothing_heavy(sample_config):
    user = mail_user()
    maildir = make_maildir(user)
    try:
        names, out = _imports(["--config", sample_config, "--maildir", maildir],
                              b"a SELECT INBOX\r\nb LOGOUT\r\n", as_user=True)
    finally:
        remove_maildir(maildir)
    assert out.startswith(b"* PREAUTH") and b"a OK [READ-WRITE]" in out and b"b OK" in out
    assert not names & HEAVY, sorted(names & HEAVY)


@pytest.mark.parametrize("backend", ["pam", "passwd-file"])
def test_login_greeting_imports_nothing_heavy(backend, tmp_path):
    """Started as root by inetd: the backend is chosen, but PAM, bcrypt and the
    rest load only when a client tries to log in."""
    require_root("a login-mode server")
    text = open(os.path.join(REPO, "etc", "imapd.toml"), encoding="utf-8").read()
    text = text.replace('backend = "pam"', f'backend = "{backend}"')
    passwd = tmp_path / "passwd"
    passwd.write_text("")
    text = text.replace('passwd_file = "/etc/imapd/passwd"', f'passwd_file = "{passwd}"')
    path = config_file(text)
    try:
        names, out = _imports(["--config", path], b"a CAPABILITY\r\nb LOGOUT\r\n", as_user=False)
    finally:
        os.unlink(path)
    assert out.startswith(b"* OK [CAPABILITY ") and b"a OK" in out and b"b OK" in out
    assert not names & HEAVY, sorted(names & HEAVY)
    assert "imapd.auth.base" in names  # the backend itself is set up before the greeting
