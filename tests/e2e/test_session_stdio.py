"""The real imapd process over pipes, a pty and a socket: the core conversation."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pexpect
import pytest

from harness import IMAPD, REPO, ImapPipe, altered_copy, config_file, deliver, make_maildir, mail_user, remove_maildir, server_env, tagged_status
from harness import _demote as _run_as

IN_CI = os.environ.get("CI") == "true"


@pytest.fixture
def user():
    return mail_user()


@pytest.fixture
def maildir(user):
    root = make_maildir(user)
    yield root
    remove_maildir(root)


def test_preauth_greeting_and_capability(user, maildir):
    with ImapPipe(["--maildir", maildir], user) as c:
        assert c.greeting.startswith(b"* PREAUTH [CAPABILITY IMAP4rev1 ")
        lines = c.command("CAPABILITY")
        assert lines[0].startswith(b"* CAPABILITY IMAP4rev1")
        assert b"IDLE" in lines[0] and b"LITERAL+" in lines[0]
        assert lines[-1] == b"t1 OK Capability completed"
        assert c.command("NOOP")[-1].startswith(b"t2 OK")
        lines = c.command("LOGOUT")
        assert lines[0].startswith(b"* BYE")
        assert lines[-1].startswith(b"t3 OK")
        assert c.proc.wait(5) == 0


def test_appendlimit_and_within_are_announced_and_kept(user, maildir):
    """RFC 7889 APPENDLIMIT carries [limits] append_size; RFC 5032 WITHIN's
    YOUNGER and OLDER go by the internal date."""
    now = time.time()
    for age in (60, 3 * 86400):  # a minute old, three days old
        path = deliver(maildir, b"Subject: aged %d\r\n\r\nbody\r\n" % age, user)
        os.utime(path, (now - age, now - age))
    cfg = config_file("[limits]\nappend_size = 5000\n")
    try:
        with ImapPipe(["--config", cfg, "--maildir", maildir], user) as c:
            assert b" WITHIN " in c.greeting and b" APPENDLIMIT=5000" in c.greeting
            assert b" APPENDLIMIT=5000" in c.command("CAPABILITY")[0]
            assert c.command("STATUS INBOX (APPENDLIMIT)")[0] == b"* STATUS INBOX (APPENDLIMIT 5000)"
            assert c.command(b"APPEND INBOX {5001}")[-1].startswith(b"t3 NO [TOOBIG] ")
            c.command("SELECT INBOX")
            assert c.command("SEARCH YOUNGER 3600")[0] == b"* SEARCH 1"
            assert c.command("SEARCH OLDER 86400")[0] == b"* SEARCH 2"
            assert c.command("SEARCH YOUNGER 10")[0] == b"* SEARCH"
    finally:
        os.unlink(cfg)


def test_preauth_greeting_names_the_user_from_the_environment(user, maildir):
    """$USER (else $LOGNAME) names the user, as ssh, login and systemd set
    them; with neither, the password database's name for the uid does."""
    for env, name in (({"USER": "alice", "LOGNAME": "bob"}, "alice"), ({"USER": "", "LOGNAME": "bob"}, "bob"),
                      ({"USER": "", "LOGNAME": ""}, user.name)):
        with ImapPipe(["--maildir", maildir], user, env=env) as c:
            assert c.greeting.rstrip().endswith(f"logged in as {name}".encode()), c.greeting
            assert c.command("LOGOUT")[-1].startswith(b"t1 OK")


def test_bad_commands_get_precise_bad_and_session_continues(user, maildir):
    with ImapPipe(["--maildir", maildir], user) as c:
        assert c.command("FROB") == [b"t1 BAD Unknown command FROB"]
        lines = c.command("FETCH 1:* (FLAGS")
        assert lines == [b"t2 BAD Expected ')' to end fetch attributes (at end of line)"]
        lines = c.command("FETCH 1:* (FLAGS)")
        assert b"requires a selected mailbox" in lines[-1]
        lines = c.command('LOGIN "unterminated')
        assert tagged_status(lines) == b"BAD"
        assert c.command("NOOP")[-1].startswith(b"t5 OK")


