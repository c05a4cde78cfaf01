"""Logins and TLS end to end, through the real deployment paths.

imapd is started as root by a super-server (socat, systemd-socket-activate,
xinetd) with the TCP socket as stdin/stdout, exactly as inetd and systemd's
`Accept=yes` do.  It authenticates real accounts (a system user through PAM,
virtual users from a passwd-file), switches to the user and serves mail; TLS
is STARTTLS on the plain port and implicit TLS with `--tls`.

Everything the root part reads (config, passwd-file, TLS key, alert file and
imapd itself) lies in a directory only root may enter, as on a server where
imapd is installed in a root-only virtualenv: once the process has become the
user it can read none of it, so a module imported lazily after login, or a
file read after the switch, fails here as it would in production.

Nothing is mocked.  The tests need root (CI runs them as root; with CI=true a
missing root or tool is a failure, not a skip).
"""

from __future__ import annotations

import base64
import imaplib
import json
import os
import pwd
import secrets
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass

import pytest
from imapclient import IMAPClient

from harness import (
    IMAPD,
    REPO,
    ImapSocket,
    MailUser,
    SuperServer,
    free_port,
    launcher_script,
    mail_user,
    make_maildir,
    proc_status,
    remove_maildir,
    require_root,
    require_tool,
    server_env,
    tagged_status,
)

pytestmark = pytest.mark.usefixtures("as_root")

MESSAGE = (
    b"From: Alice <alice@example.org>\r\nTo: Bob <bob@example.com>\r\nSubject: e2e login test\r\n"
    b"Date: Mon, 02 Nov 2026 10:00:00 +0100\r\nMessage-ID: <login-e2e@example.org>\r\n\r\n"
    b"Delivered over a logged-in session.\r\n"
)
NON_LOOPBACK = "198.51.100.7"  # TEST-NET-2, only ever on lo inside the test's own netns


@pytest.fixture(scope="module")
def as_root():
    require_root("logins as root")


# ---------------------------------------------------------------------------
# root-only material: imapd itself, config, passwd-file, TLS key, alert file


@pytest.fixture(scope="module")
def secret_dir():
    """A directory only root may enter, like /etc/imapd or a root-only venv."""
    path = tempfile.mkdtemp(prefix="imapd-e2e-root-", dir="/tmp")
    os.chmod(path, 0o700)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def private_imapd(secret_dir):
    """A copy of the imapd package that only root can read (PYTHONPATH for the launcher)."""
    lib = os.path.join(secret_dir, "lib")
    shutil.copytree(os.path.join(REPO, "imapd"), os.path.join(lib, "imapd"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([IMAPD[0], "-m", "compileall", "-q", lib], check=True, env=server_env())
    return lib


@dataclass
class Cert:
    cert: str
    key: str

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.cert)


@pytest.fixture(scope="module")
def cert(secret_dir):
    """A self-signed certificate for localhost and 127.0.0.1 (key readable by root only)."""
    openssl = require_tool("openssl")
    c = Cert(os.path.join(secret_dir, "cert.pem"), os.path.join(secret_dir, "key.pem"))
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", c.key, "-out", c.cert, "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True)
    os.chmod(c.key, 0o600)
    return c


def hash_password(password: str) -> str:
    out = subprocess.run(IMAPD + ["--hash-password"], input=password + "\n", capture_output=True, text=True,
                         env=server_env(), check=True)
    h = out.stdout.strip()
    assert h.startswith("$2b$"), out
    return h


@dataclass
class Account:
    name: str
    password: str
    uid: int
    gid: int
    home: str
    maildir: str


@pytest.fixture(scope="module")
def vusers(secret_dir):
    """passwd-file users: bob (mail as `nobody`), carol (a referral); the file is root's."""
    owner: MailUser = mail_user()
    maildir = make_maildir(owner)
    home = os.path.dirname(maildir)
    password = "Pw-" + secrets.token_hex(6)
    pw_hash = hash_password(password)
    path = os.path.join(secret_dir, "passwd")
    with open(path, "w") as f:
        f.write("# virtual users for the e2e tests\n"
                f"bob:{pw_hash}:{owner.uid}:{owner.gid}:{home}:{maildir}\n"
                f"carol:{pw_hash}:::::referral=imap://carol@mail2.example.org/\n")
    os.chmod(path, 0o600)
    yield {"file": path, "bob": Account("bob", password, owner.uid, owner.gid, home, maildir)}
    remove_maildir(maildir)


