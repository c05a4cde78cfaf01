"""What a connection imports before it can answer: every connection pays for
it, so the heavy modules (TOML, typing, dataclasses, re, PAM, TLS, email
parsing...) must wait until a command needs them.  Run through the real
`bin/imapd` launcher, as inetd or ssh would run it, with the sample config."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import pytest

from harness import REPO, _demote, altered_copy, config_file, mail_user, make_maildir, remove_maildir, require_root, require_tool

# Each costs a connection milliseconds (with what it imports in turn).
HEAVY = {"tomllib", "typing", "dataclasses", "re", "collections", "inspect", "enum", "ipaddress",
         "ssl", "OpenSSL", "pam", "ctypes", "email", "socket", "datetime"}


def _env(pythonpath: str = REPO) -> dict[str, str]:
    """What the launcher needs, with import timing on (its report goes to stderr)."""
    return {"PATH": os.path.dirname(sys.executable) + ":/usr/bin:/bin", "PYTHONPATH": pythonpath,
            "PYTHONPROFILEIMPORTTIME": "1", "HOME": "/tmp"}


def _imported(stderr: bytes) -> set[str]:
    return {line.rsplit("|", 1)[1].strip() for line in stderr.decode().splitlines()
            if line.startswith("import time:") and "|" in line}


def _imports(args: list[str], commands: bytes, as_user: bool, pythonpath: str = REPO) -> tuple[set[str], bytes]:
    """The modules the server imported, and what it answered."""
    out = subprocess.run([os.path.join(REPO, "bin", "imapd")] + args, input=commands, capture_output=True,
                         env=_env(pythonpath), preexec_fn=_demote(mail_user()) if as_user else None, cwd="/",
                         timeout=30)
    names = _imported(out.stderr)
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
    # `os` with the abstract classes of `_collections_abc`: a fifth of what a
    # warm SELECT runs of its own (the modules on its way call `posix`); stat.py
    # (`_stat` serves); `select`, which a session whose commands are all there
    # never waits with; `_bisect`, which SELECT does not need (each library
    # loaded costs about 0.3 ms); `__future__` (the code cache compiles its
    # one feature in); sequence sets, which SELECT does not read
    unwanted = {"os", "_collections_abc", "posixpath", "stat", "select", "_bisect", "__future__",
                "imapd.protocol.seqset"}
    assert not names & unwanted, sorted(names & unwanted)


def test_a_warm_select_imports_no_listing_no_uidlist_writing_no_message_reading():
    """The second SELECT of a mailbox nobody changed since (its directories
    older than the trust interval) finds everything in imapd.index: the
    directory listing (resync), the writing of dovecot-uidlist and the
    reading of message files stay unloaded; the first SELECT needed them."""
    import time

    user = mail_user()
    maildir = make_maildir(user)
    try:
        for k in range(3):
            path = os.path.join(maildir, "cur", f"17000000{k:02d}.M{k}P1.test:2,S")
            with open(path, "wb") as f:
                f.write(b"From: a@example.org\nSubject: %d\n\nbody\n" % k)
            os.chown(path, user.uid, user.gid)
        past = time.time() - 60
        for sub in ("cur", "new", "tmp"):
            os.utime(os.path.join(maildir, sub), (past, past))
        session = b"a SELECT INBOX\r\nb LOGOUT\r\n"
        first, _ = _imports(["--maildir", maildir], session, as_user=True)
        names, out = _imports(["--maildir", maildir], session, as_user=True)
    finally:
        remove_maildir(maildir)
    assert b"* 3 EXISTS" in out and b"a OK [READ-WRITE]" in out
    lazy = {"imapd.store.maildir.resync", "imapd.store.maildir.uidlist_write", "imapd.store.maildir.message"}
    assert lazy <= first
    assert not names & lazy, sorted(names & lazy)
    assert "imapd.codecache" not in names  # (the cache is read, not written)
    # built in, yet 0.1 ms each to load: only errors and other commands use them
    assert not names & {"errno", "itertools"}, sorted(names & {"errno", "itertools"})
    # a C library of its own, and a warm SELECT builds no array (the UIDs,
    # sizes and dates stay in imapd.index)
    assert "array" in first and "array" not in names


GRAMMARS = {"imapd.protocol.fetch_syntax", "imapd.protocol.search_syntax", "imapd.protocol.update_syntax",
            "imapd.protocol.mailbox_syntax", "imapd.protocol.session_syntax"}


@pytest.mark.parametrize("commands, loaded", [
    (b"a SELECT INBOX\r\nb LOGOUT\r\n", set()),
    (b"a SELECT INBOX\r\nb UID FETCH 1:* FLAGS\r\nc LOGOUT\r\n", {"imapd.protocol.fetch_syntax"}),
    (b"a LIST \"\" *\r\nb STATUS INBOX (MESSAGES)\r\nc LOGOUT\r\n", {"imapd.protocol.mailbox_syntax"}),
    (b"a SELECT INBOX\r\nb UID EXPUNGE 1\r\nc LOGOUT\r\n", {"imapd.protocol.update_syntax"}),
    (b"a ID NIL\r\nb ENABLE CONDSTORE\r\nc LOGOUT\r\n", {"imapd.protocol.session_syntax"}),
    (b"a SELECT INBOX\r\nb SEARCH ALL\r\nc LOGOUT\r\n",
     {"imapd.protocol.search_syntax", "imapd.protocol.fetch_syntax"}),  # (the handler shares FETCH's message data)
])
def test_a_session_loads_the_grammars_of_the_commands_it_sends(commands, loaded):
    """The grammars (and command classes) of FETCH, SEARCH, STORE... load at
    the first such command: a SELECT alone loads none of them."""
    user = mail_user()
    maildir = make_maildir(user)
    try:
        names, out = _imports(["--maildir", maildir], commands, as_user=True)
    finally:
        remove_maildir(maildir)
    tags = [line.split(b" ", 1)[0] for line in commands.splitlines()]
    assert all(f"\r\n{t.decode()} OK".encode() in out for t in tags), out
    assert names & GRAMMARS == loaded


def test_a_grammar_that_cannot_load_fails_its_command_not_the_session():
    """A broken installation (here FETCH's grammar will not compile): the
    FETCH is answered NO [SERVERBUG], nothing reaches standard error (the
    client's socket under inetd), and the session goes on."""
    import shutil

    user = mail_user()
    maildir = make_maildir(user)
    root = altered_copy("protocol/fetch_syntax.py", lambda text: text + "\nthis is not Python (\n")
    try:
        out = subprocess.run([os.path.join(REPO, "bin", "imapd"), "--maildir", maildir],
                             input=b"a SELECT INBOX\r\nb FETCH 1:* FLAGS\r\nc NOOP\r\nd LOGOUT\r\n",
                             capture_output=True, env={**_env(root), "PYTHONPROFILEIMPORTTIME": ""},
                             preexec_fn=_demote(user), cwd="/", timeout=30)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        remove_maildir(maildir)
    assert b"\r\nb NO [SERVERBUG] " in out.stdout and b"\r\nc OK" in out.stdout and b"\r\nd OK" in out.stdout, out
    assert out.stderr == b"" and out.returncode == 0


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


# ----------------------------------------------------------- after LOGIN
def _tree(root: str, mode: int = 0o755) -> str:
    """A copy of the imapd package under `root`, compiled, with `mode` on its directories."""
    import shutil

    os.chmod(root, mode)
    lib = os.path.join(root, "imapd")
    shutil.copytree(os.path.join(REPO, "imapd"), lib, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "compileall", "-q", lib], check=True)
    for dirpath, _dirs, files in os.walk(lib):  # as an install with the usual umask leaves them
        os.chmod(dirpath, 0o755)
        for name in files:
            os.chmod(os.path.join(dirpath, name), 0o644)
    return lib


def test_installed_for_everyone_reads_the_mode_bits():
    from imapd.cli import _installed_for_everyone

    root = tempfile.mkdtemp(prefix="imapd-test-lib-", dir="/tmp")
    try:
        lib = _tree(root)
        assert _installed_for_everyone(lib)
        os.chmod(root, 0o750)  # an ancestor others may not enter: a root-only venv
        assert not _installed_for_everyone(lib)
        os.chmod(root, 0o755)
        sub = os.path.join(lib, "mime")
        os.chmod(sub, 0o711)  # a package others may not list
        assert not _installed_for_everyone(lib)
        os.chmod(sub, 0o755)
        pyc = next(os.path.join(d, f) for d, _, fs in os.walk(sub) for f in fs if f.endswith(".pyc"))
        os.chmod(pyc, 0o600)  # a compiled module others may not read
        assert not _installed_for_everyone(lib)
        os.chmod(pyc, 0o644)
        assert _installed_for_everyone(lib)
        assert not _installed_for_everyone(os.path.join(root, "missing"))
    finally:
        import shutil

        shutil.rmtree(root, ignore_errors=True)


def test_session_module_names_are_every_module_of_the_session_packages():
    import importlib
    import pkgutil

    from imapd.cli import _SESSION_MODULES, _session_module_names

    walked = []
    for name in _SESSION_MODULES:
        walked.append(name)
        path = getattr(importlib.import_module(name), "__path__", None)
        if path is not None:
            walked += [info.name for info in pkgutil.walk_packages(path, name + ".")]
    names = _session_module_names()
    assert set(names) == set(walked) and len(names) == len(set(names))
    assert "imapd.store.maildir.mailbox" in names and "imapd.mime" in names


@pytest.mark.parametrize("mode, preloaded", [(0o755, False), (0o700, True)])
def test_login_preloads_modules_only_for_an_install_the_user_cannot_read(mode, preloaded):
    """Logged in as a passwd-file user: from an install anyone can read, the
    session imports what its commands need; from a root-only one, every
    session module is loaded before the switch (else a later import fails)."""
    from imapd.auth.passwdfile import hash_password

    require_root("a login-mode server")
    user = mail_user()
    maildir = make_maildir(user)
    root = tempfile.mkdtemp(prefix="imapd-test-lib-", dir="/tmp")
    try:
        _tree(root, mode)
        passwd = os.path.join(root, "passwd")
        with open(passwd, "w") as f:
            f.write(f"alice:{hash_password('s3cret', rounds=4)}:{user.uid}:{user.gid}:/tmp:{maildir}:\n")
        os.chmod(passwd, 0o600)
        cfg = os.path.join(root, "imapd.toml")
        with open(cfg, "w") as f:
            f.write(f'[auth]\nbackend = "passwd-file"\npasswd_file = "{passwd}"\nallow_plaintext = true\n')
        names, out = _imports(["--config", cfg], b"a LOGIN alice s3cret\r\nb SELECT INBOX\r\n"
                              b"c FETCH 1:* BODYSTRUCTURE\r\nd LOGOUT\r\n", as_user=False, pythonpath=root)
    finally:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
        remove_maildir(maildir)
    assert b"a OK" in out and b"b OK" in out and b"c OK" in out and b"d OK" in out, out
    assert ("imapd.mime.searchtext" in names) == preloaded  # (no command here needs it)
    assert "pkgutil" not in names


def test_a_tcp_connection_imports_neither_socket_nor_ipaddress(sample_config):
    """Under inetd the client is a TCP socket on stdin: its address is read
    with `_socket` and judged (loopback or not) without `ipaddress`."""
    import socket

    require_root("a login-mode server")
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    conn, _ = listener.accept()
    listener.close()
    with conn, client:
        proc = subprocess.Popen([os.path.join(REPO, "bin", "imapd"), "--config", sample_config], stdin=conn,
                                stdout=conn, stderr=subprocess.PIPE, env=_env(), cwd="/")
        conn.close()
        client.sendall(b"a CAPABILITY\r\nb LOGOUT\r\n")
        client.settimeout(30)
        out = b""
        while b"b OK" not in out:
            data = client.recv(65536)
            if not data:
                break
            out += data
        _, err = proc.communicate(timeout=30)
    names = _imported(err)
    # loopback counts as a secure channel: plaintext LOGIN is offered
    assert out.startswith(b"* OK [CAPABILITY ") and b"LOGINDISABLED" not in out and b"b OK" in out, out
    assert "imapd.peer" in names and "_socket" in names
    assert not names & HEAVY, sorted(names & HEAVY)


def test_a_session_logs_after_its_first_answer():
    """The connection's log line waits until the session first waits for its
    client (or ends): loading and connecting to syslog is not on the way to
    the first answer.  Seen with strace: the first connection to /dev/log
    comes after the SELECT's tagged OK was written."""
    require_tool("strace")
    user = mail_user()
    maildir = make_maildir(user)
    try:  # (strace reports on standard error, where imapd itself writes nothing)
        out = subprocess.run(["strace", "-f", "-qq", "-s", "4096", "-e", "trace=connect,write",
                              os.path.join(REPO, "bin", "imapd"), "--maildir", maildir],
                             input=b"a SELECT INBOX\r\nb LOGOUT\r\n", capture_output=True,
                             env={**_env(), "PYTHONPROFILEIMPORTTIME": ""}, preexec_fn=_demote(user), cwd="/",
                             timeout=60)
    finally:
        remove_maildir(maildir)
    assert b"a OK [READ-WRITE]" in out.stdout and b"b OK" in out.stdout, out
    calls = out.stderr.decode(errors="replace").splitlines()
    answered = next(i for i, c in enumerate(calls) if "write(1," in c and "a OK [READ-WRITE]" in c)
    logged = [i for i, c in enumerate(calls) if "connect(" in c and "/dev/log" in c]
    assert logged and min(logged) > answered, calls