def test_select_parameters_imapd_does_not_announce_are_refused(user, maildir):
    """RFC 4466: SELECT (CONDSTORE) from a client that did not look at the
    capabilities gets BAD, not a SELECT without what it asked for."""
    with ImapPipe(["--maildir", maildir], user) as c:
        assert c.command(b"SELECT INBOX (CONDSTORE)")[-1] == b"t1 BAD Unknown SELECT parameter CONDSTORE"
        assert c.command(b"EXAMINE INBOX ((x))")[-1] == b"t2 BAD Unknown EXAMINE parameter (...)"
        assert c.command(b"SELECT INBOX")[-1].endswith(b"OK [READ-WRITE] SELECT completed")


def test_synchronizing_literal_gets_continuation(user, maildir):
    with ImapPipe(["--maildir", maildir], user) as c:
        c.send(b"a1 ID (\"name\" {6}\r\n")
        assert c.read_line().startswith(b"+ ")
        c.send(b"mutt-x)\r\n")
        lines = c.read_until_tagged("a1")
        assert lines[0].startswith(b'* ID ("name" "imapd"')
        assert lines[-1] == b"a1 OK ID completed"


def test_pipelined_commands_and_bare_lf(user, maildir):
    with ImapPipe(["--maildir", maildir], user) as c:
        c.send(b"".join(b"p%d NOOP\n" % i for i in range(200)))
        lines = c.read_until_tagged("p199")
        assert [l for l in lines if l.startswith(b"p")] == [b"p%d OK NOOP completed" % i for i in range(200)]


def test_eof_ends_quietly_with_status_zero(user, maildir):
    with ImapPipe(["--maildir", maildir], user) as c:
        c.proc.stdin.close()
        assert c.proc.wait(5) == 0
        assert c.proc.stderr.read() == b""  # nothing but protocol, ever


def _run_script(user, maildir: str, commands: bytes, stdin_file: bool, args: tuple[str, ...] = ()) -> bytes:
    """`imapd < commands > output`: input that ends, output to a file."""
    with tempfile.TemporaryDirectory() as tmp:
        out_path = os.path.join(tmp, "out")
        with open(out_path, "wb") as out:
            if stdin_file:
                in_path = os.path.join(tmp, "in")
                with open(in_path, "wb") as f:
                    f.write(commands)
                with open(in_path, "rb") as f:
                    proc = subprocess.run(IMAPD + list(args) + ["--maildir", maildir], stdin=f, stdout=out, stderr=subprocess.PIPE,
                                          env=server_env(), preexec_fn=_run_as(user), timeout=60)
            else:  # a pipe the client closes at once (a half-closed connection)
                proc = subprocess.run(IMAPD + list(args) + ["--maildir", maildir], input=commands, stdout=out,
                                      stderr=subprocess.PIPE, env=server_env(), preexec_fn=_run_as(user),
                                      timeout=60)
        assert proc.returncode == 0 and proc.stderr == b""
        with open(out_path, "rb") as f:
            return f.read()


@pytest.mark.parametrize("stdin_file", [True, False], ids=["file", "closed-pipe"])
def test_input_that_ends_is_answered_in_full(user, maildir, stdin_file):
    # 12 MB of bodies: more than the session's output buffer, so the FETCH is
    # still running when imapd reads the end of its input
    body = b"".join(b"line %06d of a long message\n" % i for i in range(36_000))
    for i in range(12):
        deliver(maildir, b"Subject: big %d\n\n" % i + body, user)
    commands = b"a SELECT INBOX\r\nb FETCH 1:* BODY.PEEK[]\r\nc NOOP\r\nd LOGOUT\r\ne NOOP\r\nf NOOP"
    out = _run_script(user, maildir, commands, stdin_file)
    assert out.count(b" FETCH (BODY[] {") == 12
    assert out.count(body.replace(b"\n", b"\r\n")) == 12
    assert out.endswith(b")\r\nb OK FETCH completed\r\nc OK NOOP completed\r\n"
                        b"* BYE imapd logging out\r\nd OK Logout completed\r\n")