@pytest.fixture(scope="module")
def pam_user():
    """A real system account with a password; its Maildir is created by imapd in its home."""
    useradd, chpasswd, userdel, groupdel = map(require_tool, ("useradd", "chpasswd", "userdel", "groupdel"))
    base = tempfile.mkdtemp(prefix="imapd-e2e-home-", dir="/tmp")
    os.chmod(base, 0o755)
    name = f"imapde{secrets.token_hex(3)}"
    password = "Pam-" + secrets.token_hex(6)
    home = os.path.join(base, name)
    subprocess.run([useradd, "--home-dir", home, "--create-home", "--user-group", "--shell", "/usr/sbin/nologin",
                    name], check=True, capture_output=True)
    try:
        subprocess.run([chpasswd], input=f"{name}:{password}\n", text=True, check=True, capture_output=True)
        pw = pwd.getpwnam(name)
        yield Account(name, password, pw.pw_uid, pw.pw_gid, home, os.path.join(home, "Maildir"))
    finally:
        subprocess.run([userdel, "--remove", name], capture_output=True)
        subprocess.run([groupdel, name], capture_output=True)  # if left behind
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def pam_service():
    """/etc/pam.d/<test service>: pam_unix without its own failure delay, so ours is measured."""
    name = f"imapd-e2e-{secrets.token_hex(3)}"
    path = os.path.join("/etc/pam.d", name)
    with open(path, "w") as f:
        f.write("# imapd end-to-end tests (removed again by the tests)\n"
                "auth\trequired\tpam_unix.so nodelay\n"
                "account\trequired\tpam_unix.so\n")
    yield name
    os.unlink(path)


# ---------------------------------------------------------------------------
# configuration and the server


def toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + " }"
    return json.dumps(v)  # strings and lists of strings: JSON is valid TOML here


def write_config(directory: str, sections: dict[str, dict[str, object]]) -> str:
    base: dict[str, dict[str, object]] = {
        "server": {"log_to_stderr": True},
        "limits": {"failed_logins": 3, "login_timeout": 30},
        "auth": {"failure_delay": 0.2},
    }
    for section, values in sections.items():
        base.setdefault(section, {}).update(values)
    path = os.path.join(directory, f"imapd-{secrets.token_hex(3)}.toml")
    with open(path, "w") as f:
        for section, values in base.items():
            f.write(f"[{section}]\n")
            for key, value in values.items():
                f.write(f"{key} = {toml_value(value)}\n")
    os.chmod(path, 0o600)
    return path


class Deployment:
    """Starts imapd (as root, from the root-only copy) behind a super-server."""

    def __init__(self, secret_dir: str, private_imapd: str) -> None:
        self.secret_dir = secret_dir
        self.private_imapd = private_imapd
        self.servers: list[SuperServer] = []
        self.cleanups: list = []

    def launcher(self, config: str, *args: str) -> str:
        d = tempfile.mkdtemp(prefix="launch-", dir=self.secret_dir)
        return launcher_script(d, ["--config", config, *args], self.private_imapd)

    def log_path(self) -> str:
        return os.path.join(self.secret_dir, f"server-{secrets.token_hex(3)}.log")

    def serve(self, config: str, *args: str, tool: str = "socat", host: str = "127.0.0.1",
              prefix: tuple[str, ...] = ()) -> SuperServer:
        script = self.launcher(config, *args)
        port = free_port() if not prefix else 10000 + secrets.randbelow(20000)
        exe = require_tool(tool)
        if tool == "socat":
            argv = [exe, f"TCP-LISTEN:{port},bind={host},reuseaddr,fork", f"EXEC:{script},nofork"]
        elif tool == "systemd-socket-activate":
            argv = [exe, "--accept", "--inetd", "-l", f"{host}:{port}", script]
        else:
            raise ValueError(tool)
        return self.add(SuperServer([*prefix, *argv], port, self.log_path()))

    def add(self, server: SuperServer) -> SuperServer:
        self.servers.append(server)
        return server

    def close(self) -> None:
        for server in self.servers:
            server.stop()
            # shown by pytest only when the test failed
            print(f"--- log of {' '.join(server.proc.args[:3])} on port {server.port} ---\n{server.log()}")
        for fn in self.cleanups:
            fn()