def test_input_that_ends_behind_a_full_output_buffer_is_answered_in_full(user, maildir):
    # many small commands: their answers fill the output buffer between two
    # writes, with no command running and more commands still to read
    cfg = config_file("[limits]\noutput_buffer = 65536\n")
    deliver(maildir, b"Subject: small\n\n" + b"x" * 1000 + b"\n", user)
    commands = b"a SELECT INBOX\r\n" + b"".join(b"f%d FETCH 1 BODY.PEEK[]\r\n" % i for i in range(600)) + b"z LOGOUT\r\n"
    out = _run_script(user, maildir, commands, stdin_file=True, args=("--config", cfg))
    assert out.count(b" FETCH (BODY[] {") == 600
    assert out.endswith(b"f599 OK FETCH completed\r\n* BYE imapd logging out\r\nz OK Logout completed\r\n")


def test_output_pipe_that_fills_is_enlarged_once(user, maildir):
    # under ssh stdout is a pipe of 64 KB: a FETCH that fills it makes imapd
    # raise it to 1 MB (the reader is woken 16 times less often); output that
    # never fills it leaves it alone
    import fcntl

    deliver(maildir, b"Subject: big\n\n" + b"y" * 200_000 + b"\n", user)
    imap = ImapPipe(["--maildir", maildir], user)
    fd = imap.proc.stdout.fileno()
    try:
        start = fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ)
        assert start < 1 << 20
        imap.send(b"a SELECT INBOX\r\n")
        imap.read_until_tagged("a")
        assert fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ) == start
        imap.send(b"b FETCH 1 BODY.PEEK[]\r\n")
        time.sleep(0.5)  # not read: the pipe fills
        assert fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ) == 1 << 20
        lines = imap.read_until_tagged("b")
        assert lines[-1] == b"b OK FETCH completed"
        assert b"y" * 200_000 + b"\r\n)" in b"\r\n".join(lines)
    finally:
        imap.send(b"z LOGOUT\r\n")
        imap.proc.wait(10)


def test_input_that_ends_in_idle_or_a_literal_ends_the_session(user, maildir):
    for commands in (b"a SELECT INBOX\r\nb IDLE\r\n", b"a SELECT INBOX\r\nb APPEND INBOX {10}\r\nabc",
                     b"a NOOP\r\nb NOOP without its line end"):
        out = _run_script(user, maildir, commands, stdin_file=False)
        assert out.count(b"\r\n") == out.count(b"\n")
        last = out.splitlines()[-1]
        assert last in (b"+ idling", b"+ Ready for literal data", b"a OK NOOP completed"), last


def test_overlong_line_is_refused_and_session_survives(user, maildir):
    with ImapPipe(["--maildir", maildir], user) as c:
        c.send(b"big NOOP " + b"x" * 200_000 + b"\r\n")
        lines = c.read_until_tagged("big")
        assert lines[-1].startswith(b"big BAD [TOOBIG]")
        assert c.command("NOOP")[-1].startswith(b"t1 OK")


def test_too_many_bad_commands_end_with_bye(user, maildir):
    cfg = config_file("[limits]\nbad_commands = 3\n")
    with ImapPipe(["--config", cfg, "--maildir", maildir], user) as c:
        c.send(b"a\r\nb\r\nc\r\n")
        out = b""
        deadline = time.time() + 5
        while b"BYE" not in out and time.time() < deadline:
            out += c.read_some()
        assert b"* BYE Too many invalid commands" in out
        assert c.proc.wait(5) == 0


def test_autologout(user, maildir):
    cfg = config_file("[limits]\nautologout = 1\n")
    with ImapPipe(["--config", cfg, "--maildir", maildir], user) as c:
        start = time.monotonic()
        line = c.read_line(timeout=5)
        assert line.startswith(b"* BYE Autologout")
        assert time.monotonic() - start < 4
        assert c.proc.wait(5) == 0


def test_literal_beyond_limit(user, maildir):
    cfg = config_file("[limits]\nliteral_size = 100\n")
    with ImapPipe(["--config", cfg, "--maildir", maildir], user) as c:
        c.send(b"l1 ID (\"x\" {5000}\r\n")
        assert c.read_line().startswith(b"l1 NO [TOOBIG]")
        assert c.command("NOOP")[-1].startswith(b"t1 OK")
        c.send(b"l2 ID (\"x\" {5000+}\r\n")
        assert c.read_line().startswith(b"* BYE [TOOBIG]")
        assert c.proc.wait(5) == 0


def test_root_requires_login_and_refuses_preauth():
    if os.geteuid() != 0:
        pytest.skip("needs root to check what a root-started imapd does")
    with ImapPipe([], as_root=True) as c:
        assert c.greeting.startswith(b"* OK [CAPABILITY ")
        lines = c.command("SELECT INBOX")
        assert b"requires authentication" in lines[-1]
    with ImapPipe(["--preauth"], as_root=True) as c:
        assert c.greeting.startswith(b"* BYE")
        assert c.proc.wait(5) == 1


def test_cli_version_help_check_config(tmp_path):
    env = server_env()
    out = subprocess.run(IMAPD + ["--version"], capture_output=True, env=env, text=True)
    assert out.returncode == 0 and out.stdout.startswith("imapd ")
    out = subprocess.run(IMAPD + ["--help"], capture_output=True, env=env, text=True)
    assert out.returncode == 0 and "--check-config" in out.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text('[limits]\nline_length = -1\nbogus = 1\n[auth]\nbackend = "ldap"\n')
    out = subprocess.run(IMAPD + ["--check-config", str(bad)], capture_output=True, env=env, text=True)
    assert out.returncode == 1
    assert "limits.line_length: must be greater than zero" in out.stdout
    assert "limits.bogus: unknown key" in out.stdout
    assert "auth.backend: must be one of" in out.stdout
    good = tmp_path / "good.toml"
    good.write_text("[limits]\nautologout = 600\n")
    out = subprocess.run(IMAPD + ["--check-config", str(good)], capture_output=True, env=env, text=True)
    assert out.returncode == 0, out.stdout


def test_bad_config_at_connection_gives_bye(user, maildir, tmp_path):
    cfg = config_file("[limits\n")
    with ImapPipe(["--config", cfg, "--maildir", maildir], user) as c:
        assert c.greeting == b"* BYE [UNAVAILABLE] Server configuration error"


def test_pty_session_with_pexpect(user, maildir):
    """A person at a terminal: bare LF line ends, readable answers."""
    cmd = IMAPD + ["--maildir", maildir]
    child = pexpect.spawn(cmd[0], cmd[1:], env=server_env(), timeout=10,
                          preexec_fn=None if os.geteuid() else _demote(user))
    try:
        child.expect(rb"\* PREAUTH")
        child.sendline("a NOOP")
        child.expect(rb"a OK NOOP completed")
        child.sendline("b BOGUS")
        child.expect(rb"b BAD Unknown command BOGUS")
        child.sendline("c LOGOUT")
        child.expect(rb"c OK")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0


def test_socketpair_like_mutt_tunnel(user, maildir):
    """mutt and mbsync run the tunnel command with one end of a socketpair as stdin and stdout."""
    ours, theirs = socket.socketpair()
    proc = subprocess.Popen(IMAPD + ["--maildir", maildir], stdin=theirs, stdout=theirs, stderr=subprocess.DEVNULL,
                            env=server_env(), preexec_fn=None if os.geteuid() else _demote(user), cwd="/")
    theirs.close()
    try:
        ours.settimeout(10)
        f = ours.makefile("rwb")
        assert f.readline().startswith(b"* PREAUTH")
        f.write(b"a LOGOUT\r\n")
        f.flush()
        assert f.readline().startswith(b"* BYE")
        assert f.readline().startswith(b"a OK")
        assert proc.wait(5) == 0
    finally:
        ours.close()
        if proc.poll() is None:
            proc.kill()