@pytest.fixture
def deploy(secret_dir, private_imapd):
    d = Deployment(secret_dir, private_imapd)
    yield d
    d.close()


def connect(server: SuperServer, host: str = "127.0.0.1") -> ImapSocket:
    return ImapSocket((host, server.port))


def login_ok(lines: list[bytes]) -> None:
    assert tagged_status(lines) == b"OK", lines
    assert b"OK [CAPABILITY IMAP4rev1 " in lines[-1], lines


def quoted(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def assert_is_user(pid: int, account: Account) -> None:
    """The serving process has become the account for good: ids, groups, no capabilities, cwd."""
    st = proc_status(pid)
    assert st["Uid"] == [str(account.uid)] * 4, st["Uid"]
    assert st["Gid"] == [str(account.gid)] * 4, st["Gid"]
    assert "0" not in st.get("Groups", []), st.get("Groups")
    # No capability left in any set: setuid(0) and friends can never succeed again.
    for key in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
        assert int(st[key][0], 16) == 0, (key, st[key])
    assert os.readlink(f"/proc/{pid}/cwd") in (account.home, "/")


def mail_session(c: ImapSocket, account: Account) -> None:
    """SELECT, APPEND, FETCH work, and the message is on disk owned by the user."""
    lines = c.command("SELECT INBOX")
    assert tagged_status(lines) == b"OK", lines
    c.send(b"ap APPEND INBOX (\\Flagged) {%d}\r\n" % len(MESSAGE))
    assert c.read_line().startswith(b"+ ")
    c.send(MESSAGE + b"\r\n")
    lines = c.read_until_tagged("ap")
    assert tagged_status(lines) == b"OK" and b"APPENDUID" in lines[-1], lines
    lines += c.command("NOOP")
    assert any(l.endswith(b" EXISTS") for l in lines), lines
    lines = c.command("FETCH 1 (FLAGS BODY.PEEK[])")
    assert tagged_status(lines) == b"OK", lines
    assert MESSAGE in lines[0] and b"\\Flagged" in lines[0], lines
    files = [os.path.join(account.maildir, sub, f) for sub in ("cur", "new") for f in
             os.listdir(os.path.join(account.maildir, sub))]
    assert files and all(os.stat(f).st_uid == account.uid for f in files), files
    assert os.stat(account.maildir).st_uid == account.uid


def logout(c: ImapSocket) -> None:
    lines = c.command("LOGOUT")
    assert lines[0].startswith(b"* BYE") and tagged_status(lines) == b"OK", lines
    assert c.read_all(5) == b""


# ---------------------------------------------------------------------------
# PAM


def test_pam_login_switches_to_the_user_and_serves_mail(deploy, pam_user, pam_service, secret_dir):
    cfg = write_config(secret_dir, {"auth": {"backend": "pam", "pam_service": pam_service}})
    server = deploy.serve(cfg)
    with connect(server) as c:
        assert c.greeting.startswith(b"* OK [CAPABILITY IMAP4rev1 ")
        assert b"AUTH=PLAIN" in c.greeting and b"LOGINDISABLED" not in c.greeting  # loopback
        pid = c.server_pid()
        assert proc_status(pid)["Uid"][0] == "0"  # root until the login
        lines = c.command(f"LOGIN {pam_user.name} {quoted(pam_user.password)}")
        login_ok(lines)
        assert b"AUTH=PLAIN" not in lines[-1] and b"STARTTLS" not in lines[-1]
        assert c.server_pid() == pid
        assert_is_user(pid, pam_user)
        assert os.readlink(f"/proc/{pid}/cwd") == pam_user.home
        mail_session(c, pam_user)  # ~/Maildir did not exist: made by the user's process
        logout(c)
    assert "login: user=" + pam_user.name in server.log()


def test_pam_wrong_password_delay_doubles_then_bye(deploy, pam_user, pam_service, secret_dir):
    cfg = write_config(secret_dir, {"auth": {"backend": "pam", "pam_service": pam_service, "failure_delay": 0.2},
                                    "limits": {"failed_logins": 3}})
    server = deploy.serve(cfg)
    with connect(server) as c:
        times = []
        for attempt in range(3):
            start = time.monotonic()
            lines = c.command(f"LOGIN {pam_user.name} wrong{attempt}")
            times.append(time.monotonic() - start)
            assert lines[-1].startswith(b"t%d NO [AUTHENTICATIONFAILED]" % (attempt + 1)), lines
            assert (b"* BYE" in b"\n".join(lines)) == (attempt == 2), lines
        assert c.read_all(5) == b""  # the server hung up after the BYE
    assert times[0] >= 0.2 and times[1] >= 0.4 and times[2] >= 0.8, times
    assert times[0] < times[1] < times[2], times
    assert times[2] < 10, times
    # a good password on a fresh connection still works: failures are per connection
    with connect(server) as c:
        login_ok(c.command(f"LOGIN {pam_user.name} {quoted(pam_user.password)}"))


def test_sample_pam_service_file_logs_in(deploy, pam_user, secret_dir):
    """etc/pam.d/imap as shipped (common-auth, common-account) accepts a good password."""
    if not os.path.exists("/etc/pam.d/common-auth"):
        pytest.skip("no Debian-style /etc/pam.d/common-auth here")
    name = f"imapd-e2e-sample-{secrets.token_hex(3)}"
    path = os.path.join("/etc/pam.d", name)
    shutil.copy(os.path.join(REPO, "etc", "pam.d", "imap"), path)
    deploy.cleanups.append(lambda: os.unlink(path))
    server = deploy.serve(write_config(secret_dir, {"auth": {"pam_service": name}}))
    with connect(server) as c:
        login_ok(c.command(f"LOGIN {pam_user.name} {quoted(pam_user.password)}"))
        assert_is_user(c.server_pid(), pam_user)


# ---------------------------------------------------------------------------
# passwd-file: SASL mechanisms, referrals, alerts


def passwd_config(secret_dir: str, vusers: dict, **extra: dict) -> str:
    sections: dict[str, dict[str, object]] = {"auth": {"backend": "passwd-file", "passwd_file": vusers["file"]}}
    for section, values in extra.items():
        sections.setdefault(section, {}).update(values)
    return write_config(secret_dir, sections)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_passwd_file_authenticate_mechanisms(deploy, vusers, secret_dir):
    bob: Account = vusers["bob"]
    alert = os.path.join(secret_dir, "alert.txt")
    with open(alert, "w") as f:
        f.write("Maintenance tonight at 22:00 UTC.\n\nBack by midnight.\n")
    os.chmod(alert, 0o600)  # root's alone: read before the switch
    server = deploy.serve(passwd_config(secret_dir, vusers, server={"alert_file": alert}))
    plain = b64(b"\0bob\0" + bob.password.encode())

    # AUTHENTICATE PLAIN with the initial response on the command line (SASL-IR)
    with connect(server) as c:
        assert b"SASL-IR" in c.greeting and b"AUTH=PLAIN" in c.greeting and b"AUTH=LOGIN" in c.greeting
        lines = c.command(f"AUTHENTICATE PLAIN {plain}")
        login_ok(lines)
        assert b"* OK [ALERT] Maintenance tonight at 22:00 UTC." in lines
        assert b"* OK [ALERT] Back by midnight." in lines
        assert_is_user(c.server_pid(), bob)
        assert os.readlink(f"/proc/{c.server_pid()}/cwd") == bob.home
        mail_session(c, bob)
        logout(c)

    # AUTHENTICATE PLAIN with the response after a continuation
    with connect(server) as c:
        c.send(b"p1 AUTHENTICATE PLAIN\r\n")
        assert c.read_line() == b"+ "
        c.send(plain.encode() + b"\r\n")
        login_ok(c.read_until_tagged("p1"))
        assert_is_user(c.server_pid(), bob)

    # "*" cancels (BAD, not a failed login); then AUTHENTICATE LOGIN in two steps
    with connect(server) as c:
        c.send(b"x1 AUTHENTICATE PLAIN\r\n")
        assert c.read_line() == b"+ "
        c.send(b"*\r\n")
        assert c.read_until_tagged("x1")[-1].startswith(b"x1 BAD")
        c.send(b"x2 AUTHENTICATE LOGIN\r\n")
        assert c.read_line() == b"+ VXNlcm5hbWU6"  # "Username:"
        c.send(b64(b"bob").encode() + b"\r\n")
        assert c.read_line() == b"+ UGFzc3dvcmQ6"  # "Password:"
        c.send(b64(bob.password.encode()).encode() + b"\r\n")
        lines = c.read_until_tagged("x2")
        login_ok(lines)
        assert b"* OK [ALERT] Back by midnight." in lines
        assert_is_user(c.server_pid(), bob)

    # AUTHENTICATE LOGIN with the user name as initial response; a wrong password
    with connect(server) as c:
        c.send(f"y1 AUTHENTICATE LOGIN {b64(b'bob')}\r\n".encode())
        assert c.read_line() == b"+ UGFzc3dvcmQ6"
        c.send(b64(b"not-it").encode() + b"\r\n")
        assert c.read_until_tagged("y1")[-1].startswith(b"y1 NO [AUTHENTICATIONFAILED]")
        assert proc_status(c.server_pid())["Uid"][0] == "0"  # still the login process
        lines = c.command(f"LOGIN bob {quoted(bob.password)}")
        login_ok(lines)


def test_referrals(deploy, vusers, secret_dir):
    bob: Account = vusers["bob"]
    server = deploy.serve(passwd_config(secret_dir, vusers,
                                        auth={"referrals": {"dave": "imap://dave@mail3.example.org/"}}))
    with connect(server) as c:
        assert b"LOGIN-REFERRALS" in c.greeting
        # passwd-file line with referral=: after a good password
        lines = c.command(f"LOGIN carol {quoted(bob.password)}")
        assert lines[-1].startswith(b"t1 NO [REFERRAL imap://carol@mail2.example.org/]"), lines
        # [auth] referrals: the user is sent on, whatever the password
        lines = c.command("AUTHENTICATE PLAIN " + b64(b"\0dave\0whatever"))
        assert lines[-1].startswith(b"t2 NO [REFERRAL imap://dave@mail3.example.org/]"), lines
        assert proc_status(c.server_pid())["Uid"][0] == "0"  # no mail opened, nobody switched to
        assert tagged_status(c.command("SELECT INBOX")) == b"BAD"  # still not authenticated
        login_ok(c.command(f"LOGIN bob {quoted(bob.password)}"))


def test_login_timeout_applies_before_login(deploy, vusers, secret_dir):
    server = deploy.serve(passwd_config(secret_dir, vusers, limits={"login_timeout": 1.5}))
    # a client that keeps sending NOOPs but never logs in
    with connect(server) as c:
        start = time.monotonic()
        bye = b""
        while time.monotonic() - start < 6:
            try:
                c.send(b"n NOOP\r\n")
                line = c.read_line(timeout=0.3)
            except TimeoutError:
                continue
            except (EOFError, OSError):
                break
            if line.startswith(b"* BYE"):
                bye = line
                break
        assert bye.startswith(b"* BYE"), bye
        assert 1.2 < time.monotonic() - start < 5
    # a client that starts AUTHENTICATE and never answers the continuation
    with connect(server) as c:
        start = time.monotonic()
        c.send(b"a AUTHENTICATE PLAIN\r\n")
        assert c.read_line() == b"+ "
        assert c.read_line(timeout=5).startswith(b"* BYE Login timeout")
        assert time.monotonic() - start < 5


# ---------------------------------------------------------------------------
# real clients


def test_imaplib_login_over_the_socket(deploy, vusers, secret_dir):
    bob: Account = vusers["bob"]
    server = deploy.serve(passwd_config(secret_dir, vusers))
    imap = imaplib.IMAP4("127.0.0.1", server.port, timeout=10)
    try:
        assert imap.state == "NONAUTH"
        assert "AUTH=PLAIN" in imap.capabilities
        typ, data = imap.login("bob", bob.password)
        assert typ == "OK", data
        typ, data = imap.append("INBOX", None, None, MESSAGE)
        assert typ == "OK" and b"APPENDUID" in data[0], data
        typ, data = imap.select("INBOX")
        assert typ == "OK", data
        typ, data = imap.fetch(data[0].decode(), "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert typ == "OK" and b"Subject: e2e login test" in data[0][1], data
    finally:
        imap.logout()
    imap = imaplib.IMAP4("127.0.0.1", server.port, timeout=10)
    try:
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            imap.login("bob", "wrong password")
    finally:
        imap.shutdown()


def test_imapclient_starttls_then_login(deploy, vusers, secret_dir, cert):
    bob: Account = vusers["bob"]
    server = deploy.serve(passwd_config(secret_dir, vusers, tls={"certificate": cert.cert, "key": cert.key}))
    client = IMAPClient("127.0.0.1", port=server.port, ssl=False, timeout=10)
    try:
        assert b"STARTTLS" in client.capabilities()
        client.starttls(cert.client_context())
        assert b"STARTTLS" not in client.capabilities()
        client.login("bob", bob.password)
        info = client.select_folder("INBOX")
        assert b"UIDVALIDITY" in info
        uid_line = client.append("INBOX", MESSAGE, flags=[b"\\Seen"])
        assert b"APPENDUID" in uid_line
        uids = client.search(["SUBJECT", "e2e login test"])
        assert uids
        data = client.fetch(uids[-1:], ["RFC822"])
        assert data[uids[-1]][b"RFC822"] == MESSAGE
    finally:
        client.logout()


# ---------------------------------------------------------------------------
# TLS


def test_starttls_with_python_ssl(deploy, vusers, secret_dir, cert):
    bob: Account = vusers["bob"]
    server = deploy.serve(passwd_config(secret_dir, vusers, tls={"certificate": cert.cert, "key": cert.key}))
    with connect(server) as c:
        assert b" STARTTLS" in c.greeting
        lines = c.command("STARTTLS")
        assert lines == [b"t1 OK Begin TLS negotiation now"]
        c.starttls(cert.client_context(), "127.0.0.1")
        assert c.sock.version() in ("TLSv1.2", "TLSv1.3")
        caps = c.command("CAPABILITY")[0]
        assert caps.startswith(b"* CAPABILITY IMAP4rev1") and b"STARTTLS" not in caps and b"AUTH=PLAIN" in caps
        assert tagged_status(c.command("STARTTLS")) == b"BAD"  # not twice
        login_ok(c.command(f"LOGIN bob {quoted(bob.password)}"))
        assert_is_user(c.server_pid(), bob)
        assert tagged_status(c.command("SELECT INBOX")) == b"OK"
        logout(c)


def test_starttls_with_openssl_s_client(deploy, vusers, secret_dir, cert):
    bob: Account = vusers["bob"]
    openssl = require_tool("openssl")
    server = deploy.serve(passwd_config(secret_dir, vusers, tls={"certificate": cert.cert, "key": cert.key}))
    script = f"a CAPABILITY\nb LOGIN bob {quoted(bob.password)}\nc SELECT INBOX\nd LOGOUT\n"
    out = subprocess.run(
        [openssl, "s_client", "-starttls", "imap", "-connect", f"127.0.0.1:{server.port}", "-CAfile", cert.cert,
         "-verify_return_error", "-servername", "localhost", "-crlf", "-quiet"],
        input=script.encode(), capture_output=True, timeout=20)
    text = out.stdout.decode("utf-8", "replace")
    assert out.returncode == 0, (text, out.stderr)
    lines = text.splitlines()
    caps = next(l for l in lines if l.startswith("* CAPABILITY"))
    assert "STARTTLS" not in caps and "AUTH=PLAIN" in caps
    assert any(l.startswith("b OK [CAPABILITY") for l in lines), text
    assert any(l.startswith("c OK [READ-WRITE]") for l in lines), text
    assert any(l.startswith("d OK") for l in lines), text  # -verify_return_error: the certificate was checked


def test_implicit_tls(deploy, vusers, secret_dir, cert):
    bob: Account = vusers["bob"]
    server = deploy.serve(passwd_config(secret_dir, vusers, tls={"certificate": cert.cert, "key": cert.key}),
                          "--tls", tool="systemd-socket-activate")
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    with cert.client_context().wrap_socket(raw, server_hostname="localhost") as s:
        f = s.makefile("rwb")
        greeting = f.readline()
        assert greeting.startswith(b"* OK [CAPABILITY IMAP4rev1 ")
        assert b"STARTTLS" not in greeting and b"AUTH=PLAIN" in greeting
        f.write(f"a LOGIN bob {quoted(bob.password)}\r\nb LOGOUT\r\n".encode())
        f.flush()
        assert f.readline().startswith(b"a OK [CAPABILITY")
        assert f.readline().startswith(b"* BYE")
        assert f.readline().startswith(b"b OK")
        assert f.readline() == b""
    # and with openssl s_client, as an admin checks port 993
    openssl = require_tool("openssl")
    out = subprocess.run(
        [openssl, "s_client", "-connect", f"127.0.0.1:{server.port}", "-CAfile", cert.cert,
         "-verify_return_error", "-crlf", "-quiet"],
        input=b"a CAPABILITY\nb LOGOUT\n", capture_output=True, timeout=20)
    assert out.returncode == 0, out
    assert b"* OK [CAPABILITY IMAP4rev1" in out.stdout and b"b OK" in out.stdout, out.stdout
    # a client speaking plaintext to the TLS port gets nothing readable and is dropped
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as plain:
        plain.sendall(b"a LOGIN bob x\r\n")
        data = b""
        while True:
            chunk = plain.recv(4096)
            if not chunk:
                break
            data += chunk
        assert b"* OK" not in data and b"a " not in data, data  # at most a TLS alert


def test_pipelined_starttls_injection_is_never_executed(deploy, vusers, secret_dir, cert):
    bob: Account = vusers["bob"]
    server = deploy.serve(passwd_config(secret_dir, vusers, tls={"certificate": cert.cert, "key": cert.key}))
    with connect(server) as c:
        # one packet: STARTTLS and, behind it, a command a man in the middle slipped in
        c.send(f"a STARTTLS\r\nb LOGIN bob {quoted(bob.password)}\r\n".encode())
        assert c.read_line() == b"a OK Begin TLS negotiation now"
        assert c.silent_for(0.5), c.buf  # nothing about b before the handshake
        c.starttls(cert.client_context(), "localhost")
        lines = c.command("NOOP")
        assert lines == [b"t1 OK NOOP completed"], lines  # nothing about b after it either
        lines = c.command("SELECT INBOX")
        assert tagged_status(lines) == b"BAD" and b"authentic" in lines[-1].lower(), lines
        assert proc_status(c.server_pid())["Uid"][0] == "0"
        login_ok(c.command(f"LOGIN bob {quoted(bob.password)}"))
    assert "login: user=bob" in server.log()
    assert server.log().count("login: user=bob") == 1


# ---------------------------------------------------------------------------
# a client that is not on loopback: a network namespace of the test's own


@pytest.fixture
def netns():
    ip = require_tool("ip")
    name = f"imapde2e{secrets.token_hex(3)}"
    made = subprocess.run([ip, "netns", "add", name], capture_output=True, text=True)
    if made.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"ip netns add failed: {made.stderr}")
        pytest.skip(f"cannot make a network namespace: {made.stderr.strip()}")
    try:
        subprocess.run([ip, "-n", name, "link", "set", "lo", "up"], check=True)
        subprocess.run([ip, "-n", name, "addr", "add", f"{NON_LOOPBACK}/32", "dev", "lo"], check=True)
        yield [ip, "netns", "exec", name]
    finally:
        subprocess.run([ip, "netns", "del", name], capture_output=True)


def serve_in_netns(deploy: Deployment, netns: list[str], config: str) -> str:
    """imapd behind socat on NON_LOOPBACK inside the namespace; returns an AF_UNIX path that
    reaches it (a second socat connects from NON_LOOPBACK, so imapd sees a remote peer)."""
    server = deploy.serve(config, host=NON_LOOPBACK, prefix=tuple(netns))
    path = os.path.join(deploy.secret_dir, f"bridge-{secrets.token_hex(3)}.sock")
    socat = require_tool("socat")
    deploy.add(SuperServer(
        [*netns, socat, f"UNIX-LISTEN:{path},fork,mode=600",
         f"TCP:{NON_LOOPBACK}:{server.port},bind={NON_LOOPBACK}"],
        server.port, deploy.log_path(), ready=lambda: os.path.exists(path)))
    return path


def test_remote_client_must_use_tls_before_login(deploy, vusers, secret_dir, cert, netns):
    bob: Account = vusers["bob"]
    path = serve_in_netns(deploy, netns, passwd_config(
        secret_dir, vusers, tls={"certificate": cert.cert, "key": cert.key}))
    with ImapSocket(path) as c:
        assert b"LOGINDISABLED" in c.greeting and b"STARTTLS" in c.greeting
        assert b"AUTH=PLAIN" not in c.greeting
        lines = c.command(f"LOGIN bob {quoted(bob.password)}")
        assert lines[-1].startswith(b"t1 NO [PRIVACYREQUIRED]"), lines
        lines = c.command("AUTHENTICATE PLAIN " + b64(b"\0bob\0" + bob.password.encode()))
        assert lines[-1].startswith(b"t2 NO [PRIVACYREQUIRED]"), lines
        assert tagged_status(c.command("STARTTLS")) == b"OK"
        c.starttls(cert.client_context(), "localhost")
        caps = c.command("CAPABILITY")[0]
        assert b"LOGINDISABLED" not in caps and b"STARTTLS" not in caps and b"AUTH=PLAIN" in caps, caps
        login_ok(c.command(f"LOGIN bob {quoted(bob.password)}"))
        assert tagged_status(c.command("SELECT INBOX")) == b"OK"
    log = "\n".join(s.log() for s in deploy.servers)
    assert f"connection from socket {NON_LOOPBACK}" in log, log


def test_secure_networks_allow_plaintext_login(deploy, vusers, secret_dir, netns):
    bob: Account = vusers["bob"]
    path = serve_in_netns(deploy, netns, passwd_config(
        secret_dir, vusers, auth={"secure_networks": ["198.51.100.0/24"]}))
    with ImapSocket(path) as c:
        assert b"LOGINDISABLED" not in c.greeting and b"AUTH=PLAIN" in c.greeting
        login_ok(c.command(f"LOGIN bob {quoted(bob.password)}"))
    # the same network not listed: plaintext refused again
    path = serve_in_netns(deploy, netns, passwd_config(
        secret_dir, vusers, auth={"secure_networks": ["203.0.113.0/24"]}))
    with ImapSocket(path) as c:
        assert b"LOGINDISABLED" in c.greeting
        assert c.command(f"LOGIN bob {quoted(bob.password)}")[-1].startswith(b"t1 NO [PRIVACYREQUIRED]")


# ---------------------------------------------------------------------------
# the super-servers themselves


XINETD_SERVICE = os.path.join(REPO, "etc", "xinetd.d", "imap")


def xinetd_conf(directory: str, port: int, script: str) -> str:
    """The shipped etc/xinetd.d/imap, pointed at the test's port, address and command."""
    out = []
    with open(XINETD_SERVICE) as f:
        for line in f:
            key = line.strip().split("=")[0].strip() if "=" in line else ""
            if key == "port":
                line = f"\tport\t\t= {port}\n\tbind\t\t= 127.0.0.1\n"
            elif key == "server":
                line = f"\tserver\t\t= {script}\n"
            elif key == "flags":  # IPv6 would not bind to 127.0.0.1
                line = "\tflags\t\t= IPv4\n"
            elif key.startswith("log_"):
                continue  # no syslog daemon in the test; xinetd logs to its file below
            out.append(line)
    text = "".join(out)
    assert "service imap" in text and f"= {script}" in text
    text = ("defaults\n{\n\tlog_type\t= FILE " + os.path.join(directory, "xinetd.log") + "\n}\n\n" + text)
    path = os.path.join(directory, "xinetd.conf")
    with open(path, "w") as f:
        f.write(text)
    return path


@pytest.mark.parametrize("tool", ["socat", "systemd-socket-activate", "xinetd"])
def test_login_through_each_super_server(deploy, vusers, secret_dir, tool):
    bob: Account = vusers["bob"]
    cfg = passwd_config(secret_dir, vusers)
    if tool == "xinetd":
        exe = require_tool("xinetd")
        script = deploy.launcher(cfg)
        port = free_port()
        conf = xinetd_conf(os.path.dirname(script), port, script)
        server = deploy.add(SuperServer(
            [exe, "-dontfork", "-f", conf, "-pidfile", os.path.join(os.path.dirname(script), "xinetd.pid")],
            port, deploy.log_path()))
    else:
        server = deploy.serve(cfg, tool=tool)
    with connect(server) as c:
        assert c.greeting.startswith(b"* OK [CAPABILITY IMAP4rev1 ")
        login_ok(c.command(f"LOGIN bob {quoted(bob.password)}"))
        pid = c.server_pid()
        assert_is_user(pid, bob)
        assert tagged_status(c.command("SELECT INBOX")) == b"OK"
        logout(c)