def _socket_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if IN_CI:
            pytest.fail(f"{name} is missing: .ci/run must install it")
        pytest.skip(f"{name} not installed")
    return path


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _wrapper_script(user, maildir) -> str:
    """A command for a super-server: run imapd as the mail user."""
    fd, path = tempfile.mkstemp(suffix=".sh", dir="/tmp")
    drop = ""
    if os.geteuid() == 0:
        drop = f"exec setpriv --reuid={user.uid} --regid={user.gid} --clear-groups "
    with os.fdopen(fd, "w") as f:
        f.write(f"#!/bin/sh\nexport PYTHONPATH={server_env()['PYTHONPATH']}\nexport HOME=/tmp\n"
                f"{drop}{' '.join(IMAPD)} --maildir {maildir}\n")
    os.chmod(path, 0o755)
    return path


@pytest.mark.parametrize("tool", ["socat", "systemd-socket-activate"])
def test_through_a_socket_super_server(user, maildir, tool):
    """inetd-style: a super-server accepts TCP and runs imapd with the socket as stdin/stdout."""
    exe = _socket_tool(tool)
    port = _free_port()
    script = _wrapper_script(user, maildir)
    if tool == "socat":
        argv = [exe, f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork", f"EXEC:{script},nofork"]
    else:
        argv = [exe, "--accept", "--inetd", "-l", f"127.0.0.1:{port}", script]
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        for _ in range(50):
            try:
                conn = socket.create_connection(("127.0.0.1", port), timeout=10)
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail(f"{tool} did not listen")
        with conn:
            f = conn.makefile("rwb")
            assert f.readline().startswith(b"* PREAUTH [CAPABILITY IMAP4rev1")
            f.write(b"a CAPABILITY\r\nb LOGOUT\r\n")
            f.flush()
            assert f.readline().startswith(b"* CAPABILITY")
            assert f.readline().startswith(b"a OK")
            assert f.readline().startswith(b"* BYE")
            assert f.readline().startswith(b"b OK")
            assert f.readline() == b""  # imapd closed the connection
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(5)
        os.unlink(script)


def _demote(user):
    def run():
        os.setgroups([])
        os.setgid(user.gid)
        os.setuid(user.uid)

    return run


def test_commands_from_a_file_answers_to_a_file_or_dev_null(user, maildir, tmp_path):
    """`imapd < commands.txt > answers.txt` (by hand, in scripts): a regular
    file or /dev/null cannot be polled, and must work all the same."""
    from harness import _demote, deliver

    deliver(maildir, b"From: a@example.com\nSubject: one\n\nbody\n", user)
    script = tmp_path / "commands.txt"
    script.write_bytes(b"a SELECT INBOX\nb FETCH 1 (FLAGS BODY.PEEK[])\nc LOGOUT\n")
    os.chmod(tmp_path, 0o755)
    os.chmod(script, 0o644)
    answers = tmp_path / "answers.txt"
    for target in (str(answers), os.devnull):
        with open(script, "rb") as stdin, open(target, "wb") as stdout:
            proc = subprocess.run(IMAPD + ["--maildir", maildir], stdin=stdin, stdout=stdout, stderr=subprocess.PIPE,
                                  env=server_env(), preexec_fn=_demote(user), timeout=30)
        assert proc.returncode == 0 and proc.stderr == b""
    text = answers.read_bytes()
    assert b"* 1 FETCH (FLAGS (\\Recent) BODY[] {" in text or b"* 1 FETCH (FLAGS () BODY[] {" in text
    assert b"Subject: one\r\n\r\nbody\r\n)" in text
    assert text.endswith(b"c OK Logout completed\r\n")


def _read_to_eof(c: ImapPipe, timeout: float = 15.0) -> bytes:
    out, deadline = c.buf, time.monotonic() + timeout
    while True:
        try:
            out += c.read_some(max(0.1, deadline - time.monotonic()))
        except EOFError:
            return out


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_stop_signal_ends_the_session_with_bye(user, maildir, signum):
    """systemd stopping the service (SIGTERM), the terminal or ssh going away
    (SIGHUP), Ctrl-C by hand (SIGINT): a BYE, the mailbox closed, exit 0,
    nothing on stderr."""
    from harness import deliver

    deliver(maildir, b"From: a@example.com\r\nSubject: one\r\n\r\nhi\r\n", user)
    with ImapPipe(["--maildir", maildir], user) as c:
        assert c.command("SELECT INBOX")[-1].startswith(b"t1 OK")
        c.proc.send_signal(signum)
        rest = _read_to_eof(c)
        assert rest == b"* BYE Server shutting down\r\n"
        assert c.proc.wait(5) == 0
        assert c.proc.stderr.read() == b""
    assert os.path.exists(os.path.join(maildir, "imapd.index"))  # closed as at LOGOUT


def test_stop_signal_during_idle(user, maildir):
    with ImapPipe(["--maildir", maildir], user) as c:
        c.command("SELECT INBOX")
        c.send(b"i IDLE\r\n")
        assert c.read_line().startswith(b"+ ")
        c.proc.send_signal(signal.SIGTERM)
        assert _read_to_eof(c) == b"* BYE Server shutting down\r\n"
        assert c.proc.wait(5) == 0


def test_stop_signal_lets_a_running_fetch_finish_first(user, maildir):
    """A FETCH whose output the client has not read yet is finished (within
    the grace period) before the BYE: no BYE inside a literal, no cut response."""
    from harness import deliver

    body = b"x" * 70 + b"\r\n"
    for k in range(60):
        deliver(maildir, b"From: a@example.com\r\nSubject: %d\r\n\r\n" % k + body * 2000, user)
    with ImapPipe(["--maildir", maildir], user) as c:
        c.command("SELECT INBOX")
        c.send(b"f FETCH 1:* BODY.PEEK[]\r\n")
        time.sleep(0.5)  # the pipe is full: the FETCH waits for us
        c.proc.send_signal(signal.SIGTERM)
        out = _read_to_eof(c)
        assert c.proc.wait(5) == 0
    assert out.count(b" FETCH (BODY[] {") == 60
    fetch_ok = out.index(b"\r\nf OK FETCH completed\r\n")
    assert out.endswith(b"f OK FETCH completed\r\n* BYE Server shutting down\r\n")
    assert fetch_ok == len(out) - len(b"\r\nf OK FETCH completed\r\n* BYE Server shutting down\r\n")


@pytest.mark.parametrize("to_stderr", [False, True])
def test_a_fault_outside_any_command_is_logged_never_printed(to_stderr):
    """An exception that escapes the session loop itself (here injected into a
    copy of imapd) ends the process with status 70 and no traceback on
    standard error -- the client's socket under inetd -- unless the config
    sends the log there."""
    user = mail_user()
    maildir = make_maildir(user)
    marker = "    gc_paused = not gc.isenabled()\n"
    root = altered_copy("session.py", lambda text: text.replace(marker, marker + "    raise RuntimeError('injected fault')\n", 1))
    try:
        cfg = config_file(f"[server]\nlog_to_stderr = {'true' if to_stderr else 'false'}\n")
        out = subprocess.run([os.path.join(REPO, "bin", "imapd"), "--config", cfg, "--maildir", maildir],
                             input=b"a NOOP\r\n", capture_output=True, preexec_fn=_run_as(user), cwd="/", timeout=30,
                             env={"PATH": os.path.dirname(sys.executable) + ":/usr/bin:/bin", "PYTHONPATH": root})
        os.unlink(cfg)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        remove_maildir(maildir)
    assert out.returncode == 70 and out.stdout.startswith(b"* PREAUTH") and b"Traceback" not in out.stdout, out
    if to_stderr:
        assert b"imapd stopped by an internal error" in out.stderr and b"RuntimeError: injected fault" in out.stderr
    else:
        assert out.stderr == b""
